"""Self-attention over per-row head subsets, for adapted models: separate query, key and value
projections, a padding mask, causality and the model's own score scale, which the built-in
kernels (:mod:`banditformer.backends.kernels`, fused ``qkv``, no mask) do not take. The
strategies are theirs: rows sharing a head set run as one dense block on weights sliced once;
past ``max_groups`` distinct sets, a loop over the heads, each on the rows that chose it.

Shapes: ``n`` rows, ``T`` positions, ``D`` width, ``H`` heads of ``hd`` channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from banditformer.adapters.family import HeadProjections

__all__ = ["masked_attention", "routed_attention", "subset_attention"]


def _rows(w: Tensor, idx: Tensor | None, hd: int) -> Tensor:
    """``(H * hd, D)`` -> the rows of heads ``idx``, ``(k * hd, D)``."""
    return w if idx is None else w.unflatten(0, (-1, hd)).index_select(0, idx).flatten(0, 1)


def _bias(b: Tensor | None, idx: Tensor | None, hd: int) -> Tensor | None:
    return b if b is None or idx is None else b.unflatten(0, (-1, hd)).index_select(0, idx).flatten()


def _columns(w: Tensor, idx: Tensor | None, hd: int) -> Tensor:
    """``(D, H * hd)`` -> the columns of heads ``idx``, ``(D, k * hd)``."""
    return w if idx is None else w.unflatten(1, (-1, hd)).index_select(1, idx).flatten(1, 2)


def _sdpa(q: Tensor, k: Tensor, v: Tensor, p: HeadProjections, mask: Tensor | None, training: bool) -> Tensor:
    """``(n, k, T, hd)`` each -> ``(n, k, T, hd)``; ``mask`` ``(n, T)`` True at real tokens (keys)."""
    t = q.shape[-2]
    attn_mask, causal = None, p.causal
    if mask is not None:
        attn_mask = mask[:, None, None, :]  # (n, 1, 1, T): padded keys are masked, as the original masks them
        if p.causal:
            attn_mask = attn_mask & torch.ones(t, t, dtype=torch.bool, device=q.device).tril()  # (n, 1, T, T)
            causal = False
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=p.dropout if training else 0.0, is_causal=causal, scale=p.scale
    )


def _project(x: Tensor, p: HeadProjections, idx: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    hd = p.head_dim
    out = []
    for w, b in ((p.query, p.query_bias), (p.key, p.key_bias), (p.value, p.value_bias)):
        y = F.linear(x, _rows(w, idx, hd), _bias(b, idx, hd))  # (n, T, k * hd)
        out.append(y.unflatten(-1, (-1, hd)).transpose(1, 2))  # (n, k, T, hd)
    return out[0], out[1], out[2]


def subset_attention(
    x: Tensor,
    p: HeadProjections,
    head_idx: Tensor | None,
    mask: Tensor | None = None,
    gate: Tensor | None = None,
    training: bool = False,
) -> Tensor:
    """Every row runs heads ``head_idx`` ``(k,)`` only (``None``: all ``H``), their projections sliced once.

    Args:
        x: ``(n, T, D)``; mask: ``(n, T)`` bool, True at real tokens, or None.
        gate: ``(n, H)`` multipliers of each head's output (ones leave the result unchanged; their
            gradient is the head's importance), or None; only the chosen heads' entries are read.
        training: apply the attention dropout.

    Returns:
        ``(n, T, D)`` after the output projection and its bias; unchosen heads contribute nothing.
    """
    q, k, v = _project(x, p, head_idx)
    y = _sdpa(q, k, v, p, mask, training)  # (n, k, T, hd)
    if gate is not None:
        g = gate if head_idx is None else gate.index_select(1, head_idx)
        y = y * g.to(y.dtype)[:, :, None, None]
    y = y.transpose(1, 2).flatten(2)  # (n, T, k * hd)
    return F.linear(y, _columns(p.out, head_idx, p.head_dim), p.out_bias)


def masked_attention(
    x: Tensor,
    p: HeadProjections,
    heads: Tensor | None,
    mask: Tensor | None = None,
    gate: Tensor | None = None,
    training: bool = False,
) -> Tensor:
    """Reference: every head runs; ``heads`` ``(n, H)`` bool zeroes the unchosen heads' outputs
    before the output projection (``None``: all heads). Arguments as :func:`subset_attention`."""
    q, k, v = _project(x, p, None)
    y = _sdpa(q, k, v, p, mask, training)  # (n, H, T, hd)
    if heads is not None or gate is not None:
        keep = torch.ones(y.shape[:2], dtype=y.dtype, device=y.device) if heads is None else heads.to(y.dtype)
        if gate is not None:
            keep = keep * gate.to(y.dtype)
        y = y * keep[:, :, None, None]
    return F.linear(y.transpose(1, 2).flatten(2), p.out, p.out_bias)


def routed_attention(
    x: Tensor,
    p: HeadProjections,
    heads: Tensor,
    host_heads: Tensor | None = None,
    mask: Tensor | None = None,
    gate: Tensor | None = None,
    training: bool = False,
    max_groups: int = 8,
) -> Tensor:
    """Row ``i`` runs only the heads in ``heads[i]`` (``(n, H)`` bool, at least one per row).

    Rows sharing a head set run together (:func:`subset_attention`); with more than
    ``max_groups`` distinct sets, each head runs on the rows that chose it and the contributions
    add up. ``host_heads`` is ``heads`` on the CPU when the caller has it (all planning reads it).
    Other arguments as :func:`subset_attention`.

    Returns:
        ``(n, T, D)``, equal (up to rounding) to :func:`masked_attention` with the same heads.
    """
    host = heads.cpu() if host_heads is None else host_heads

    def to_device(index: Tensor) -> Tensor:
        return index.to(x.device, non_blocking=True)

    def pick(t: Tensor | None, rows: Tensor) -> Tensor | None:
        return None if t is None else t.index_select(0, rows)

    unique, inverse = torch.unique(host, dim=0, return_inverse=True)  # (G, H) distinct head sets
    if unique.shape[0] == 1:
        row = host[0]
        idx = None if bool(row.all()) else to_device(row.nonzero().squeeze(1))
        return subset_attention(x, p, idx, mask, gate, training)
    if unique.shape[0] <= max_groups:
        out: Tensor | None = None
        for g in range(unique.shape[0]):
            rows = to_device((inverse == g).nonzero().squeeze(1))
            idx = to_device(unique[g].nonzero().squeeze(1))
            y = subset_attention(x.index_select(0, rows), p, idx, pick(mask, rows), pick(gate, rows), training)
            out = y.new_zeros(x.shape[:-1] + y.shape[-1:]) if out is None else out  # autocast may pick y's dtype
            out = out.index_copy(0, rows, y)
        assert out is not None
        return out
    hd = p.head_dim
    out = None
    for h in range(p.num_heads):
        rows = host[:, h].nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        rows = to_device(rows)
        idx = torch.tensor([h], device=x.device)
        q, k, v = _project(x.index_select(0, rows), p, idx)  # (n_h, 1, T, hd)
        y = _sdpa(q, k, v, p, pick(mask, rows), training)
        if gate is not None:
            y = y * gate[:, h].index_select(0, rows).to(y.dtype)[:, None, None, None]
        contribution = F.linear(y.transpose(1, 2).flatten(2), _columns(p.out, idx, hd))  # (n_h, T, D)
        out = contribution.new_zeros(x.shape[:-1] + contribution.shape[-1:]) if out is None else out
        out = out.index_add(0, rows, contribution)
    assert out is not None  # every row has at least one head
    return out if p.out_bias is None else out + p.out_bias
