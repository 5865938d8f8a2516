"""M-UCB (Cao, Wen, Kveton and Xie 2019, "Nearly optimal adaptive procedure with change detection
for piecewise-stationary bandit"): UCB1 since the last detected change, a change detector on each
arm's last ``window`` rewards, and forced uniform exploration."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from banditformer.bandits._common import add_at, argmax_untried_first, empirical_means, explore_mixture
from banditformer.bandits.sw_ucb import key_runs
from banditformer.bandits.ucb1 import ucb1_index
from banditformer.core.errors import InputValidationError
from banditformer.core.policy import Policy
from banditformer.core.validation import check_int

__all__ = ["MUCB", "change_detected"]


def change_detected(rewards: Tensor, threshold: float | Tensor) -> Tensor:
    """Cao et al.'s test: ``|sum of the older half - sum of the newer half| > b``.

    Args:
        rewards: ``(..., w)`` an arm's last ``w`` rewards (``w`` even), oldest first.
        threshold: ``b``, on the sums (the half means differ by more than ``2 b / w``).

    Returns:
        ``(...)`` bool.
    """
    half = rewards.shape[-1] // 2
    return (rewards[..., :half].sum(-1) - rewards[..., half:].sum(-1)).abs() > threshold


class MUCB(Policy):
    """M-UCB on rewards in ``[0, 1]``: UCB1 on the plays since the group's last restart; after
    each play, if the arm has ``w`` rewards since then and :func:`change_detected` fires on its
    last ``w``, the group restarts (all its arms' statistics are cleared, that play included).

    Forced exploration: each row plays a uniform random arm with probability ``gamma``, drawn from
    the policy's generator (SMPyBandits' form; Cao et al. instead play arm ``(t - tau) mod
    floor(K / gamma)`` when it is below ``K``, the same rate on a fixed schedule). Untried arms
    come first, as in :class:`~banditformer.bandits.UCB1`.

    Each row of a group in an update is one round of that group, detections included: a batch is
    applied as its rows fed one at a time (one pass per restart it holds; one host sync per pass).
    Restarts are ordered events that data-parallel ranks cannot merge, so the statistics are
    registered with reduction ``None`` (rank 0's are kept).

    State: ``counts`` and ``sums`` ``(G, K)`` since the restart, ``history`` ``(G, K, w)`` each
    arm's last ``w`` rewards (slot: plays mod ``w``), ``restarts`` ``(G,)`` detections so far.

    Args:
        num_arms: K.
        window: w, even: the rewards the test compares.
        threshold: b, on the sums of the halves: 7.5 of 50 rewards restarts when the half means
            differ by more than 0.3 (the paper's ``sqrt(w/2 ln(2 K T^2))`` serves its worst-case
            bound, and would miss a change of 0.6 at this w).
        gamma: the forced-exploration rate in [0, 1].
        c: the scale of the UCB1 bonus ``c sqrt(2 ln n / n_k)``; Cao et al.'s is 1.
        num_groups, context_dim, seed: see :class:`~banditformer.core.PolicyBase`.

    The defaults (w = 50, b = 7.5, gamma = 0.01, c = 0.3) come from a tuning run on
    ``bernoulli_switching`` (three arms, a change every 500 rounds, 3,000 rounds, 20 seeds;
    docs/policies.md). At c = 1, UCB1's own exploration often leaves a changed arm before the test
    has w of its new rewards, and costs about what UCB1 without restarts does; the smaller bonus
    leaves the changes to the test.

    Examples:
        >>> p = MUCB(num_arms=2, window=4, threshold=1.5, gamma=0.0)
        >>> p.update(torch.tensor([0, 0, 0, 1]), torch.tensor([1.0, 1.0, 0.0, 1.0]))
        >>> p.update(torch.tensor([0]), torch.tensor([0.0]))   # arm 0's last 4: 1, 1 | 0, 0
        >>> p.restarts.tolist(), p.counts.tolist()
        ([1], [[0.0, 0.0]])
    """

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    # a short window and a low threshold, so that the property tests see restarts
    option_sets: ClassVar[tuple[dict[str, Any], ...]] = ({"window": 4, "threshold": 1.0, "gamma": 0.2},)

    counts: Tensor
    sums: Tensor
    history: Tensor
    restarts: Tensor

    def __init__(
        self,
        num_arms: int,
        *,
        window: int = 50,
        threshold: float = 7.5,
        gamma: float = 0.01,
        c: float = 0.3,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        w = check_int("window", window, low=2, high=2**20)
        if w % 2:
            raise InputValidationError(f"expected an even `window` (the test splits it in halves), got {w}")
        self.window = self.add_config("window", w)
        self.add_hyperparameter("threshold", threshold, low=0.0)
        self.add_hyperparameter("gamma", gamma, low=0.0, high=1.0)
        self.add_hyperparameter("c", c, low=0.0)
        g, k = self.num_groups, self.num_arms
        self.add_state("counts", torch.zeros(g, k, dtype=torch.float64), reduce=None, low=0.0)
        self.add_state("sums", torch.zeros(g, k, dtype=torch.float64), reduce=None)
        self.add_state("history", torch.zeros(g, k, w, dtype=torch.float64), reduce=None)
        self.add_state("restarts", torch.zeros(g, dtype=torch.long), reduce=None, low=0)

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        return empirical_means(self.sums, self.counts, groups)

    def _greedy(self, groups: Tensor) -> Tensor:
        table = ucb1_index(self.sums, self.counts, self.counts.sum(1), self.c)  # (G, K)
        return argmax_untried_first(table, self.counts, groups)

    def _action_probabilities(self, context: Tensor | None, groups: Tensor) -> Tensor:
        # exact: the UCB arm (deterministic for the batch) mixed with the forced exploration
        return explore_mixture(self._greedy(groups), float(self.gamma), self.num_arms)

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        n = groups.shape[0]
        greedy = self._greedy(groups)
        u = torch.rand(n, generator=self.generator, device=self.device, dtype=torch.float64)
        forced = torch.randint(0, self.num_arms, (n,), generator=self.generator, device=self.device)
        return torch.where(u < self.gamma, forced, greedy)

    def _update(self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        rows = torch.arange(arms.shape[0], device=arms.device)
        while rows.numel():  # one pass, and one more per restart in the batch
            rows = rows[self._pass(arms[rows], rewards[rows], groups[rows])]

    def _pass(self, arms: Tensor, rewards: Tensor, groups: Tensor) -> Tensor:
        """Apply ``(n,)`` rows up to each group's first detection and restart those groups;
        returns the ``(n,)`` bool mask of the rows after a detection, still to apply."""
        n, w = arms.shape[0], self.window
        order, begin, rank, size = key_runs(groups * self.num_arms + arms)
        before = self.counts[groups, arms].long()  # (n,) the arm's plays since the restart
        pos = before + rank  # (n,) the row's place in its arm's rewards since the restart
        # the row's test window, oldest first: places pos - w + 1 .. pos, from the history or the batch
        place = pos.unsqueeze(1) - (w - 1) + torch.arange(w, device=arms.device)  # (n, w)
        old = self.history[groups.unsqueeze(1), arms.unsqueeze(1), place.remainder(w)]
        batch = rewards[order[(begin.unsqueeze(1) + place - before.unsqueeze(1)).clamp(0, n - 1)]]
        recent = torch.where(place < before.unsqueeze(1), old, batch)  # (n, w)
        detect = (pos + 1 >= w) & change_detected(recent, self.threshold)  # (n,)
        index = torch.arange(n, device=arms.device)
        first = torch.full((self.num_groups,), n, dtype=torch.long, device=arms.device)
        first.scatter_reduce_(0, groups, torch.where(detect, index, n), "amin")  # (G,) first detection
        # every row is applied; a restarted group is then cleared, which is what its rows up to
        # the detection leave behind one at a time (the rows after it go round again)
        add_at(self.counts, groups, arms, torch.ones_like(rewards))
        add_at(self.sums, groups, arms, rewards)
        source = order[begin + rank + w * torch.div(size - 1 - rank, w, rounding_mode="floor")]  # slot's last writer
        self.history[groups, arms, pos % w] = rewards[source]
        calm = (first == n).unsqueeze(1)  # (G, 1)
        self.counts.mul_(calm)
        self.sums.mul_(calm)
        self.history.mul_(calm.unsqueeze(2))
        self.restarts.add_((~calm.squeeze(1)).long())
        return index > first[groups]
