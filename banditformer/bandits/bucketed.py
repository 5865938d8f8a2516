"""Make any context-free policy contextual by online clustering of contexts into buckets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor

from banditformer.bandits._buckets import BucketsMixin
from banditformer.bandits.ucb1 import UCB1
from banditformer.core.policy import Policy

__all__ = ["Bucketed"]


class Bucketed(BucketsMixin, Policy):
    """A context-free policy with one set of statistics per context bucket.

    Buckets are learned online from the contexts fed back to ``update`` (sequential k-means; see
    :mod:`banditformer.bandits._buckets`). Rows are routed with the centroids as they stand when
    ``select`` or ``update`` is called.

    Args:
        num_arms: K.
        context_dim: d.
        base: the wrapped context-free policy (over ``num_arms`` arms, ``num_groups = num_buckets``),
            or its factory, called as
            ``base(num_arms, num_groups=num_buckets, seed=..., **base_kwargs)``: a policy class
            such as :class:`~banditformer.bandits.UCB1` (the default) is one. By name:
            ``make_policy("bucketed", base="ucb1", ...)``, which also takes plugin policies.
        num_buckets: B.
        base_kwargs: keyword arguments for the base policy.

    Examples:
        >>> p = Bucketed(num_arms=3, context_dim=2, base=UCB1, num_buckets=4, seed=0)
        >>> x = torch.randn(8, 2)
        >>> arms = p.select(x)
        >>> p.update(arms, torch.rand(8), x)
    """

    is_contextual = True
    # Updating row by row moves centroids between rows, which can route later rows differently.
    exact_batch_update = False
    # a randomised base too (the registry's factory takes its name), so that the property tests
    # check that the base's draws are left alone by propensities
    option_sets: ClassVar[tuple[dict[str, Any], ...]] = ({"base": "thompson_beta"},)

    def __init__(
        self,
        num_arms: int,
        *,
        context_dim: int | None = None,
        base: Policy | Callable[..., Policy] = UCB1,
        num_buckets: int = 8,
        base_kwargs: dict[str, Any] | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=1, seed=seed)
        self._init_buckets(Policy, base, num_buckets, base_kwargs, num_groups)
        self.deterministic = self.base.deterministic  # type: ignore[misc]  # as its base draws

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        assert context is not None
        return self.base.select(n=context.shape[0], groups=self.buckets(context))

    def _action_probabilities(self, context: Tensor | None, groups: Tensor) -> Tensor | None:
        # the base's closed form, in each row's bucket (None: the base has none)
        assert context is not None
        return self.base._action_probabilities(None, self.buckets(context))

    def _update(self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        assert context is not None
        self.base.update(arms, rewards, groups=self._learn_buckets(context))
