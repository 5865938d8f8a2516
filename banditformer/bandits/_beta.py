"""Beta-Bernoulli statistics and sampling shared by the Thompson samplers (ThompsonBeta, CTS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from banditformer.bandits._common import add_discount, check_draws, observe
from banditformer.core.policy import PolicyBase
from banditformer.core.random import sample_beta


def add_beta_state(
    policy: PolicyBase,
    prior_alpha: float,
    prior_beta: float,
    discount: float,
    bernoulli_trick: bool,
    draws: str,
) -> None:
    """Register the Beta prior and discount as buffers, ``successes`` / ``failures`` ``(G, K)`` as
    summed statistics, and the two options as attributes."""
    f64 = torch.float64
    a = policy.add_hyperparameter("prior_alpha", prior_alpha, low=0.0, low_open=True)
    b = policy.add_hyperparameter("prior_beta", prior_beta, low=0.0, low_open=True)
    # Posteriors never fall below the prior (configuration: a load cannot change it), so the
    # sampler knows this bound on the host (sample_beta's min_concentration).
    policy.min_concentration = min(a, b)
    add_discount(policy, discount)
    policy.add_config("bernoulli_trick", bool(bernoulli_trick))
    # Bernoulli outcomes are drawn per update call, so a batch differs from the same rows one by one.
    policy.exact_batch_update = not policy.bernoulli_trick
    policy.add_config("draws", check_draws(draws))
    policy.rows_independent = policy.draws == "row"  # a draw per row; "group" shares one per group
    policy.add_state("successes", torch.zeros(policy.num_groups, policy.num_arms, dtype=f64), low=0.0)
    policy.add_state("failures", torch.zeros(policy.num_groups, policy.num_arms, dtype=f64), low=0.0)


def beta_posterior(
    successes: Tensor, failures: Tensor, prior_alpha: float | Tensor, prior_beta: float | Tensor
) -> tuple[Tensor, Tensor]:
    """Posterior ``(alpha, beta)`` of a Beta(prior_alpha, prior_beta) prior after the given
    (possibly fractional, discounted) successes and failures; both stay >= the prior's."""
    return prior_alpha + successes, prior_beta + failures


def bernoulli_outcomes(rewards: Tensor, generator: torch.Generator, trick: bool) -> Tensor:
    """Rewards in [0, 1] as Bernoulli outcomes ``b ~ Bernoulli(r)`` (the Bernoulli trick of Agrawal
    and Goyal 2012), or the rewards themselves as fractional outcomes when ``trick`` is False."""
    if not trick:
        return rewards
    u = torch.rand(rewards.shape, generator=generator, device=rewards.device, dtype=rewards.dtype)
    return (u < rewards).to(rewards.dtype)


class BetaPosteriorMixin:
    """A Beta-Bernoulli Thompson sampler's constructor (the state of :func:`add_beta_state`) and
    what it does with that state: the posterior, its mean (the greedy mode), posterior draws per
    row or per group, and the update. Put it before a :class:`PolicyBase` subclass in the bases
    (``class ThompsonBeta(BetaPosteriorMixin, Policy)``), which then adds ``_select`` and ``_update``."""

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    successes: Tensor
    failures: Tensor
    prior_alpha: Tensor
    prior_beta: Tensor
    draws: str
    bernoulli_trick: bool
    min_concentration: float
    generator: torch.Generator

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
        policy: Any = self  # a PolicyBase, by the class this mixin is combined with
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        add_beta_state(policy, prior_alpha, prior_beta, discount, bernoulli_trick, draws)

    def posterior(self) -> tuple[Tensor, Tensor]:
        """The ``(G, K)`` Beta posterior parameters ``(alpha, beta)`` of every group and (base) arm."""
        return beta_posterior(self.successes, self.failures, self.prior_alpha, self.prior_beta)

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        alpha, beta = self.posterior()
        return (alpha / (alpha + beta))[groups]  # the posterior mean, (n, K)

    def _draw(self, groups: Tensor, decide: Callable[[Tensor], Tensor]) -> Tensor:
        """``decide`` applied to posterior samples, one result per row.

        ``draws="row"``: each of the ``n`` rows draws its own ``(K,)`` sample; ``decide`` gets the
        ``(n, K)`` samples. ``draws="group"``: one ``(G, K)`` draw per call, ``decide`` runs once per
        group and its ``(G, ...)`` result is gathered for the rows, which so share it.

        Returns:
            ``(n, ...)``: ``decide``'s result for each row.
        """
        alpha, beta = self.posterior()
        if self.draws == "group":
            return decide(sample_beta(alpha, beta, self.generator, min_concentration=self.min_concentration))[groups]
        return decide(
            sample_beta(alpha[groups], beta[groups], self.generator, min_concentration=self.min_concentration)
        )

    def _observe_outcomes(self, rewards: Tensor, groups: Tensor, arms: Tensor | None, mask: Tensor | None) -> None:
        """Fold rewards in [0, 1] into the posterior, as Bernoulli outcomes (:func:`bernoulli_outcomes`)
        after the discount.

        Args:
            rewards: ``(n,)`` rewards of ``arms``, or ``(n, K)`` rewards of every base arm.
            groups: ``(n,)`` groups.
            arms: ``(n,)`` played arms, or ``None`` with ``(n, K)`` rewards.
            mask: with ``(n, K)`` rewards: the ``(n, K)`` bool base arms each row played.
        """
        outcome = bernoulli_outcomes(rewards, self.generator, self.bernoulli_trick)
        failure = 1.0 - outcome
        if mask is not None:
            weight = mask.to(rewards.dtype)
            outcome, failure = outcome * weight, failure * weight
        policy: Any = self
        observe(policy, groups, arms, successes=outcome, failures=failure)
