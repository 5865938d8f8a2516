"""Combinatorial Thompson sampling (Wang and Chen 2018) with Beta priors on the base arms."""

from __future__ import annotations

import torch
from torch import Tensor

from banditformer.bandits._beta import BetaPosteriorMixin
from banditformer.core.policy import CombinatorialPolicy

__all__ = ["CTS", "descending_rank"]


def descending_rank(scores: Tensor) -> Tensor:
    """``(m, N)`` int64: each entry's place in its row sorted in descending order (0 for the highest;
    ties to the lower index), so ``descending_rank(s) < k`` is :func:`~banditformer.core.policy.top_k_mask`."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    places = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, places)


class CTS(BetaPosteriorMixin, CombinatorialPolicy):
    """Each row draws one sample from every base arm's Beta posterior and takes its top ``k[i]``.

    Semi-bandit feedback: every chosen base arm reports a reward in [0, 1], turned into a
    Bernoulli outcome by the Bernoulli trick (or used fractionally with ``bernoulli_trick=False``)
    that updates that arm's Beta posterior. Rows of a group share the posterior but draw their own
    samples.

    Args:
        num_arms: N base arms.
        prior_alpha, prior_beta: the Beta prior of each base arm.
        discount: gamma in (0, 1]; decays the posterior counts by gamma per round (one row of a group).
        bernoulli_trick: draw Bernoulli outcomes from fractional rewards.
        draws: ``"row"`` (a posterior sample per row) or ``"group"`` (one sample per group and
            ``select`` call, shared by its rows: rows of a group with the same ``k`` get the same
            subset, which lets an executor run them as one dense block).

    Examples:
        >>> p = CTS(num_arms=6, seed=0)
        >>> p.select(k=torch.tensor([1, 3])).sum(1).tolist()
        [1, 3]
    """

    def _select(self, context: Tensor | None, k: Tensor, groups: Tensor) -> Tensor:
        # The top k[i] of the row's samples; with draws="group" the ranks are taken once per group.
        return self._draw(groups, descending_rank) < k.unsqueeze(1)

    def _update(self, chosen: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        self._observe_outcomes(rewards, groups, None, chosen)
