"""Controllers whose decisions ignore feedback, and the static baseline: the full model for every sample."""

from __future__ import annotations

from torch import Tensor

from banditformer.core.controller import Controller
from banditformer.core.decision import Decision

__all__ = ["Fixed", "Static"]


class Fixed(Controller):
    """The base of the controllers that learn nothing: ``feedback`` checks its input (as every
    controller's does) and changes nothing. Subclasses implement ``_decide``."""

    def _feedback(self, decision: Decision, quality: Tensor, flops: Tensor, **extra: Tensor) -> None:
        return None


class Static(Fixed):
    """The full model for every sample (registry name ``static``).

    Examples:
        >>> import torch
        >>> c = Static(num_layers=4, num_heads=2)
        >>> c.decide(torch.zeros(3, 16)).depth.tolist()
        [4, 4, 4]
    """

    def _decide(self, context: Tensor, explore: bool) -> Decision:
        return Decision.full(context.shape[0], self.num_layers, self.num_heads, device=context.device)
