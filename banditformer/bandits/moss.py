"""MOSS (Audibert and Bubeck 2009) in its horizon-free form, MOSS-anytime (Degenne and Perchet 2016)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from banditformer.bandits._common import CountState, argmax_untried_first
from banditformer.core.policy import Policy

__all__ = ["MOSS", "moss_index"]


def moss_index(sums: Tensor, counts: Tensor, total: Tensor, alpha: float | Tensor = 1.0) -> Tensor:
    """The MOSS-anytime index ``mean + sqrt((1 + alpha) / 2 * ln+(t / (K n)) / n)``, ``ln+ = max(0, ln)``.

    With ``alpha = 1`` this is MOSS's ``mean + sqrt(ln+(t / (K n)) / n)`` (Audibert and Bubeck
    2009) with the horizon ``T`` replaced by the plays so far ``t``: an arm played more than
    ``t / K`` times gets no bonus.

    Args:
        sums: ``(..., K)`` reward sums per arm.
        counts: ``(..., K)`` plays per arm (arms with 0 plays get ``+inf``).
        total: ``(...)`` total plays ``t``, broadcast over arms.
        alpha: Degenne and Perchet's exploration parameter (``>= 0``).

    Returns:
        ``(..., K)`` indices.
    """
    safe = counts.clamp(min=1e-12)
    ratio = total.unsqueeze(-1) / (counts.shape[-1] * safe)  # t / (K n)
    bonus = torch.sqrt((1.0 + alpha) / 2.0 * torch.log(ratio).clamp(min=0.0) / safe)
    return torch.where(counts > 0, sums / safe + bonus, torch.full_like(sums, float("inf")))


class MOSS(CountState, Policy):
    """MOSS-anytime on rewards in ``[0, 1]``: a UCB whose bonus vanishes for arms played more than
    ``t / K`` times, where ``t`` is the row's group's total plays (no horizon is needed).

    This is the anytime variant of Degenne and Perchet (2016), not Audibert and Bubeck's MOSS with a
    known horizon ``T``; at ``alpha = 1`` its index is MOSS's with ``T`` replaced by ``t``. Untried
    arms are played first, as in :class:`~banditformer.bandits.UCB1`, and the rows of a group in one
    ``select`` share its statistics (so its index table, computed once per group).

    Args:
        num_arms: K.
        alpha: the exploration parameter (``>= 0``); 1 is MOSS's index.
        num_groups, context_dim, seed: see :class:`~banditformer.core.PolicyBase`.

    Examples:
        >>> p = MOSS(num_arms=2, seed=0)
        >>> p.update(torch.tensor([0, 1, 1, 1]), torch.tensor([0.4, 0.5, 0.5, 0.5]))
        >>> p.select(n=1).tolist()   # arm 1 has 3 > t / K = 2 plays, so no bonus: 0.4 + sqrt(ln 2) > 0.5
        [0]
    """

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    deterministic: ClassVar[bool] = True  # an index policy: propensity 1

    def __init__(
        self,
        num_arms: int,
        *,
        alpha: float = 1.0,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        self.add_hyperparameter("alpha", alpha, low=0.0)
        self._init_count_state()  # no discount

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        # One index table per group (G, K), gathered per row: rows of a group share statistics.
        table = moss_index(self.sums, self.counts, self.counts.sum(1), self.alpha)
        return argmax_untried_first(table, self.counts, groups)
