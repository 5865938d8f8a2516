"""Gather-GEMM kernels (Triton) for attention in which each row runs its own subset of heads.

The torch kernels slice weights per head set or loop over heads, which on a GPU is launch- and
sync-bound. These kernels instead read each (row, head) pair's weight slice **by index** inside one
GEMM launch, as mixture-of-experts kernels do:

1. ``qkv``: for every pair ``p = (row, head)``: ``x[row] (T, D) @ W_qkv[:, head] (D, 3 hd)``;
2. attention on all pairs at once: ``scaled_dot_product_attention`` on ``(P, 1, T, hd)``;
3. ``out``: for every row, ``sum over its heads of y[p] (T, hd) @ W_proj[:, head] (hd, D)``.

FLOPs are exactly those of the chosen heads. The backward pass recomputes with the torch kernel
(correct, not yet fast): training speed-ups on the GPU wait for backward kernels.

Import is lazy and optional: without Triton (or a GPU) nothing here is used.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from banditformer.backends import kernels
from banditformer.core.backend import AttentionWeights
from banditformer.core.errors import BackendUnavailableError

try:  # optional dependency, present on CUDA installs of torch
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the installation
    HAS_TRITON = False

__all__ = ["HAS_TRITON", "triton_routed_attention"]

_BLOCK_M, _BLOCK_N, _BLOCK_K = 64, 64, 32

if HAS_TRITON:

    @triton.jit
    def _qkv_gather_kernel(
        x_ptr, w_ptr, b_ptr, row_ptr, head_ptr, out_ptr,
        T, D, H, HD,
        HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):  # fmt: skip
        # One program: pair p, a tile of positions and a tile of the pair's 3*HD output columns.
        p = tl.program_id(0).to(tl.int64)  # int64: output offsets pass 2**31 at large sizes
        row = tl.load(row_ptr + p)
        head = tl.load(head_ptr + p)
        offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.program_id(2) * BLOCK_N + tl.arange(0, BLOCK_N)
        which = offs_n // HD  # q, k or v
        d_out = offs_n % HD
        mask_m = offs_m < T
        mask_n = offs_n < 3 * HD
        # W is (3, H, HD, D) contiguous: the pair's columns are rows of W, read by index.
        w_cols = w_ptr + which * (H * HD * D) + head * (HD * D) + d_out * D
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, D, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            mask_k = offs_k < D
            a = tl.load(
                x_ptr + row * T * D + offs_m[:, None] * D + offs_k[None, :],
                mask=mask_m[:, None] & mask_k[None, :],
                other=0.0,
            )
            b = tl.load(w_cols[None, :] + offs_k[:, None], mask=mask_k[:, None] & mask_n[None, :], other=0.0)
            acc += tl.dot(a, b, input_precision=PRECISION)
        if HAS_BIAS:
            acc += tl.load(b_ptr + which * (H * HD) + head * HD + d_out, mask=mask_n, other=0.0)[None, :]
        out = out_ptr + p * T * 3 * HD + offs_m[:, None] * (3 * HD) + offs_n[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])

    @triton.jit
    def _out_gather_kernel(
        y_ptr, w_ptr, b_ptr, start_ptr, head_ptr, out_ptr,
        T, D, H, HD,
        HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):  # fmt: skip
        # One program: row i, a tile of positions and of output features; sums over i's heads.
        i = tl.program_id(0).to(tl.int64)
        first = tl.load(start_ptr + i)
        last = tl.load(start_ptr + i + 1)
        offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.program_id(2) * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_m = offs_m < T
        mask_n = offs_n < D
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for p in range(first, last):
            head = tl.load(head_ptr + p)
            for k0 in range(0, HD, BLOCK_K):
                offs_k = k0 + tl.arange(0, BLOCK_K)
                mask_k = offs_k < HD
                a = tl.load(
                    y_ptr + p * T * HD + offs_m[:, None] * HD + offs_k[None, :],
                    mask=mask_m[:, None] & mask_k[None, :],
                    other=0.0,
                )
                # W_proj is (D, H, HD): the head's input columns, read by index.
                b = tl.load(
                    w_ptr + offs_n[None, :] * (H * HD) + head * HD + offs_k[:, None],
                    mask=mask_k[:, None] & mask_n[None, :],
                    other=0.0,
                )
                acc += tl.dot(a, b, input_precision=PRECISION)
        if HAS_BIAS:
            acc += tl.load(b_ptr + offs_n, mask=mask_n, other=0.0)[None, :]
        out = out_ptr + i * T * D + offs_m[:, None] * D + offs_n[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


def _forward(
    x: Tensor, host: Tensor, qkv_w: Tensor, qkv_b: Tensor | None, proj_w: Tensor, proj_b: Tensor | None, h: int
) -> Tensor:
    n, t, d = x.shape
    hd = d // h
    x, qkv_w, proj_w = x.contiguous(), qkv_w.contiguous(), proj_w.contiguous()
    # The (row, head) pairs are listed on the host copy of the head sets: no host sync here.
    pairs = host.nonzero()  # (P, 2), sorted by row then head
    starts = torch.zeros(n + 1, dtype=torch.long)
    starts[1:] = host.sum(1).cumsum(0)
    rows, head_ids, starts = (
        t_.contiguous().to(x.device, non_blocking=True) for t_ in (pairs[:, 0], pairs[:, 1], starts)
    )
    num_pairs = pairs.shape[0]
    # float32 stays float32 (no TF32 rounding), so the kernel matches the torch path's precision.
    precision = "ieee" if x.dtype == torch.float32 else None
    qkv = torch.empty(num_pairs, t, 3 * hd, dtype=x.dtype, device=x.device)
    dummy = qkv_w  # stands in for a missing bias (never read)
    grid = (num_pairs, triton.cdiv(t, _BLOCK_M), triton.cdiv(3 * hd, _BLOCK_N))
    _qkv_gather_kernel[grid](
        x, qkv_w, dummy if qkv_b is None else qkv_b.contiguous(), rows, head_ids, qkv, t, d, h, hd,
        HAS_BIAS=qkv_b is not None, PRECISION=precision, BLOCK_M=_BLOCK_M, BLOCK_N=_BLOCK_N, BLOCK_K=_BLOCK_K,
    )  # fmt: skip
    q, k, v = qkv.view(num_pairs, t, 3, 1, hd).permute(2, 0, 3, 1, 4)  # each (P, 1, T, hd)
    y = F.scaled_dot_product_attention(q, k, v).reshape(num_pairs, t, hd).contiguous()
    out = torch.empty(n, t, d, dtype=x.dtype, device=x.device)
    grid = (n, triton.cdiv(t, _BLOCK_M), triton.cdiv(d, _BLOCK_N))
    _out_gather_kernel[grid](
        y, proj_w, dummy if proj_b is None else proj_b.contiguous(), starts, head_ids, out, t, d, h, hd,
        HAS_BIAS=proj_b is not None, PRECISION=precision, BLOCK_M=_BLOCK_M, BLOCK_N=_BLOCK_N, BLOCK_K=_BLOCK_K,
    )  # fmt: skip
    return out


class _RoutedAttention(torch.autograd.Function):
    """Triton forward; the backward recomputes with the torch kernel and differentiates that."""

    @staticmethod
    def forward(ctx: Any, x, heads, host, qkv_w, qkv_b, proj_w, proj_b, h):  # type: ignore[override]
        ctx.save_for_backward(x, heads, qkv_w, qkv_b, proj_w, proj_b)
        ctx.host = host
        ctx.num_heads = h
        return _forward(x, host, qkv_w, qkv_b, proj_w, proj_b, h)

    @staticmethod
    def backward(ctx: Any, grad: Tensor):  # type: ignore[override]
        x, heads, qkv_w, qkv_b, proj_w, proj_b = ctx.saved_tensors
        inputs = [
            t.detach().requires_grad_(t.requires_grad) if t is not None else None
            for t in (x, qkv_w, qkv_b, proj_w, proj_b)
        ]
        with torch.enable_grad():
            weights = AttentionWeights(inputs[1], inputs[2], inputs[3], inputs[4], ctx.num_heads)
            out = kernels.routed_attention(inputs[0], heads, weights, host_heads=ctx.host)
        wanted = [t for t in inputs if t is not None and t.requires_grad]
        grads = iter(torch.autograd.grad(out, wanted, grad) if wanted else [])
        gx, gw, gb, gpw, gpb = (next(grads) if t is not None and t.requires_grad else None for t in inputs)
        return gx, None, None, gw, gb, gpw, gpb, None


def triton_routed_attention(
    x: Tensor,
    heads: Tensor,
    weights: AttentionWeights,
    *,
    host_heads: Tensor | None = None,
) -> Tensor:
    """Attention in which row ``i`` runs only the heads in ``heads[i]``, with the gather-GEMM
    kernels; same arguments and result as :func:`banditformer.backends.kernels.routed_attention`
    (``host_heads``: a CPU copy of ``heads``, which spares a host sync). Under autocast, inputs
    are cast to the autocast dtype first.

    Raises:
        BackendUnavailableError: without an importable ``triton`` package.
    """
    if not HAS_TRITON:
        raise BackendUnavailableError("expected an importable `triton` package for the Triton kernels, got none")
    qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads = weights
    host = heads.cpu() if host_heads is None else host_heads
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, qkv_weight, proj_weight = x.to(dtype), qkv_weight.to(dtype), proj_weight.to(dtype)
        qkv_bias = None if qkv_bias is None else qkv_bias.to(dtype)
        proj_bias = None if proj_bias is None else proj_bias.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            return _RoutedAttention.apply(x, heads, host, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads)
    return _RoutedAttention.apply(x, heads, host, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads)
