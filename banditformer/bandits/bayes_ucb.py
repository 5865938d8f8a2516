"""Bayes-UCB for Bernoulli rewards (Kaufmann, Cappe and Garivier 2012), in its anytime form."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from banditformer.bandits._common import CountState, argmax_untried_first
from banditformer.core.policy import Policy

__all__ = ["BayesUCB", "bayes_ucb_index", "bayes_ucb_level"]


def bayes_ucb_level(t: Tensor, c: float | Tensor = 0.0) -> Tensor:
    """The quantile level ``1 - 1 / (t (ln t)^c)`` at round ``t >= 1``, clamped at 0 from below
    (``t (ln t)^c < 1`` for small ``t`` when ``c > 0``, and ``(ln 1)^0 = 1``)."""
    t = t.clamp(min=1.0)
    return (1.0 - 1.0 / (t * torch.log(t).pow(c))).clamp(min=0.0)


def bayes_ucb_index(sums: Tensor, counts: Tensor, t: Tensor, c: float | Tensor = 0.0) -> Tensor:
    """The Bayes-UCB index: the ``1 - 1 / (t (ln t)^c)`` quantile of each arm's posterior
    ``Beta(1 + s, 1 + n - s)`` (a uniform prior; ``s`` the reward sum, ``n`` the plays).

    The quantile is ``scipy.special.betaincinv``, accurate to float64 for any (fractional)
    parameters, computed on the CPU: tensors on another device are copied there and back.

    Args:
        sums: ``(..., K)`` reward sums per arm (rewards in ``[0, 1]``: fractional successes).
        counts: ``(..., K)`` plays per arm (an arm with 0 plays gets its prior's quantile).
        t: ``(...)`` the round being played, ``>= 1``, broadcast over arms.
        c: the ``ln t`` exponent (0 in the paper's experiments; 5 in its proof).

    Returns:
        ``(..., K)`` float64 indices in ``[0, 1]``.
    """
    from scipy.special import betaincinv  # only this function needs scipy.special (0.3 s to import)

    alpha = (1.0 + sums).double().cpu().numpy()
    beta = (1.0 + (counts - sums).clamp(min=0.0)).double().cpu().numpy()
    level = bayes_ucb_level(t.double(), c).unsqueeze(-1).cpu().numpy()  # (..., 1), broadcast over arms
    return torch.as_tensor(betaincinv(alpha, beta, level), dtype=torch.float64).to(sums.device)


class BayesUCB(CountState, Policy):
    """Bayes-UCB on rewards in ``[0, 1]``: the arm of highest posterior quantile.

    Each arm has a ``Beta(1, 1)`` prior; a reward ``r`` adds ``r`` to its successes and ``1 - r`` to
    its failures (fractional counts, deterministic: the statistics are the counts and sums of
    :class:`~banditformer.bandits.UCB1`, successes ``s`` and failures ``n - s``). At round ``t`` a
    row plays the arm whose posterior has the highest ``1 - 1 / (t (ln t)^c)`` quantile: this is
    the paper's anytime form, with ``ln t`` for ``ln T`` (no horizon is needed). ``t`` counts the
    rounds from 1, as the paper does: the row's group's plays so far, plus 1. The rows of a group in
    one ``select`` share its statistics and its ``t``, so its quantiles are computed once per group.

    Untried arms are played first, as in :class:`~banditformer.bandits.UCB1`. ``select(...,
    explore=False)`` is greedy on the posterior mean ``(1 + s) / (2 + n)``. The quantiles come from
    scipy on the CPU (:func:`bayes_ucb_index`): on CUDA a ``select`` copies the ``(G, K)``
    statistics to the host and the indices back.

    Args:
        num_arms: K.
        c: the ``ln t`` exponent of the quantile level (``>= 0``; 0 as in the paper's experiments).
        num_groups, context_dim, seed: see :class:`~banditformer.core.PolicyBase`.

    Examples:
        >>> p = BayesUCB(num_arms=2, seed=0)
        >>> p.update(torch.tensor([0, 1]), torch.tensor([1.0, 0.0]))
        >>> p.select(n=1).tolist()   # t = 3: the 2/3 quantiles of Beta(2, 1) and Beta(1, 2)
        [0]
        >>> p.expected_rewards(n=1).tolist()
        [[0.6666666666666666, 0.3333333333333333]]
    """

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    deterministic: ClassVar[bool] = True  # an index policy: propensity 1

    def __init__(
        self,
        num_arms: int,
        *,
        c: float = 0.0,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        self.add_hyperparameter("c", c, low=0.0)
        self._init_count_state()  # no discount

    def posterior(self) -> tuple[Tensor, Tensor]:
        """The ``(G, K)`` Beta posterior parameters ``(1 + s, 1 + n - s)`` of every group and arm."""
        return 1.0 + self.sums, 1.0 + (self.counts - self.sums).clamp(min=0.0)

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        alpha, beta = self.posterior()
        return (alpha / (alpha + beta))[groups]  # the posterior mean, (n, K)

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        # One quantile table per group (G, K) at its round t = plays + 1, gathered per row.
        table = bayes_ucb_index(self.sums, self.counts, self.counts.sum(1) + 1.0, self.c)
        return argmax_untried_first(table, self.counts, groups)
