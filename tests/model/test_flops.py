"""FLOP counting (banditformer/model/flops.py): fvcore with our handlers counts what the module
docstring says, and a model's cost table (``DynamicTransformer.cost_table``) agrees with torch's
FlopCounterMode. The table's arithmetic itself: tests/core/test_cost.py."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import banditformer as bf
from banditformer import Decision
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


def test_count_flops_counts_a_multiply_add_once_and_one_per_element_for_our_handlers() -> None:
    lin = nn.Linear(8, 8)
    q, k = torch.zeros(2, 3, 5, 4), torch.zeros(2, 3, 7, 4)  # (batch, heads, T, hd), S = 7
    sdpa = count_flops(lambda a, b: F.scaled_dot_product_attention(a, b, b), lin, [q, k])
    assert sdpa == Counter({"attention_matmul": 2 * (2 * 3) * 5 * 7 * 4, "softmax": (2 * 3) * 5 * 7})
    x = torch.zeros(3, 8)
    ops = count_flops(lambda t: F.gelu(lin(t)) + t * t, lin, [x])
    assert ops == Counter({"linear": 3 * 8 * 8, "gelu": 24, "add": 24, "mul": 24})
    assert count_flops(lambda t: lin(t).softmax(-1), lin, [x]) == Counter({"linear": 192, "softmax": 24})
    norm = nn.LayerNorm(8)
    assert count_flops(norm, norm, [x]) == Counter({"layer_norm": 5 * 24})  # fvcore's five per element
    two = count_flops(lambda t: F.gelu(lin(t)), lin, [torch.zeros(6, 8)])
    assert two == Counter({"linear": 2 * 192, "gelu": 2 * 24})  # the inputs' batch counts


def test_count_flops_traces_without_autocast() -> None:
    lin = nn.Linear(8, 8)
    plain = count_flops(lin, lin, [torch.zeros(3, 8)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert count_flops(lin, lin, [torch.zeros(3, 8)]) == plain
        assert torch.is_autocast_enabled("cpu")  # restored after the trace


def test_more_heads_cost_more_and_zero_heads_cost_nothing() -> None:
    model = make_model(0)
    layers = model.cost_table().layers
    assert bool((layers[:, 0] == 0).all()) and bool((layers[:, 1:].diff(dim=1) > 0).all())
    assert bool((layers == layers[1]).all())  # the blocks share one shape
    h = torch.zeros(1, model.cfg.tokens_per_sample, model.cfg.d_model)
    dense = count_flops(lambda x: model.blocks[1].forward_subset(x, None), model, [h])
    # all heads, indexed, is the dense block (up to the traced index arithmetic: a few scalar muls)
    assert float(layers[1, -1]) == pytest.approx(sum(dense.values()), abs=4)


def test_cost_table_under_autocast_and_for_other_dtypes() -> None:
    model = make_model(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        flops = model.sample_flops(Decision.full(2, 3, 4))  # first built inside autocast
    assert float(flops[0]) == make_model(0).cost_table().full  # as counted outside it
    assert make_model(0).double().cost_table().full == pytest.approx(model.cost_table().full)
    with pytest.raises(bf.InputValidationError, match="sequence of operator names"):
        model.cost_table("linear")  # type: ignore[arg-type]
    assert model.cost_table() is model.cost_table()  # counted once per model and set of ops


def test_matmul_share_covers_the_whole_model() -> None:
    table = make_model(0, num_layers=5).cost_table()
    matmul = make_model(0, num_layers=5).cost_table(MATMUL_OPS)
    assert table.matmul_share == pytest.approx(matmul.full / table.full, rel=1e-9)
