"""Adapted models equal their originals (banditformer/adapters): with the full decision the logits
are the original's, in fp32, with padded batches (masks and pad tokens as the original counts
them), on both paths and with or without exit heads; the exit heads are the only new
parameters and adapting changes nothing in the original; the cost table's matrix products are
what torch's FlopCounterMode counts in the original's forward pass; checkpoints load with
``weights_only=True``; the library's controllers drive an adapted model."""

from __future__ import annotations

import functools
import io

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from banditformer import Decision, make_controller
from banditformer.model.flops import MATMUL_OPS
from tests.adapters.models import NAMES, SEQ, case
from tests.model.test_dynamic import random_decision


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("exits", ["all", "none", (1,)])
def test_the_full_decision_gives_the_originals_logits(name: str, exits) -> None:
    c = case(name, 1, exits=exits)
    gen = torch.Generator().manual_seed(0)
    x = c.batch(7, gen)
    with torch.no_grad():
        want = c.call(c.original, x)
        for path in ("fast", "reference"):
            got = c.adapted(x, path=path)
            assert got.dtype == torch.float32
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), (path, (got - want).abs().max())
        h, context = c.adapted.stem(x)
        out = c.adapted.run_exits(h, Decision.full(7, 3, 4), all_exits=True)
    assert torch.allclose(out.logits, want, rtol=1e-5, atol=1e-6)
    assert torch.equal(out.depth, torch.full((7,), 3))
    assert context.shape == (7, 32) and not context.requires_grad


# Not GPT-2 padded on the left: its positions count from the first pad token, in the original too.
@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("vit", "timm_vit", "gpt2_left")])
def test_padding_changes_nothing_but_the_padded_positions(name: str) -> None:
    """A sample's logits do not depend on how much padding its batch adds (what masking is for)."""
    c = case(name, 2)
    gen = torch.Generator().manual_seed(1)
    x = c.batch(4, gen)
    with torch.no_grad():
        batched = c.adapted(x)
        for i in range(4):
            keep = x["attention_mask"][i].bool()
            alone = {k: v[i : i + 1, keep] for k, v in x.items()}
            torch.testing.assert_close(c.adapted(alone), batched[i : i + 1], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(c.call(c.original, alone), batched[i : i + 1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_exit_heads_are_the_only_new_parameters_and_adapting_changes_nothing(name: str) -> None:
    c = case(name, 0)
    before = {k: v.clone() for k, v in c.original.state_dict().items()}
    adapted = type(c.adapted)(c.original, c.adapted.family, exits=(1, 2))
    assert c.original.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in c.original.state_dict().items())
    original = {id(p) for p in c.original.parameters()}
    new = [n for n, p in adapted.named_parameters() if id(p) not in original]
    assert new and all(n.startswith(("exit_heads.1.", "exit_heads.2.")) for n in new)
    assert sorted(adapted.exit_heads) == ["1", "2"]
    # an exit head starts as a copy of the original's classifier, and is a separate copy
    h, _ = adapted.stem(c.batch(3, torch.Generator().manual_seed(0)))
    with torch.no_grad():
        torch.testing.assert_close(adapted.classify(h, 1), adapted.classify(h, None))
        next(adapted.exit_heads["1"].parameters()).add_(1.0)
        assert not torch.allclose(adapted.classify(h, 1), adapted.classify(h, None))
        assert torch.equal(adapted.classify(h, 2), adapted.classify(h, None))


@pytest.mark.parametrize("name", ["plain", "bert", "roberta", "distilbert", "vit", "timm_vit", "gpt2"])
def test_the_cost_table_counts_what_flop_counter_mode_counts_in_the_original(name: str) -> None:
    c = case(name, 0)
    model = c.adapted
    x = model.example_input(1)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        if name in ("plain", "timm_vit"):
            c.original(x)
        elif name == "vit":
            c.original(pixel_values=x)
        else:
            c.original(input_ids=x)
    table = model.cost_table(ops=MATMUL_OPS)
    # GPT-2 scores every position and then picks one; the adapter classifies the picked one only
    tolerance = 0.02 if name == "gpt2" else 0.01
    assert abs(2 * table.full - counter.get_total_flops()) <= tolerance * counter.get_total_flops()
    full = model.cost_table()
    assert full.num_layers == 3 and full.num_heads == 4 and full.seq_len == model.cfg.seq_len
    assert bool((full.layers[:, 1:].diff(dim=1) > 0).all())  # each head costs something
    assert full.full > table.full
    gen = torch.Generator().manual_seed(0)
    d = random_decision(gen, 5, 3, 4)
    torch.testing.assert_close(model.sample_flops(d), full.sample_flops(d))
    if name not in ("vit", "timm_vit"):  # a shorter sequence costs less, counted at its own length
        assert model.cost_table(seq_len=SEQ // 2).full < full.full


@pytest.mark.parametrize("name", ["plain", "bert", "gpt2_left"])
def test_a_checkpoint_loads_with_weights_only(name: str) -> None:
    c = case(name, 0)
    buffer = io.BytesIO()
    torch.save(c.adapted.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = case(name, 1).adapted  # another seed: other weights
    gen = torch.Generator().manual_seed(3)
    x = c.batch(4, gen)
    d = random_decision(gen, 4, 3, 4)
    with torch.no_grad():
        assert not torch.allclose(fresh(x, d), c.adapted(x, d))
        saved = {k: v.clone() for k, v in fresh.state_dict().items()}
        try:
            fresh.load_state_dict(state)
            torch.testing.assert_close(fresh(x, d), c.adapted(x, d))
        finally:
            fresh.load_state_dict(saved)  # the cached case goes back as it was


@pytest.mark.parametrize("name", ["plain", "bert", "gpt2"])
def test_the_libraries_controllers_drive_an_adapted_model(name: str) -> None:
    c = case(name, 0)
    model = c.adapted
    table = model.cost_table()
    gen = torch.Generator().manual_seed(0)
    x = c.batch(6, gen)
    # DHT decides depth and heads up front from the stem's context
    dht = make_controller("dht", num_layers=3, num_heads=4, context_dim=32, full_flops=table.full, seed=0)
    h, context = model.stem(x)
    decision = dht.decide(context)
    logits = model.run(h, decision)
    quality = logits.softmax(-1)[:, 0].detach()
    dht.feedback(decision, quality, model.sample_flops(decision).float())
    # a halting controller decides at the exit points, and the samples it stops leave the pass
    exit_c = make_controller("entropy_exit", num_layers=3, num_heads=4, threshold=1.0)  # everyone halts at once
    d = exit_c.decide(context, explore=False)
    out = model.run_exits(h, d, halt=functools.partial(exit_c.halt, decision=d, explore=False))
    assert torch.equal(out.depth, torch.ones(6, dtype=torch.long))
    assert torch.equal(out.logits, model.classify(h, 1))
