"""Controllers whose decisions ignore feedback, and the static baselines: the full model
(``static``) and a fixed smaller one (``static_small``). Budgets are FLOP ratios against the full
model, read from a :class:`~banditformer.core.cost.CostTable` (``model.cost_table()``)."""

from __future__ import annotations

from torch import Tensor

from banditformer.core.controller import Controller
from banditformer.core.cost import CostTable
from banditformer.core.decision import Decision, uniform_shapes
from banditformer.core.errors import InputValidationError
from banditformer.core.validation import check_float, check_int

__all__ = ["Fixed", "Static", "StaticSmall", "budget_shape", "check_cost_table", "uniform_shapes"]


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
        return Decision.uniform(context.shape[0], self.num_layers, self.num_heads, self.depth, self.heads,
                                context.device)  # fmt: skip


def budget_shape(table: CostTable, ratio: float, *, all_heads: bool = False) -> tuple[int, int]:
    """The ``(depth, heads)`` of the largest uniform model whose FLOPs stay within ``ratio`` of the
    full model's (``all_heads``: only shapes that keep every head, as LayerDrop prunes layers).
    Below the stem's own share no shape fits, and the stem alone (depth 1) is returned: its
    FLOPs are above ``ratio``, which a benchmark reports as measured."""
    table = check_cost_table(table)
    check_float("ratio", ratio, low=0.0, high=1.0)
    best, best_flops = (1, table.num_heads if all_heads else 1), -1.0
    for depth in range(1, table.num_layers + 1):
        for heads in range(table.num_heads if all_heads else 1, table.num_heads + 1):
            flops = table.stem + float(table.layers[1:depth, heads].sum()) + table.classifier
            if flops <= ratio * table.full + 1e-9 and flops > best_flops:
                best, best_flops = (depth, heads), flops
    return best


def check_cost_table(table: object, num_layers: int | None = None, num_heads: int | None = None) -> CostTable:
    """``table`` if it is a :class:`CostTable` (of a ``num_layers``-block, ``num_heads``-head model,
    when given), else an :class:`InputValidationError`."""
    if not isinstance(table, CostTable):
        raise InputValidationError(f"expected a CostTable (model.cost_table()), got {type(table).__name__}")
    if num_layers is not None and num_heads is not None and (table.num_layers, table.num_heads) != (
        num_layers, num_heads
    ):  # fmt: skip
        raise InputValidationError(
            f"expected the cost table of a {num_layers}-block, {num_heads}-head model, got one of "
            f"{table.num_layers} blocks and {table.num_heads} heads"
        )
    return table
