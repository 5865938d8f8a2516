"""The torch kernels of the fast path (banditformer/backends/kernels.py): every routing strategy
equals masking, with and without a gate, in outputs and gradients; the strategy follows the
backend's overheads; head sets are told apart beyond 64 heads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from banditformer.backends import CPUBackend, kernels
from banditformer.core.backend import AttentionWeights


def attention_inputs(
    seed: int, n: int, h: int = 4, t: int = 5, d: int = 16, bias: bool = True
) -> tuple[torch.Generator, torch.Tensor, AttentionWeights, torch.Tensor]:
    """A generator, inputs ``(n, t, d)``, attention weights and head sets ``(n, h)`` (at least one per row)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, d, generator=gen)
    w_in, b_in = torch.randn(3 * d, d, generator=gen) * 0.3, torch.randn(3 * d, generator=gen)
    w_out, b_out = torch.randn(d, d, generator=gen) * 0.3, torch.randn(d, generator=gen)
    heads = torch.rand(n, h, generator=gen) < 0.5
    heads[:, 0] |= ~heads.any(1)
    return gen, x, AttentionWeights(w_in, b_in if bias else None, w_out, b_out if bias else None, h), heads


def by_hand(
    x: torch.Tensor, heads: torch.Tensor, w: AttentionWeights, gate: torch.Tensor | None = None
) -> torch.Tensor:
    """Multi-head attention written out: every head, the unchosen ones' outputs zeroed (times the gate)."""
    n, t, d = x.shape
    h = w.num_heads
    qkv = F.linear(x, w.qkv_weight, w.qkv_bias).view(n, t, 3, h, d // h)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # (n, h, t, hd)
    attn = (q @ k.transpose(-1, -2) / (d // h) ** 0.5).softmax(-1) @ v
    keep = heads.to(x.dtype) * (1.0 if gate is None else gate)
    y = (attn * keep[:, :, None, None]).transpose(1, 2).reshape(n, t, d)
    return F.linear(y, w.proj_weight, w.proj_bias)


@given(
    seed=st.integers(0, 10**6),
    n=st.integers(1, 20),
    max_groups=st.sampled_from([0, 1, 4, 100]),
    overheads=st.sampled_from([(1.0, 1.0), (9.0, 9.0)]),
    bias=st.booleans(),
)
def test_routed_attention_strategies_agree_with_masking(
    seed: int, n: int, max_groups: int, overheads: tuple[float, float], bias: bool
) -> None:
    _, x, weights, heads = attention_inputs(seed, n, bias=bias)
    expected = by_hand(x, heads, weights)
    torch.testing.assert_close(kernels.masked_attention(x, heads, weights), expected, rtol=1e-5, atol=1e-5)
    got = kernels.routed_attention(x, heads, weights, max_groups=max_groups, overheads=overheads)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with_host = kernels.routed_attention(x, heads, weights, max_groups=max_groups, host_heads=heads.clone())
    torch.testing.assert_close(with_host, expected, rtol=1e-5, atol=1e-5)


@given(seed=st.integers(0, 10**6), n=st.integers(1, 20), max_groups=st.sampled_from([0, 1, 4, 100]))
def test_routed_attention_with_a_gate_agrees_with_masking(seed: int, n: int, max_groups: int) -> None:
    gen, x, weights, heads = attention_inputs(seed, n)
    gate = torch.rand(n, weights.num_heads, generator=gen) * 2
    expected = by_hand(x, heads, weights, gate)
    torch.testing.assert_close(kernels.masked_attention(x, heads, weights, gate=gate), expected, rtol=1e-5, atol=1e-5)
    got = kernels.routed_attention(x, heads, weights, max_groups=max_groups, overheads=(1.0, 1.0), gate=gate)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 12), max_groups=st.sampled_from([0, 1, 100]))
def test_routed_attention_gradients_equal_maskings(seed: int, n: int, max_groups: int) -> None:
    gen, x, weights, heads = attention_inputs(seed, n)
    gate = torch.rand(n, weights.num_heads, generator=gen) + 0.5
    leaves = [x, gate, *(w for w in weights[:4] if w is not None)]
    for leaf in leaves:
        leaf.requires_grad_(True)
    upstream = torch.randn(x.shape, generator=gen)
    ref = torch.autograd.grad(kernels.masked_attention(x, heads, weights, gate=gate), leaves, upstream)
    out = kernels.routed_attention(x, heads, weights, max_groups=max_groups, overheads=(1.0, 1.0), gate=gate)
    got = torch.autograd.grad(out, leaves, upstream, allow_unused=True)
    names = ["x", "gate", "qkv_weight", "qkv_bias", "proj_weight", "proj_bias"]
    for name, a, b in zip(names, ref, got, strict=True):
        b = torch.zeros_like(a) if b is None else b
        # an unchosen head's gate entry gets no gradient on the routed path and a zero one by masking
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=lambda m, k=name: f"{k}: {m}")


def test_subset_attention_computes_the_chosen_heads_only() -> None:
    _, x, weights, _ = attention_inputs(0, 6)
    chosen = torch.tensor([True, False, True, False])
    idx = chosen.nonzero().squeeze(1)
    expected = by_hand(x, chosen.expand(6, -1), weights)
    torch.testing.assert_close(kernels.subset_attention(x, idx, weights), expected, rtol=1e-5, atol=1e-5)
    everything = by_hand(x, torch.ones(6, 4, dtype=torch.bool), weights)
    torch.testing.assert_close(kernels.subset_attention(x, None, weights), everything, rtol=1e-5, atol=1e-5)
    # an unchosen head's weights are never read: scrambling them changes nothing
    hd = 4
    w_in, w_out = weights.qkv_weight.clone(), weights.proj_weight.clone()
    w_in.view(3, 4, hd, 16)[:, 1] = float("nan")
    w_out.view(16, 4, hd)[:, 1] = float("nan")
    scrambled = AttentionWeights(w_in, weights.qkv_bias, w_out, weights.proj_bias, 4)
    torch.testing.assert_close(kernels.subset_attention(x, idx, scrambled), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("heads", "overheads", "masked"),
    [
        ([[1, 0, 0, 0], [0, 1, 0, 0]], (1.0, 1.0), False),  # a quarter of the heads kept: routing pays
        ([[1, 0, 0, 0], [0, 1, 0, 0]], (4.0, 4.0), True),  # 1/4 x 4 >= 1: masking is as fast
        ([[1, 1, 1, 0], [0, 1, 1, 1]], (1.1, 1.1), False),
        ([[1, 1, 1, 0], [0, 1, 1, 1]], (1.4, 1.4), True),
    ],
)
def test_routing_masks_where_the_overheads_say_it_would_be_slower(
    heads: list[list[int]], overheads: tuple[float, float], masked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, x, weights, _ = attention_inputs(1, 2)
    chosen = torch.tensor(heads, dtype=torch.bool)
    calls = []
    real = kernels.masked_attention
    monkeypatch.setattr(kernels, "masked_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = kernels.routed_attention(x, chosen, weights, overheads=overheads)
    assert bool(calls) == masked
    torch.testing.assert_close(got, by_hand(x, chosen, weights), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("max_groups", [0, 8])
def test_many_heads_are_told_apart(max_groups: int) -> None:
    # More heads than bits in an int64 head-set code: grouping must still tell the sets apart.
    _, x, weights, _ = attention_inputs(2, 3, h=65, t=3, d=130)
    heads = torch.zeros(3, 65, dtype=torch.bool)
    heads[0, 0] = True
    heads[1, [0, 64]] = True
    heads[2, 64] = True
    got = kernels.routed_attention(x, heads, weights, max_groups=max_groups)
    torch.testing.assert_close(got, by_hand(x, heads, weights), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got[0], got[1], atol=1e-3)  # the rows' head sets differ, so do their outputs


def test_the_cpu_backend_runs_the_torch_kernel_with_its_overheads(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = kernels.routed_attention

    def spy(*args, **kwargs):
        seen.append(kwargs["overheads"])
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels, "routed_attention", spy)
    _, x, weights, heads = attention_inputs(3, 5)
    got = CPUBackend().routed_attention(x, heads, weights)
    assert seen == [CPUBackend.routed_overheads]
    torch.testing.assert_close(got, by_hand(x, heads, weights), rtol=1e-5, atol=1e-5)
