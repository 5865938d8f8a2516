"""The benches' plots, as PNG files written atomically: the regret curves of ``bench bandits``
(:func:`plot_regret`) and the accuracy / FLOP saving and time / FLOPs charts of ``bench model``
(:func:`plot_model_report`). They need matplotlib (``pip install 'banditformer[bench]'``), which
is imported only when a plot is drawn (:func:`pyplot`): the benches run without it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from banditformer.bench.results import BanditReport, ModelReport
from banditformer.bench.stats import calibrated_accuracy, ci95_halfwidth
from banditformer.core.errors import BanditformerError, InputValidationError
from banditformer.core.files import atomic_file

__all__ = ["plot_calibrated_curves", "plot_model_report", "plot_regret", "pyplot"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files, no display), or a clear error."""
    try:  # here, not at the top: matplotlib is optional
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BanditformerError(
            f"expected matplotlib for plots (pip install 'banditformer[bench]'), got: {exc}"
        ) from None
    return plt


def _save(plt: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_regret(report: BanditReport, path: str | os.PathLike[str], log_x: bool = False) -> Path:
    """A PNG of each policy's mean cumulative regret with its 95% confidence band (Student t over
    seeds; none with one seed) at the checkpoints, and the Lai-Robbins bound (dashed) on
    Bernoulli problems; returns ``path``."""
    if not isinstance(report, BanditReport):
        raise InputValidationError(f"expected a BanditReport, got {type(report).__name__}")
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = report.rounds
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.set_prop_cycle(color=plt.cm.tab20.colors)  # 20 distinct colours: every registered policy at once
    for r in report.results:
        if r.error is not None:
            continue
        mean = r.regret.mean(0)  # (checkpoints,)
        half = ci95_halfwidth(r.regret, dim=0).nan_to_num(0.0)  # (checkpoints,), 0 with one seed
        (line,) = ax.plot(x, mean.numpy(), label=r.policy)
        ax.fill_between(x, (mean - half).numpy(), (mean + half).numpy(), color=line.get_color(), alpha=0.2)
    if report.lower_bound is not None:
        ax.plot(x, report.lower_bound, "k--", label="Lai-Robbins bound")
    if log_x:
        ax.set_xscale("log")
    c = report.config
    ax.set(xlabel="round", ylabel="cumulative regret", title=f"{c.problem}: {c.seeds} seeds, 95% bands")
    ax.legend(fontsize=7, ncol=2)
    _save(plt, fig, path)
    return path


def plot_model_report(report: ModelReport, folder: str | os.PathLike[str]) -> list[Path]:
    """Two PNGs in ``folder``: ``pareto.png``, test accuracy against inference FLOP saving, and
    ``time.png``, inference time per sample against FLOPs per sample. Each configuration is its
    mean over seeds (a large marker; with several seeds, a 95% bar on the vertical axis) and each
    seed's run a small faint dot of the same colour; on ``pareto.png`` the Pareto front of the
    means is joined and ringed. When runs recorded their operating curves (``curve``), a third,
    ``curves.png`` (:func:`plot_calibrated_curves`). Returns the paths."""
    if not isinstance(report, ModelReport):
        raise InputValidationError(f"expected a ModelReport, got {type(report).__name__}")
    plt = pyplot()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for r in report.summary if r["seeds"]]
    c = report.config
    title = f"{c.task}: {c.num_layers} blocks x {c.num_heads} heads, {c.epochs} epochs, {c.seeds} seed(s)"

    def draw(ax: Any, x: str, y: str, sx: float, sy: float) -> None:
        colors = (plt.cm.tab10 if len(rows) <= 10 else plt.cm.tab20).colors
        for i, r in enumerate(rows):
            color = colors[i % len(colors)]
            runs = [run for run in report.runs if run["label"] == r["label"] and "error" not in run]
            ax.scatter([run[x] * sx for run in runs], [run[y] * sy for run in runs], s=12, color=color, alpha=0.35)
            half = r.get(f"{y}_ci95", float("nan"))
            ax.errorbar(r[x] * sx, r[y] * sy, yerr=None if half != half else half * sy, fmt="o", ms=7, capsize=3,
                        color=color, label=r["label"])  # fmt: skip

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    draw(ax, "flop_saving", "accuracy", 100, 100)
    front = sorted((r for r in rows if r.get("pareto")), key=lambda r: r["flop_saving"])
    if front:
        xs, ys = [r["flop_saving"] * 100 for r in front], [r["accuracy"] * 100 for r in front]
        ax.plot(xs, ys, "k--", lw=1, label="Pareto front (means)")
        ax.scatter(xs, ys, s=200, facecolors="none", edgecolors="k")
    ax.set(xlabel="inference FLOP saving (%)", ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize=7, ncol=2)
    _save(plt, fig, out / "pareto.png")

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    draw(ax, "flops_per_sample", "eval_us_per_sample", 1e-6, 1)
    ax.set(xlabel="inference MFLOPs per sample", ylabel="inference time per sample (µs)", title=title)
    ax.legend(fontsize=7, ncol=2)
    _save(plt, fig, out / "time.png")
    paths = [out / "pareto.png", out / "time.png"]
    if any("curve" in run for run in report.runs if "error" not in run):
        paths.append(plot_calibrated_curves(report, out / "curves.png"))
    return paths


def plot_calibrated_curves(report: ModelReport, path: str | os.PathLike[str], points: int = 400) -> Path:
    """A PNG of each controller's test accuracy against the FLOP budget its network is calibrated
    to on validation (:func:`~banditformer.bench.stats.calibrated_accuracy`; a seed's runs pooled,
    as the report's calibrated area is), its mean over seeds with a 95% band, at ``points``
    budgets from the report's cheapest configuration to 1; every configuration without a curve
    (the static baselines) is its mean accuracy at its mean FLOP ratio, with its 95% bar. Returns
    ``path``."""
    if not isinstance(report, ModelReport):
        raise InputValidationError(f"expected a ModelReport, got {type(report).__name__}")
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [r for r in report.summary if r["seeds"]]
    low = min((1.0 - r["flop_saving"] for r in rows), default=0.0)
    budgets = [low + (1.0 - low) * i / (points - 1) for i in range(points)]
    pooled: dict[str, dict[int, list[tuple[float, float, float]]]] = {}
    for run in report.runs:
        if "error" not in run and "curve" in run:
            pooled.setdefault(run["controller"], {}).setdefault(run["seed"], []).extend(
                (p["val_flop_ratio"], p["val_accuracy"], p["accuracy"]) for p in run["curve"]
            )
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    colors = plt.cm.tab10.colors
    for i, (controller, by_seed) in enumerate(sorted(pooled.items())):
        acc = torch.tensor([[calibrated_accuracy(c, b) for b in budgets] for c in by_seed.values()]) * 100
        mean, half = acc.mean(0), ci95_halfwidth(acc, dim=0).nan_to_num(0.0)
        color = colors[i % len(colors)]
        ax.step(budgets, mean.tolist(), where="post", color=color, label=f"{controller} (calibrated)")
        ax.fill_between(budgets, (mean - half).tolist(), (mean + half).tolist(), step="post", color=color, alpha=0.15)
    for j, r in enumerate(r for r in rows if r["controller"] not in pooled):
        half = r.get("accuracy_ci95", float("nan"))
        color = colors[(len(pooled) + j) % len(colors)]
        ax.errorbar(1.0 - r["flop_saving"], r["accuracy"] * 100, yerr=None if half != half else half * 100,
                    fmt="s", ms=6, capsize=3, color=color, label=r["label"])  # fmt: skip
    c = report.config
    title = f"{c.task}: {c.num_layers} blocks, {c.seeds} seed(s), 95% bands"
    ax.set(xlabel="inference FLOP budget (ratio of the full model; calibrated on validation)",
           ylabel="test accuracy (%)", title=title)  # fmt: skip
    ax.legend(fontsize=7, ncol=2)
    _save(plt, fig, path)
    return path
