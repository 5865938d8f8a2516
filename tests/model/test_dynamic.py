"""The dynamic transformer (banditformer/model/transformer.py): the fast path equals the reference
path (outputs, parameter and head-gate gradients) for random decisions and shapes, it runs the
model's backend's kernel, exits classify with their own heads, and bad input is refused. (The
kernels themselves: tests/backends/test_kernels.py.)"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from banditformer import Decision, InputValidationError
from banditformer.backends import CPUBackend
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


def test_full_decision_equals_a_plain_forward_and_depth_one_skips_every_block() -> None:
    model = make_model(0)
    x = torch.randn(5, 6, 1)
    full = model(x)
    torch.testing.assert_close(model(x, Decision.full(5, 3, 4), path="reference"), full)
    shallow = Decision.full(5, 3, 4)
    shallow.depth[:] = 1
    h, context = model.stem(x)
    torch.testing.assert_close(model.run(h, shallow), model.classify(h))
    torch.testing.assert_close(context, model.pool(h).detach())  # what controllers decide from
    assert not context.requires_grad and h.requires_grad


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


class Spy(CPUBackend):
    """A CPU backend that records the head sets its routed-attention kernel was called with."""

    def __init__(self) -> None:
        self.calls: list[torch.Tensor] = []

    def routed_attention(self, x, heads, weights, **kwargs):
        self.calls.append(heads.clone())
        return super().routed_attention(x, heads, weights, **kwargs)


def test_the_fast_path_runs_the_models_backend_kernel_for_partial_head_sets() -> None:
    model = make_model(0)
    model.backend = Spy()
    d = Decision.full(4, 3, 4)
    d.depth[:] = torch.tensor([3, 3, 2, 1])
    d.heads[:2, 1, 1:] = False  # block 1: two samples run head 0 only
    d.heads[0, 2, 0] = False  # block 2: sample 0 drops head 0
    x = torch.randn(4, 6, 1)
    torch.testing.assert_close(model(x, d), model(x, d, path="reference"))
    # sorted deepest first: block 1 runs samples 0, 1, 2 (their head sets), block 2 samples 0, 1
    assert [c.tolist() for c in model.backend.calls] == [
        [[True, False, False, False], [True, False, False, False], [True, True, True, True]],
        [[False, True, True, True], [True, True, True, True]],
    ]
    model.backend.calls.clear()
    model(x, Decision.full(4, 3, 4))  # every head in every block: dense blocks, no routing
    assert model.backend.calls == []
    with pytest.raises(InputValidationError, match="expected `backend` to be a Backend or None, got str"):
        DynamicTransformer(model.cfg, backend="cpu")  # type: ignore[arg-type]


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


def test_exit_heads_classify_each_depth_with_its_own_head() -> None:
    model = make_model(0, exit_heads=True, num_layers=3)
    assert len(model.exit_classifiers) == 2 and len(model.exit_norms) == 2
    assert {"exit_classifiers.1.weight", "exit_norms.1.weight"} <= set(model.state_dict())
    gen = torch.Generator().manual_seed(0)
    x = sample_input(model, 6, gen)
    d = Decision(torch.tensor([1, 2, 3, 1, 2, 3]), torch.ones(6, 3, 4, dtype=torch.bool))
    h, _ = model.stem(x)
    logits = model(x, d)
    torch.testing.assert_close(logits[0], model.exit_classifiers[0](model.exit_norms[0](h[:1]))[0, 0])
    torch.testing.assert_close(logits[1], model.exit_classifiers[1](model.exit_norms[1](model.blocks[1](h[1:2])))[0, 0])
    shared = make_model(0, num_layers=3)
    shared.load_state_dict(model.state_dict(), strict=False)  # same blocks and main head
    torch.testing.assert_close(shared(x, d)[2::3], logits[2::3])  # depth L uses the main head
    assert not torch.allclose(shared(x, d)[0], logits[0])
    assert model.cost_table().full == shared.cost_table().full  # same FLOPs per sample
