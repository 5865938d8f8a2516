"""EXP3 (Auer, Cesa-Bianchi, Freund and Schapire 2002) as a banditformer plugin.

EXP3 makes no stochastic assumption on the rewards: it keeps one exponential weight per arm, plays
an arm drawn from a mixture of the normalised weights and the uniform distribution, and updates
the played arm's weight with an importance-weighted (unbiased) estimate of its reward.

The package registers the policy under the name ``exp3`` through the ``banditformer`` entry-point
group (see ``pyproject.toml``)::

    >>> import banditformer, torch
    >>> policy = banditformer.make_policy("exp3", num_arms=4, gamma=0.1, seed=0)
    >>> arms = policy.select(n=5)              # (5,) int64 in [0, 4)
    >>> policy.update(arms, torch.rand(5))     # rewards in [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

import banditformer
from banditformer import Policy

__all__ = ["EXP3", "banditformer_add_policies", "exp3_probabilities"]

__version__ = "0.1.0"


def exp3_probabilities(log_weights: Tensor, gamma: float | Tensor) -> Tensor:
    """The EXP3 play probabilities ``p_i = (1 - gamma) * w_i / sum_j w_j + gamma / K``.

    The weights are given as logarithms, and ``w_i / sum_j w_j`` is computed as a softmax of them
    (which subtracts the largest log-weight first), so the result stays finite however large the
    weights grow.

    Args:
        log_weights: ``(..., K)`` log-weights ``log w_i`` (any finite reals).
        gamma: the exploration rate in ``(0, 1]``, a float or a scalar tensor.

    Returns:
        ``(..., K)`` probabilities, each at least ``gamma / K``, summing to 1 along the last axis;
        the dtype and device of ``log_weights``.
    """
    num_arms = log_weights.shape[-1]
    return (1.0 - gamma) * torch.softmax(log_weights, dim=-1) + gamma / num_arms


class EXP3(Policy):
    """EXP3 on rewards in ``[0, 1]``.

    Each row of a ``select`` call draws its arm independently from ``exp3_probabilities`` of its
    group's log-weights. ``update`` adds ``gamma * (r / p_a) / K`` to the log-weight of each played
    arm ``a`` in the row's group, where ``p_a`` is the probability the arm had under the weights as
    they stood before the ``update`` call. With rewards in ``[0, 1]`` and ``p_a >= gamma / K`` one
    row adds at most 1 to a log-weight, so float64 log-weights never overflow in practice.

    Args:
        num_arms: K.
        gamma: the exploration rate in ``(0, 1]``; ``gamma = 1`` plays uniformly at random.
        context_dim, num_groups, seed: see :class:`banditformer.core.PolicyBase` (the context is
            checked, then ignored).

    State:
        ``log_weights``: ``(num_groups, num_arms)`` float64, initially 0 (uniform weights), with
        ``reduce="sum"`` (data-parallel ranks add their increments, i.e. multiply the weights).

    >>> p = EXP3(num_arms=3, gamma=0.5, seed=0)
    >>> p.probabilities().tolist()
    [[0.3333333333333333, 0.3333333333333333, 0.3333333333333333]]
    """

    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    # A batch is importance-weighted with the probabilities from before the batch, which are the
    # ones its rows were drawn with (select draws a whole batch from the same weights). Fed one row
    # at a time, each row is weighted with the probabilities after the previous rows' updates, so the
    # two orders give different (both unbiased) log-weights.
    exact_batch_update: ClassVar[bool] = False

    def __init__(
        self,
        num_arms: int,
        *,
        gamma: float = 0.1,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        # configuration: checked here, and a checkpoint of another gamma is refused on load
        self.add_hyperparameter("gamma", gamma, low=0.0, high=1.0, low_open=True)
        self.add_state("log_weights", torch.zeros(num_groups, num_arms, dtype=torch.float64), reduce="sum")

    def probabilities(self, groups: Tensor | None = None) -> Tensor:
        """The play probabilities of every group, ``(num_groups, K)``, or of each row for
        ``groups`` ``(n,)``, ``(n, K)``; float64."""
        probs = exp3_probabilities(self.log_weights, self.gamma)
        return probs if groups is None else probs[groups]

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        # (n, K) probabilities gathered per row; one independent draw per row.
        probs = self.probabilities(groups)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1)

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        # EXP3 keeps no mean estimates; its play probabilities rank the arms the same way.
        return self.probabilities(groups)

    def _update(self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        # Probabilities of the played arms before any row of this batch is folded in: (n,).
        p = self.probabilities()[groups, arms]
        step = self.gamma * (rewards / p) / self.num_arms
        self.log_weights.index_put_((groups, arms), step, accumulate=True)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={float(self.gamma):g}"


@banditformer.hookimpl
def banditformer_add_policies() -> dict[str, Callable[..., Any]]:
    """Contribute the ``exp3`` policy."""
    return {"exp3": EXP3}
