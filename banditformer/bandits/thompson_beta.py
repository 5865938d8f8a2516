"""Beta-Bernoulli Thompson sampling, for rewards in [0, 1] through the Bernoulli trick."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from banditformer.bandits._beta import add_beta_state, bernoulli_outcomes, beta_posterior
from banditformer.bandits._common import add_at, apply_discount
from banditformer.core.policy import Policy
from banditformer.core.random import sample_beta

__all__ = ["BetaThompson"]


class BetaThompson(Policy):
    """Thompson sampling with a Beta prior per arm (Agrawal and Goyal 2012).

    A reward ``r`` in [0, 1] is turned into a Bernoulli outcome ``b ~ Bernoulli(r)`` (the Bernoulli
    trick, drawn from the policy's generator), and ``b`` updates the arm's Beta posterior. With
    ``bernoulli_trick=False`` the posterior takes ``r`` and ``1 - r`` directly (deterministic
    updates, fractional counts). ``discount < 1`` decays successes and failures at every update
    call, pulling the posterior back towards the prior.

    Args:
        num_arms: K.
        prior_alpha, prior_beta: the Beta prior (both > 0).
        discount: gamma in (0, 1].
        bernoulli_trick: see above.
        draws: ``"row"`` (each row draws its own posterior sample) or ``"group"`` (batched Thompson
            sampling: one draw per group and ``select`` call, shared by the group's rows; much
            cheaper for large batches, and it gives the rows of a group the same arm).

    Examples:
        >>> p = BetaThompson(num_arms=2, seed=0)
        >>> p.update(torch.tensor([0] * 20 + [1] * 20), torch.tensor([1.0] * 20 + [0.0] * 20))
        >>> p.select(n=5).tolist()
        [0, 0, 0, 0, 0]
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
        """The ``(G, K)`` Beta posterior parameters ``(alpha, beta)``."""
        return beta_posterior(self.successes, self.failures, self.prior_alpha, self.prior_beta)

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        alpha, beta = self.posterior()
        if self.draws == "group":
            return sample_beta(alpha, beta, self.generator).argmax(1)[groups]  # one (G, K) draw
        return sample_beta(alpha[groups], beta[groups], self.generator).argmax(1)  # (n, K) draws

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        alpha, beta = self.posterior()
        return (alpha / (alpha + beta))[groups]  # the posterior mean

    def _update(self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        outcome = bernoulli_outcomes(rewards, self.generator, self.bernoulli_trick)
        apply_discount(self, ("successes", "failures"), self.discount)
        add_at(self.successes, groups, arms, outcome)
        add_at(self.failures, groups, arms, 1.0 - outcome)
