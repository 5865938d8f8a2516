"""The torch kernels of the dynamic transformer's fast path: attention over per-row head subsets.

The built-in backends call them (see :class:`~banditformer.core.Backend`); they are the reference
for any replacement. Shapes: ``n`` rows, ``T`` positions, ``D = H * hd`` width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from banditformer.core.backend import AttentionWeights

__all__ = ["masked_attention", "routed_attention", "subset_attention"]


def subset_attention(
    x: Tensor,
    head_idx: Tensor | None,
    weights: AttentionWeights,
    gate: Tensor | None = None,
) -> Tensor:
    """Multi-head self-attention of every row over the same heads, computing those heads only.

    The weights of the chosen heads are sliced once and the rows run as one dense block, so the
    cost is proportional to the number of heads. Unchosen heads contribute nothing; the output is
    not rescaled (as in head pruning).

    Args:
        x: ``(n, T, D)`` inputs.
        head_idx: ``(k,)`` int64 indices of the heads to run, or ``None`` for all ``H``.
        weights: the attention's projections and head count (:class:`~banditformer.core.AttentionWeights`).
        gate: ``(n, H)`` float multipliers of each head's output, or ``None``. Passing ones leaves
            the result unchanged; its gradient is then each head's importance score
            ``dL/d gate`` (Michel et al., 2019). Only the chosen heads' entries are read.

    Returns:
        ``(n, T, D)`` attention outputs (after the output projection and its bias).
    """
    qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads = weights
    n, t, d = x.shape
    hd = d // num_heads
    if head_idx is None:
        k, w_in, b_in, w_out = num_heads, qkv_weight, qkv_bias, proj_weight
    else:
        k = int(head_idx.shape[0])
        w_in = qkv_weight.view(3, num_heads, hd, d)[:, head_idx].reshape(3 * k * hd, d)
        b_in = None if qkv_bias is None else qkv_bias.view(3, num_heads, hd)[:, head_idx].reshape(-1)
        w_out = proj_weight.view(d, num_heads, hd)[:, head_idx].reshape(d, k * hd)
    qkv = F.linear(x, w_in, b_in).view(n, t, 3, k, hd).permute(2, 0, 3, 1, 4)  # (3, n, k, T, hd)
    y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (n, k, T, hd)
    if gate is not None:
        g = gate if head_idx is None else gate.index_select(1, head_idx)
        y = y * g.to(y.dtype)[:, :, None, None]
    y = y.transpose(1, 2).reshape(n, t, k * hd)  # (n, T, k * hd)
    return F.linear(y, w_out, proj_bias)


def masked_attention(
    x: Tensor,
    heads: Tensor | None,
    weights: AttentionWeights,
    gate: Tensor | None = None,
) -> Tensor:
    """Reference: every head runs; ``heads`` ``(n, H)`` bool zeroes the unchosen heads' outputs
    before the output projection (``None``: all heads); ``gate`` ``(n, H)`` multiplies the kept
    ones (see :func:`subset_attention`). ``x`` ``(n, T, D)`` -> ``(n, T, D)``."""
    qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads = weights
    n, t, d = x.shape
    qkv = F.linear(x, qkv_weight, qkv_bias).view(n, t, 3, num_heads, d // num_heads).permute(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (n, H, T, hd)
    if heads is not None or gate is not None:
        mask = torch.ones(n, num_heads, dtype=y.dtype, device=y.device) if heads is None else heads.to(y.dtype)
        if gate is not None:
            mask = mask * gate.to(y.dtype)
        y = y * mask[:, :, None, None]
    return F.linear(y.transpose(1, 2).reshape(n, t, d), proj_weight, proj_bias)


def routed_attention(
    x: Tensor,
    heads: Tensor,
    weights: AttentionWeights,
    max_groups: int = 8,
    overheads: tuple[float, float] = (1.0, 1.0),
    host_heads: Tensor | None = None,
    gate: Tensor | None = None,
) -> Tensor:
    """Self-attention where row ``i`` uses only the heads in ``heads[i]``.

    Rows that share a head set run together as one dense block on weights sliced once
    (:func:`subset_attention`). With more than ``max_groups`` distinct sets, the rows are instead
    grouped per head (a loop over the ``H`` heads, each on the rows that chose it), which bounds
    the number of blocks by ``H``. When the chosen strategy would not beat computing every head
    (the kept share of heads times its ``overheads`` factor is 1 or more), the kernel masks
    instead (:func:`masked_attention`): same result, never slower than masking.

    Args:
        x: ``(n, T, D)``; heads: ``(n, H)`` bool with at least one head per row.
        max_groups: the most distinct head sets run as separate dense blocks.
        overheads: time per useful FLOP of the (per-set, per-head) strategies relative to dense
            attention, as measured on the backend's device (1.0: no overhead).
        host_heads: ``heads`` already copied to the CPU (it must equal ``heads``); all planning
            (grouping, the choice of strategy) happens there, so a caller that copies a whole
            decision once spares the GPU one host sync per block.
        gate: ``(n, H)`` float multipliers of the heads' outputs, or ``None`` (see
            :func:`subset_attention`).

    Returns:
        ``(n, T, D)``, equal (up to rounding) to full attention with the unchosen heads' outputs
        zeroed before the output projection.
    """
    host = heads.cpu() if host_heads is None else host_heads  # planning happens on the host

    def to_device(index: Tensor) -> Tensor:
        return index.to(x.device, non_blocking=True)

    unique, inverse = torch.unique(host, dim=0, return_inverse=True)  # (G, H) distinct head sets
    groups = unique.shape[0]
    if groups == 1:
        row = host[0]
        idx = None if bool(row.all()) else to_device(row.nonzero().squeeze(1))
        return subset_attention(x, idx, weights, gate=gate)
    kept = float(host.sum()) / host.numel()
    if kept * overheads[0 if groups <= max_groups else 1] >= 1.0:
        return masked_attention(x, heads, weights, gate=gate)
    if groups <= max_groups:
        out: Tensor | None = None
        for g in range(groups):
            rows = to_device((inverse == g).nonzero().squeeze(1))
            idx = to_device(unique[g].nonzero().squeeze(1))
            y = subset_attention(
                x.index_select(0, rows), idx, weights, gate=None if gate is None else gate.index_select(0, rows)
            )
            out = y.new_zeros(x.shape) if out is None else out  # autocast may pick y's dtype
            out = out.index_copy(0, rows, y)
        assert out is not None
        return out
    # Per head: each head runs on the rows that chose it; contributions add up in the output.
    qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads = weights
    _, t, d = x.shape
    hd = d // num_heads
    w_in = qkv_weight.view(3, num_heads, hd, d)
    b_in = None if qkv_bias is None else qkv_bias.view(3, num_heads, hd)
    w_out = proj_weight.view(d, num_heads, hd)
    out = None
    for h in range(num_heads):
        rows = host[:, h].nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        rows = to_device(rows)
        xs = x.index_select(0, rows)
        qkv = F.linear(xs, w_in[:, h].reshape(3 * hd, d), None if b_in is None else b_in[:, h].reshape(-1))
        qkv = qkv.view(-1, t, 3, 1, hd).permute(2, 0, 3, 1, 4)  # (3, n_h, 1, T, hd)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).reshape(-1, t, hd)  # (n_h, T, hd)
        if gate is not None:
            y = y * gate[:, h].index_select(0, rows).to(y.dtype)[:, None, None]
        contribution = F.linear(y, w_out[:, h])  # (n_h, T, D)
        out = contribution.new_zeros(x.shape) if out is None else out  # autocast may pick its dtype
        out = out.index_add(0, rows, contribution)
    assert out is not None  # every row has at least one head
    return out if proj_bias is None else out + proj_bias
