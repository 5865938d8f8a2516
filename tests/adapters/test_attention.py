"""The adapters' attention kernels (banditformer/adapters/_attention.py): every strategy of the
routed kernel (one head set, grouped sets, the loop over heads) equals masking in outputs and in
gradients (inputs, weights, head gate), with padding masks, causality and separate projections;
an unchosen head contributes nothing."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from banditformer.adapters import HeadProjections
from banditformer.adapters._attention import masked_attention, routed_attention, subset_attention

H, HD, D, T = 4, 3, 10, 5


def projections(gen: torch.Generator, causal: bool, bias: bool) -> tuple[HeadProjections, list[torch.Tensor]]:
    def w(*shape):
        return (torch.randn(*shape, generator=gen) * 0.5).requires_grad_(True)

    weights = [w(H * HD, D), w(H * HD, D), w(H * HD, D), w(D, H * HD)]
    biases = [w(H * HD), w(H * HD), w(H * HD), w(D)] if bias else [None] * 4
    p = HeadProjections(
        weights[0], biases[0], weights[1], biases[1], weights[2], biases[2], weights[3], biases[3],
        num_heads=H, scale=0.7, causal=causal,
    )  # fmt: skip
    return p, weights + [b for b in biases if b is not None]


@pytest.mark.parametrize("max_groups", [0, 2, 8])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 12), causal=st.booleans(), bias=st.booleans(),
       padded=st.booleans())  # fmt: skip
def test_every_routed_strategy_equals_masking_in_outputs_and_gradients(max_groups, seed, n, causal, bias, padded):
    gen = torch.Generator().manual_seed(seed)
    p, params = projections(gen, causal, bias)
    x = torch.randn(n, T, D, generator=gen, requires_grad=True)
    heads = torch.rand(n, H, generator=gen) < 0.5
    heads[torch.arange(n), torch.randint(0, H, (n,), generator=gen)] = True
    mask = None
    if padded:
        lengths = torch.randint(1, T + 1, (n,), generator=gen)
        mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    gate = torch.rand(n, H, generator=gen).requires_grad_(True)
    target = torch.randn(n, T, D, generator=gen)
    results = []
    for run in (
        lambda: masked_attention(x, p, heads, mask, gate),
        lambda: routed_attention(x, p, heads, heads.clone(), mask, gate, max_groups=max_groups),
    ):
        for t in [x, gate, *params]:
            t.grad = None
        y = run()
        (y * target).sum().backward()
        results.append((y.detach(), [t.grad.clone() for t in [x, gate, *params]]))
    (want, g_want), (got, g_got) = results
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_an_unchosen_head_contributes_nothing_and_subsets_agree() -> None:
    gen = torch.Generator().manual_seed(0)
    p, _ = projections(gen, causal=False, bias=True)
    x = torch.randn(3, T, D, generator=gen)
    heads = torch.tensor([True, False, True, False]).expand(3, -1)
    with torch.no_grad():
        ref = masked_attention(x, p, heads)
        torch.testing.assert_close(subset_attention(x, p, torch.tensor([0, 2])), ref)
        changed = HeadProjections(
            p.query, p.query_bias, p.key, p.key_bias, p.value.clone(), p.value_bias, p.out, p.out_bias, num_heads=H,
            scale=p.scale,
        )  # fmt: skip
        changed.value[HD : 2 * HD] += 5.0  # head 1's value weights: an unchosen head
        torch.testing.assert_close(masked_attention(x, changed, heads), ref)
        torch.testing.assert_close(subset_attention(x, changed, torch.tensor([0, 2])), ref)
        assert not torch.allclose(masked_attention(x, changed, None), masked_attention(x, p, None))
