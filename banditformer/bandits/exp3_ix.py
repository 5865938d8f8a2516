"""EXP3-IX: exponential weights with implicit exploration (Kocak, Neu, Valko and Munos 2014; Neu 2015)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from banditformer.bandits._common import observe
from banditformer.core.policy import Policy
from banditformer.core.validation import check_float

__all__ = ["EXP3IX", "exp3_ix_probabilities", "exp3_ix_rates"]


def exp3_ix_rates(
    t: Tensor, num_arms: int, eta: float | None = None, gamma: float | None = None
) -> tuple[Tensor, Tensor]:
    """The learning rate and implicit-exploration parameter at round ``t``.

    ``eta_t = sqrt(2 ln K / (K t))`` (Neu 2015's tuning ``eta = sqrt(2 ln K / (K T))`` with the
    horizon ``T`` replaced by the round ``t``) unless ``eta`` is given, and ``gamma_t = eta_t / 2``
    unless ``gamma`` is given.

    Args:
        t: ``(...)`` float rounds, ``>= 1``.
        num_arms: K (``K = 1`` gives ``eta_t = gamma_t = 0``: the one arm is played with probability 1).
        eta, gamma: fixed values, or ``None`` for the schedules above.

    Returns:
        ``(eta_t, gamma_t)``, each ``(...)`` float64.
    """
    t = t.double().clamp(min=1.0)
    eta_t = torch.sqrt(2.0 * math.log(num_arms) / (num_arms * t)) if eta is None else torch.full_like(t, eta)
    gamma_t = eta_t / 2.0 if gamma is None else torch.full_like(t, gamma)
    return eta_t, gamma_t


def exp3_ix_probabilities(losses: Tensor, eta: Tensor) -> Tensor:
    """The exponential-weights distribution ``p_a = exp(-eta L_a) / sum_b exp(-eta L_b)``, as a
    softmax that subtracts the largest exponent first (finite however large the estimates grow).

    Args:
        losses: ``(..., K)`` estimated cumulative losses ``L_a >= 0``.
        eta: ``(...)`` learning rates ``>= 0``, broadcast over arms.

    Returns:
        ``(..., K)`` probabilities summing to 1 along the last axis.
    """
    z = -eta.unsqueeze(-1) * losses
    w = torch.exp(z - z.amax(-1, keepdim=True))  # torch.softmax is several times slower on small CPU tables
    return w / w.sum(-1, keepdim=True)


class EXP3IX(Policy):
    """EXP3-IX on rewards in ``[0, 1]``, an adversarial bandit: no stochastic assumption on the rewards.

    A row of a group at round ``t`` (the group's plays so far, plus 1) draws its arm from
    ``p = exp3_ix_probabilities(L, eta_t)`` (:func:`exp3_ix_rates`: ``eta_t = sqrt(2 ln K / (K t))``,
    ``gamma_t = eta_t / 2`` by default), using the policy's generator. A reward ``r`` of the played
    arm ``a`` is the loss ``1 - r``, and its implicit-exploration estimate ``(1 - r) / (p_a +
    gamma_t)`` is added to ``L_a`` (Neu 2015): biased low, which is what bounds the estimates'
    variance without mixing in uniform exploration.

    **Batches use one probability vector per group.** All rows of a group in one ``select`` are
    drawn from the same ``p`` (its statistics and ``t`` when the call begins). ``update`` stores only
    the estimates, computed from the arms and rewards: it recomputes each group's ``p``, ``eta_t``
    and ``gamma_t`` from the statistics as they stand before the update, which are those the rows
    were drawn from when each ``select`` is followed by its ``update`` (as the bench harness does).
    Fed one at a time, later rows would be weighted with probabilities that earlier rows already
    moved, so a batched update differs from its rows one by one: ``exact_batch_update`` is False.

    ``select(..., explore=False)`` is greedy on :meth:`expected_rewards`, ``1 - L_a / t`` (the
    estimated mean reward over the group's rounds), whose argmax is the most probable arm.

    Args:
        num_arms: K.
        eta: a fixed learning rate (``> 0``), or ``None`` for ``eta_t`` above.
        gamma: a fixed implicit-exploration parameter (``> 0``), or ``None`` for half the learning rate.
        num_groups, context_dim, seed: see :class:`~banditformer.core.PolicyBase`.

    State:
        ``losses``: ``(num_groups, num_arms)`` float64 estimated cumulative losses ``L``;
        ``plays``: ``(num_groups,)`` float64 rounds played. Both summed across ranks.

    Examples:
        >>> p = EXP3IX(num_arms=3, seed=0)
        >>> p.action_probabilities(groups=torch.tensor([0])).tolist()
        [[0.3333333333333333, 0.3333333333333333, 0.3333333333333333]]
        >>> p.update(torch.tensor([0]), torch.tensor([0.0]))   # a loss of 1 on arm 0
        >>> [round(x, 4) for x in p.action_probabilities(groups=torch.tensor([0]))[0].tolist()]
        [0.1842, 0.4079, 0.4079]
    """

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    # The estimates of a batch use the probabilities from before the batch (those its rows were drawn
    # with); rows fed one at a time use the probabilities after the previous rows. See the docstring.
    exact_batch_update: ClassVar[bool] = False
    losses: Tensor
    plays: Tensor

    def __init__(
        self,
        num_arms: int,
        *,
        eta: float | None = None,
        gamma: float | None = None,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        self.add_config("eta", None if eta is None else check_float("eta", eta, low=0.0, low_open=True))
        self.add_config("gamma", None if gamma is None else check_float("gamma", gamma, low=0.0, low_open=True))
        self.add_state("losses", torch.zeros(self.num_groups, self.num_arms, dtype=torch.float64), low=0.0)
        self.add_state("plays", torch.zeros(self.num_groups, dtype=torch.float64), low=0.0)

    def _distribution(self) -> tuple[Tensor, Tensor]:
        """Each group's ``(G, K)`` probabilities and ``(G,)`` ``gamma_t`` at its next round."""
        eta_t, gamma_t = exp3_ix_rates(self.plays + 1.0, self.num_arms, self.eta, self.gamma)
        return exp3_ix_probabilities(self.losses, eta_t), gamma_t

    def _action_probabilities(self, context: Tensor | None, groups: Tensor) -> Tensor:
        # exact: the distribution _select draws each row's arm from (``action_probabilities``,
        # ``select(..., propensity=True)``)
        return self._distribution()[0][groups]

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        return (1.0 - self.losses / self.plays.clamp(min=1.0).unsqueeze(1))[groups]  # (n, K)

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        # Inverse-CDF sampling, one uniform per row: u below the last cumulative sum picks an arm < K.
        cdf = self._distribution()[0][groups].cumsum(1)  # (n, K)
        u = torch.rand(groups.shape[0], 1, generator=self.generator, device=self.device, dtype=torch.float64)
        return (cdf <= u * cdf[:, -1:]).sum(1)

    def _update(self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        # The probabilities and gamma before any row of this batch is folded in: those of the select.
        probs, gamma_t = self._distribution()
        estimate = (1.0 - rewards) / (probs[groups, arms] + gamma_t[groups])  # (n,)
        observe(self, groups, arms, losses=estimate)
        observe(self, groups, None, plays=torch.ones_like(rewards))
