"""The LayerDrop baseline (``layerdrop``): random depth cuts in training, a fixed pruned depth at inference."""

from __future__ import annotations

import torch
from torch import Tensor

from banditformer.controllers.static import Fixed
from banditformer.core.decision import Decision
from banditformer.core.random import make_generator
from banditformer.core.validation import check_float, check_int

__all__ = ["LayerDropController"]


class LayerDropController(Fixed):
    """LayerDrop-style (Fan et al. 2019), within what a :class:`Decision` can express (a depth
    prefix, not arbitrary skipped blocks): in training each sample's depth is cut at a random
    block (every block after the stem is dropped with probability ``drop``, and the sample stops
    before the first dropped one); at inference every sample runs the fixed pruned depth
    ``inference_depth``. All heads always run.
    """

    def __init__(
        self, num_layers: int, num_heads: int, drop: float = 0.2, inference_depth: int | None = None, seed: int = 0
    ) -> None:
        super().__init__(num_layers, num_heads)
        self.add_config("drop", check_float("drop", drop, low=0.0, high=1.0))
        depth = num_layers if inference_depth is None else inference_depth
        self.add_config("inference_depth", check_int("inference_depth", depth, low=1, high=num_layers))
        self.generator = make_generator(check_int("seed", seed, low=0))

    def _decide(self, context: Tensor, explore: bool) -> Decision:
        b = context.shape[0]
        d = Decision.full(b, self.num_layers, self.num_heads, device=context.device)
        if not explore:
            d.depth.fill_(self.inference_depth)
            return d
        dropped = torch.rand(b, self.num_layers - 1, generator=self.generator) < self.drop  # blocks 1..L-1
        first = torch.where(dropped.any(1), dropped.float().argmax(1) + 1, torch.full((b,), self.num_layers))
        d.depth.copy_(first.to(context.device))
        return d
