"""Adapted models (banditformer/adapters/adapted.py): the fast path equals the reference path in
outputs, depths, the exit points shown, the heads routed and gradients (parameters and head
gate) under random decisions, halting and routing, as tests/model does for the library's own
model; for the plain PyTorch model and every Hugging Face family (skipped without transformers)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adapters.models import NAMES, case
from tests.model.test_dynamic import random_decision
from tests.model.test_exits import RandomHalt, RandomRoute


def grads_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # A block no sample reaches gets no gradient on the fast path and a zero one on the reference.
    return {n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("exits", ["all", "none"])
@settings(max_examples=12, deadline=None)  # per case: 14 cases (the thorough profile does not change it)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 12), shared=st.booleans())
def test_fast_path_equals_reference_in_outputs_and_gradients(name: str, exits: str, seed: int, b: int, shared: bool):
    c = case(name, seed % 3, exits=exits)
    model = c.adapted
    gen = torch.Generator().manual_seed(seed)
    x = c.batch(b, gen)
    d = random_decision(gen, b, model.num_layers, model.num_heads, shared)
    y = torch.randint(0, model.num_classes, (b,), generator=gen)
    runs = []
    for path in ("reference", "fast"):
        model.zero_grad()
        gate = torch.ones(d.heads.shape, requires_grad=True)
        h, _ = model.stem(x)
        logits = model.run(h, d, path=path, head_gate=gate)
        torch.nn.functional.cross_entropy(logits, y).backward()
        runs.append((logits.detach(), grads_of(model), torch.zeros_like(gate) if gate.grad is None else gate.grad))
    (ref, g_ref, gate_ref), (fast, g_fast, gate_fast) = runs
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    assert g_ref.keys() == g_fast.keys()
    for n, g in g_ref.items():
        torch.testing.assert_close(g_fast[n], g, rtol=1e-4, atol=1e-5, msg=lambda m, n=n: f"{n}: {m}")
    torch.testing.assert_close(gate_fast, gate_ref, rtol=1e-4, atol=1e-5)
    # the gradient reached the original's weights in the blocks some sample ran past the stem
    if bool((d.depth > 1).any()):
        assert any(bool(g.abs().sum() > 0) for n, g in g_fast.items() if n.startswith("model.") and "1" in n)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 10), p=st.floats(0.0, 1.0), steer=st.booleans())
def test_fast_halting_equals_reference_in_outputs_depths_and_gradients(name: str, seed: int, b: int, p: float, steer):
    c = case(name, seed % 3)
    model = c.adapted
    gen = torch.Generator().manual_seed(seed)
    x = c.batch(b, gen)
    d = random_decision(gen, b, model.num_layers, model.num_heads)
    y = torch.randint(0, model.num_classes, (b,), generator=gen)
    runs = []
    for path in ("reference", "fast"):
        model.zero_grad()
        halt = RandomHalt(seed, p)
        router = RandomRoute(seed, model.num_heads) if steer else None
        h, _ = model.stem(x)
        out = model.run_exits(h, d, halt=halt, route=router, path=path)
        loss = torch.nn.functional.cross_entropy(out.logits, y) + out.exit_logits.square().mean()
        loss.backward()
        runs.append((out, halt.seen + (router.seen if router else []), grads_of(model)))
    (ref, seen_ref, g_ref), (fast, seen_fast, g_fast) = runs
    assert torch.equal(fast.depth, ref.depth)
    assert bool((fast.depth <= d.depth).all())
    assert torch.equal(fast.exits, fast.depth)
    assert [s[:-1] for s in seen_fast] == [s[:-1] for s in seen_ref]  # the same rows asked at the same exits
    for a, f in zip(seen_ref, seen_fast, strict=True):
        torch.testing.assert_close(f[-1], a[-1], rtol=1e-5, atol=1e-5)
    if steer:
        assert torch.equal(fast.heads, ref.heads)
    else:
        assert fast.heads is None and ref.heads is None
    torch.testing.assert_close(fast.logits, ref.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.exit_logits, ref.exit_logits, rtol=1e-5, atol=1e-5)
    for n, g in g_ref.items():
        torch.testing.assert_close(g_fast[n], g, rtol=1e-4, atol=1e-5, msg=lambda m, n=n: f"{n}: {m}")
