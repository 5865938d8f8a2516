"""FLOP counting: fvcore counts each piece of a model once (:func:`count_flops`); the model's
:class:`~banditformer.core.cost.CostTable` turns decisions into per-sample FLOPs with one gather.

Convention (fvcore's): one **multiply-add counts as one FLOP**; torch's ``FlopCounterMode`` counts
two, so its figures are twice ours. fvcore drops ops it has no handler for; we register handlers
for ``scaled_dot_product_attention`` (its two matmuls, plus one per attention score for the
softmax), ``softmax``, ``gelu`` and the elementwise ``add``/``mul`` (one per output element).
Norms keep fvcore's count (five per element with an affine transform).

Training: a backward pass costs about twice the forward (gradients of inputs and of weights), so
training FLOPs are :data:`~banditformer.core.cost.TRAIN_FLOPS_FACTOR` (3) times the forward FLOPs.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["MATMUL_OPS", "count_flops"]

#: The operator keys of matrix products in :func:`count_flops`' breakdown (what torch's
#: ``FlopCounterMode`` also counts).
MATMUL_OPS = ("linear", "matmul", "bmm", "addmm", "mm", "einsum", "conv", "attention_matmul")


def _shape(value: Any) -> list[int]:
    return list(value.type().sizes())


def _sdpa_flops(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    # q (..., T, hd), k (..., S, hd): Q K^T and A V are each prod(...) * T * S * hd multiply-adds.
    q, k = _shape(inputs[0]), _shape(inputs[1])
    batch_heads = math.prod(q[:-2])
    t, hd, s = q[-2], q[-1], k[-2]
    return Counter({"attention_matmul": 2 * batch_heads * t * s * hd, "softmax": batch_heads * t * s})


def _per_output_element(inputs: list[Any], outputs: list[Any]) -> int:
    return math.prod(_shape(outputs[0]))


_HANDLES: dict[str, Callable[[list[Any], list[Any]], Any]] = {
    "aten::scaled_dot_product_attention": _sdpa_flops,
    "aten::softmax": _per_output_element,
    "aten::gelu": _per_output_element,
    "aten::add": _per_output_element,
    "aten::mul": _per_output_element,
}


class _Call(nn.Module):
    """Wraps a function of tensors as a module, for fvcore's tracer."""

    def __init__(self, fn: Callable[..., Tensor], owner: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.owner = owner  # registers the parameters the function uses

    def forward(self, *args: Tensor) -> Tensor:
        return self.fn(*args)


def count_flops(fn: Callable[..., Tensor], owner: nn.Module, inputs: Sequence[Tensor]) -> Counter[str]:
    """Forward FLOPs (multiply-add = 1) of ``fn(*inputs)`` by operator, with fvcore.

    Args:
        fn: a function of tensors that uses ``owner``'s parameters.
        owner: the module holding those parameters.
        inputs: example inputs (their batch size counts: pass one sample for per-sample FLOPs).

    Returns:
        A Counter from operator name (``linear``, ``attention_matmul``, ``layer_norm``, ...) to FLOPs.
    """
    from fvcore.nn import FlopCountAnalysis  # late: fvcore's import is slow and warns

    devices = {p.device.type for p in owner.parameters()} or {"cpu"}
    # No autocast while tracing: its casted weight copies would become graph constants.
    no_autocast = [torch.autocast(d, enabled=False) for d in devices]
    with warnings.catch_warnings(), torch.no_grad(), contextlib.ExitStack() as stack:
        for ctx in no_autocast:
            stack.enter_context(ctx)
        warnings.simplefilter("ignore")  # the tracer warns about modules it reached indirectly
        analysis = FlopCountAnalysis(_Call(fn, owner), tuple(inputs))
        analysis.set_op_handle(**_HANDLES)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return Counter(analysis.by_operator())
