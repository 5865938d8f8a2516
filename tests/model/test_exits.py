"""Decisions at exit points (banditformer/model/transformer.py ``run_exits``, banditformer/core/exits.py):
the fast path drops halted samples and equals the reference path in outputs, depths, the exit
points a controller is shown, the head sets routed on the way and gradients; replaying halting
on every exit's logits gives the same depths; every exit evaluated is counted in the FLOPs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from banditformer import Decision, InputValidationError
from banditformer.core.exits import ExitPoint, exit_features, replay_exits
from tests.model.test_dynamic import AlwaysRoute, make_model, random_decision, sample_input

CONFIGS = [{}, {"exit_heads": True, "num_layers": 5}, {"input": "tokens", "vocab_size": 7, "num_heads": 2}]


class RandomHalt:
    """Halts each sample it is shown with probability ``p``, from its own generator; records what it saw."""

    def __init__(self, seed: int, p: float) -> None:
        self.gen, self.p, self.seen = torch.Generator().manual_seed(seed), p, []

    def __call__(self, point: ExitPoint) -> torch.Tensor:
        self.seen.append((point.depth, point.rows.tolist(), point.patience.tolist(), point.logits.clone()))
        return torch.rand(point.size, generator=self.gen) < self.p


class RandomRoute:
    """Gives each sample it is shown a random non-empty head set (from its own generator); records what it saw."""

    def __init__(self, seed: int, num_heads: int) -> None:
        self.gen, self.num_heads, self.seen = torch.Generator().manual_seed(seed + 1), num_heads, []

    def __call__(self, point: ExitPoint) -> torch.Tensor:
        self.seen.append((point.depth, point.rows.tolist(), point.logits.clone()))
        heads = torch.rand(point.size, self.num_heads, generator=self.gen) < 0.5
        heads[torch.arange(point.size), torch.randint(0, self.num_heads, (point.size,), generator=self.gen)] = True
        return heads


@pytest.mark.parametrize("overrides", CONFIGS, ids=["base", "exit_heads", "tokens"])
@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1), b=st.integers(1, 10), p=st.floats(0.0, 1.0), route=st.booleans(),
    steer=st.booleans(),
)  # fmt: skip
def test_fast_halting_equals_reference_in_outputs_depths_and_gradients(overrides, seed, b, p, route, steer) -> None:
    model = make_model(seed % 100, **overrides)
    if route:
        model.backend = AlwaysRoute()
    gen = torch.Generator().manual_seed(seed)
    x = sample_input(model, b, gen)
    d = random_decision(gen, b, model.cfg.num_layers, model.cfg.num_heads)
    y = torch.randint(0, model.cfg.num_classes, (b,), generator=gen)
    runs = []
    for path in ("reference", "fast"):
        model.zero_grad()
        halt = RandomHalt(seed, p)
        router = RandomRoute(seed, model.cfg.num_heads) if steer else None
        gate = torch.ones(d.heads.shape, requires_grad=True)
        h, _ = model.stem(x)
        out = model.run_exits(h, d, halt=halt, route=router, path=path, head_gate=gate)
        loss = torch.nn.functional.cross_entropy(out.logits, y) + out.exit_logits.square().mean()
        loss.backward()
        grads = {n: torch.zeros_like(q) if q.grad is None else q.grad.clone() for n, q in model.named_parameters()}
        gate_grad = torch.zeros_like(gate) if gate.grad is None else gate.grad.clone()
        runs.append((out, halt.seen + (router.seen if router else []), grads, gate_grad))
    (ref, seen_ref, g_ref, gate_ref), (fast, seen_fast, g_fast, gate_fast) = runs
    assert torch.equal(fast.depth, ref.depth)
    assert bool((fast.depth <= d.depth).all())
    assert torch.equal(fast.exits, fast.depth)
    # the same rows asked at the same exits, halting and routing
    assert [s[:-1] for s in seen_fast] == [s[:-1] for s in seen_ref]
    for a, f in zip(seen_ref, seen_fast, strict=True):
        torch.testing.assert_close(f[-1], a[-1], rtol=1e-5, atol=1e-5)
    if steer:  # the heads as run: the routed blocks replaced, the rest as decided
        assert torch.equal(fast.heads, ref.heads)
        routed = torch.zeros_like(d.heads[..., 0])
        for depth, rows, _ in seen_fast[len(seen_fast) - len(router.seen) :]:
            routed[rows, depth] = True
        assert torch.equal(fast.heads[~routed], d.heads[~routed])
        assert bool(fast.heads.any(-1)[routed].all())
        assert bool((routed.sum(1) == (fast.depth - 1)).all())  # every block past the stem that ran was routed
    else:
        assert fast.heads is None and ref.heads is None
    torch.testing.assert_close(fast.logits, ref.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.exit_logits, ref.exit_logits, rtol=1e-5, atol=1e-5)
    for name, g in g_ref.items():
        torch.testing.assert_close(g_fast[name], g, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    torch.testing.assert_close(gate_fast, gate_ref, rtol=1e-4, atol=1e-5)
    if steer:
        return  # random routes depend on who asked: no replay
    # replaying the same halting on the exits of a full pass gives the same depths
    h, context = model.stem(x)
    full = model.run_exits(h, d, all_exits=True)
    assert torch.equal(replay_exits(RandomHalt(seed, p), full.exit_logits, d.depth, context), ref.depth)


def test_without_halting_every_exit_is_evaluated_and_the_output_is_the_plain_run() -> None:
    model = make_model(3, exit_heads=True, num_layers=4)
    gen = torch.Generator().manual_seed(0)
    x = sample_input(model, 6, gen)
    d = random_decision(gen, 6, 4, 4)
    h, _ = model.stem(x)
    out = model.run_exits(h, d, all_exits=True)
    torch.testing.assert_close(out.logits, model.run(h, d))
    assert torch.equal(out.depth, d.depth)
    for i in range(6):  # each exit's logits are that depth's classifier on that depth's hidden state
        for depth in range(1, int(d.depth[i]) + 1):
            shallow = Decision(torch.tensor([depth]), d.heads[i : i + 1])
            torch.testing.assert_close(out.exit_logits[i, depth - 1], model.run(h[i : i + 1], shallow)[0])
        assert bool((out.exit_logits[i, int(d.depth[i]) :] == 0).all())
    plain = model.run_exits(h, d)  # no halting, no exits: only the last exit
    assert plain.exit_logits is None and bool((plain.exits == 1).all())


def test_every_exit_evaluated_costs_a_classifier() -> None:
    model = make_model(0, num_layers=4)
    table = model.cost_table()
    d = Decision.full(2, 4, 4)
    once = table.sample_flops(d)
    d.exits = torch.tensor([4, 1])
    assert torch.allclose(table.sample_flops(d), once + torch.tensor([3 * table.classifier, 0.0], dtype=once.dtype))
    d.exits = torch.tensor([5, 1])
    with pytest.raises(InputValidationError, match=r"exits` in \[1, depth\]"):
        table.sample_flops(d)


def test_exit_point_features_and_a_bad_halting_mask() -> None:
    p = ExitPoint(1, 4, torch.tensor([0, 1]), torch.tensor([[0.0, 0.0, 0.0], [9.0, 0.0, 0.0]]), torch.zeros(2, 3),
                  torch.ones(2, dtype=torch.long))  # fmt: skip
    f = exit_features(p)
    torch.testing.assert_close(f[0], torch.tensor([1 / 3, 0.0, 1.0, 0.25, 0.25]))
    assert float(f[1, 0]) > 0.99 and float(f[1, 2]) < 0.01
    model = make_model(0)
    h, _ = model.stem(torch.randn(3, 6, 1))
    bads = ((lambda q: torch.ones(q.size), "torch.bool"), (lambda q: torch.ones(1, dtype=torch.bool), "shape"))
    for bad, match in bads:
        with pytest.raises(InputValidationError, match=match):
            model.run_exits(h, Decision.full(3, 3, 4), halt=bad)
    with pytest.raises(InputValidationError, match="callable"):
        model.run_exits(h, Decision.full(3, 3, 4), halt="stop")


def test_a_route_callback_that_gives_an_empty_or_misshapen_head_set_is_refused() -> None:
    model = make_model(0)
    h, _ = model.stem(torch.randn(3, 6, 1))
    d = Decision.full(3, 3, 4)
    bads = (
        (lambda q: torch.zeros(q.size, 4, dtype=torch.bool), "non-empty head set"),
        (lambda q: torch.ones(q.size, 3, dtype=torch.bool), "shape"),
        (lambda q: torch.ones(q.size, 4), "torch.bool"),
    )
    for bad, match in bads:
        for path in ("fast", "reference"):
            with pytest.raises(InputValidationError, match=match):
                model.run_exits(h, d, route=bad, path=path)
    with pytest.raises(InputValidationError, match="callable"):
        model.run_exits(h, d, route=3)
