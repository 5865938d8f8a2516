"""The model benchmark runner: architecture controllers x lambdas (or FLOP budgets) x seeds on a
task, each run a fresh model trained with the same schedule, with accuracy, FLOP saving and time
per sample, the Pareto front of accuracy against FLOP saving, and JSON, CSV and PNG output.

How each controller is swept:

- ``static`` (the full model) and controllers with nothing to sweep: one run per seed;
- the budgeted baselines ``static_small``, ``random`` and ``layerdrop``: one run per FLOP budget in
  ``budgets`` (``static_small`` at the largest shape within the budget, ``random`` matched to its
  mean FLOPs, ``layerdrop`` pruned to the budget's depth at inference);
- every controller whose factory takes ``lam`` (``dht``, ``dht_integrated``, plugins alike): one run
  per value in ``lams``, and one per value in ``dht_budgets`` with ``lam`` adapted to that budget
  when it takes ``flop_budget``; ``warmup`` sets ``warmup_steps`` to that share of the training
  steps when it takes ``warmup_steps``.

Every run executes with ``threads`` intra-op threads, in this process or in ``workers`` spawned
ones, so the numbers do not depend on ``workers`` (they do depend on ``threads``: the order of
floating-point sums changes with it).

Examples:
    >>> config = ModelBenchConfig(task="digits", controllers=["static", "static_small"], budgets=[0.25], epochs=1)
    >>> [label for label, _, _ in config.plan()]
    ['static', 'static_small@0.25']
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from banditformer.bench.runlog import RunInterrupted, RunLog, WorkerLostError, atomic_file, run_jobs, write_atomic
from banditformer.core.errors import InputValidationError
from banditformer.core.validation import SEED_MAX, check_float, check_int

__all__ = [
    "BUDGETED",
    "ModelBenchConfig",
    "ModelReport",
    "budget_kwargs",
    "format_model_report",
    "pareto_front",
    "plot_model_report",
    "run_models",
    "write_model_report",
]

#: The baselines swept over FLOP budgets.
BUDGETED = ("static_small", "random", "layerdrop")


@dataclass
class ModelBenchConfig:
    """What to run.

    Attributes:
        task: a registered task (``banditformer.list_tasks()``).
        controllers: registered controller names.
        lams: ``lam`` values for controllers that take one.
        budgets: FLOP budgets (fractions of the full model's FLOPs) for the budgeted baselines.
        dht_budgets: budgets for controllers that take ``flop_budget`` (``lam`` adapted to each).
        seeds: runs per configuration, with seeds ``seed, seed + 1, ...``.
        seed: the first seed.
        epochs, batch_size, lr: the training schedule (AdamW, cosine).
        d_model, num_layers, num_heads, pooling, exit_heads: the model.
        warmup: share of the training steps on the full model before bandit controllers learn.
        layerdrop: LayerDrop's training drop rate.
        task_kwargs: options of the task.
        controller_kwargs: extra options per controller name.
        threads: intra-op threads of every run.
    """

    task: str = "digits"
    controllers: list[str] = field(default_factory=lambda: ["static", "static_small", "random", "layerdrop", "dht"])
    lams: list[float] = field(default_factory=lambda: [0.05, 0.2])
    budgets: list[float] = field(default_factory=lambda: [0.5, 0.25])
    dht_budgets: list[float] = field(default_factory=list)
    seeds: int = 1
    seed: int = 0
    epochs: int = 15
    batch_size: int = 32
    lr: float = 3e-3
    d_model: int = 64
    num_layers: int = 4
    num_heads: int = 4
    pooling: str = "cls"
    exit_heads: bool = False
    warmup: float = 0.0
    layerdrop: float = 0.2
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    controller_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: int = 1

    def __post_init__(self) -> None:
        from banditformer.plugins import check_registered

        check_registered("task", self.task)
        if isinstance(self.controllers, str):
            raise InputValidationError(f"expected a non-empty list of controller names, got {self.controllers!r}")
        check_registered("controller", self.controllers)
        for name in ("lams", "budgets", "dht_budgets"):
            values = getattr(self, name)
            if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
                raise InputValidationError(f"expected `{name}` to be a list of numbers, got {values!r}")
            for v in values:
                if name == "lams":
                    check_float("lams[i]", v, low=0.0)
                else:
                    check_float(f"{name}[i]", v, low=0.0, high=1.0, low_open=True)
        for name in ("seeds", "epochs", "batch_size", "d_model", "num_layers", "num_heads", "threads"):
            check_int(name, getattr(self, name), low=1)
        check_int("seed", self.seed, low=0, high=SEED_MAX)
        if self.seed + self.seeds - 1 > SEED_MAX:
            raise InputValidationError(
                f"expected the last seed (seed + seeds - 1) to be at most {SEED_MAX}, got {self.seed + self.seeds - 1}"
            )
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("warmup", self.warmup, low=0.0, high=1.0, high_open=True)
        check_float("layerdrop", self.layerdrop, low=0.0, high=1.0, high_open=True)
        if self.pooling not in ("cls", "mean"):
            raise InputValidationError(f"expected `pooling` in ('cls', 'mean'), got {self.pooling!r}")
        for name in ("task_kwargs", "controller_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise InputValidationError(f"expected `{name}` to be a dict, got {getattr(self, name)!r}")
        unknown = sorted(set(self.controller_kwargs) - set(self.controllers))
        if unknown:
            raise InputValidationError(f"expected controller_kwargs keys among {self.controllers}, got {unknown}")
        for name, options in self.controller_kwargs.items():
            if not isinstance(options, dict):
                raise InputValidationError(
                    f"expected controller_kwargs[{name!r}] to be a dict of options, got {options!r}"
                )
        cache: dict[str, Any] = {}  # the task, model and cost table, built once for every check
        plan = self._plan(cache)  # builds the task (its options against its factory) and the model
        labels = [label for label, _, _ in plan]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise InputValidationError(f"expected distinct configurations, got {repeated} more than once")
        if not labels:
            raise InputValidationError(
                f"expected at least one run, got none: controllers {self.controllers} with lams {self.lams}, "
                f"budgets {self.budgets} and dht_budgets {self.dht_budgets}"
            )
        self._check_runs(plan, cache)

    def _check_runs(self, plan: list[tuple[str, str, dict[str, Any]]], cache: dict[str, Any]) -> None:
        """Build every configuration's controller once, with the options its runs will get, so a bad
        option fails here, before the first run, and not in each run."""
        from banditformer.bench.experiment import check_experiment
        from banditformer.core.errors import BanditformerError, PluginError
        from banditformer.training import TrainConfig

        train = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed, progress=False)
        for label, controller, kwargs in plan:
            try:
                check_experiment(
                    self.task, controller, seed=self.seed, task_kwargs=self.task_kwargs, model=self.model,
                    controller_kwargs=kwargs, train=train, cache=cache,
                )  # fmt: skip
            except PluginError:  # names the plugin already
                raise
            except Exception as exc:  # name the configuration; a plugin factory's own error too
                says = str(exc) if isinstance(exc, BanditformerError) else (
                    f"expected controller {controller!r} to build, got {type(exc).__name__}: {exc}"
                )  # fmt: skip
                raise InputValidationError(f"{says} (configuration {label!r})") from exc

    @property
    def model(self) -> dict[str, Any]:
        shape = {"d_model": self.d_model, "num_layers": self.num_layers, "num_heads": self.num_heads}
        return {**shape, "pooling": self.pooling, **({"exit_heads": True} if self.exit_heads else {})}

    def digest(self) -> str:
        """A short hash of the configuration (names the results folder)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]

    def steps(self, cache: dict[str, Any] | None = None) -> int:
        """Training steps of one run (``cache``: as for
        :func:`~banditformer.bench.experiment.prepare_experiment`)."""
        data, _, _ = self._prepare({} if cache is None else cache)
        return -(-len(data.train) // self.batch_size) * self.epochs

    def plan(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The configurations, in order: ``(label, controller, controller kwargs)``; each runs
        ``seeds`` times."""
        return self._plan({})

    def _prepare(self, cache: dict[str, Any]) -> tuple[Any, dict[str, Any], Any]:
        from banditformer.bench.experiment import prepare_experiment
        from banditformer.training import TrainConfig

        train = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed, progress=False)
        return prepare_experiment(self.task, self.seed, self.task_kwargs, self.model, train, cache)

    def _plan(self, cache: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
        from banditformer.bench.experiment import controller_parameters

        runs: list[tuple[str, str, dict[str, Any]]] = []
        table = self._prepare(cache)[2]  # the task and model checked, whatever the controllers
        for name in self.controllers:
            extra = dict(self.controller_kwargs.get(name, {}))
            accepts = controller_parameters(name)
            if name in BUDGETED:
                for b in self.budgets:
                    kw = budget_kwargs(name, table, b, seed=self.seed, drop=self.layerdrop)
                    runs.append((f"{name}@{b:g}", name, {**kw, **extra}))
            elif "lam" in accepts:
                if self.warmup and "warmup_steps" in accepts:
                    extra.setdefault("warmup_steps", round(self.warmup * self.steps(cache)))
                runs += [(f"{name} lam={lam:g}", name, {**extra, "lam": lam}) for lam in self.lams]
                if "flop_budget" in accepts:
                    runs += [(f"{name} budget={b:g}", name, {**extra, "flop_budget": b}) for b in self.dht_budgets]
            else:
                runs.append((name, name, extra))
        return runs


def budget_kwargs(name: str, table: Any, budget: float, *, seed: int = 0, drop: float = 0.2) -> dict[str, Any]:
    """Options that put budgeted baseline ``name`` (one of :data:`BUDGETED`) at a FLOP ``budget``:
    ``static_small`` at the largest shape within it, ``random`` matched to its mean FLOPs,
    ``layerdrop`` (training drop rate ``drop``) pruned to its depth at inference."""
    from banditformer.controllers import RandomController, budget_shape

    if name not in BUDGETED:
        raise InputValidationError(f"expected a budgeted baseline in {BUDGETED}, got {name!r}")
    depth, heads = budget_shape(table, budget)
    if name == "static_small":
        return {"depth": depth, "heads": heads}
    if name == "random":
        rc = RandomController.for_budget(table, budget, seed=seed)
        return {"max_depth": rc.max_depth, "max_heads": rc.max_heads}
    return {"drop": drop, "inference_depth": depth}


@dataclass
class ModelReport:
    """Everything a run produced: ``runs`` holds one result dict per (configuration, seed) (see
    :func:`~banditformer.bench.experiment.run_experiment`, plus ``label`` or ``error``);
    ``summary`` one row per configuration with means and 95% intervals over seeds, and whether it
    is on the Pareto front."""

    config: ModelBenchConfig
    runs: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def _one_run(config: ModelBenchConfig, label: str, controller: str, kwargs: dict[str, Any], seed: int) -> dict:
    """One training run; a failure comes back as ``{"label", "seed", "error"}``."""
    from banditformer.bench.experiment import run_experiment
    from banditformer.training import TrainConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        train = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=seed, progress=False)
        result = run_experiment(
            config.task, controller, seed=seed, task_kwargs=config.task_kwargs, model=config.model,
            controller_kwargs=kwargs, train=train,
        )  # fmt: skip
    except Exception as exc:  # reported by label; the other runs go on
        return {"label": label, "controller": controller, "seed": seed, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        torch.set_num_threads(threads)
    return {"label": label, **result}


def _ci95(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return float("nan")
    x = torch.tensor(values, dtype=torch.float64)
    return float(stats.t.ppf(0.975, n - 1) * x.std(unbiased=True) / math.sqrt(n))


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """Which ``(accuracy, saving)`` points no other point beats in both (ties in both count as on
    the front).

    Examples:
        >>> pareto_front([(0.9, 0.0), (0.8, 0.5), (0.7, 0.4), (0.95, 0.0)])
        [False, True, False, True]
    """
    return [not any(o[0] >= p[0] and o[1] >= p[1] and (o[0] > p[0] or o[1] > p[1]) for o in points) for p in points]


def _summarise(plan: list[tuple[str, str, dict[str, Any]]], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for label, controller, _ in plan:
        ok = [r for r in runs if r["label"] == label and "error" not in r]
        failed = [r for r in runs if r["label"] == label and "error" in r]
        row: dict[str, Any] = {"label": label, "controller": controller, "seeds": len(ok), "failed": len(failed)}
        if ok:
            for key in ("accuracy", "flop_saving", "train_flop_saving", "flops_per_sample", "eval_us_per_sample",
                        "wall_time_s"):  # fmt: skip
                values = [float(r[key]) for r in ok]
                row[key] = sum(values) / len(values)
                row[f"{key}_ci95"] = _ci95(values)
        rows.append(row)
    done = [r for r in rows if r["seeds"]]
    for r, on in zip(done, pareto_front([(r["accuracy"], r["flop_saving"]) for r in done]), strict=True):
        r["pareto"] = on
    return rows


_NUMBERS = ("accuracy", "flop_saving", "train_flop_saving", "flops_per_sample", "eval_us_per_sample", "wall_time_s")


def _decode_result(doc: Any) -> dict[str, Any]:
    """A recorded run, checked (a record is data): its label, seed, and its error or numbers."""
    if not isinstance(doc, dict) or not isinstance(doc.get("label"), str) or not isinstance(doc.get("seed"), int):
        raise ValueError(f"expected a run record with a label and a seed, got {str(doc)[:80]}")
    if "error" in doc:
        if not isinstance(doc["error"], str):
            raise ValueError(f"expected the error as text, got {doc['error']!r}")
    elif not all(isinstance(doc.get(k), (int, float)) and not isinstance(doc.get(k), bool) for k in _NUMBERS):
        raise ValueError(f"expected the numbers {_NUMBERS} in a run record, got {sorted(doc)}")
    return doc


def run_models(
    config: ModelBenchConfig, progress: bool = False, workers: int = 1, log: RunLog | None = None
) -> ModelReport:
    """Train and evaluate every configuration of ``config`` ``seeds`` times.

    Args:
        config: what to run.
        progress: a progress bar over the runs.
        workers: runs at once, in spawned processes (each with ``config.threads`` threads; they
            see the plugins installed through entry points). The numbers are the same for every
            value. A run whose process dies is reported by label and seed
            (``meta["jobs"]["lost"]``); the other runs go on.
        log: a :class:`~banditformer.bench.runlog.RunLog` of kind ``"model"`` for this
            configuration: each run is recorded in it as it finishes, and runs it has recorded
            are not run again (a resume ends with the same numbers as an uninterrupted run).

    Returns:
        the report; ``meta["status"]`` is ``"complete"``, or ``"partial"`` when a run failed or
        lost its process.

    Raises:
        RunInterrupted: on Ctrl-C, after the workers are stopped; its ``report`` holds what
            finished (``meta["status"] == "interrupted"``), and ``log`` says ``interrupted``.
    """
    if not isinstance(config, ModelBenchConfig):
        raise InputValidationError(f"expected a ModelBenchConfig, got {type(config).__name__}")
    check_int("workers", workers, low=1)
    if log is not None and (not isinstance(log, RunLog) or log.kind != "model"):
        raise InputValidationError(f"expected a RunLog of kind 'model' or None, got {log!r}")
    plan = config.plan()
    jobs = [(config, label, ctrl, kw, config.seed + i) for label, ctrl, kw in plan for i in range(config.seeds)]
    keys = [f"{label}, seed {seed}" for _, label, _, _, seed in jobs]
    if log is not None:  # validate, then apply
        log.check_config(asdict(config))
        log.begin(keys)
    bar = None
    if progress:
        from tqdm import tqdm

        todo = len(keys) - (0 if log is None else len(set(keys) & set(log.recorded())))
        bar = tqdm(total=todo, desc="bench model", unit="run", dynamic_ncols=True, disable=None)
    start = time.perf_counter()
    lost: list[str] = []

    def unfinished(i: int, why: str) -> dict[str, Any]:
        _, label, controller, _, seed = jobs[i]
        return {"label": label, "controller": controller, "seed": seed, "error": why}

    def on_error(i: int, exc: Exception) -> dict[str, Any]:
        lost.append(keys[i])
        why = f"{type(exc).__name__}: {exc}"
        return unfinished(i, f"worker process lost: {why}" if isinstance(exc, WorkerLostError) else why)

    interrupted: RunInterrupted | None = None
    try:
        runs = run_jobs(
            _one_run, jobs, workers=workers, keys=keys, log=log, decode=_decode_result, on_error=on_error,
            on_done=None if bar is None else (lambda _: bar.update(1)),
        )  # fmt: skip
    except RunInterrupted as exc:
        interrupted = exc
        runs = exc.kept(keys, also=lost)
    finally:
        if bar is not None:
            bar.close()
    missing = [key for key, run in zip(keys, runs, strict=True) if run is None]
    runs = [run if run is not None else unfinished(i, "not run: interrupted") for i, run in enumerate(runs)]
    unfinished_keys = set(lost) | set(missing)
    failed = [key for key, run in zip(keys, runs, strict=True) if "error" in run and key not in unfinished_keys]
    status = "interrupted" if missing else ("partial" if lost or failed else "complete")
    counts = {"lost": lost, "failed": failed, "missing": missing}
    meta = {
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "workers": workers,
        "seconds": time.perf_counter() - start,
        "status": status,
        "jobs": {"total": len(keys), **counts},
    }
    report = ModelReport(config, runs, _summarise(plan, runs), meta)
    if interrupted is not None:
        interrupted.report = report
        if log is not None:
            log.set_status("interrupted", **counts)
        raise interrupted
    return report


def format_model_report(report: ModelReport) -> str:
    """A plain-text table, one row per configuration (means over seeds, ± the 95% interval when
    there are several); ``*`` marks the Pareto front; failed runs last, with their error."""
    many = report.config.seeds > 1
    head = (
        f"{'configuration':<26}{'accuracy':>16}{'FLOP saving':>14}{'(training)':>12}{'µs/sample':>11}"
        f"{'train time':>12}  front"
    )
    lines = [head, "-" * len(head)]
    for r in report.summary:
        if not r["seeds"]:
            continue
        acc = f"{r['accuracy']:.1%}" + (f" ± {r['accuracy_ci95'] * 100:.1f}" if many else "")
        lines.append(
            f"{r['label']:<26}{acc:>16}{r['flop_saving']:>14.1%}{r['train_flop_saving']:>12.1%}"
            f"{r['eval_us_per_sample']:>11.1f}{r['wall_time_s']:>11.1f}s  {'*' if r.get('pareto') else ''}"
        )
    lines += [f"{r['label']} (seed {r['seed']}): FAILED: {r['error']}" for r in report.runs if "error" in r]
    return "\n".join(lines)


_CSV_FIELDS = ("label", "controller", "seed", "accuracy", "flop_saving", "train_flop_saving", "flops_per_sample",
               "full_flops_per_sample", "eval_us_per_sample", "wall_time_s", "error")  # fmt: skip


def write_model_report(report: ModelReport, folder: str | os.PathLike[str]) -> Path:
    """Write ``results.json`` (``status`` from ``report.meta``, config, every run, the summary)
    and ``runs.csv`` (one row per configuration and seed) into ``folder``, each atomically;
    returns the folder."""
    if not isinstance(report, ModelReport):
        raise InputValidationError(f"expected a ModelReport, got {type(report).__name__}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "status": report.meta.get("status", "complete"),
        "config": asdict(report.config),
        "config_hash": report.config.digest(),
        "meta": report.meta,
        "summary": report.summary,
        "runs": report.runs,
    }
    from banditformer.bench.bandits import json_safe

    write_atomic(out / "results.json", json.dumps(json_safe(doc), indent=1, allow_nan=False))
    with atomic_file(out / "runs.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=_CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in report.runs:
            w.writerow({k: r.get(k, "") for k in _CSV_FIELDS})
    return out


def plot_model_report(report: ModelReport, folder: str | os.PathLike[str]) -> list[Path]:
    """Two PNGs in ``folder``: ``pareto.png``, test accuracy against inference FLOP saving, and
    ``time.png``, inference time per sample against FLOPs per sample. Each configuration is its
    mean over seeds (a large marker; with several seeds, a 95% bar on the vertical axis) and each
    seed's run a small faint dot of the same colour; on ``pareto.png`` the Pareto front of the
    means is joined and ringed. Needs matplotlib."""
    from banditformer.bench.bandits import pyplot

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
    fig.tight_layout()
    with atomic_file(out / "pareto.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    draw(ax, "flops_per_sample", "eval_us_per_sample", 1e-6, 1)
    ax.set(xlabel="inference MFLOPs per sample", ylabel="inference time per sample (µs)", title=title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_file(out / "time.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return [out / "pareto.png", out / "time.png"]
