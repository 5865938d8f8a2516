"""Linear Thompson sampling (Agrawal and Goyal 2013), with disjoint per-arm models."""

from __future__ import annotations

import torch
from torch import Tensor

from banditformer.bandits._linear import LinearPolicy, LinearStepper

__all__ = ["LinThompson", "LinThompsonStepper"]


class LinThompson(LinearPolicy):
    """Sample ``theta_a ~ N(theta_hat_a, v^2 A_a^-1)`` per row and arm; play the best ``x^T theta_a``.

    Only the score ``x^T theta_a`` matters, and it is ``N(x^T theta_hat_a, v^2 x^T A_a^-1 x)``, so the
    policy draws that scalar directly: one normal per row and arm instead of a d-dimensional draw.

    Args:
        num_arms: K.
        context_dim: d.
        v: the posterior scale (exploration).
        ridge: lambda.

    Examples:
        >>> p = LinThompson(num_arms=3, context_dim=2, seed=0)
        >>> p.select(torch.ones(4, 2)).shape
        torch.Size([4])
    """

    rows_independent = True  # one normal per row and arm

    def __init__(
        self,
        num_arms: int,
        *,
        context_dim: int | None = None,
        v: float = 0.5,
        ridge: float = 1.0,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, ridge=ridge, num_groups=num_groups, seed=seed)
        self.add_hyperparameter("v", v, low=0.0)

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        assert context is not None
        mean, width = self.predict(context, groups)  # (n, K) each
        z = torch.randn(mean.shape, generator=self.generator, device=self.device, dtype=mean.dtype)
        return (mean + self.v * width * z).argmax(1)

    def _stepper(self, group: int) -> LinThompsonStepper:
        return LinThompsonStepper(self, group)


class LinThompsonStepper(LinearStepper):
    """Linear Thompson sampling's lean stepper: the kept fit
    (:class:`~banditformer.bandits._linear.LinearStepper`) and the batched path's draw on it."""

    def _lean_select(self, context: Tensor | None) -> int:
        assert context is not None
        p: LinThompson = self._policy  # type: ignore[assignment]
        mean, width = self._predict(context)  # (1, K) each
        z = torch.randn(mean.shape, generator=p.generator, device=p.device, dtype=mean.dtype)
        return int((mean + p.v * width * z).argmax(1))
