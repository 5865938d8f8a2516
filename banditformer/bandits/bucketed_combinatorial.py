"""Make any context-free combinatorial policy contextual by online clustering of contexts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from banditformer.bandits._buckets import BucketsMixin
from banditformer.bandits.cts import CTS
from banditformer.core.policy import CombinatorialPolicy

__all__ = ["BucketedCombinatorial"]


class BucketedCombinatorial(BucketsMixin, CombinatorialPolicy):
    """A context-free combinatorial policy (CTS, CUCB, ...) with one set of statistics per
    context bucket, the buckets learned online as in :class:`~banditformer.bandits.Bucketed`.

    Args:
        num_arms: N base arms.
        context_dim: d.
        base: the wrapped context-free combinatorial policy (over ``num_arms`` arms, ``num_groups =
            num_buckets``), or its factory, called as
            ``base(num_arms, num_groups=num_buckets, seed=..., **base_kwargs)``; default
            :class:`~banditformer.bandits.CTS`. By name: ``make_policy("bucketed_combinatorial",
            base="cucb", ...)``.
        num_buckets: B.
        base_kwargs: keyword arguments for the base policy.

    Examples:
        >>> p = BucketedCombinatorial(num_arms=6, context_dim=2, num_buckets=3, seed=0)
        >>> x = torch.randn(5, 2)
        >>> chosen = p.select(x, k=2)
        >>> p.update(chosen, torch.rand(5, 6), x)
    """

    is_contextual = True
    exact_batch_update = False

    def __init__(
        self,
        num_arms: int,
        *,
        context_dim: int | None = None,
        base: CombinatorialPolicy | Callable[..., CombinatorialPolicy] = CTS,
        num_buckets: int = 8,
        base_kwargs: dict[str, Any] | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=1, seed=seed)
        self._init_buckets(CombinatorialPolicy, base, num_buckets, base_kwargs, num_groups)

    def _select(self, context: Tensor | None, k: Tensor, groups: Tensor) -> Tensor:
        assert context is not None
        return self.base.select(k=k, groups=self.buckets(context))

    def _update(self, chosen: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        assert context is not None
        self.base.update(chosen, rewards, groups=self._learn_buckets(context))
