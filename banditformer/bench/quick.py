"""A quick comparison of bandit policies on one problem, as a plain table: a thin layer over
:func:`banditformer.bench.bandits.run_bandits` that adds how often each run ended playing the best
arm most (context-free one-arm problems).

Examples:
    >>> rows = compare_policies("bernoulli_two", ["ucb1"], horizon=100, seeds=4)
    >>> rows[0].policy, 0.0 <= rows[0].best_arm_rate <= 1.0
    ('ucb1', True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from banditformer.bench.bandits import BanditBenchConfig, run_bandits
from banditformer.bench.compat import problem_kind
from banditformer.core.errors import BanditformerError
from banditformer.plugins import get_plugin_manager, make_problem

__all__ = ["PolicyResult", "compare_policies", "format_table"]


@dataclass
class PolicyResult:
    """One policy's outcome over ``seeds`` runs of ``horizon`` rounds; ``best_arm_rate`` is NaN on
    contextual and combinatorial problems (no single best arm)."""

    policy: str
    regret_mean: float
    regret_ci95: float
    best_arm_rate: float
    seconds: float
    decisions_per_second: float


def compare_policies(
    problem: str = "bernoulli_easy",
    policies: Sequence[str] | None = None,
    horizon: int = 2000,
    seeds: int = 20,
    seed: int = 0,
) -> list[PolicyResult]:
    """Run each policy for ``horizon`` rounds on ``seeds`` independent runs of ``problem``.

    Args:
        problem: a registered problem name.
        policies: registered policy names (default: every one that can play the problem).
        horizon: rounds per run.
        seeds: independent runs, each with streams of its own (see :func:`~banditformer.bench.bandits.run_bandits`).
        seed: master seed; at each seed every policy faces the same rewards.

    Returns:
        One :class:`PolicyResult` per policy, in the given order.

    Raises:
        BanditformerError: naming the policies that raised mid-run.
    """
    config = BanditBenchConfig(
        problem=problem, policies=None if policies is None else list(policies), horizon=horizon, seeds=seeds, seed=seed
    )
    report = run_bandits(config)
    failed = [f"{r.policy}: {r.error}" for r in report.results if r.error is not None]
    if failed:
        raise BanditformerError(f"expected every policy to run, got failures: {'; '.join(failed)}")
    env = make_problem(problem, seed=seed)
    single = problem_kind(env) == (None, None)
    pm = get_plugin_manager()
    results = []
    for r in report.results:
        rate = float((r.arm_counts.argmax(1) == env.best_arm).double().mean()) if single else float("nan")
        result = PolicyResult(
            policy=r.policy,
            regret_mean=r.regret_mean,
            regret_ci95=r.regret_ci95,
            best_arm_rate=rate,
            seconds=r.seconds,
            decisions_per_second=1.0 / r.seconds_per_decision,
        )
        pm.notify_metrics("bench.quick", horizon, {k: v for k, v in asdict(result).items() if k != "policy"})
        results.append(result)
    return results


def format_table(results: Sequence[PolicyResult]) -> str:
    """A plain-text table of the results, best regret first."""
    rows = sorted(results, key=lambda r: r.regret_mean)
    head = f"{'policy':<26}{'regret (mean ± 95% CI)':>26}{'best arm most played':>22}{'decisions/s':>14}"
    lines = [head, "-" * len(head)]
    for r in rows:
        reg = f"{r.regret_mean:9.1f} ± {r.regret_ci95:6.1f}"
        rate = f"{r.best_arm_rate:>21.0%}" if r.best_arm_rate == r.best_arm_rate else f"{'-':>21}"
        lines.append(f"{r.policy:<26}{reg:>26}{rate} {r.decisions_per_second:>14,.0f}")
    return "\n".join(lines)
