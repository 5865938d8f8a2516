"""Make any context-free policy contextual by online clustering of contexts into buckets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError
from banditformer.core.policy import Policy
from banditformer.core.random import derive_seed
from banditformer.core.validation import check_int

__all__ = ["Bucketed", "assign_buckets"]


def assign_buckets(context: Tensor, centroids: Tensor, live: Tensor) -> Tensor:
    """Index of the nearest live centroid (Euclidean) for each context row.

    Args:
        context: ``(n, d)``; centroids: ``(B, d)``; live: ``(B,)`` bool, True for buckets in use.

    Returns:
        ``(n,)`` int64 bucket indices (bucket 0 while no bucket is live).
    """
    dist = torch.cdist(context, centroids)  # (n, B)
    dist = torch.where(live.unsqueeze(0), dist, torch.full_like(dist, float("inf")))
    return dist.argmin(1)


class Bucketed(Policy):
    """A context-free policy with one set of statistics per context bucket.

    Buckets are learned online (sequential k-means): the first ``num_buckets`` contexts seen by
    ``update`` seed the centroids; afterwards each context joins its nearest centroid, whose
    position is the running mean of the contexts it has taken. A centroid is stored as a sum and
    a count, so bucket statistics reduce across ranks by summation like everything else. Rows are
    routed with the centroids as they stand when ``select`` or ``update`` is called.

    Args:
        num_arms: K.
        context_dim: d.
        base: the wrapped policy: a registered policy name, or a factory called as
            ``factory(num_arms, num_groups=num_buckets, seed=..., **base_kwargs)``.
        num_buckets: B.
        base_kwargs: keyword arguments for the base policy.

    >>> p = Bucketed(num_arms=3, context_dim=2, base="ucb1", num_buckets=4, seed=0)
    >>> x = torch.randn(8, 2)
    >>> arms = p.select(x)
    >>> p.update(arms, torch.rand(8), x)
    """

    is_contextual = True
    # Updating row by row moves centroids between rows, which can route later rows differently.
    exact_batch_update = False

    def __init__(
        self,
        num_arms: int,
        *,
        context_dim: int | None = None,
        base: str | Callable[..., Policy] = "ucb1",
        num_buckets: int = 8,
        base_kwargs: dict[str, Any] | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=1, seed=seed)
        if num_groups != 1:
            raise InputValidationError(
                f"expected `num_groups` = 1 for Bucketed (buckets are its groups), got {num_groups}"
            )
        self.num_buckets = check_int("num_buckets", num_buckets, low=1)
        if isinstance(base, str):
            from banditformer.plugins import make_policy  # late: the registry imports this module

            factory: Callable[..., Policy] = lambda k, **kw: make_policy(base, num_arms=k, **kw)  # noqa: E731
        elif callable(base):
            factory = base
        else:
            raise InputValidationError(f"expected `base` to be a policy name or factory, got {type(base).__name__}")
        self.base = factory(num_arms, num_groups=num_buckets, seed=derive_seed(seed, "base"), **(base_kwargs or {}))
        if not isinstance(self.base, Policy) or self.base.is_contextual or self.base.num_groups != num_buckets:
            raise InputValidationError(
                f"expected `base` to build a context-free Policy with num_groups={num_buckets}, got {self.base!r}"
            )
        self.reward_range = self.base.reward_range  # type: ignore[misc]
        d = int(self.context_dim)
        self.add_state("centroid_sums", torch.zeros(num_buckets, d, dtype=torch.float64))
        self.add_state("centroid_counts", torch.zeros(num_buckets, dtype=torch.float64))

    @property
    def centroids(self) -> Tensor:
        """``(B, d)`` bucket centres (zeros for buckets not yet seeded)."""
        return self.centroid_sums / self.centroid_counts.clamp(min=1.0).unsqueeze(1)

    def buckets(self, context: Tensor) -> Tensor:
        """``(n,)`` bucket of each ``(n, d)`` context under the current centroids."""
        return assign_buckets(context.to(torch.float64), self.centroids, self.centroid_counts > 0)

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        assert context is not None
        return self.base.select(n=context.shape[0], groups=self.buckets(context))

    def _update(self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        assert context is not None
        x = context.to(torch.float64)
        # Seed empty buckets with the first rows, in order, until all are live.
        empty = (self.centroid_counts <= 0).nonzero().squeeze(1)
        m = min(int(empty.numel()), x.shape[0])
        if m:
            self.centroid_sums[empty[:m]] = x[:m]
            self.centroid_counts[empty[:m]] = 1.0
        rest = x[m:]
        bucket = torch.cat([empty[:m], self.buckets(rest)]) if rest.shape[0] else empty[:m]
        if rest.shape[0]:
            self.centroid_sums.index_add_(0, bucket[m:], rest)
            self.centroid_counts.index_add_(0, bucket[m:], torch.ones_like(rest[:, 0]))
        self.base.update(arms, rewards, groups=bucket)
