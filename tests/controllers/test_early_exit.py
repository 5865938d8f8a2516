"""The exit-point controllers: threshold exits (banditformer/controllers/early_exit.py), patience
(patience.py) and the bandit over thresholds (threshold_bandit.py): known answers for their
halting rules, full-information feedback, a checkpoint round trip of the knob, and calibration to
a FLOP budget (banditformer/training/calibration.py)."""

from __future__ import annotations

import pytest
import torch

from banditformer import Decision, InputValidationError
from banditformer.bandits import UCB1
from banditformer.controllers import PatienceExit, ThresholdBandit, ThresholdExit
from banditformer.core.exits import ExitPoint
from banditformer.plugins import make_controller


def point(logits: list[list[float]], depth: int = 1, layers: int = 4, patience: list[int] | None = None) -> ExitPoint:
    n = len(logits)
    streak = torch.tensor(patience if patience is not None else [1] * n)
    return ExitPoint(depth, layers, torch.arange(n), torch.tensor(logits), torch.zeros(n, 2), streak)


@pytest.mark.parametrize(
    ("metric", "threshold", "want"),
    [("max_prob", 0.8, [True, False, False]), ("margin", 0.5, [True, False, False]),
     ("entropy", 0.2, [True, False, False]), ("entropy", 1.0, [True, True, True])],
)  # fmt: skip
def test_threshold_exits_halt_by_their_measure(metric: str, threshold: float, want: list[bool]) -> None:
    c = ThresholdExit(4, 2, threshold=threshold, metric=metric)
    p = point([[5.0, 0.0], [0.5, 0.0], [0.0, 0.0]])  # p_max 0.993, 0.622, 0.5
    d = Decision.full(3, 4, 2)
    assert c.halt(p, d, explore=False).tolist() == want
    assert c.halt(p, d, explore=True).tolist() == [False] * 3  # trained at full depth
    assert ThresholdExit(4, 2, threshold=threshold, metric=metric, train_halting=True).halt(p, d).tolist() == want


def test_patience_halts_after_patience_agreeing_exits() -> None:
    c = PatienceExit(5, 2, patience=2)
    p = point([[1.0, 0.0]] * 4, depth=3, layers=5, patience=[1, 2, 3, 4])
    assert c.halt(p, Decision.full(4, 5, 2), explore=False).tolist() == [False, False, True, True]
    c.set_operating_point(3)
    assert c.halt(p, Decision.full(4, 5, 2), explore=False).tolist() == [False, False, False, True]
    with pytest.raises(InputValidationError, match="integer >= 1"):
        c.set_operating_point(1.5)
    assert c.operating_points() == [1.0, 2.0, 3.0, 4.0]  # 4 = L - 1: nobody halts


def test_the_knob_travels_with_the_state_dict() -> None:
    c = ThresholdExit(4, 2)
    c.set_operating_point(0.25)
    fresh = ThresholdExit(4, 2)
    fresh.load_state_dict(c.state_dict())
    assert fresh.halt(point([[0.1, 0.0]]), Decision.full(1, 4, 2), explore=False).tolist() == [True]
    with pytest.raises(InputValidationError):
        ThresholdExit(4, 2, metric="entropy").load_state_dict(c.state_dict())  # another configuration


def bandit(reveal: float = 1.0, lam: float = 0.0, lower_arms: bool = True) -> ThresholdBandit:
    costs = (0.25, 0.5, 0.75, 1.0)
    return ThresholdBandit(
        4, 2, 100.0, costs, policy=UCB1(3), thresholds=(0.6, 0.8, 0.95), reveal=reveal, lam=lam, lower_arms=lower_arms
    )


def test_threshold_bandit_exits_of_each_arm_known_answer() -> None:
    c = bandit()
    scores = torch.tensor([[0.7, 0.85, 0.99, float("nan")], [0.5, 0.5, 0.5, 0.9]])
    assert c.exits_of(scores).tolist() == [[1, 2, 3], [4, 4, 4]]


def test_a_revealed_sample_updates_every_arm_with_what_it_would_have_earned() -> None:
    c = bandit(reveal=1.0, lam=0.0)
    d = c.decide(torch.zeros(1, 2), explore=True)
    assert bool(d.record.reveal.all())
    logits = [[0.85, 0.0], [2.0, 0.0], [4.0, 0.0]]  # confidences 0.70, 0.88, 0.98 at exits 1..3
    for depth, lg in enumerate(logits, start=1):
        p = ExitPoint(depth, 4, torch.tensor([0]), torch.tensor([lg]), torch.zeros(1, 2), torch.tensor([depth]))
        assert c.halt(p, d).tolist() == [False]  # revealed: runs on whatever its arm says
    quality = torch.tensor([[0.1, 0.4, 0.7, 0.9]])  # the true class's probability at each exit
    c.feedback(d, quality[:, 3], torch.tensor([100.0]), exit_quality=quality)
    # arms 0.6, 0.8, 0.95 would have exited at 1, 2, 3 and earned (lam = 0) the quality there
    torch.testing.assert_close(c.policy.counts[0].float(), torch.ones(3))
    torch.testing.assert_close(c.policy.sums[0].float(), torch.tensor([0.1, 0.4, 0.7]))


@pytest.mark.parametrize("lower_arms", [True, False])
def test_a_halted_sample_updates_its_arm_and_every_lower_thresholds_arm_whose_exit_it_showed(lower_arms) -> None:
    c = bandit(reveal=0.0, lam=0.0, lower_arms=lower_arms)
    d = c.decide(torch.zeros(3, 2), explore=True)
    assert d.record.arm.tolist() == [0, 1, 2]  # UCB1 deals the untried arms: thresholds 0.6, 0.8, 0.95
    logits = torch.tensor([[0.85, 0.0], [2.0, 0.0], [4.0, 0.0]])  # confidences 0.70, 0.88, 0.98 at exits 1..3
    active = torch.arange(3)
    depth = torch.full((3,), 4)
    for exit_depth in range(1, 4):
        lg = logits[exit_depth - 1].expand(len(active), 2)
        ones = torch.ones(len(active), dtype=torch.long)
        point = ExitPoint(exit_depth, 4, active, lg, torch.zeros(len(active), 2), ones)
        stop = c.halt(point, d)
        depth[active[stop]] = exit_depth
        active = active[~stop]
    assert depth.tolist() == [1, 2, 3]  # each arm's own exit
    quality = torch.tensor([0.1, 0.4, 0.7, 0.9]).expand(3, 4)  # the true class's probability at each exit
    ran = Decision(depth, d.heads, d.record, depth)
    c.feedback(ran, quality.gather(1, (depth - 1).unsqueeze(1)).squeeze(1), depth.float() * 25, exit_quality=quality)
    if lower_arms:
        # sample 1 (threshold 0.8) also tells arm 0.6's reward (exit 1); sample 2 (0.95) tells both lower arms'
        torch.testing.assert_close(c.policy.counts[0].float(), torch.tensor([3.0, 2.0, 1.0]))
        torch.testing.assert_close(c.policy.sums[0].float(), torch.tensor([0.3, 0.8, 0.7]))
    else:
        torch.testing.assert_close(c.policy.counts[0].float(), torch.ones(3))
        torch.testing.assert_close(c.policy.sums[0].float(), torch.tensor([0.1, 0.4, 0.7]))
    with pytest.raises(InputValidationError, match="`lower_arms` to be a bool"):
        bandit(lower_arms="yes")  # type: ignore[arg-type]


def test_a_halted_sample_updates_only_its_own_arm_and_exit_quality_is_required() -> None:
    c = bandit(reveal=0.0, lam=1.0, lower_arms=False)
    d = c.decide(torch.zeros(2, 2), explore=True)
    ran = Decision(torch.tensor([1, 4]), d.heads, d.record, torch.tensor([1, 4]))
    with pytest.raises(InputValidationError, match="exit_quality"):
        c.feedback(ran, torch.tensor([0.9, 0.5]), torch.tensor([25.0, 100.0]))
    q = torch.tensor([[0.9, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.5]])
    c.feedback(ran, torch.tensor([0.9, 0.5]), torch.tensor([25.0, 100.0]), exit_quality=q)
    assert int(c.policy.counts.sum()) == 2
    want = torch.zeros(3, dtype=torch.float64)  # each sample's reward on its own arm: (q - lam c + lam) / (1 + lam)
    want[d.record.arm[0]] += (0.9 - 0.25 + 1) / 2
    want[d.record.arm[1]] += (0.5 - 1.0 + 1) / 2
    torch.testing.assert_close(c.policy.sums[0].double(), want)


def test_the_registry_builds_the_exit_controllers_with_their_defaults() -> None:
    from tests.model.test_dynamic import make_model

    table = make_model(0, num_layers=4).cost_table()
    c = make_controller("threshold_bandit", num_layers=4, num_heads=4, full_flops=table.full, cost_table=table)
    assert c.halts and len(c.exit_costs) == 4 and c.exit_costs[-1] > 1.0  # every exit's classifier counted
    assert make_controller("entropy_exit", num_layers=4, num_heads=4).metric == "entropy"
    assert make_controller("patience_exit", num_layers=4, num_heads=4).halts
    with pytest.raises(InputValidationError, match="thresholds"):
        make_controller("threshold_bandit", num_layers=4, num_heads=4, full_flops=1.0, cost_table=table,
                        thresholds=(1.5,))  # fmt: skip


def test_an_exit_point_with_rows_outside_the_batch_is_refused() -> None:
    p = point([[1.0, 0.0], [0.0, 1.0]])
    bad = ExitPoint(1, 4, torch.tensor([0, 5]), p.logits, p.context, p.patience)
    with pytest.raises(InputValidationError, match=r"point.rows` in \[0, 2\), got 0..5"):
        ThresholdExit(4, 2).halt(bad, Decision.full(2, 4, 2), explore=False)
