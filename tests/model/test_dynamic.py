"""The fast path equals the reference path (outputs and parameter gradients), for random decisions
and shapes; the kernels' strategies agree; bad input is refused."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from banditformer import Decision, InputValidationError
from banditformer.backends import CPUBackend, kernels
from banditformer.core.backend import AttentionWeights
from banditformer.model import DynamicTransformer, TransformerConfig


def make_model(seed: int, **overrides) -> DynamicTransformer:
    torch.manual_seed(seed)  # parameter init only; decisions and inputs use their own generators
    cfg = dict(input="sequence", num_classes=3, seq_len=6, d_model=16, num_layers=3, num_heads=4)
    cfg.update(overrides)
    model = DynamicTransformer(TransformerConfig(**cfg))
    for p in model.parameters():  # larger weights than the init, so that every head matters
        torch.nn.init.normal_(p, std=0.3)
    return model


def random_decision(gen: torch.Generator, b: int, layers: int, heads: int, shared: bool = False) -> Decision:
    depth = torch.randint(1, layers + 1, (b,), generator=gen)
    if shared:  # a few distinct head sets, as with shared Thompson draws per bucket
        pool = torch.rand(3, layers, heads, generator=gen) < 0.5
        mask = pool[torch.randint(0, 3, (b,), generator=gen)]
    else:
        mask = torch.rand(b, layers, heads, generator=gen) < 0.5
    empty = ~mask.any(-1)
    first = torch.zeros_like(mask)
    first[..., 0] = True
    mask = mask | (empty.unsqueeze(-1) & first)  # at least one head per block
    mask[:, 0] = True  # the stem block runs in full
    return Decision(depth, mask)


def sample_input(model: DynamicTransformer, b: int, gen: torch.Generator) -> torch.Tensor:
    cfg = model.cfg
    if cfg.input == "tokens":
        return torch.randint(0, cfg.vocab_size, (b, cfg.seq_len), generator=gen)
    if cfg.input == "patches":
        return torch.randn(b, cfg.channels, cfg.image_size, cfg.image_size, generator=gen)
    return torch.randn(b, cfg.seq_len, cfg.features, generator=gen)


def attention_inputs(seed: int, n: int, h: int = 4, t: int = 5, d: int = 16) -> tuple:
    """A generator, inputs ``(n, t, d)``, attention weights and head sets (at least one per row)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, d, generator=gen)
    w_in, b_in = torch.randn(3 * d, d, generator=gen) * 0.3, torch.randn(3 * d, generator=gen)
    w_out, b_out = torch.randn(d, d, generator=gen) * 0.3, torch.randn(d, generator=gen)
    heads = torch.rand(n, h, generator=gen) < 0.5
    heads[:, 0] |= ~heads.any(1)
    return gen, x, (w_in, b_in, w_out, b_out), heads


class AlwaysRoute(CPUBackend):
    routed_overheads = (1.0, 1.0)


CONFIGS = [
    {},
    {"pooling": "mean"},
    {"input": "tokens", "vocab_size": 11, "num_layers": 4, "num_heads": 2},
    {"input": "patches", "image_size": 8, "patch_size": 4, "channels": 2, "num_heads": 8, "d_model": 32},
    {"features": 3, "num_layers": 1},
    {"bias": False, "num_layers": 5},
    {"exit_heads": True, "num_layers": 4},
]


@pytest.mark.parametrize("overrides", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "base")
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 12), shared=st.booleans(), route=st.booleans())
def test_fast_path_equals_reference_in_outputs_and_gradients(
    overrides: dict, seed: int, b: int, shared: bool, route: bool
) -> None:
    model = make_model(seed % 1000, **overrides)
    if route:  # always take the routed strategies, never the masking fallback
        model.backend = AlwaysRoute()
    gen = torch.Generator().manual_seed(seed)
    x = sample_input(model, b, gen)
    d = random_decision(gen, b, model.cfg.num_layers, model.cfg.num_heads, shared)
    target = torch.randint(0, model.cfg.num_classes, (b,), generator=gen)
    outs, grads = [], []
    for path in ("reference", "fast"):
        model.zero_grad()
        logits = model(x, d, path=path)
        torch.nn.functional.cross_entropy(logits, target).backward()
        outs.append(logits.detach())
        # A block no sample reaches gets no gradient on the fast path and a zero one on the reference.
        grads.append(
            {n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
        )
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


@given(
    seed=st.integers(0, 10**6),
    n=st.integers(1, 20),
    max_groups=st.sampled_from([0, 1, 4, 100]),
    overheads=st.sampled_from([(1.0, 1.0), (9.0, 9.0)]),
)
def test_routed_attention_strategies_agree_with_masking(
    seed: int, n: int, max_groups: int, overheads: tuple[float, float]
) -> None:
    _, x, (w_in, b_in, w_out, b_out), heads = attention_inputs(seed, n)
    h, t, d = 4, 5, 16
    qkv = torch.nn.functional.linear(x, w_in, b_in).view(n, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
    y = torch.nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]) * heads[:, :, None, None]
    expected = torch.nn.functional.linear(y.transpose(1, 2).reshape(n, t, d), w_out, b_out)
    weights = AttentionWeights(w_in, b_in, w_out, b_out, h)
    got = kernels.routed_attention(x, heads, weights, max_groups=max_groups, overheads=overheads)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_full_decision_equals_a_plain_forward_and_depth_one_skips_every_block() -> None:
    model = make_model(0)
    x = torch.randn(5, 6, 1)
    full = model(x)
    torch.testing.assert_close(model(x, Decision.full(5, 3, 4), path="reference"), full)
    shallow = Decision.full(5, 3, 4)
    shallow.depth[:] = 1
    h, context = model.stem(x)
    torch.testing.assert_close(model.run(h, shallow), model.classify(h))
    assert context.shape == (5, 16) and not context.requires_grad


def test_unchosen_heads_contribute_nothing() -> None:
    model = make_model(1)
    x = torch.randn(3, 6, 1)
    d = Decision.full(3, 3, 4)
    d.heads[:, 1:, 2] = False
    base = model(x, d)
    with torch.no_grad():  # scramble head 2's weights everywhere but the stem block
        for block in model.blocks[1:]:
            block.attn.qkv.weight.view(3, 4, 4, 16)[:, 2] += 5.0
            block.attn.proj.weight.view(16, 4, 4)[:, 2] += 5.0
    torch.testing.assert_close(model(x, d), base)
    torch.testing.assert_close(model(x, d, path="reference"), base)


@pytest.mark.parametrize(
    ("decision", "match"),
    [
        (lambda: Decision(torch.tensor([0, 1]), torch.ones(2, 3, 4, dtype=torch.bool)), r"depth` in \[1, 3\]"),
        (lambda: Decision(torch.tensor([4, 1]), torch.ones(2, 3, 4, dtype=torch.bool)), r"got values \[4\]"),
        (lambda: Decision(torch.tensor([3, 1]), torch.ones(2, 3, 5, dtype=torch.bool)), "shape"),
        (lambda: Decision(torch.tensor([3, 1, 1]), torch.ones(3, 3, 4, dtype=torch.bool)), r"shape \(2,\)"),
        (lambda: Decision(torch.tensor([3, 1]), torch.ones(2, 3, 4)), "torch.bool"),
        (lambda: Decision(torch.tensor([3.0, 1.0]), torch.ones(2, 3, 4, dtype=torch.bool)), "integer"),
        (lambda: Decision(torch.tensor([3, 1]), torch.zeros(2, 3, 4, dtype=torch.bool)), "non-empty head set"),
        (lambda: Decision(torch.tensor([3, 1]), torch.ones(2, 3, 4, dtype=torch.bool, device="meta")), "device"),
        (lambda: "full", "expected `decision` to be a Decision"),
    ],
    ids=["depth-0", "depth-above-L", "heads-shape", "batch", "heads-dtype", "depth-dtype", "empty", "device", "type"],
)
def test_bad_decisions_are_refused(decision, match: str) -> None:
    model = make_model(0)
    h, _ = model.stem(torch.randn(2, 6, 1))
    for path in ("fast", "reference"):
        with pytest.raises(InputValidationError, match=match):
            model.run(h, decision(), path=path)


def test_partial_stem_heads_and_bad_inputs_are_refused() -> None:
    model = make_model(0)
    x = torch.randn(2, 6, 1)
    d = Decision.full(2, 3, 4)
    d.heads[0, 0, 1] = False
    with pytest.raises(InputValidationError, match="block 0"):
        model(x, d)
    with pytest.raises(InputValidationError, match=r"shape \(B, 6, 1\) or \(B, 6\)"):
        model(torch.randn(2, 7))
    with pytest.raises(InputValidationError, match="floating dtype"):
        model(torch.zeros(2, 6, dtype=torch.long))
    with pytest.raises(InputValidationError, match="path"):
        model(x, path="masked")
    tokens = make_model(0, input="tokens", vocab_size=5)
    with pytest.raises(InputValidationError, match=r"token ids in \[0, 5\)"):
        tokens(torch.full((2, 6), 5))
    with pytest.raises(InputValidationError, match="multiple of `num_heads`"):
        TransformerConfig(input="sequence", d_model=10, num_heads=4)
    with pytest.raises(InputValidationError, match="`input`"):
        TransformerConfig(input="audio")


def test_the_cpu_backend_kernel_is_used_and_cuda_falls_back_to_the_torch_kernel() -> None:
    from banditformer.backends import CPUBackend
    from banditformer.backends.cuda import resolve_routed_kernel

    calls = []

    class Spy(CPUBackend):
        def routed_attention(self, *args, **kwargs):
            calls.append(args[1].shape)
            return super().routed_attention(*args, **kwargs)

    model = make_model(0)
    model.backend = Spy()
    gen = torch.Generator().manual_seed(0)
    d = random_decision(gen, 6, 3, 4)
    model(torch.randn(6, 6, 1), d)
    assert calls  # the fast path went through the backend's kernel
    # Where Triton is missing, the CUDA backend's "auto" kernel is the torch one the CPU runs.
    assert resolve_routed_kernel("auto", has_triton=False) == "torch"


def test_many_heads_route_correctly() -> None:
    # More heads than bits in an int64 head-set code: grouping must still tell the sets apart.
    model = make_model(0, num_heads=65, d_model=130, num_layers=2, seq_len=3)
    model.backend = AlwaysRoute()
    d = Decision.full(2, 2, 65)
    d.heads[0, 1] = False
    d.heads[0, 1, 0] = True
    d.heads[1, 1] = False
    d.heads[1, 1, [0, 64]] = True
    x = torch.randn(2, 3, 1)
    torch.testing.assert_close(model(x, d), model(x, d, path="reference"))


def test_dtype_mismatches_are_clear_errors() -> None:
    model = make_model(0)
    with pytest.raises(InputValidationError, match=r"model's dtype torch\.float32, got torch\.float64"):
        model(torch.randn(2, 6, 1, dtype=torch.float64))
    h, _ = model.stem(torch.randn(2, 6, 1))
    with pytest.raises(InputValidationError, match="`h` of the model's dtype"):
        model.run(h.double(), Decision.full(2, 3, 4))
    tokens = make_model(0, input="tokens", vocab_size=5)
    with pytest.raises(InputValidationError, match="int64 or int32"):
        tokens(torch.zeros(2, 6, dtype=torch.uint8))


@pytest.mark.parametrize("overrides", CONFIGS[:4], ids=["base", "mean", "tokens", "patches"])
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 10), route=st.booleans())
def test_head_gate_leaves_outputs_unchanged_and_its_gradient_agrees_between_paths(
    overrides: dict, seed: int, b: int, route: bool
) -> None:
    model = make_model(seed % 1000, **overrides)
    if route:
        model.backend = AlwaysRoute()
    gen = torch.Generator().manual_seed(seed)
    x = sample_input(model, b, gen)
    d = random_decision(gen, b, model.cfg.num_layers, model.cfg.num_heads)
    target = torch.randint(0, model.cfg.num_classes, (b,), generator=gen)
    plain = model(x, d)
    grads = []
    for path in ("reference", "fast"):
        gate = torch.ones(d.heads.shape, requires_grad=True)
        h, _ = model.stem(x)
        logits = model.run(h, d, path=path, head_gate=gate)
        torch.testing.assert_close(logits, plain, rtol=1e-5, atol=1e-5)
        torch.nn.functional.cross_entropy(logits, target).backward()
        grads.append(torch.zeros_like(gate) if gate.grad is None else gate.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)
    ran = d.active_layers.unsqueeze(2) & d.heads  # (B, L, H): heads that ran
    ran[:, 0] = False  # block 0 is not gated
    assert bool((grads[0][~ran] == 0).all()), "a head that did not run has an importance"


def test_head_gate_gradient_is_the_loss_derivative_by_finite_differences() -> None:
    model = make_model(3).double()
    gen = torch.Generator().manual_seed(0)
    x = sample_input(model, 4, gen).double()
    d = Decision(torch.tensor([3, 2, 3, 1]), torch.ones(4, 3, 4, dtype=torch.bool))
    d.heads[0, 2, 1] = False
    y = torch.tensor([0, 1, 2, 0])

    def loss(gate: torch.Tensor) -> torch.Tensor:
        h, _ = model.stem(x)
        return torch.nn.functional.cross_entropy(model.run(h, d, head_gate=gate), y, reduction="sum")

    gate = torch.ones(4, 3, 4, dtype=torch.float64, requires_grad=True)
    loss(gate).backward()
    for idx in [(0, 1, 2), (0, 2, 3), (1, 1, 0), (2, 2, 2)]:
        plus, minus = torch.ones_like(gate.detach()), torch.ones_like(gate.detach())
        plus[idx] += 1e-6
        minus[idx] -= 1e-6
        numeric = (loss(plus) - loss(minus)) / 2e-6
        torch.testing.assert_close(gate.grad[idx], numeric.detach(), rtol=1e-5, atol=1e-7)
    assert float(gate.grad[0, 2, 1]) == 0.0 and float(gate.grad[3].abs().sum()) == 0.0  # unchosen, not run


@given(seed=st.integers(0, 10**6), n=st.integers(1, 20), max_groups=st.sampled_from([0, 1, 4, 100]))
def test_routed_attention_with_a_gate_agrees_with_masking(seed: int, n: int, max_groups: int) -> None:
    gen, x, (w_in, b_in, w_out, b_out), heads = attention_inputs(seed, n)
    h = 4
    gate = torch.rand(n, h, generator=gen) * 2
    expected = kernels.masked_attention(x, heads, AttentionWeights(w_in, b_in, w_out, b_out, h), gate=gate)
    got = kernels.routed_attention(
        x, heads, AttentionWeights(w_in, b_in, w_out, b_out, h), max_groups=max_groups, overheads=(1.0, 1.0),
        gate=gate,
    )
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_exit_heads_classify_each_depth_with_its_own_head() -> None:
    model = make_model(0, exit_heads=True, num_layers=3)
    assert len(model.exit_heads) == 2 and len(model.exit_norms) == 2
    gen = torch.Generator().manual_seed(0)
    x = sample_input(model, 6, gen)
    d = Decision(torch.tensor([1, 2, 3, 1, 2, 3]), torch.ones(6, 3, 4, dtype=torch.bool))
    h, _ = model.stem(x)
    logits = model(x, d)
    torch.testing.assert_close(logits[0], model.exit_heads[0](model.exit_norms[0](h[:1]))[0, 0])
    shared = make_model(0, num_layers=3)
    shared.load_state_dict(model.state_dict(), strict=False)  # same blocks and main head
    torch.testing.assert_close(shared(x, d)[2::3], logits[2::3])  # depth L uses the main head
    assert not torch.allclose(shared(x, d)[0], logits[0])
    assert model.cost_table().full == shared.cost_table().full  # same FLOPs per sample
