"""CUCB: combinatorial UCB for top-k semi-bandits (Chen, Wang and Yuan 2013)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from banditformer.bandits._common import add_count_state, empirical_means, observe, untried_first_scores
from banditformer.bandits.ucb1 import ucb1_index
from banditformer.core.policy import CombinatorialPolicy, top_k_mask

__all__ = ["CUCB"]


class CUCB(CombinatorialPolicy):
    """Top ``k[i]`` base arms by UCB1 index ``mean + c * sqrt(1.5 ln t / n)``, where ``t`` counts the
    rounds (rows) of the group; base arms never observed come first, in a random order per row.

    Args:
        num_arms: N base arms.
        c: exploration scale; ``sqrt(1.5)`` inside the root follows Chen et al.'s CUCB.
        discount: gamma in (0, 1].

    Examples:
        >>> p = CUCB(num_arms=5, seed=0)
        >>> p.select(k=2, n=3).sum(1).tolist()
        [2, 2, 2]
    """

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

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
        add_count_state(self, discount)
        self.add_state("rounds", torch.zeros(num_groups, dtype=torch.float64), low=0.0)

    def _select(self, context: Tensor | None, k: Tensor, groups: Tensor) -> Tensor:
        # ucb1_index uses sqrt(2 ln t / n); scale c so the root holds 1.5 ln t / n.
        table = ucb1_index(self.sums, self.counts, self.rounds, self.c * 0.75**0.5)  # (G, N)
        scores = untried_first_scores(table[groups], self.counts[groups], self.generator)
        return top_k_mask(scores, k)

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        return empirical_means(self.sums, self.counts, groups)

    def _update(self, chosen: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        # (n, N) plays and rewards of each row's base arms, and one round per row, after the discount
        observe(self, groups, counts=chosen.to(rewards.dtype), sums=rewards, rounds=torch.ones_like(rewards[:, 0]))
