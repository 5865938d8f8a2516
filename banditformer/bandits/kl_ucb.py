"""KL-UCB for rewards in [0, 1] (Garivier and Cappe 2011), with an optional discount."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from banditformer.bandits._common import CountState, argmax_untried_first
from banditformer.core.policy import Policy
from banditformer.core.validation import check_int

__all__ = ["KLUCB", "bernoulli_kl", "kl_ucb_index"]

_EPS = 1e-12


def bernoulli_kl(p: Tensor, q: Tensor) -> Tensor:
    """KL divergence between Bernoulli(p) and Bernoulli(q), elementwise, clipped away from 0 and 1."""
    p = p.clamp(_EPS, 1 - _EPS)
    q = q.clamp(_EPS, 1 - _EPS)
    return p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))


def kl_ucb_index(sums: Tensor, counts: Tensor, total: Tensor, c: float | Tensor = 0.0, iters: int = 32) -> Tensor:
    """The KL-UCB index ``max{q in [mean, 1] : n * kl(mean, q) <= ln t + c ln ln t}``, by bisection.

    Args:
        sums, counts: ``(..., K)`` reward sums and plays (0 plays gives ``+inf``).
        total: ``(...)`` total plays ``t``.
        c: the ``ln ln t`` coefficient (0 works best in practice; 3 in the proof).
        iters: bisection steps (2**-32 precision).

    Returns:
        ``(..., K)`` indices in ``[mean, 1]``.
    """
    t = total.clamp(min=1.0).unsqueeze(-1)
    budget = torch.log(t) + c * torch.log(torch.log(t).clamp(min=1.0))
    safe = counts.clamp(min=_EPS)
    mean = (sums / safe).clamp(0.0, 1.0)
    limit = budget / safe
    lo, hi = mean, torch.ones_like(mean)
    for _ in range(iters):
        mid = (lo + hi) / 2
        ok = bernoulli_kl(mean, mid) <= limit
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    return torch.where(counts > 0, lo, torch.full_like(lo, math.inf))


class KLUCB(CountState, Policy):
    """KL-UCB: a tighter upper confidence bound than UCB1 for rewards in ``[0, 1]``.

    Untried arms are played first, as in :class:`~banditformer.bandits.UCB1`; ``discount < 1``
    decays counts and sums by gamma per round (each row of a group is one round).

    Args:
        num_arms: K.
        c: the ``ln ln t`` coefficient of the exploration budget.
        discount: gamma in (0, 1].
        iters: bisection steps for the index.

    Examples:
        >>> p = KLUCB(num_arms=2, seed=0)
        >>> p.update(torch.tensor([0, 1]), torch.tensor([1.0, 0.0]))
        >>> p.select(n=1).tolist()
        [0]
    """

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    deterministic: ClassVar[bool] = True  # an index policy: propensity 1

    def __init__(
        self,
        num_arms: int,
        *,
        c: float = 0.0,
        discount: float = 1.0,
        iters: int = 32,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        self.add_hyperparameter("c", c, low=0.0)
        self.iters = check_int("iters", iters, low=1, high=64)
        self._init_count_state(discount)

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        # Bisect once per group, not per row: rows of a group share their statistics.
        totals = self.counts.sum(1)
        table = kl_ucb_index(self.sums, self.counts, totals, self.c, self.iters)  # (G, K)
        return argmax_untried_first(table, self.counts, groups)
