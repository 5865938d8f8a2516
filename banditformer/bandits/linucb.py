"""LinUCB with disjoint linear models (Li, Chu, Langford and Schapire 2010)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from banditformer.bandits._compiled import builtin, context_bound, context_rows, groups_in_range, kernels
from banditformer.bandits._linear import LinearPolicy, LinearStepper
from banditformer.core.validation import value_checks_enabled

__all__ = ["LinUCB", "LinUCBStepper", "linucb_index"]


def linucb_index(mean: Tensor, width: Tensor, alpha: float | Tensor) -> Tensor:
    """The LinUCB index ``x^T theta_a + alpha * sqrt(x^T A_a^-1 x)`` from its two parts."""
    return mean + alpha * width


class LinUCB(LinearPolicy):
    """Upper confidence bounds on a per-arm ridge regression of reward on context.

    An arm never played has ``A = lambda I``, so its width is largest and it is tried early; no
    separate untried-arm rule is needed.

    Args:
        num_arms: K.
        context_dim: d.
        alpha: the width multiplier (exploration).
        ridge: lambda.

    Examples:
        >>> p = LinUCB(num_arms=2, context_dim=3, seed=0)
        >>> x = torch.eye(3)[:2]
        >>> p.update(torch.tensor([0, 1]), torch.tensor([1.0, 0.0]), x)
        >>> p.select(x).shape
        torch.Size([2])
    """

    deterministic: ClassVar[bool] = True  # an index policy: propensity 1

    def __init__(
        self,
        num_arms: int,
        *,
        context_dim: int | None = None,
        alpha: float = 1.0,
        ridge: float = 1.0,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, ridge=ridge, num_groups=num_groups, seed=seed)
        self.add_hyperparameter("alpha", alpha, low=0.0)

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        assert context is not None
        return linucb_index(*self.predict(context, groups), self.alpha).argmax(1)

    def _compiled_select(self, context: object, n: object, groups: object) -> Tensor | None:
        # the torch path's ridge fit, then the index and argmax of every row in one kernel call
        # (banditformer.bandits._compiled): the torch path's arms up to rounding of the sums
        kern = kernels() if builtin(self) and self._buffers["gram"].is_cpu else None
        rows = context_rows(self, context, n, groups) if kern is not None else None
        if rows is None:
            return None
        x, group_rows = rows
        if not groups_in_range(kern, self, group_rows):
            return None  # the torch path reports it
        if value_checks_enabled() and not kern.contexts_ok(x, context_bound(self, context.dtype)):  # type: ignore[union-attr]
            return None
        theta, a_inv = self.fit()  # (G, K, d), (G, K, d, d): Cholesky, or the spectral fallback
        out = torch.empty(x.shape[0], dtype=torch.long)
        kern.linucb_select(theta.numpy(), a_inv.numpy(), float(self.alpha), x, group_rows, out.numpy())
        return out

    def _stepper(self, group: int) -> LinUCBStepper:
        return LinUCBStepper(self, group)


class LinUCBStepper(LinearStepper):
    """LinUCB's lean stepper: the kept fit (:class:`~banditformer.bandits._linear.LinearStepper`)
    and the batched path's index on it."""

    def _lean_select(self, context: Tensor | None) -> int:
        assert context is not None
        return int(linucb_index(*self._predict(context), self._policy.alpha).argmax(1))  # type: ignore[arg-type]
