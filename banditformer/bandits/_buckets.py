"""Online clustering of contexts into buckets, shared by the bucketed wrappers.

The first ``num_buckets`` contexts fed back seed the centroids; afterwards each context joins its
nearest centroid, whose position is the running mean of the contexts it has taken (sequential
k-means). A centroid is stored as a sum and a count, so bucket statistics reduce across ranks by
summation like every other statistic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError
from banditformer.core.policy import PolicyBase
from banditformer.core.random import derive_seed
from banditformer.core.validation import check_int


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


class BucketsMixin:
    """Adds a base policy with one statistics group per bucket, and the bucket state, to a
    contextual :class:`PolicyBase` subclass."""

    supports_groups = False

    base: PolicyBase
    num_buckets: int

    def _init_buckets(
        self,
        kind: type[PolicyBase],
        base: PolicyBase | Callable[..., PolicyBase],
        num_buckets: int,
        base_kwargs: dict[str, Any] | None,
        num_groups: int,
    ) -> None:
        """Take the base policy, or build it as ``base(num_arms, num_groups=num_buckets,
        seed=<derived>, **base_kwargs)``, and register the bucket state.

        Args:
            kind: the class the base must be an instance of (context-free).
            base: the base policy itself (a context-free ``kind`` over ``num_arms`` arms with
                ``num_groups = num_buckets``), or its factory (a policy class is one); never a
                name: the registry turns names into factories (:mod:`banditformer.builtin`).
        """
        policy: Any = self
        name = type(self).__name__
        if num_groups != 1:
            raise InputValidationError(
                f"expected `num_groups` = 1 for {name} (buckets are its groups), got {num_groups}"
            )
        policy.add_config("num_buckets", check_int("num_buckets", num_buckets, low=1))
        given = isinstance(base, PolicyBase)
        if not given and not callable(base):
            hint = f" (a name is the registry's: make_policy(..., base={base!r}))" if isinstance(base, str) else ""
            raise InputValidationError(
                f"expected `base` to be a policy or a policy factory, such as a policy class, got "
                f"{type(base).__name__}{hint}"
            )
        if base_kwargs is not None and not isinstance(base_kwargs, dict):
            raise InputValidationError(
                f"expected `base_kwargs` to be a dict of options, got {type(base_kwargs).__name__}"
            )
        if given and base_kwargs:
            raise InputValidationError(
                f"expected no `base_kwargs` with a base policy that is already built, got {sorted(base_kwargs)}"
            )
        if given:
            built = base
        else:
            built = base(policy.num_arms, num_groups=num_buckets, seed=derive_seed(policy.seed, "base"),
                         **(base_kwargs or {}))  # fmt: skip
        ok = isinstance(built, kind) and not built.is_contextual and built.num_groups == num_buckets
        if not ok or built.num_arms != policy.num_arms:
            raise InputValidationError(
                f"expected `base` to {'be' if given else 'build'} a context-free {kind.__name__} over "
                f"{policy.num_arms} arms with num_groups={num_buckets}, got {built!r}"
            )
        self.base = built
        policy.reward_range = built.reward_range
        d = int(policy.context_dim)
        policy.add_state("centroid_sums", torch.zeros(num_buckets, d, dtype=torch.float64))
        policy.add_state("centroid_counts", torch.zeros(num_buckets, dtype=torch.float64), low=0.0)

    @property
    def centroids(self) -> Tensor:
        """``(B, d)`` bucket centres (zeros for buckets not yet seeded)."""
        policy: Any = self
        return policy.centroid_sums / policy.centroid_counts.clamp(min=1.0).unsqueeze(1)

    def buckets(self, context: Tensor) -> Tensor:
        """``(n,)`` bucket of each ``(n, d)`` context under the current centroids."""
        policy: Any = self
        return assign_buckets(context.to(torch.float64), self.centroids, policy.centroid_counts > 0)

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        """The base policy's estimates in each ``(n, d)`` context's bucket: ``(n, K)``."""
        assert context is not None  # the wrappers are contextual: the base class requires it
        return self.base.expected_rewards(groups=self.buckets(context))

    def _learn_buckets(self, context: Tensor) -> Tensor:
        """Route ``(n, d)`` fed-back contexts to buckets, moving the centroids; ``(n,)`` buckets."""
        policy: Any = self
        x = context.to(torch.float64)
        # Seed empty buckets with the first rows, in order, until all are live.
        empty = (policy.centroid_counts <= 0).nonzero().squeeze(1)
        m = min(int(empty.numel()), x.shape[0])
        if m:
            policy.centroid_sums[empty[:m]] = x[:m]
            policy.centroid_counts[empty[:m]] = 1.0
        rest = x[m:]
        if not rest.shape[0]:
            return empty[:m]
        routed = self.buckets(rest)
        policy.centroid_sums.index_add_(0, routed, rest)
        policy.centroid_counts.index_add_(0, routed, torch.ones_like(rest[:, 0]))
        return torch.cat([empty[:m], routed])
