"""Beta-Bernoulli statistics shared by the Thompson samplers (BetaThompson, CTS)."""

from __future__ import annotations

import torch
from torch import Tensor

from banditformer.bandits._common import add_discount, check_draws
from banditformer.core.policy import PolicyBase


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
    policy.add_hyperparameter("prior_alpha", prior_alpha, low=0.0, low_open=True)
    policy.add_hyperparameter("prior_beta", prior_beta, low=0.0, low_open=True)
    add_discount(policy, discount)
    policy.add_config("bernoulli_trick", bool(bernoulli_trick))
    # Bernoulli outcomes are drawn per update call, so a batch differs from the same rows one by one.
    policy.exact_batch_update = not policy.bernoulli_trick
    policy.add_config("draws", check_draws(draws))
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
