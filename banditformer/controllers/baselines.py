"""Baseline controllers the DHT controller is compared with: a fixed smaller model, random
architectures, and LayerDrop-style training with a pruned model at inference.

They take no feedback (``feedback`` only checks its input); randomness comes from a seeded
``torch.Generator``. Budgets are FLOP ratios against the full model, read from a
:class:`~banditformer.core.cost.CostTable` (``model.cost_table()``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from banditformer.controllers.static import Fixed
from banditformer.core.cost import CostTable
from banditformer.core.decision import Decision
from banditformer.core.errors import InputValidationError
from banditformer.core.random import make_generator
from banditformer.core.validation import check_float, check_int

__all__ = ["LayerDropController", "RandomController", "StaticSmall", "budget_shape"]


def budget_shape(table: CostTable, ratio: float) -> tuple[int, int]:
    """The ``(depth, heads)`` of the largest uniform model whose FLOPs stay within ``ratio`` of the
    full model's (depth 1 with one head if even that is over budget)."""
    table = _check_budget_args(table)
    check_float("ratio", ratio, low=0.0, high=1.0)
    best, best_flops = (1, 1), -1.0
    for depth in range(1, table.num_layers + 1):
        for heads in range(1, table.num_heads + 1):
            flops = table.stem + float(table.layers[1:depth, heads].sum()) + table.classifier
            if flops <= ratio * table.full + 1e-9 and flops > best_flops:
                best, best_flops = (depth, heads), flops
    return best


class StaticSmall(Fixed):
    """Every sample runs the first ``depth`` blocks with heads ``0 .. heads-1`` in blocks ``1..``.

    Examples:
        >>> c = StaticSmall(num_layers=6, num_heads=4, depth=3, heads=2)
        >>> d = c.decide(torch.zeros(2, 8))
        >>> d.depth.tolist(), d.head_counts[0].tolist()
        ([3, 3], [4, 2, 2, 0, 0, 0])
    """

    def __init__(self, num_layers: int, num_heads: int, depth: int, heads: int) -> None:
        super().__init__(num_layers, num_heads)
        self.add_config("depth", check_int("depth", depth, low=1, high=num_layers))
        self.add_config("heads", check_int("heads", heads, low=1, high=num_heads))

    @classmethod
    def for_budget(cls, table: CostTable, ratio: float) -> StaticSmall:
        """The largest uniform model within ``ratio`` of the full model's FLOPs."""
        depth, heads = budget_shape(table, ratio)
        return cls(table.num_layers, table.num_heads, depth, heads)

    def _decide(self, context: Tensor, explore: bool) -> Decision:
        d = Decision.full(context.shape[0], self.num_layers, self.num_heads, device=context.device)
        d.depth.fill_(self.depth)
        d.heads[:, 1:, self.heads :] = False
        return d


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
        table = _check_budget_args(table)
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


def _check_budget_args(table: object) -> CostTable:
    if not isinstance(table, CostTable):
        raise InputValidationError(f"expected a CostTable (model.cost_table()), got {type(table).__name__}")
    return table
