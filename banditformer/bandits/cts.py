"""Combinatorial Thompson sampling (Wang and Chen 2018) with Beta priors on the base arms."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from banditformer.bandits._beta import add_beta_state, bernoulli_outcomes, beta_posterior
from banditformer.bandits._common import apply_discount
from banditformer.core.policy import CombinatorialPolicy, top_k_mask
from banditformer.core.random import sample_beta

__all__ = ["CTS"]


class CTS(CombinatorialPolicy):
    """Each row draws one sample from every base arm's Beta posterior and takes its top ``k[i]``.

    Semi-bandit feedback: every chosen base arm reports a reward in [0, 1], turned into a
    Bernoulli outcome by the Bernoulli trick (or used fractionally with ``bernoulli_trick=False``)
    that updates that arm's Beta posterior. Rows of a group share the posterior but draw their own
    samples.

    Args:
        num_arms: N base arms.
        prior_alpha, prior_beta: the Beta prior of each base arm.
        discount: gamma in (0, 1]; decays the posterior counts at every update call.
        bernoulli_trick: draw Bernoulli outcomes from fractional rewards.
        draws: ``"row"`` (a posterior sample per row) or ``"group"`` (one sample per group and
            ``select`` call, shared by its rows: rows of a group with the same ``k`` get the same
            subset, which lets an executor run them as one dense block).

    Examples:
        >>> p = CTS(num_arms=6, seed=0)
        >>> p.select(k=torch.tensor([1, 3])).sum(1).tolist()
        [1, 3]
    """

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def __init__(
        self,
        num_arms: int,
        *,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
        discount: float = 1.0,
        bernoulli_trick: bool = True,
        draws: str = "row",
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        add_beta_state(self, prior_alpha, prior_beta, discount, bernoulli_trick, draws)

    def posterior(self) -> tuple[Tensor, Tensor]:
        """The ``(G, N)`` Beta posterior parameters ``(alpha, beta)``."""
        return beta_posterior(self.successes, self.failures, self.prior_alpha, self.prior_beta)

    def _select(self, context: Tensor | None, k: Tensor, groups: Tensor) -> Tensor:
        alpha, beta = self.posterior()
        if self.draws == "group":
            samples = sample_beta(alpha, beta, self.generator)  # (G, N), shared by each group's rows
            order = torch.sort(samples, dim=1, descending=True, stable=True).indices
            rank = torch.empty_like(order).scatter_(
                1, order, torch.arange(self.num_arms, device=self.device).expand_as(order)
            )
            return rank[groups] < k.unsqueeze(1)
        return top_k_mask(sample_beta(alpha[groups], beta[groups], self.generator), k)  # (n, N) draws

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        alpha, beta = self.posterior()
        return (alpha / (alpha + beta))[groups]  # the posterior mean

    def _update(self, chosen: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        outcome = bernoulli_outcomes(rewards, self.generator, self.bernoulli_trick)
        mask = chosen.to(rewards.dtype)
        apply_discount(self, ("successes", "failures"), self.discount)
        self.successes.index_add_(0, groups, outcome * mask)
        self.failures.index_add_(0, groups, (1.0 - outcome) * mask)
