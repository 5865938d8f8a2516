"""The statistics both benches report: the Student-t 95% confidence interval of a mean over
seeds, whether two such intervals agree, the Pareto front of accuracy against FLOP saving, and
the Lai-Robbins lower bound on the regret of a Bernoulli problem.

Examples:
    >>> round(float(ci95_halfwidth([1.0, 2.0, 3.0])), 4)
    2.4841
    >>> pareto_front([(0.9, 0.0), (0.8, 0.5), (0.7, 0.4)])
    [True, True, False]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch
from scipy import stats
from torch import Tensor

from banditformer.bandits.kl_ucb import bernoulli_kl
from banditformer.core.errors import InputValidationError

__all__ = [
    "agreement",
    "calibrated_accuracy",
    "calibrated_area",
    "ci95_halfwidth",
    "curve_area",
    "lai_robbins_bound",
    "paired_difference",
    "pareto_front",
]


def ci95_halfwidth(samples: Tensor | Sequence[float], dim: int = 0) -> Tensor:
    """Half-width of the two-sided 95% Student-t confidence interval of the mean along ``dim``:
    ``t(0.975, n - 1) * s / sqrt(n)``, with ``s`` the sample standard deviation (``n - 1`` in the
    denominator) and ``n = samples.shape[dim]``.

    Args:
        samples: ``(..., n, ...)`` values, ``n`` along ``dim`` (a list: ``(n,)``); computed in float64.
        dim: the axis of the independent samples (seeds).

    Returns:
        float64, ``samples``' shape without ``dim`` (a 0-d tensor for ``(n,)``); NaN where
        ``n < 2`` (no spread to estimate).
    """
    x = torch.as_tensor(samples, dtype=torch.float64)
    if x.dim() == 0:
        raise InputValidationError(f"expected samples of at least one dimension, got a scalar {float(x)}")
    n = x.shape[dim]
    if n < 2:
        return torch.full_like(x.sum(dim), math.nan)
    return float(stats.t.ppf(0.975, n - 1)) * x.std(dim, unbiased=True) / math.sqrt(n)


class _Interval(Protocol):
    """A mean with the half-width of its 95% interval (a :class:`~banditformer.bench.results.PolicyRun`)."""

    @property
    def regret_mean(self) -> float: ...

    @property
    def regret_ci95(self) -> float: ...


def agreement(ours: _Interval, reference: _Interval) -> bool:
    """Whether two runs' mean final regrets agree within their 95% intervals (the difference is at
    most the root sum of squares of the two half-widths)."""
    return abs(ours.regret_mean - reference.regret_mean) <= math.hypot(ours.regret_ci95, reference.regret_ci95)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which ``(accuracy, saving)`` points no other point beats in both (ties in both count as on
    the front).

    Examples:
        >>> pareto_front([(0.9, 0.0), (0.8, 0.5), (0.7, 0.4), (0.95, 0.0)])
        [False, True, False, True]
    """
    return [not any(o[0] >= p[0] and o[1] >= p[1] and (o[0] > p[0] or o[1] > p[1]) for o in points) for p in points]


def lai_robbins_bound(means: Sequence[float] | Tensor, rounds: Sequence[int]) -> list[float]:
    """The Lai-Robbins asymptotic lower bound on the expected regret of any consistent policy on a
    Bernoulli problem: ``ln(t) * sum_a gap_a / KL(mu_a, mu*)`` over the suboptimal arms, at each
    round ``t`` of ``rounds``.

    Args:
        means: ``(K,)`` arm means in ``[0, 1]``.
        rounds: rounds ``t >= 1``.

    Examples:
        >>> [round(v, 2) for v in lai_robbins_bound([0.9, 0.5], [1, 100])]
        [0.0, 3.61]
    """
    mu = torch.as_tensor(means, dtype=torch.float64)
    if mu.dim() != 1 or mu.numel() == 0 or bool(((mu < 0) | (mu > 1) | mu.isnan()).any()):
        raise InputValidationError(f"expected (K,) Bernoulli means in [0, 1], got {mu.tolist()}")
    best = mu.max()
    sub = mu < best
    constant = float(((best - mu[sub]) / bernoulli_kl(mu[sub], best.expand_as(mu[sub]))).sum())
    return [constant * math.log(t) for t in rounds]


def curve_area(points: Sequence[tuple[float, float]], low: float, high: float = 1.0) -> float:
    """The mean over FLOP ratios ``x`` in ``[low, high]`` of the best accuracy a controller reaches
    at ``x`` or fewer FLOPs: the area under its accuracy-versus-inference-FLOPs curve, as a step
    function (0 below its cheapest point), over ``high - low``. ``points`` are ``(flop_ratio,
    accuracy)``; comparable between controllers over the same ``[low, high]``.

    Examples:
        >>> curve_area([(0.5, 0.8), (1.0, 0.9)], low=0.0)     # 0 on [0, .5), .8 on [.5, 1)
        0.4
        >>> round(curve_area([(0.25, 0.6), (0.5, 0.8)], low=0.25), 4)
        0.7333
    """
    if not high > low:
        raise ValueError(f"expected high > low, got [{low}, {high}]")
    area, best, x = 0.0, 0.0, low
    for ratio, accuracy in sorted(points):
        ratio = min(max(ratio, low), high)
        area += best * (ratio - x)
        x, best = ratio, max(best, accuracy)
    area += best * (high - x)
    return area / (high - low)


def calibrated_area(
    curve: Sequence[tuple[float, float, float]], low: float, high: float = 1.0
) -> float:
    """The mean over FLOP budgets ``x`` in ``[low, high]`` of the test accuracy at the operating
    point that calibration on validation picks for ``x``
    (:func:`~banditformer.training.calibrate_budget`'s rule: the largest validation FLOP ratio
    within ``x``, the most accurate on validation among equal ratios; 0 where even the cheapest
    point costs more than ``x``). Nothing is chosen on the test split, so unlike
    :func:`curve_area` over test points, more operating points do not buy a higher area by chance.

    Args:
        curve: ``(validation FLOP ratio, validation accuracy, test accuracy)`` per operating point.

    Examples:
        >>> calibrated_area([(0.5, 0.8, 0.7), (1.0, 0.9, 0.95)], low=0.0)  # 0 on [0, .5), .7 on [.5, 1)
        0.35
        >>> calibrated_area([(0.5, 0.8, 0.7), (0.5, 0.6, 0.9)], low=0.5)  # the one validation prefers
        0.7
    """
    if not high > low:
        raise ValueError(f"expected high > low, got [{low}, {high}]")
    area, current, x = 0.0, 0.0, low
    for ratio, _, accuracy in sorted(curve):  # the last point within x, ties by validation accuracy
        ratio = min(max(ratio, low), high)
        area += current * (ratio - x)
        x, current = ratio, accuracy
    area += current * (high - x)
    return area / (high - low)


def calibrated_accuracy(curve: Sequence[tuple[float, float, float]], budget: float) -> float:
    """The test accuracy at the operating point that calibration on validation picks for
    ``budget``, by :func:`calibrated_area`'s rule (0 where no point fits); ``curve`` as there.

    Examples:
        >>> calibrated_accuracy([(0.5, 0.8, 0.7), (1.0, 0.9, 0.95)], 0.75)
        0.7
    """
    within = [p for p in curve if p[0] <= budget]
    return max(within)[2] if within else 0.0


def paired_difference(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, int] | None:
    """Mean and 95% half-width of ``a[s] - b[s]`` over the seeds ``s`` both have, and their
    number; ``None`` without a common seed (one common seed: half-width NaN).

    Examples:
        >>> paired_difference({0: 0.9, 1: 0.8}, {0: 0.85, 1: 0.8, 2: 0.7})[0]
        0.025000000000000022
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    return sum(diffs) / len(diffs), float(ci95_halfwidth(diffs)), len(seeds)
