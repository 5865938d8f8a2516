"""FLOP accounting: the fvcore cost table against torch's FlopCounterMode, and its vectorised use."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from banditformer import Decision, InputValidationError
from banditformer.core.cost import TRAIN_FLOPS_FACTOR
from banditformer.model.flops import MATMUL_OPS, count_flops
from tests.model.test_dynamic import CONFIGS, make_model, random_decision, sample_input


def measured_flops(model, x: torch.Tensor, d: Decision) -> float:
    """torch's count (2 per multiply-add) of one forward, with the MATH attention kernel."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x, d)
    return float(counter.get_total_flops())


@pytest.mark.parametrize("overrides", CONFIGS[:4], ids=["base", "mean", "tokens", "patches"])
def test_cost_table_matches_flop_counter_mode_within_one_percent(overrides: dict) -> None:
    model = make_model(0, **overrides)
    gen = torch.Generator().manual_seed(3)
    b = 8
    x = sample_input(model, b, gen)
    d = random_decision(gen, b, model.cfg.num_layers, model.cfg.num_heads)
    ours = model.cost_table(MATMUL_OPS).sample_flops(d)
    for i in range(b):
        one = Decision(d.depth[i : i + 1], d.heads[i : i + 1])
        theirs = measured_flops(model, x[i : i + 1], one)
        assert abs(2 * float(ours[i]) - theirs) <= 0.01 * theirs, (i, 2 * float(ours[i]), theirs)
    full = measured_flops(model, x[:1], Decision.full(1, model.cfg.num_layers, model.cfg.num_heads))
    assert abs(2 * model.cost_table(MATMUL_OPS).full - full) <= 0.01 * full


def test_all_ops_table_adds_the_small_ops_fvcore_would_drop() -> None:
    model = make_model(0)
    h = torch.zeros(1, model.cfg.tokens_per_sample, model.cfg.d_model)
    ops = count_flops(lambda x: model.blocks[1].forward_subset(x, None), model, [h])
    assert {"linear", "attention_matmul", "softmax", "layer_norm", "gelu", "add"} <= set(ops)
    t, s, hd, heads = model.cfg.tokens_per_sample, model.cfg.tokens_per_sample, model.cfg.head_dim, model.cfg.num_heads
    assert ops["attention_matmul"] == 2 * heads * t * s * hd and ops["softmax"] == heads * t * s
    full, matmul = model.cost_table(), model.cost_table(MATMUL_OPS)
    assert full.full > matmul.full and 0.5 < full.matmul_share < 1


def test_sample_flops_is_the_sum_of_its_pieces() -> None:
    model = make_model(0, num_layers=4)
    table = model.cost_table()
    gen = torch.Generator().manual_seed(0)
    d = random_decision(gen, 32, 4, 4)
    got = table.sample_flops(d)
    for i in range(32):
        expected = table.stem + table.classifier
        for layer in range(1, int(d.depth[i])):
            expected += float(table.layers[layer, int(d.heads[i, layer].sum())])
        assert float(got[i]) == pytest.approx(expected)
    assert torch.equal(table.sample_flops(d, training=True), got * TRAIN_FLOPS_FACTOR)
    assert torch.all(table.flop_ratio(d) <= 1.0)
    shallow = Decision.full(2, 4, 4)
    shallow.depth[:] = 1
    assert table.sample_flops(shallow).tolist() == [table.stem + table.classifier] * 2
    assert float(table.sample_flops(Decision.full(1, 4, 4))) == pytest.approx(table.full)


def test_more_heads_cost_more_and_zero_heads_cost_nothing() -> None:
    layers = make_model(0).cost_table().layers
    assert float(layers[1, 0]) == 0.0
    assert bool((layers[:, 1:].diff(dim=1) > 0).all())


def test_bad_decisions_for_the_table() -> None:
    table = make_model(0).cost_table()
    with pytest.raises(InputValidationError, match="Decision"):
        table.sample_flops("x")  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="shape"):
        table.sample_flops(Decision.full(2, 5, 4))


def test_cost_table_under_autocast_and_for_other_dtypes() -> None:
    model = make_model(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        flops = model.sample_flops(Decision.full(2, 3, 4))  # first built inside autocast
    assert float(flops[0]) == pytest.approx(model.cost_table().full)
    assert make_model(0).double().cost_table().full == pytest.approx(model.cost_table().full)
    with pytest.raises(InputValidationError, match="sequence of operator names"):
        model.cost_table("linear")  # type: ignore[arg-type]


def test_matmul_share_covers_the_whole_model() -> None:
    table = make_model(0, num_layers=5).cost_table()
    matmul = make_model(0, num_layers=5).cost_table(MATMUL_OPS)
    assert table.matmul_share == pytest.approx(matmul.full / table.full, rel=1e-9)
