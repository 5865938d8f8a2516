"""A quick comparison of context-free policies on one Bernoulli problem: the README's demo until
the DHT demo lands.

Every seed is one independent run; runs execute together as the groups of one batched policy, so a
round is a single ``select``/``update`` of ``seeds`` rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from scipy import stats

from banditformer.core.errors import InputValidationError
from banditformer.core.policy import Policy
from banditformer.core.validation import check_int
from banditformer.plugins import get_plugin_manager, list_policies, make_policy, make_problem

__all__ = ["PolicyResult", "check_context_free", "compare_policies", "context_free_policies", "format_table"]


@dataclass
class PolicyResult:
    """One policy's outcome over ``seeds`` runs of ``horizon`` rounds."""

    policy: str
    regret_mean: float
    regret_ci95: float
    best_arm_rate: float
    seconds: float
    decisions_per_second: float


def _fits(policy: object, reward_range: tuple[float, float]) -> bool:
    """A context-free one-arm policy whose reward range holds ``reward_range``."""
    if not isinstance(policy, Policy) or policy.is_contextual:
        return False
    low, high = policy.reward_range
    return low <= reward_range[0] and reward_range[1] <= high


def context_free_policies(reward_range: tuple[float, float] = (0.0, 1.0)) -> list[str]:
    """Registered policies that choose one arm without a context and take rewards in ``reward_range``."""
    return [n for n in list_policies() if _fits(make_policy(n, num_arms=2, context_dim=1), reward_range)]


def check_context_free(names: Sequence[str], problem: str, reward_range: tuple[float, float]) -> None:
    """Fail unless every name is a context-free one-arm policy taking ``problem``'s rewards."""
    for name in names:
        if not _fits(make_policy(name, num_arms=2, context_dim=1), reward_range):
            raise InputValidationError(
                f"expected a context-free, one-arm policy taking rewards in {reward_range} (the range of "
                f"problem {problem!r}), got {name!r}; such policies: {', '.join(context_free_policies(reward_range))}"
            )


def _ci95(x: torch.Tensor) -> float:
    n = x.numel()
    if n < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, n - 1) * x.std(unbiased=True) / math.sqrt(n))


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
        policies: registered context-free policy names (default: all of them).
        horizon: rounds per run.
        seeds: independent runs (each a group of the batched policy).
        seed: master seed; every policy faces the same reward stream seed.

    Returns:
        One :class:`PolicyResult` per policy, in the given order.
    """
    check_int("horizon", horizon, low=1)
    check_int("seeds", seeds, low=1)
    check_int("seed", seed, low=0)
    reward_range = make_problem(problem, seed=seed).reward_range
    names = list(policies) if policies is not None else context_free_policies(reward_range)
    check_context_free(names, problem, reward_range)
    pm = get_plugin_manager()
    results = []
    groups = torch.arange(seeds)
    for name in names:
        env = make_problem(problem, seed=seed)
        pol = make_policy(name, num_arms=env.num_arms, num_groups=seeds, seed=seed)
        regret = torch.zeros(seeds, dtype=torch.float64)
        plays = torch.zeros(seeds, env.num_arms)
        start = time.perf_counter()
        for _ in range(horizon):
            arms = pol.select(groups=groups)
            pol.update(arms, env.pull(arms), groups=groups)
            regret += env.regret(arms)
            plays[groups, arms] += 1
        seconds = time.perf_counter() - start
        result = PolicyResult(
            policy=name,
            regret_mean=float(regret.mean()),
            regret_ci95=_ci95(regret),
            best_arm_rate=float((plays.argmax(1) == env.best_arm).double().mean()),
            seconds=seconds,
            decisions_per_second=horizon * seeds / seconds,
        )
        pm.notify_metrics("harness.quick", horizon, {k: v for k, v in asdict(result).items() if k != "policy"})
        results.append(result)
    return results


def format_table(results: Sequence[PolicyResult]) -> str:
    """A plain-text table of the results, best regret first."""
    rows = sorted(results, key=lambda r: r.regret_mean)
    head = f"{'policy':<26}{'regret (mean ± 95% CI)':>26}{'best arm most played':>22}{'decisions/s':>14}"
    lines = [head, "-" * len(head)]
    for r in rows:
        reg = f"{r.regret_mean:9.1f} ± {r.regret_ci95:6.1f}"
        lines.append(f"{r.policy:<26}{reg:>26}{r.best_arm_rate:>21.0%} {r.decisions_per_second:>14,.0f}")
    return "\n".join(lines)
