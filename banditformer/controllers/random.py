"""The random baseline (``random``): uniformly random architectures, in training and at inference."""

from __future__ import annotations

import torch
from torch import Tensor

from banditformer.controllers.static import Fixed, check_cost_table
from banditformer.core.cost import CostTable
from banditformer.core.decision import Decision
from banditformer.core.random import make_generator
from banditformer.core.validation import check_float, check_int

__all__ = ["RandomController"]


class RandomController(Fixed):
    """Uniformly random architectures: depth uniform in ``[1, max_depth]``; in each block a head
    count uniform in ``[1, max_heads]`` and a uniform random head set of that size. Random in
    training and at inference alike.

    Args:
        max_depth, max_heads: the ranges (defaults: the full model's).
        seed: seeds the controller's generator.
    """

    def __init__(
        self, num_layers: int, num_heads: int, max_depth: int | None = None, max_heads: int | None = None, seed: int = 0
    ) -> None:
        super().__init__(num_layers, num_heads)
        self.add_config(
            "max_depth", check_int("max_depth", num_layers if max_depth is None else max_depth, low=1, high=num_layers)
        )
        self.add_config(
            "max_heads", check_int("max_heads", num_heads if max_heads is None else max_heads, low=1, high=num_heads)
        )
        self.generator = make_generator(check_int("seed", seed, low=0))

    @classmethod
    def for_budget(cls, table: CostTable, ratio: float, seed: int = 0, samples: int = 4096) -> RandomController:
        """The ranges whose mean FLOPs (estimated on ``samples`` draws) come closest to ``ratio``."""
        table = check_cost_table(table)
        check_float("ratio", ratio, low=0.0, high=1.0)
        best, gap = None, float("inf")
        for depth in range(1, table.num_layers + 1):
            for heads in range(1, table.num_heads + 1):
                c = cls(table.num_layers, table.num_heads, depth, heads, seed=seed)
                mean = float(table.flop_ratio(c.decide(torch.zeros(samples, 1))).mean())
                if abs(mean - ratio) < gap:
                    best, gap = (depth, heads), abs(mean - ratio)
        assert best is not None
        return cls(table.num_layers, table.num_heads, *best, seed=seed)

    def _decide(self, context: Tensor, explore: bool) -> Decision:
        b, gen = context.shape[0], self.generator
        depth = torch.randint(1, self.max_depth + 1, (b,), generator=gen)
        k = torch.randint(1, self.max_heads + 1, (b, self.num_layers, 1), generator=gen)
        rank = torch.rand(b, self.num_layers, self.num_heads, generator=gen).argsort(-1).argsort(-1)
        heads = rank < k  # a uniform random subset of k heads per block
        heads[:, 0] = True
        return Decision(depth.to(context.device), heads.to(context.device))
