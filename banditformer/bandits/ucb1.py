"""UCB1 (Auer, Cesa-Bianchi and Fischer 2002), with an optional discount for drifting rewards."""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from banditformer.bandits._common import CountState, CountStepper, argmax_untried_first
from banditformer.bandits._compiled import buffer_views, builtin, groups_in_range, kernels, scratch_tensor, select_rows
from banditformer.core.policy import Policy

__all__ = ["UCB1", "UCB1Stepper", "log_totals", "ucb1_index"]

_VIEWS = ("sums", "counts", "c")  # the buffers UCB1's compiled select reads


def ucb1_index(sums: Tensor, counts: Tensor, total: Tensor, c: float | Tensor = 1.0) -> Tensor:
    """The UCB1 index ``mean + c * sqrt(2 ln t / n)``.

    Args:
        sums: ``(..., K)`` reward sums per arm.
        counts: ``(..., K)`` plays per arm (arms with 0 plays get ``+inf``).
        total: ``(...)`` total plays ``t``, broadcast over arms.
        c: exploration scale; ``c = 1`` is Auer et al.'s UCB1, whose regret bound holds for
            rewards in ``[0, 1]``.

    Returns:
        ``(..., K)`` indices.
    """
    safe = counts.clamp(min=1e-12)
    bonus = c * torch.sqrt(2.0 * torch.log(total.clamp(min=1.0)).unsqueeze(-1) / safe)
    return torch.where(counts > 0, sums / safe + bonus, torch.full_like(sums, float("inf")))


def log_totals(kern: ModuleType | None, counts: Tensor, counts_np: np.ndarray, out: Tensor, out_np: np.ndarray) -> None:
    """``out`` ``(G,)`` = :func:`ucb1_index`'s ``ln max(t, 1)`` of ``(G, K)`` ``counts`` (and
    ``counts_np``, its NumPy view), bit for bit: torch's log of torch's total. Whole counts sum
    exactly in any order, so a kernel adds them (``kern``, when compiled rounds are on); others
    take torch's sum. The log is torch's: its vectorised log differs from libm's in the last bit
    for a few totals, such as 9170."""
    if kern is None or not kern.whole_totals(counts_np, out_np):
        torch.sum(counts, 1, out=out).clamp_(min=1.0)
    torch.log(out, out=out)


class UCB1(CountState, Policy):
    """UCB1 on rewards in ``[0, 1]``.

    Untried arms are played first (see :func:`argmax_untried_first`): one row at a time plays every
    arm once before any repeat. With ``discount < 1`` counts and sums decay by that factor per round,
    each row of a group one round, so that a batch forgets as its rows fed one at a time do
    (discounted UCB, Garivier and Moulines 2008): old rewards fade.

    Args:
        num_arms: K.
        c: exploration scale (1 is UCB1).
        discount: gamma in (0, 1]; 1 keeps all history.
        num_groups, context_dim, seed: see :class:`~banditformer.core.PolicyBase`.

    Examples:
        >>> p = UCB1(num_arms=3, seed=0)
        >>> p.select(n=3).tolist()   # a batch deals the untried arms
        [0, 1, 2]
    """

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    deterministic: ClassVar[bool] = True  # an index policy: propensity 1
    option_sets: ClassVar[tuple[dict[str, Any], ...]] = ({"discount": 0.5, "c": 0.5},)  # strong forgetting

    def __init__(
        self,
        num_arms: int,
        *,
        c: float = 1.0,
        discount: float = 1.0,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        self.add_hyperparameter("c", c, low=0.0)
        self._init_count_state(discount)

    def _compiled_select(self, context: object, n: object, groups: object) -> Tensor | None:
        kern = kernels() if context is None and builtin(self) and self._buffers["counts"].is_cpu else None
        rows = select_rows(n, groups) if kern is not None else None
        if rows is None:
            return None
        if not groups_in_range(kern, self, rows[1]):
            return None  # the torch path reports it
        out = torch.empty(rows[0], dtype=torch.long)
        sums, counts, c = buffer_views(self, _VIEWS)
        totals, totals_np = scratch_tensor(self, "log_total", self.num_groups)
        log_totals(kern, self.counts, counts, totals, totals_np)
        kern.ucb1_select(sums, counts, c, totals_np, rows[1], out.numpy())
        return out

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        # One index table per group (G, K), gathered per row: rows of a group share statistics.
        table = ucb1_index(self.sums, self.counts, self.counts.sum(1), self.c)
        return argmax_untried_first(table, self.counts, groups)

    def _stepper(self, group: int) -> UCB1Stepper:
        return UCB1Stepper(self, group)


class UCB1Stepper(CountStepper):
    """UCB1's lean stepper: :func:`ucb1_index` of one group in NumPy, the same floating-point
    operations in the same order, so that it picks the batched path's arm; the log of the total
    is :func:`log_totals` of the group's ``(1, K)`` row."""

    def _bind(self) -> None:
        super()._bind()
        self._c = self._view("c")
        self._row = self._buffer("counts")[self._group : self._group + 1]  # (1, K)
        self._row_np = self._row.detach().numpy()
        self._log_total = torch.empty(1, dtype=torch.float64)
        self._log_total_np = self._log_total.numpy()

    def _lean_select(self, context: Tensor | None) -> int:
        first = self._untried()
        if first >= 0:
            return first
        counts = self._counts
        safe = np.maximum(counts, 1e-12)
        log_totals(kernels(), self._row, self._row_np, self._log_total, self._log_total_np)
        log_t = float(self._log_total_np[0])
        return int((self._sums / safe + float(self._c) * np.sqrt(2.0 * log_t / safe)).argmax())
