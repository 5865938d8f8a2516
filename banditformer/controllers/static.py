"""The static baseline: every sample runs every layer with every head."""

from __future__ import annotations

from torch import Tensor

from banditformer.core.controller import Controller
from banditformer.core.decision import Decision

__all__ = ["StaticFull"]


class StaticFull(Controller):
    """The full model for every sample; ``feedback`` is a no-op.

    Examples:
        >>> import torch
        >>> c = StaticFull(num_layers=4, num_heads=2)
        >>> c.decide(torch.zeros(3, 16)).depth.tolist()
        [4, 4, 4]
    """

    def _decide(self, context: Tensor, explore: bool) -> Decision:
        return Decision.full(context.shape[0], self.num_layers, self.num_heads, device=context.device)

    def _feedback(self, decision: Decision, quality: Tensor, flops: Tensor, **extra: Tensor) -> None:
        return None
