"""The random baseline: budget matching and randomness from its own generator."""

from __future__ import annotations

import pytest
import torch

from banditformer.controllers import RandomController


@pytest.mark.parametrize("ratio", [0.3, 0.6])
def test_random_matches_the_mean_flops_of_a_budget(table, ratio: float) -> None:
    c = RandomController.for_budget(table, ratio, seed=0)
    d = c.decide(torch.zeros(4000, 1))
    assert abs(float(table.flop_ratio(d).mean()) - ratio) < 0.1
    assert int(d.head_counts[:, 1:].max()) <= c.max_heads and int(d.depth.max()) <= c.max_depth
    again = RandomController.for_budget(table, ratio, seed=0).decide(torch.zeros(50, 1))
    assert torch.equal(again.heads, RandomController.for_budget(table, ratio, seed=0).decide(torch.zeros(50, 1)).heads)
