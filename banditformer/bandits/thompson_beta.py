"""Beta-Bernoulli Thompson sampling, for rewards in [0, 1] through the Bernoulli trick."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from banditformer.bandits._beta import BetaPosteriorMixin
from banditformer.core.policy import Policy
from banditformer.core.stepper import LeanStepper

__all__ = ["ThompsonBeta", "ThompsonBetaStepper"]


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

    def _stepper(self, group: int) -> ThompsonBetaStepper | None:
        # Lean where one row's draw is the batched path's: the direct Gamma sampler (a prior of at
        # least 1, sample_beta's min_concentration), and one group's draw per row.
        if self.min_concentration < 1.0 or (self.draws == "group" and self.num_groups > 1):
            return None
        return ThompsonBetaStepper(self, group)


class ThompsonBetaStepper(LeanStepper):
    """Beta Thompson sampling's lean stepper: the group's posterior in NumPy, one call of torch's
    Gamma sampler on the stacked ``(2, K)`` concentrations (the batched path's call, so the same
    draws), and the Bernoulli trick's uniform from the policy's generator."""

    def _bind(self) -> None:
        super()._bind()
        self._successes = self._view("successes")[self._group]
        self._failures = self._view("failures")[self._group]
        self._prior_alpha = self._view("prior_alpha")
        self._prior_beta = self._view("prior_beta")
        self._discount = self._view("discount")
        self._concentration = torch.empty(2, self._policy.num_arms, dtype=torch.float64)
        self._conc = self._concentration.numpy()

    def _lean_select(self, context: Tensor | None) -> int:
        conc = self._conc
        np.add(self._prior_alpha, self._successes, out=conc[0])
        np.add(self._prior_beta, self._failures, out=conc[1])
        x, y = torch._standard_gamma(self._concentration, generator=self._policy.generator).numpy()
        return int((x / (x + y)).argmax())

    def _lean_update(self, arm: int, reward: float, context: Tensor | None) -> None:
        trick = self._policy.bernoulli_trick  # type: ignore[attr-defined]
        outcome = (1.0 if self._uniform() < reward else 0.0) if trick else reward  # as bernoulli_outcomes
        gamma = float(self._discount)
        if gamma != 1.0:
            self._successes *= gamma
            self._failures *= gamma
        self._successes[arm] += outcome
        self._failures[arm] += 1.0 - outcome
