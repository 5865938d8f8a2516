"""The baseline controllers: budgets, randomness from their own generator, inference behaviour."""

from __future__ import annotations

import pytest
import torch

from banditformer import InputValidationError, make_controller
from banditformer.controllers import LayerDropController, RandomController, StaticSmall, budget_shape
from tests.model.test_dynamic import make_model


@pytest.fixture(scope="module")
def table():
    return make_model(0, num_layers=6, num_heads=4, d_model=32).cost_table()


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75, 1.0])
def test_static_small_is_the_largest_uniform_model_within_budget(table, ratio: float) -> None:
    c = StaticSmall.for_budget(table, ratio)
    d = c.decide(torch.zeros(3, 1))
    got = float(table.flop_ratio(d)[0])
    assert got <= ratio + 1e-9
    depth, heads = budget_shape(table, ratio)
    assert (c.depth, c.heads) == (depth, heads)
    if ratio == 1.0:
        assert (depth, heads) == (6, 4)


@pytest.mark.parametrize("ratio", [0.3, 0.6])
def test_random_matches_the_mean_flops_of_a_budget(table, ratio: float) -> None:
    c = RandomController.for_budget(table, ratio, seed=0)
    d = c.decide(torch.zeros(4000, 1))
    assert abs(float(table.flop_ratio(d).mean()) - ratio) < 0.1
    assert int(d.head_counts[:, 1:].max()) <= c.max_heads and int(d.depth.max()) <= c.max_depth
    again = RandomController.for_budget(table, ratio, seed=0).decide(torch.zeros(50, 1))
    assert torch.equal(again.heads, RandomController.for_budget(table, ratio, seed=0).decide(torch.zeros(50, 1)).heads)


def test_layerdrop_drops_in_training_and_prunes_at_inference() -> None:
    c = LayerDropController(6, 4, drop=0.3, inference_depth=4, seed=0)
    train = c.decide(torch.zeros(5000, 1), explore=True)
    # P(depth = L) = (1 - drop)^(L - 1)
    assert abs(float((train.depth == 6).double().mean()) - 0.7**5) < 0.03
    assert bool(train.heads.all())
    assert c.decide(torch.zeros(3, 1), explore=False).depth.tolist() == [4, 4, 4]


def test_baselines_are_registered_and_check_their_arguments(table) -> None:
    assert make_controller("static_small", num_layers=4, num_heads=2, depth=2, heads=1).depth == 2
    assert make_controller("layerdrop", num_layers=4, num_heads=2).inference_depth == 4
    with pytest.raises(InputValidationError, match="depth"):
        StaticSmall(4, 2, depth=5, heads=1)
    with pytest.raises(InputValidationError, match="drop"):
        LayerDropController(4, 2, drop=1.5)
    with pytest.raises(InputValidationError, match="CostTable"):
        StaticSmall.for_budget("table", 0.5)  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="ratio"):
        RandomController.for_budget(table, 1.5)
