"""The bandit benchmark runner: policies x seeds on a registered problem, with regret curves,
confidence intervals, time per decision, the Lai-Robbins lower bound on Bernoulli problems, and
JSON and CSV output.

Every seed is an independent run; the runs of one policy execute together as the groups of one
batched policy, so a round is one ``select``/``update`` of ``seeds`` rows, and every policy faces
the same reward stream seed. A policy that raises mid-run is reported by name with its error and
the others still run.

>>> report = run_bandits(BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=50, seeds=3))
>>> report.results[0].policy, report.results[0].regret.shape
('ucb1', torch.Size([3, 9]))
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from scipy import stats
from torch import Tensor

from banditformer.core.errors import BanditformerError, InputValidationError
from banditformer.core.validation import check_int

__all__ = [
    "MABWISER_REFERENCES",
    "BanditBenchConfig",
    "BanditReport",
    "PolicyRun",
    "agreement",
    "bernoulli_kl",
    "format_report",
    "lai_robbins_bound",
    "plot_regret",
    "run_bandits",
    "run_mabwiser",
    "write_report",
]


@dataclass
class BanditBenchConfig:
    """What to run.

    Attributes:
        problem: a registered problem name (``banditformer.list_problems()``).
        policies: registered policy names; ``None``: every context-free one-arm policy that takes
            the problem's rewards.
        horizon: rounds per run.
        seeds: independent runs per policy.
        seed: master seed (the problem's reward stream and the policies' generators).
        checkpoints: rounds at which cumulative regret is recorded, spaced geometrically up to
            ``horizon`` (for log-x plots) and always including it.
        mabwiser: also run MABWiser's UCB1 and Thompson sampling beside ours (those of
            ``policies`` that have a reference, :data:`MABWISER_REFERENCES`) on the same problem
            and seeds; needs ``pip install 'banditformer[bench]'``.
    """

    problem: str = "bernoulli_easy"
    policies: list[str] | None = None
    horizon: int = 2000
    seeds: int = 20
    seed: int = 0
    checkpoints: int = 10
    mabwiser: bool = False

    def __post_init__(self) -> None:
        from banditformer.plugins import list_problems

        if self.problem not in list_problems():
            raise InputValidationError(
                f"expected a registered problem, got {self.problem!r}; available: {', '.join(list_problems())}"
            )
        check_int("horizon", self.horizon, low=1)
        check_int("seeds", self.seeds, low=1)
        check_int("seed", self.seed, low=0)
        check_int("checkpoints", self.checkpoints, low=1)
        if self.policies is not None:
            from banditformer.harness.quick import check_context_free
            from banditformer.plugins import list_policies

            if isinstance(self.policies, str) or not self.policies:
                raise InputValidationError(f"expected a non-empty list of policy names, got {self.policies!r}")
            known = list_policies()
            for name in self.policies:
                if name not in known:
                    raise InputValidationError(
                        f"expected a registered policy, got {name!r}; available: {', '.join(known)}"
                    )
            check_context_free(self.policies, self.problem, self.reward_range)

    @property
    def reward_range(self) -> tuple[float, float]:
        from banditformer.plugins import make_problem

        return make_problem(self.problem, seed=self.seed).reward_range

    def rounds(self) -> list[int]:
        """The checkpoint rounds, increasing, ending at ``horizon``."""
        pts = torch.logspace(0, math.log10(self.horizon), self.checkpoints, dtype=torch.float64)
        return sorted({*(round(float(p)) for p in pts), self.horizon})

    def digest(self) -> str:
        """A short hash of the configuration (names the results folder)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class PolicyRun:
    """One policy's runs: ``regret`` ``(seeds, len(rounds))`` cumulative regret at each checkpoint,
    float64; ``error`` is the message when the policy raised (its regret is then empty)."""

    policy: str
    regret: Tensor
    seconds: float
    decisions: int
    error: str | None = None

    @property
    def final(self) -> Tensor:
        return self.regret[:, -1]

    @property
    def regret_mean(self) -> float:
        return float(self.final.mean()) if self.error is None else float("nan")

    @property
    def regret_ci95(self) -> float:
        """Half-width of the 95% Student-t confidence interval of the final regret's mean."""
        if self.error is not None or self.final.numel() < 2:
            return float("nan")
        n = self.final.numel()
        return float(stats.t.ppf(0.975, n - 1) * self.final.std(unbiased=True) / math.sqrt(n))

    @property
    def seconds_per_decision(self) -> float:
        return self.seconds / max(self.decisions, 1)


@dataclass
class BanditReport:
    """Everything a run produced; ``lower_bound`` is the Lai-Robbins bound at each checkpoint on
    Bernoulli problems (``None`` otherwise)."""

    config: BanditBenchConfig
    rounds: list[int]
    results: list[PolicyRun]
    lower_bound: list[float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def bernoulli_kl(p: Tensor, q: Tensor) -> Tensor:
    """``KL(Bernoulli(p) || Bernoulli(q))``, elementwise, float64, with ``0 log 0 = 0``."""
    p, q = p.double(), q.double().clamp(1e-15, 1 - 1e-15)
    return torch.xlogy(p, p / q) + torch.xlogy(1 - p, (1 - p) / (1 - q))


def lai_robbins_bound(means: Sequence[float] | Tensor, rounds: Sequence[int]) -> list[float]:
    """The Lai-Robbins asymptotic lower bound on the expected regret of any consistent policy on a
    Bernoulli problem: ``ln(t) * sum_a gap_a / KL(mu_a, mu*)`` over the suboptimal arms.

    >>> [round(v, 2) for v in lai_robbins_bound([0.9, 0.5], [1, 100])]
    [0.0, 3.61]
    """
    mu = torch.as_tensor(means, dtype=torch.float64)
    best = mu.max()
    sub = mu < best
    constant = float(((best - mu[sub]) / bernoulli_kl(mu[sub], best.expand_as(mu[sub]))).sum())
    return [constant * math.log(t) for t in rounds]


#: MABWiser's reference policies: our name -> (label, MABWiser learning policy, its options).
MABWISER_REFERENCES: dict[str, tuple[str, str, dict[str, float]]] = {
    "ucb1": ("mabwiser:UCB1", "UCB1", {"alpha": 1.0}),
    "thompson_beta": ("mabwiser:ThompsonSampling", "ThompsonSampling", {}),
}


def run_mabwiser(config: BanditBenchConfig, policies: Sequence[str] = tuple(MABWISER_REFERENCES)) -> list[PolicyRun]:
    """MABWiser's UCB1 and Thompson sampling on the same problem, horizon and number of seeds, as
    reference runs (labelled ``mabwiser:...``); needs ``pip install 'banditformer[bench]'``.

    MABWiser decides one row at a time, so each seed is its own ``MAB`` (seeded ``seed + s``) on
    its own reward stream (the problem seeded from ``seed`` and ``s``). It must be fitted before it
    predicts: the first ``K`` rounds play each arm once, as our UCB1 does, and count as rounds.
    """
    from banditformer.core.random import derive_seed
    from banditformer.plugins import make_problem

    try:
        from mabwiser.mab import MAB, LearningPolicy
    except ImportError as exc:
        raise BanditformerError(f"expected MABWiser (pip install 'banditformer[bench]'), got: {exc}") from None
    unknown = [p for p in policies if p not in MABWISER_REFERENCES]
    if unknown:
        raise InputValidationError(
            f"expected policies with a MABWiser reference {sorted(MABWISER_REFERENCES)}, got {unknown}"
        )
    rounds = config.rounds()
    runs = []
    for name in policies:
        label, factory, options = MABWISER_REFERENCES[name]
        curve = torch.zeros(config.seeds, len(rounds), dtype=torch.float64)
        start = time.perf_counter()
        for s in range(config.seeds):
            env = make_problem(config.problem, seed=derive_seed(config.seed, "mabwiser", s))
            k = env.num_arms
            policy = getattr(LearningPolicy, factory)(**options)
            mab = MAB(arms=list(range(k)), learning_policy=policy, seed=config.seed + s)
            regret, col, first = 0.0, 0, []
            for t in range(1, config.horizon + 1):
                arm = t - 1 if t <= k else int(mab.predict())
                reward = float(env.pull(torch.tensor([arm]))[0])
                if t < k:
                    first.append(reward)
                elif t == k:
                    mab.fit(list(range(k)), [*first, reward])
                else:
                    mab.partial_fit([arm], [reward])
                regret += float(env.regret(torch.tensor([arm]))[0])
                if col < len(rounds) and t == rounds[col]:
                    curve[s, col] = regret
                    col += 1
        runs.append(PolicyRun(label, curve, time.perf_counter() - start, config.horizon * config.seeds))
    return runs


def agreement(ours: PolicyRun, reference: PolicyRun) -> bool:
    """Whether two runs' mean final regrets agree within their 95% intervals (the difference is at
    most the root sum of squares of the two half-widths)."""
    return abs(ours.regret_mean - reference.regret_mean) <= math.hypot(ours.regret_ci95, reference.regret_ci95)


def run_bandits(config: BanditBenchConfig, progress: bool = False) -> BanditReport:
    """Run every policy of ``config`` on its problem (see the module docstring)."""
    from banditformer.harness.problems import BernoulliProblem
    from banditformer.harness.quick import context_free_policies
    from banditformer.plugins import get_plugin_manager, make_policy, make_problem

    if not isinstance(config, BanditBenchConfig):
        raise InputValidationError(f"expected a BanditBenchConfig, got {type(config).__name__}")
    names = config.policies if config.policies is not None else context_free_policies(config.reward_range)
    rounds = config.rounds()
    marks = torch.zeros(config.horizon + 1, dtype=torch.bool)
    marks[rounds] = True
    groups = torch.arange(config.seeds)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(names) * config.horizon, desc="bench bandits", dynamic_ncols=True)
    results = []
    pm = get_plugin_manager()
    for name in names:
        env = make_problem(config.problem, seed=config.seed)
        curve = torch.zeros(config.seeds, len(rounds), dtype=torch.float64)
        regret = torch.zeros(config.seeds, dtype=torch.float64)
        start, col, t = time.perf_counter(), 0, 0
        try:
            pol = make_policy(name, num_arms=env.num_arms, num_groups=config.seeds, seed=config.seed)
            for t in range(1, config.horizon + 1):
                arms = pol.select(groups=groups)
                pol.update(arms, env.pull(arms), groups=groups)
                regret += env.regret(arms)
                if marks[t]:
                    curve[:, col] = regret
                    col += 1
                if bar is not None:
                    bar.update(1)
            run = PolicyRun(name, curve, time.perf_counter() - start, config.horizon * config.seeds)
        except Exception as exc:  # a failing policy is reported; the others still run
            run = PolicyRun(
                name, torch.zeros(config.seeds, 0, dtype=torch.float64), time.perf_counter() - start,
                max(t - 1, 0) * config.seeds, error=f"{type(exc).__name__} at round {t}: {exc}",
            )  # fmt: skip
        if bar is not None and run.error is not None:
            bar.update(config.horizon - t + 1)  # the rounds a failed policy did not run
        if run.error is None:
            pm.notify_metrics(
                "harness.bench", config.horizon, {"regret_mean": run.regret_mean, "regret_ci95": run.regret_ci95}
            )
        results.append(run)
    if bar is not None:
        bar.close()
    if config.mabwiser:
        refs = [r.policy for r in results if r.error is None and r.policy in MABWISER_REFERENCES]
        results += run_mabwiser(config, refs)
    env = make_problem(config.problem, seed=config.seed)
    bound = lai_robbins_bound(env.means, rounds) if isinstance(env, BernoulliProblem) else None
    meta = {"torch": torch.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return BanditReport(config, rounds, results, bound, meta)


def format_report(report: BanditReport) -> str:
    """A plain-text table, lowest final regret first; failed policies last, with their error."""
    head = f"{'policy':<26}{'final regret (mean ± 95% CI)':>32}{'µs / decision':>16}"
    lines = [head, "-" * len(head)]
    ok = sorted((r for r in report.results if r.error is None), key=lambda r: r.regret_mean)
    for r in ok:
        lines.append(
            f"{r.policy:<26}{f'{r.regret_mean:10.1f} ± {r.regret_ci95:6.1f}':>32}{r.seconds_per_decision * 1e6:>16.2f}"
        )
    if report.lower_bound is not None:
        lines.append(f"{'(Lai-Robbins lower bound)':<26}{report.lower_bound[-1]:>23.1f}")
    by_name = {r.policy: r for r in ok}
    for ours, (label, _, _) in MABWISER_REFERENCES.items():
        if ours in by_name and label in by_name:
            a, b = by_name[ours], by_name[label]
            verdict = "agree" if agreement(a, b) else "DIFFER"
            lines.append(
                f"{ours} vs {label}: {verdict} within 95% CI ({a.regret_mean:.1f} vs {b.regret_mean:.1f}); "
                f"decisions/s {1 / a.seconds_per_decision:,.0f} vs {1 / b.seconds_per_decision:,.0f}"
            )
    lines += [f"{r.policy:<26}  FAILED: {r.error}" for r in report.results if r.error is not None]
    return "\n".join(lines)


def write_report(report: BanditReport, folder: str | os.PathLike[str]) -> Path:
    """Write ``results.json`` (everything) and ``regret.csv`` (one row per policy, seed and
    checkpoint) into ``folder``; returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "config": asdict(report.config),
        "config_hash": report.config.digest(),
        "rounds": report.rounds,
        "lai_robbins_bound": report.lower_bound,
        "meta": report.meta,
        "results": [
            {
                "policy": r.policy,
                "error": r.error,
                "regret_mean": r.regret_mean,
                "regret_ci95": r.regret_ci95,
                "seconds": r.seconds,
                "seconds_per_decision": r.seconds_per_decision,
                "regret": r.regret.tolist(),
            }
            for r in report.results
        ],
    }
    (out / "results.json").write_text(json.dumps(doc, indent=1))
    with open(out / "regret.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["policy", "seed", "round", "cumulative_regret"])
        for r in report.results:
            for s in range(r.regret.shape[0]):
                for c, t in enumerate(report.rounds[: r.regret.shape[1]]):
                    w.writerow([r.policy, s, t, f"{float(r.regret[s, c]):.6g}"])
    return out


def plot_regret(report: BanditReport, path: str | os.PathLike[str], log_x: bool = False) -> Path:
    """A PNG of each policy's mean cumulative regret with its 95% confidence band (Student t over
    seeds) at the checkpoints, and the Lai-Robbins bound (dashed) on Bernoulli problems. Needs
    matplotlib (``pip install 'banditformer[bench]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BanditformerError(
            f"expected matplotlib for plots (pip install 'banditformer[bench]'), got: {exc}"
        ) from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = report.rounds
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for r in report.results:
        if r.error is not None:
            continue
        mean = r.regret.mean(0)
        n = r.regret.shape[0]
        half = (
            stats.t.ppf(0.975, n - 1) * r.regret.std(0, unbiased=True) / math.sqrt(n)
            if n > 1
            else torch.zeros_like(mean)
        )
        (line,) = ax.plot(x, mean.numpy(), label=r.policy)
        ax.fill_between(x, (mean - half).numpy(), (mean + half).numpy(), color=line.get_color(), alpha=0.2)
    if report.lower_bound is not None:
        ax.plot(x, report.lower_bound, "k--", label="Lai-Robbins bound")
    if log_x:
        ax.set_xscale("log")
    c = report.config
    ax.set(xlabel="round", ylabel="cumulative regret", title=f"{c.problem}: {c.seeds} seeds, 95% bands")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
