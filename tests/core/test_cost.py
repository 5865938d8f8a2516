"""The cost table (banditformer/core/cost.py): a decision's per-sample FLOPs by hand, training
FLOPs, ratios, and tables or decisions that do not fit."""

from __future__ import annotations

import pytest
import torch

from banditformer import Decision, InputValidationError
from banditformer.core.cost import TRAIN_FLOPS_FACTOR, CostTable


def table() -> CostTable:
    """L = 3 blocks of H = 2 heads; block 0 (the stem's) is counted in ``stem``."""
    layers = torch.tensor([[0.0, 100.0, 200.0], [0.0, 3.0, 5.0], [0.0, 4.0, 7.0]], dtype=torch.float64)
    return CostTable(stem=10.0, layers=layers, classifier=2.0, seq_len=9, matmul_share=0.9)


def test_full_is_the_stem_every_block_with_every_head_and_the_classifier() -> None:
    t = table()
    assert (t.num_layers, t.num_heads) == (3, 2)
    assert t.full == 10.0 + 5.0 + 7.0 + 2.0


def test_sample_flops_add_the_blocks_each_sample_runs_with_its_heads() -> None:
    t = table()
    heads = torch.ones(4, 3, 2, dtype=torch.bool)
    heads[1, 1, 1] = False  # depth 2, one head in block 1
    heads[2, 2, 0] = False  # depth 3, one head in block 2
    heads[3, 1:, 1] = False  # depth 1: its head sets of blocks 1 and 2 are ignored
    d = Decision(torch.tensor([3, 2, 3, 1]), heads)
    got = t.sample_flops(d)
    assert got.dtype == torch.float64 and got.tolist() == [24.0, 10 + 3 + 2, 10 + 5 + 4 + 2, 10 + 2]
    assert t.sample_flops(d, training=True).tolist() == [TRAIN_FLOPS_FACTOR * v for v in got.tolist()]
    assert t.flop_ratio(d).tolist() == [v / 24.0 for v in got.tolist()]
    assert t.sample_flops(Decision.full(0, 3, 2)).shape == (0,)


def test_decisions_that_do_not_fit_are_refused() -> None:
    t = table()
    with pytest.raises(InputValidationError, match="expected a Decision, got str"):
        t.sample_flops("full")  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match=r"decision.heads` of shape \(2, 3, 2\)"):
        t.sample_flops(Decision.full(2, 3, 4))
    with pytest.raises(InputValidationError, match=r"depth` in \[1, 3\], got values \[4\]"):
        t.sample_flops(Decision(torch.tensor([4, 1]), torch.ones(2, 3, 2, dtype=torch.bool)))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"stem": -1.0}, r"`stem` in \[0, inf\], got -1.0"),
        ({"classifier": float("nan")}, "`classifier` to be finite"),
        ({"seq_len": 0}, r"`seq_len` in \[1, inf\], got 0"),
        ({"matmul_share": 1.5}, r"`matmul_share` in \[0, 1\]"),
        ({"layers": torch.zeros(3)}, "`layers` to have 2 dimension"),
        ({"layers": torch.zeros(3, 2, dtype=torch.long)}, "`layers` to have a floating dtype"),
        ({"layers": torch.zeros(3, 1)}, r"shape \(L, H \+ 1\) with L >= 1 and H >= 1, got \(3, 1\)"),
        ({"layers": torch.tensor([[0.0, -1.0]])}, "finite FLOP counts >= 0"),
        ({"layers": torch.tensor([[1.0, 2.0]])}, r"`layers\[:, 0\]` = 0 \(a skipped block costs nothing\)"),
    ],
)
def test_a_table_that_is_no_cost_table_is_refused(change: dict, match: str) -> None:
    fields = {"stem": 10.0, "layers": table().layers, "classifier": 2.0, "seq_len": 9, **change}
    with pytest.raises(InputValidationError, match=match):
        CostTable(**fields)
