import pytest
import torch

from banditformer import Decision, InputValidationError, make_controller


def test_full_decision_and_derived_views() -> None:
    d = Decision.full(3, num_layers=4, num_heads=2)
    assert d.batch_size == 3 and d.num_layers == 4 and d.num_heads == 2
    d.depth[1] = 2
    assert d.active_layers[1].tolist() == [True, True, False, False]
    assert d.head_counts[1].tolist() == [2, 2, 0, 0]
    assert d.validate(4, 2) is d


@pytest.mark.parametrize(
    ("depth", "heads", "match"),
    [
        (torch.tensor([0, 2]), torch.ones(2, 3, 2, dtype=torch.bool), r"depth` in \[1, 3\], got values \[0\]"),
        (torch.tensor([4, 2]), torch.ones(2, 3, 2, dtype=torch.bool), r"got values \[4\]"),
        (torch.tensor([3, 2]), torch.ones(2, 3, 5, dtype=torch.bool), r"shape \(2, 3, 2\)"),
        (torch.tensor([3, 2]), torch.ones(2, 3, 2), "dtype torch.bool"),
        (torch.tensor([3.0, 2.0]), torch.ones(2, 3, 2, dtype=torch.bool), "integer dtype"),
        (torch.tensor([[3, 2]]), torch.ones(2, 3, 2, dtype=torch.bool), "shape"),
        (torch.tensor([3, 2]), torch.ones(2, 3, 2, dtype=torch.bool, device="meta"), "device"),
    ],
)
def test_bad_decisions_are_rejected(depth, heads, match) -> None:
    with pytest.raises(InputValidationError, match=match):
        Decision(depth, heads).validate(3, 2)


def test_empty_head_set_in_a_run_layer_is_rejected_but_skipped_layers_may_be_empty() -> None:
    heads = torch.ones(2, 3, 2, dtype=torch.bool)
    heads[0, 2] = False  # sample 0 has depth 2: layer 2 is skipped, so this is fine
    Decision(torch.tensor([2, 3]), heads).validate(3, 2)
    heads[1, 1] = False
    with pytest.raises(InputValidationError, match="sample 1 in layer 1"):
        Decision(torch.tensor([2, 3]), heads).validate(3, 2)


def test_batch_size_mismatch() -> None:
    with pytest.raises(InputValidationError, match=r"shape \(5,\)"):
        Decision.full(3, 2, 2).validate(2, 2, batch_size=5)


def test_static_controller_and_feedback_checks() -> None:
    c = make_controller("static", num_layers=3, num_heads=4)
    d = c.decide(torch.randn(5, 8), explore=False)
    assert d.depth.tolist() == [3] * 5 and bool(d.heads.all())
    c.feedback(d, torch.rand(5), torch.full((5,), 1e6))
    with pytest.raises(InputValidationError, match=r"quality` in \[0, 1\]"):
        c.feedback(d, torch.full((5,), 1.5), torch.ones(5))
    with pytest.raises(InputValidationError, match="finite"):
        c.feedback(d, torch.rand(5), torch.tensor([1.0, float("nan"), 1, 1, 1]))
    with pytest.raises(InputValidationError, match="context"):
        c.decide(torch.randn(5))
    with pytest.raises(InputValidationError, match="num_layers"):
        make_controller("static", num_layers=0, num_heads=4)


def test_feedback_and_validate_check_their_arguments() -> None:
    c = make_controller("static", num_layers=2, num_heads=2)
    with pytest.raises(InputValidationError, match="expected `decision` to be a Decision, got str"):
        c.feedback("x", torch.rand(1), torch.ones(1))  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="num_layers"):
        Decision.full(1, 3, 2).validate("3", 2)  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(InputValidationError, match="without a CUDA GPU"):
            Decision.full(1, 2, 2, device="cuda")


def test_to_moves_the_depths_the_heads_and_the_controllers_record() -> None:
    dht = make_controller("dht", num_layers=3, num_heads=2, context_dim=4, full_flops=1.0, seed=0)
    d = dht.decide(torch.randn(5, 4))
    moved = d.to("meta")  # a device every machine has: every tensor must change device
    assert moved.depth.device.type == moved.heads.device.type == "meta"
    assert type(moved.record) is type(d.record)
    for name in ("context", "depth_arm", "count_arm"):
        assert getattr(moved.record, name).device.type == "meta", name
        assert getattr(d.record, name).device.type == "cpu"  # the original is left where it was
    back = d.to("cpu")
    assert torch.equal(back.depth, d.depth) and torch.equal(back.record.count_arm, d.record.count_arm)
    assert Decision.full(2, 3, 2).to("meta").record is None
    with pytest.raises(InputValidationError, match="to be a torch device"):
        d.to("gpu0")
