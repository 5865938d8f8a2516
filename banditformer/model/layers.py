"""Building blocks of the dynamic transformer: input embeddings, attention, MLP, pre-LN block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from banditformer.backends.kernels import masked_attention, subset_attention
from banditformer.core.backend import AttentionWeights, Backend
from banditformer.model.config import TransformerConfig

__all__ = ["MLP", "Attention", "Block", "InputEmbedding"]


class InputEmbedding(nn.Module):
    """Token ids, image patches or real-valued steps -> ``(B, T', D)`` with positions (and a class
    token first when ``pooling="cls"``)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        if cfg.input == "tokens":
            self.embed: nn.Module = nn.Embedding(int(cfg.vocab_size), d)  # type: ignore[arg-type]
        elif cfg.input == "patches":
            p = int(cfg.patch_size)  # type: ignore[arg-type]
            self.embed = nn.Conv2d(cfg.channels, d, kernel_size=p, stride=p, bias=cfg.bias)
        else:
            self.embed = nn.Linear(cfg.features, d, bias=cfg.bias)
        self.pos = nn.Parameter(torch.zeros(1, cfg.tokens_per_sample, d))
        self.cls = nn.Parameter(torch.zeros(1, 1, d)) if cfg.pooling == "cls" else None
        nn.init.normal_(self.pos, std=0.02)
        if self.cls is not None:
            nn.init.normal_(self.cls, std=0.02)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.cfg.input == "patches":
            h = self.embed(x).flatten(2).transpose(1, 2)  # (B, D, S/p, S/p) -> (B, N, D)
        elif self.cfg.input == "sequence" and x.ndim == 2:
            h = self.embed(x.unsqueeze(-1))  # (B, T) -> (B, T, 1) -> (B, T, D)
        else:
            h = self.embed(x)  # (B, T, D)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)  # (B, T + 1, D)
        return self.drop(h + self.pos)


class Attention(nn.Module):
    """Multi-head self-attention with one fused input projection (``scaled_dot_product_attention``)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)

    def weights(self) -> AttentionWeights:
        """The projections and head count, as the kernels take them."""
        return AttentionWeights(self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias, self.num_heads)

    def forward(self, x: Tensor, heads: Tensor | None = None, gate: Tensor | None = None) -> Tensor:
        """Reference: all heads run; ``heads`` ``(B, H)`` bool zeroes the unchosen ones' outputs;
        ``gate`` ``(B, H)`` float multiplies each head's output (head importance)."""
        return masked_attention(x, heads, self.weights(), gate=gate)

    def forward_subset(self, x: Tensor, head_idx: Tensor | None, gate: Tensor | None = None) -> Tensor:
        """Fast: every row runs only heads ``head_idx`` ``(k,)`` (all when ``None``)."""
        return subset_attention(x, head_idx, self.weights(), gate=gate)

    def forward_routed(
        self, x: Tensor, heads: Tensor, backend: Backend, host_heads: Tensor | None = None, gate: Tensor | None = None
    ) -> Tensor:
        """Fast: row ``i`` runs only the heads in ``heads[i]``, with the backend's kernel."""
        return backend.routed_attention(x, heads, self.weights(), host_heads=host_heads, gate=gate)


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        hidden = cfg.mlp_ratio * cfg.d_model
        self.fc = nn.Linear(cfg.d_model, hidden, bias=cfg.bias)
        self.out = nn.Linear(hidden, cfg.d_model, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.out(F.gelu(self.fc(x))))


class Block(nn.Module):
    """A pre-LN transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, heads: Tensor | None = None, gate: Tensor | None = None) -> Tensor:
        """Reference path (head masking); ``x`` ``(B, T, D)``, ``heads`` ``(B, H)`` bool or None,
        ``gate`` ``(B, H)`` float head multipliers or None."""
        x = x + self.drop(self.attn(self.ln1(x), heads, gate))
        return x + self.mlp(self.ln2(x))

    def forward_subset(self, x: Tensor, head_idx: Tensor | None, gate: Tensor | None = None) -> Tensor:
        """Every row runs heads ``head_idx`` only (used for FLOP counting and shared sets)."""
        x = x + self.drop(self.attn.forward_subset(self.ln1(x), head_idx, gate))
        return x + self.mlp(self.ln2(x))

    def forward_routed(
        self, x: Tensor, heads: Tensor, backend: Backend, host_heads: Tensor | None = None, gate: Tensor | None = None
    ) -> Tensor:
        """Fast path: row ``i`` runs the heads in ``heads[i]`` only (``host_heads``: a CPU copy)."""
        x = x + self.drop(self.attn.forward_routed(self.ln1(x), heads, backend, host_heads, gate))
        return x + self.mlp(self.ln2(x))
