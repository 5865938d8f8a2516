"""The static baselines: the full model, and the largest uniform model within a FLOP budget."""

from __future__ import annotations

import pytest
import torch

from banditformer import InputValidationError, make_controller
from banditformer.controllers import LayerDropController, RandomController, Static, StaticSmall, budget_shape


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


def test_static_runs_the_full_model_and_learns_nothing() -> None:
    c = Static(num_layers=3, num_heads=2)
    d = c.decide(torch.zeros(4, 5))
    assert d.depth.tolist() == [3] * 4 and bool(d.heads.all())
    before = {k: v.clone() for k, v in c.state_dict().items() if isinstance(v, torch.Tensor)}
    c.feedback(d, torch.rand(4), torch.ones(4))
    assert all(torch.equal(v, c.state_dict()[k]) for k, v in before.items())
    with pytest.raises(InputValidationError, match=r"quality` in \[0, 1\]"):  # feedback still checks its input
        c.feedback(d, torch.full((4,), 2.0), torch.ones(4))


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


def test_budget_shape_can_keep_every_head(table) -> None:
    stem = (table.stem + table.classifier) / table.full
    assert budget_shape(table, stem) == (1, 1) and budget_shape(table, stem / 2, all_heads=True) == (1, 4)
    for ratio in (0.3, 0.5, 0.8):
        depth, heads = budget_shape(table, ratio, all_heads=True)
        assert heads == 4
        flops = table.stem + float(table.layers[1:depth, 4].sum()) + table.classifier
        assert flops <= ratio * table.full + 1e-9  # within the budget...
        deeper = flops + float(table.layers[depth, 4]) if depth < 6 else float("inf")
        assert deeper > ratio * table.full  # ...and one more full block would not be
