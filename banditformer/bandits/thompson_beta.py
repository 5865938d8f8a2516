"""Beta-Bernoulli Thompson sampling, for rewards in [0, 1] through the Bernoulli trick."""

from __future__ import annotations

from torch import Tensor

from banditformer.bandits._beta import BetaPosteriorMixin
from banditformer.core.policy import Policy

__all__ = ["ThompsonBeta"]


class ThompsonBeta(BetaPosteriorMixin, Policy):
    """Thompson sampling with a Beta prior per arm (Agrawal and Goyal 2012).

    A reward ``r`` in [0, 1] is turned into a Bernoulli outcome ``b ~ Bernoulli(r)`` (the Bernoulli
    trick, drawn from the policy's generator), and ``b`` updates the arm's Beta posterior. With
    ``bernoulli_trick=False`` the posterior takes ``r`` and ``1 - r`` directly (deterministic
    updates, fractional counts). ``discount < 1`` decays successes and failures by that factor per
    round (each row of a group), pulling the posterior back towards the prior.

    Args:
        num_arms: K.
        prior_alpha, prior_beta: the Beta prior (both > 0).
        discount: gamma in (0, 1].
        bernoulli_trick: see above.
        draws: ``"row"`` (each row draws its own posterior sample) or ``"group"`` (batched Thompson
            sampling: one draw per group and ``select`` call, shared by the group's rows; much
            cheaper for large batches, and it gives the rows of a group the same arm).

    Examples:
        >>> p = ThompsonBeta(num_arms=2, seed=0)
        >>> p.update(torch.tensor([0] * 20 + [1] * 20), torch.tensor([1.0] * 20 + [0.0] * 20))
        >>> p.select(n=5).tolist()
        [0, 0, 0, 0, 0]
    """

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        return self._draw(groups, lambda samples: samples.argmax(1))  # the arm of the highest sample

    def _update(self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        self._observe_outcomes(rewards, groups, arms, None)
