"""Sliding-window KL-UCB: the KL-UCB index of :mod:`banditformer.bandits.kl_ucb` over each group's
last ``window`` rounds (the window of :class:`~banditformer.bandits.sw_ucb.SlidingWindowState`)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from banditformer.bandits._common import argmax_untried_first
from banditformer.bandits.kl_ucb import kl_ucb_index
from banditformer.bandits.sw_ucb import SlidingWindowState
from banditformer.core.policy import Policy
from banditformer.core.validation import check_int

__all__ = ["SlidingWindowKLUCB"]


class SlidingWindowKLUCB(SlidingWindowState, Policy):
    """SW-KL-UCB on rewards in ``[0, 1]``: KL-UCB over each group's last ``window`` rounds only.

    The index is :func:`~banditformer.bandits.kl_ucb.kl_ucb_index` of the window's counts and sums,
    ``max{q in [mean_W, 1] : n_W kl(mean_W, q) <= ln min(t, W) + c ln ln min(t, W)}``, the sliding
    window variant of Garivier and Moulines (2011) with the Bernoulli KL bound of Garivier and
    Cappe (2011). Each row of a group in an update is one round of that group (as in
    :class:`~banditformer.bandits.sw_ucb.SlidingWindowUCB`); arms without a play in the window
    come first.

    Args:
        num_arms: K.
        window: W, the rounds remembered. The default, 200, comes from a tuning run on
            ``bernoulli_switching`` (a change every 500 rounds; docs/policies.md); a window of the
            problem's period, 500, did better there by a coincidence with the period (a rarely
            played arm's samples leave the window just after each change) that another period
            does not share.
        c: the ``ln ln t`` coefficient of the exploration budget (0, as ``kl_ucb``).
        iters: bisection steps for the index.
        num_groups, context_dim, seed: see :class:`~banditformer.core.PolicyBase`.

    Examples:
        >>> p = SlidingWindowKLUCB(num_arms=2, window=4)
        >>> p.update(torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 1.0]))
        >>> p.counts.tolist()   # the window keeps the last 4 rounds
        [[1.0, 3.0]]
        >>> p.select(n=1).tolist()
        [0]
    """

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    deterministic: ClassVar[bool] = True  # an index policy: propensity 1
    option_sets: ClassVar[tuple[dict[str, Any], ...]] = ({"window": 3},)  # the property tests reach wrap-around

    def __init__(
        self,
        num_arms: int,
        *,
        window: int = 200,
        c: float = 0.0,
        iters: int = 32,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        self.add_hyperparameter("c", c, low=0.0)
        self.iters = check_int("iters", iters, low=1, high=64)
        self._init_window_state(window)

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        # Bisect once per group (G, K); t in the window is min(rounds, W), the window's plays.
        table = kl_ucb_index(self.sums, self.counts, self.counts.sum(1), self.c, self.iters)
        return argmax_untried_first(table, self.counts, groups)
