"""Sliding-window UCB (Garivier and Moulines 2011): only a group's last ``window`` rounds count.

The window machinery (:class:`SlidingWindowState`, :func:`key_runs`) is shared with
:class:`~banditformer.bandits.sw_kl_ucb.SlidingWindowKLUCB` and the per-arm windows of
:class:`~banditformer.bandits.m_ucb.MUCB`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from banditformer.bandits._common import add_at, argmax_untried_first, empirical_means
from banditformer.bandits.ucb1 import ucb1_index
from banditformer.core.errors import InputValidationError
from banditformer.core.policy import Policy
from banditformer.core.validation import check_int

__all__ = ["SlidingWindowState", "SlidingWindowUCB", "key_runs", "sw_ucb_index"]


def sw_ucb_index(
    sums: Tensor, counts: Tensor, total: Tensor, c: float | Tensor = 1.0, xi: float | Tensor = 0.6
) -> Tensor:
    """The SW-UCB index ``mean_W + c * sqrt(xi * ln(min(t, W)) / n_W)`` over the window's statistics.

    Args:
        sums, counts: ``(..., K)`` reward sums and plays within the window (0 plays gives ``+inf``).
        total: ``(...)`` ``min(t, W)``, the rounds in the window, broadcast over arms.
        c: the bonus scale: the paper's reward bound ``B`` (1 for rewards in ``[0, 1]``).
        xi: the exploration constant (> 1/2 in the regret bound; 0.6 in the paper's experiments).

    Returns:
        ``(..., K)`` indices: UCB1's ``mean + c' sqrt(2 ln t / n)`` with ``c' = c sqrt(xi / 2)``.
    """
    return ucb1_index(sums, counts, total, c * torch.sqrt(torch.as_tensor(xi, dtype=torch.float64) / 2))


def key_runs(keys: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The rows of a batch grouped by key (a group, or a group-arm pair), each key's rows in row order.

    Args:
        keys: ``(n,)`` int64 key of each row.

    Returns:
        ``(order, begin, rank, size)``, each ``(n,)`` int64: ``order`` the rows sorted by key
        (stable), and for row ``i`` the start of its key's run in ``order``, how many earlier rows
        share its key, and how many rows its key has. The ``j``-th row of row ``i``'s key is
        ``order[begin[i] + j]``.
    """
    n = keys.shape[0]
    order = torch.sort(keys, stable=True).indices
    sorted_keys = keys[order]
    first = torch.searchsorted(sorted_keys, sorted_keys)  # (n,) run start of each sorted row
    last = torch.searchsorted(sorted_keys, sorted_keys, right=True)
    begin, rank, size = torch.empty_like(keys), torch.empty_like(keys), torch.empty_like(keys)
    begin[order] = first
    rank[order] = torch.arange(n, device=keys.device) - first
    size[order] = last - first
    return order, begin, rank, size


class SlidingWindowState:
    """A one-arm policy whose statistics cover each group's last ``window`` rounds: a ring buffer
    of the (arm, reward) pairs, ``window_arms`` ``(G, W)`` int64 (-1: empty) and
    ``window_rewards`` ``(G, W)`` float64, with the running ``counts`` and ``sums`` ``(G, K)``
    over it and ``rounds`` ``(G,)``, each group's rounds so far (its write position mod ``W``).

    An update applies a group's ``n`` rows at once: its last ``min(n, W)`` rows overwrite the
    slots they fall on (the oldest entries leave the counts and sums), and earlier rows, which
    the batch itself pushes out, change nothing but ``rounds``. That is the rows fed one at a
    time: the same counts and ring, and sums equal up to float64 rounding (the running sums add
    and subtract in another order; an arm that leaves the window has its sum set back to 0).
    A window is an ordered record that data-parallel ranks cannot merge, so its statistics are
    registered with reduction ``None`` (rank 0's window is kept).
    """

    num_groups: int
    num_arms: int
    window: int
    counts: Tensor
    sums: Tensor
    window_arms: Tensor
    window_rewards: Tensor
    rounds: Tensor

    def _init_window_state(self, window: int) -> None:
        policy: Any = self  # a PolicyBase, by the class this mixin is combined with
        g, k = self.num_groups, self.num_arms
        w = policy.add_config("window", check_int("window", window, low=1, high=2**31 - 1))
        policy.add_state("counts", torch.zeros(g, k, dtype=torch.float64), reduce=None, low=0.0)
        policy.add_state("sums", torch.zeros(g, k, dtype=torch.float64), reduce=None)
        policy.add_state("window_arms", torch.full((g, w), -1, dtype=torch.long), reduce=None, low=-1)
        policy.add_state("window_rewards", torch.zeros(g, w, dtype=torch.float64), reduce=None)
        policy.add_state("rounds", torch.zeros(g, dtype=torch.long), reduce=None, low=0)

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        return empirical_means(self.sums, self.counts, groups)

    def _update(self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        w = self.window
        order, begin, rank, size = key_runs(groups)
        kept = rank >= size - w  # (n,) still in the window after this batch
        # every row writes the value its slot holds at the end of the batch (the slot's last writer
        # in this batch), so duplicate writes agree and no row needs masking out
        source = order[begin + rank + w * torch.div(size - 1 - rank, w, rounding_mode="floor")]
        slot = (self.rounds[groups] + rank) % w  # (n,)
        held = self.window_arms[groups, slot]  # (n,) the arm in the row's slot before the batch, -1: empty
        evicted = (kept & (held >= 0)).double()  # (n,) a kept row pushes that entry out
        old_arm, kept_f = held.clamp(min=0), kept.double()
        add_at(self.counts, groups, old_arm, -evicted)
        add_at(self.counts, groups, arms, kept_f)
        self.window_arms[groups, slot] = arms[source]
        self.window_rewards[groups, slot] = rewards[source]
        self.rounds.index_add_(0, groups, torch.ones_like(groups))
        # The sums from the ring itself, in slot order: running sums would keep a rounding residue
        # that depends on the batching (and can break a tie differently); the ring does not.
        # O(G W K), one fixed order of additions (deterministic on CUDA too).
        ring = self.window_arms
        hit = (ring.unsqueeze(-1) == torch.arange(self.num_arms, device=ring.device)).double()  # (G, W, K)
        self.sums.copy_((hit * self.window_rewards.unsqueeze(-1)).sum(1))

    def check_own_state(self, state_dict: Mapping[str, Any], prefix: str = "") -> None:
        """Also check that the window holds arms in ``[-1, K)``, ``min(rounds, W)`` of them per
        group, and that ``counts`` tallies them (a window the update can index)."""
        super().check_own_state(state_dict, prefix)  # type: ignore[misc]
        ring, counts, rounds = (state_dict.get(prefix + key) for key in ("window_arms", "counts", "rounds"))
        if not all(isinstance(t, Tensor) for t in (ring, counts, rounds)):
            return  # a missing key is the strict key check's to report
        assert isinstance(ring, Tensor) and isinstance(counts, Tensor) and isinstance(rounds, Tensor)
        top = int(ring.max()) if ring.numel() else -1
        if top >= self.num_arms:
            raise InputValidationError(f"expected `{prefix}window_arms` in [-1, {self.num_arms}), got {top}")
        tally = torch.zeros(self.num_groups, self.num_arms + 1, dtype=torch.float64)  # column 0: empty slots
        tally.scatter_add_(1, ring.cpu().long() + 1, torch.ones(ring.shape, dtype=torch.float64))
        if not torch.equal(tally[:, 1:].sum(1), rounds.cpu().clamp(max=self.window).double()):
            raise InputValidationError(
                f"expected `{prefix}window_arms` to hold min(`rounds`, {self.window}) arms per group, got "
                f"{tally[:, 1:].sum(1).long().tolist()} for rounds {rounds.tolist()}"
            )
        if not torch.equal(tally[:, 1:], counts.cpu().double()):
            raise InputValidationError(
                f"expected `{prefix}counts` = the plays in `{prefix}window_arms` {tally[:, 1:].tolist()}, got "
                f"{counts.tolist()}"
            )


class SlidingWindowUCB(SlidingWindowState, Policy):
    """SW-UCB on rewards in ``[0, 1]``: UCB over each group's last ``window`` rounds only.

    Each row of a group in an update is one round of that group, so a batch fills the window as
    its rows fed one at a time do. Arms without a play in the window come first, as in
    :class:`~banditformer.bandits.UCB1` (their index is ``+inf``); ``t`` is the group's rounds.

    Args:
        num_arms: K.
        window: W, the rounds remembered.
        c: the scale of the bonus (the paper's reward bound ``B``; its bound holds at 1).
        xi: the exploration constant (0.6, as in the paper's experiments). Only ``c sqrt(xi)``
            matters.
        num_groups, context_dim, seed: see :class:`~banditformer.core.PolicyBase`.

    The defaults (W = 100, c = 0.5) come from a tuning run on ``bernoulli_switching`` (three
    arms, a change every 500 rounds, 3,000 rounds, 20 seeds; docs/policies.md): with the paper's
    c = 1 the best window is the problem's period itself (a coincidence: a rarely played arm's
    samples then leave the window just after each change), and the paper's
    ``W = 2 sqrt(T ln T / changes)`` (about 140 there) explores too much.

    Examples:
        >>> p = SlidingWindowUCB(num_arms=2, window=3)
        >>> p.update(torch.tensor([0, 0, 1, 1]), torch.tensor([1.0, 0.0, 0.5, 0.5]))
        >>> p.counts.tolist(), p.sums.tolist()   # the first row left the window
        ([[1.0, 2.0]], [[0.0, 1.0]])
        >>> p.select(n=1).tolist()
        [1]
    """

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    deterministic: ClassVar[bool] = True  # an index policy: propensity 1
    option_sets: ClassVar[tuple[dict[str, Any], ...]] = ({"window": 3},)  # the property tests reach wrap-around

    def __init__(
        self,
        num_arms: int,
        *,
        window: int = 100,
        c: float = 0.5,
        xi: float = 0.6,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        self.add_hyperparameter("c", c, low=0.0)
        self.add_hyperparameter("xi", xi, low=0.0, low_open=True)
        self._init_window_state(window)

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        # One index table per group (G, K); t in the window is min(rounds, W), the window's plays.
        table = sw_ucb_index(self.sums, self.counts, self.counts.sum(1), self.c, self.xi)
        return argmax_untried_first(table, self.counts, groups)
