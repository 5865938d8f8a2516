"""The contextual stop-or-continue bandit (banditformer/controllers/halting.py): known rewards of
each arm, the (exit point, arm) rows a feedback updates, the greedy rule and its stop bias from
crafted statistics, a checkpoint round trip, bad input refused with nothing changed, and a tiny
training run that halts samples at inference and calibrates to a budget."""

from __future__ import annotations

import pytest
import torch

import banditformer as bf
from banditformer import Decision, InputValidationError
from banditformer.bandits import LinUCB
from banditformer.controllers import BanditHalting
from banditformer.controllers.halting import CONTINUE, STOP, HaltingRecord
from banditformer.core.exits import ExitPoint, exit_features
from banditformer.model import DynamicTransformer, TransformerConfig
from banditformer.training import TrainConfig, Trainer, calibrate_budget

COSTS = (0.25, 0.5, 0.75, 1.0)


def halting(reveal: float = 0.0, lam: float = 1.0, **kwargs) -> BanditHalting:
    policy = LinUCB(2, context_dim=5, num_groups=3, seed=1)
    return BanditHalting(4, 2, 100.0, COSTS, policy=policy, reveal=reveal, lam=lam, **kwargs)


def at(depth: int, rows: list[int], logits: list[list[float]], patience: list[int] | None = None) -> ExitPoint:
    streak = torch.tensor(patience if patience is not None else [depth] * len(rows))
    return ExitPoint(depth, 4, torch.tensor(rows), torch.tensor(logits), torch.zeros(len(rows), 8), streak)


# three samples: A runs to depth 4, B stops at exit 2, C at exit 1
QUALITY = torch.tensor([[0.1, 0.4, 0.7, 0.9], [0.3, 0.8, 0.0, 0.0], [0.9, 0.0, 0.0, 0.0]])
DEPTH = torch.tensor([4, 2, 1])
LOGITS = {1: [[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]], 2: [[0.5, 0.0], [2.0, 0.0]], 3: [[1.5, 0.0]]}


def run_batch(c: BanditHalting) -> tuple[Decision, dict[int, torch.Tensor]]:
    """Decide for the three samples, show every exit each reached to ``halt`` (recording its
    features), and return the decision as run (depths ``DEPTH``) and each exit's features."""
    d = c.decide(torch.zeros(3, 8), explore=True)
    feats = {}
    for depth, logits in LOGITS.items():
        p = at(depth, list(range(len(logits))), logits)
        c.halt(p, d, explore=True)
        feats[depth] = exit_features(p)
    return Decision(DEPTH, d.heads, d.record, DEPTH.clone()), feats


def test_each_arms_reward_is_the_stop_reward_there_and_the_best_later_one() -> None:
    c = halting(lam=1.0)
    stop, go = c.exit_rewards(QUALITY, DEPTH)
    # r_d = (q_d - c_d + 1) / 2 at lam 1: A 0.425, 0.45, 0.475, 0.45; B 0.525, 0.65; C 0.825
    nan = float("nan")
    want_stop = torch.tensor([[0.425, 0.45, 0.475], [0.525, 0.65, nan], [0.825, nan, nan]], dtype=torch.float64)
    want_go = torch.tensor([[0.475, 0.475, 0.45], [0.65, nan, nan], [nan, nan, nan]], dtype=torch.float64)
    torch.testing.assert_close(stop, want_stop, equal_nan=True)
    torch.testing.assert_close(go, want_go, equal_nan=True)
    # lam 0: the quality itself; continuing at exit 1 is worth the best later quality
    stop0, go0 = halting(lam=0.0).exit_rewards(QUALITY, DEPTH)
    torch.testing.assert_close(go0[0], torch.tensor([0.9, 0.9, 0.9], dtype=torch.float64))
    torch.testing.assert_close(stop0[0], QUALITY[0, :3].double())


def test_feedback_updates_exactly_the_rows_with_a_known_reward() -> None:
    c = halting(lam=1.0)
    ran, feats = run_batch(c)
    c.feedback(ran, QUALITY[torch.arange(3), DEPTH - 1], torch.tensor([100.0, 50.0, 25.0]), exit_quality=QUALITY)
    stop, go = c.exit_rewards(QUALITY, DEPTH)
    # (group = exit - 1, arm, sample): stop at every exit a sample evaluated, continue where it went on
    rows = [(0, STOP, 0), (1, STOP, 0), (2, STOP, 0), (0, STOP, 1), (1, STOP, 1), (0, STOP, 2),
            (0, CONTINUE, 0), (1, CONTINUE, 0), (2, CONTINUE, 0), (0, CONTINUE, 1)]  # fmt: skip
    gram = torch.zeros(3, 2, 5, 5, dtype=torch.float64)
    xr = torch.zeros(3, 2, 5, dtype=torch.float64)
    for g, arm, i in rows:
        x = feats[g + 1][i].double()
        r = (stop if arm == STOP else go)[i, g]
        gram[g, arm] += torch.outer(x, x)
        xr[g, arm] += r * x
    torch.testing.assert_close(c.policy.gram, gram)
    torch.testing.assert_close(c.policy.xr, xr)
    assert int(c.feedback_calls) == 1
    assert float(c.policy.gram[1, CONTINUE].abs().sum()) > 0 and float(c.policy.gram[2, CONTINUE, 0, 0]) > 0


def test_revealed_samples_never_halt_and_inform_every_exit() -> None:
    c = halting(reveal=1.0)
    # a policy that has learnt to stop everywhere
    x = torch.rand(64, 5, generator=torch.Generator().manual_seed(0))
    for g in range(3):
        groups = torch.full((64,), g)
        c.policy.update(torch.full((64,), STOP), torch.ones(64), x, groups=groups)
        c.policy.update(torch.full((64,), CONTINUE), torch.zeros(64), x, groups=groups)
    d = c.decide(torch.zeros(3, 8), explore=True)
    assert d.record.reveal.all()
    assert c.halt(at(1, [0, 1, 2], LOGITS[1]), d, explore=True).tolist() == [False] * 3
    assert c.halt(at(1, [0, 1, 2], LOGITS[1]), d, explore=False).tolist() == [False] * 3  # the decision's reveal
    greedy = c.decide(torch.zeros(3, 8), explore=False)  # inference reveals nobody
    assert not greedy.record.reveal.any()
    assert c.halt(at(1, [0, 1, 2], LOGITS[1]), greedy, explore=False).tolist() == [True] * 3
    for depth in (2, 3):
        c.halt(at(depth, [0, 1, 2], [[1.0, 0.0]] * 3), d, explore=True)
    gram = c.policy.gram.clone()
    full = torch.full((3,), 4)
    c.feedback(Decision(full, d.heads, d.record, full), QUALITY[:, 3], torch.full((3,), 100.0),
               exit_quality=QUALITY.clamp_min(0.1))  # fmt: skip
    added = (c.policy.gram - gram).diagonal(dim1=-2, dim2=-1).sum(-1)  # (3 exits, 2 arms)
    assert bool((added > 0).all())  # both arms of every exit point learnt from each revealed sample


def test_the_greedy_rule_and_its_stop_bias_from_crafted_statistics() -> None:
    c = halting()
    point = at(2, [0, 1], [[4.0, 0.0], [0.1, 0.0]], patience=[2, 1])
    x = exit_features(point)  # row 0 confident, row 1 unsure
    n = 50
    ctx = x.repeat(n, 1)
    groups = torch.full((2 * n,), 1)  # exit point 2
    sure = torch.tensor([1.0, 0.0]).repeat(n)  # stop pays on the confident row, not on the unsure one
    c.policy.update(torch.full((2 * n,), STOP), sure, ctx, groups=groups)
    c.policy.update(torch.full((2 * n,), CONTINUE), 1.0 - sure, ctx, groups=groups)
    d = c.decide(torch.zeros(2, 8), explore=False)
    margin = c.stop_margin(x, 2)
    assert margin[0] > 0.9 and margin[1] < -0.9
    assert c.halt(point, d, explore=False).tolist() == [True, False]
    c.set_operating_point(-1.0)  # stop only where stopping is worth a whole reward more
    assert c.halt(point, d, explore=False).tolist() == [False, False]
    c.set_operating_point(1.0)
    assert c.halt(point, d, explore=False).tolist() == [True, True]
    c.set_operating_point(0.0)
    # another exit point's statistics are untouched: ties there continue
    assert c.halt(at(1, [0, 1], [[4.0, 0.0], [0.1, 0.0]]), d, explore=False).tolist() == [False, False]


def test_a_checkpoint_round_trip_keeps_statistics_lam_knob_and_draws() -> None:
    c = halting(reveal=0.5, flop_budget=0.3, lam=0.2, seed=7)
    ran, _ = run_batch(c)
    c.feedback(ran, QUALITY[torch.arange(3), DEPTH - 1], torch.tensor([100.0, 50.0, 25.0]), exit_quality=QUALITY)
    c.set_operating_point(0.25)
    assert float(c.lam) != 0.2  # dual ascent moved it
    fresh = halting(reveal=0.5, flop_budget=0.3, lam=0.2, seed=7)
    fresh.load_state_dict(c.state_dict())
    for name, value in c.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, fresh.state_dict()[name]), name
    assert fresh._calls == 1 and float(fresh.stop_bias) == 0.25
    assert torch.equal(fresh.decide(torch.zeros(50, 8)).record.reveal, c.decide(torch.zeros(50, 8)).record.reveal)
    p = at(1, [0, 1, 2], LOGITS[1])
    d = c.decide(torch.zeros(3, 8), explore=False)
    assert torch.equal(fresh.halt(p, d, explore=False), c.halt(p, d, explore=False))
    with pytest.raises(InputValidationError):
        halting(reveal=0.1, flop_budget=0.3, lam=0.2, seed=7).load_state_dict(c.state_dict())  # another configuration


def test_bad_input_is_refused_and_changes_nothing() -> None:
    c = halting(flop_budget=0.5)
    ran, _ = run_batch(c)
    before = {k: v.clone() for k, v in c.state_dict().items() if isinstance(v, torch.Tensor)}
    quality, flops = QUALITY[torch.arange(3), DEPTH - 1], torch.tensor([100.0, 50.0, 25.0])

    def unchanged() -> None:
        for k, v in c.state_dict().items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, before[k]), k
        assert c._calls == 0

    with pytest.raises(InputValidationError, match="exit_quality"):
        c.feedback(ran, quality, flops)
    bad = QUALITY.clone()
    bad[1, 0] = 1.5
    with pytest.raises(InputValidationError, match="exit_quality"):
        c.feedback(ran, quality, flops, exit_quality=bad)
    unchanged()
    # the decision as decided (depth 4 everywhere), not as run: exits without features
    planned = Decision(torch.full((3,), 4), ran.heads, ran.record, torch.full((3,), 4))
    with pytest.raises(InputValidationError, match="without features"):
        c.feedback(planned, quality, flops, exit_quality=QUALITY)
    unchanged()
    foreign = Decision(DEPTH, ran.heads, None, DEPTH.clone())
    with pytest.raises(InputValidationError, match="HaltingRecord"):
        c.feedback(foreign, quality, flops, exit_quality=QUALITY)
    short = Decision(DEPTH, ran.heads, HaltingRecord(torch.zeros(2, dtype=torch.bool), torch.zeros(2, 3, 5)), DEPTH)
    with pytest.raises(InputValidationError, match="record for 3 samples"):
        c.feedback(short, quality, flops, exit_quality=QUALITY)
    unchanged()
    with pytest.raises(InputValidationError, match="stop bias"):
        c.set_operating_point(1.5)
    unchanged()
    with pytest.raises(InputValidationError, match="num_groups=3"):
        BanditHalting(4, 2, 100.0, COSTS, policy=LinUCB(2, context_dim=5))
    with pytest.raises(InputValidationError, match="increasing"):
        BanditHalting(4, 2, 100.0, (0.5, 0.25, 0.75, 1.0), policy=LinUCB(2, context_dim=5, num_groups=3))
    with pytest.raises(InputValidationError, match="num_layers"):
        BanditHalting(1, 2, 100.0, (1.0,), policy=LinUCB(2, context_dim=5, num_groups=1))
    with pytest.raises(InputValidationError, match="reveal"):
        halting(reveal=1.5)


def test_warm_up_halts_nobody_and_teaches_nothing() -> None:
    c = halting(reveal=0.5, warmup_steps=1)
    d = c.decide(torch.zeros(3, 8), explore=True)
    assert d.record.warmup and not d.record.reveal.any()
    assert c.halt(at(1, [0, 1, 2], LOGITS[1]), d, explore=True).tolist() == [False] * 3
    for depth in (2, 3):
        c.halt(at(depth, [0, 1, 2], [[1.0, 0.0]] * 3), d, explore=True)
    c.feedback(d, QUALITY[:, 3], torch.full((3,), 100.0), exit_quality=QUALITY.clamp_min(0.1))
    assert float(c.policy.gram.abs().sum()) == 0 and int(c.feedback_calls) == 1
    assert not c.decide(torch.zeros(3, 8), explore=True).record.warmup  # warm-up is over


def test_the_registry_builds_it_from_the_cost_table(table) -> None:
    c = bf.make_controller("bandit_halting", num_layers=6, num_heads=4, full_flops=table.full, cost_table=table)
    assert c.halts and type(c.policy).__name__ == "LinUCB" and c.policy.num_groups == 5
    assert len(c.exit_costs) == 6 and c.exit_costs[-1] > 1.0
    c2 = bf.make_controller("bandit_halting", num_layers=6, num_heads=4, full_flops=table.full, cost_table=table,
                            policy="lin_thompson", reveal=0.3)  # fmt: skip
    assert type(c2.policy).__name__ == "LinThompson" and c2.reveal == 0.3
    with pytest.raises(InputValidationError):
        bf.make_controller("bandit_halting", num_layers=6, num_heads=4, full_flops=table.full, cost_table=table,
                           thresholds=(0.5,))  # fmt: skip


def test_a_tiny_run_trains_the_bandit_and_halts_samples_at_inference() -> None:
    task = bf.make_task("pointer_chasing", seed=0, num_samples=300, length=6, max_hops=2)
    torch.manual_seed(0)
    model = DynamicTransformer(TransformerConfig.for_task(task, d_model=16, num_layers=3, num_heads=2, exit_heads=True))
    table = model.cost_table()
    controller = bf.make_controller(
        "bandit_halting", num_layers=3, num_heads=2, full_flops=table.full, cost_table=table, lam=0.5, reveal=0.2
    )
    t = Trainer(model, controller, task, TrainConfig(epochs=3, batch_size=32, lr=1e-2, progress=False))
    assert t.objective == "joint"
    t.fit()
    assert int(controller.feedback_calls) == t.step > 0
    counts = controller.policy.gram.diagonal(dim1=-2, dim2=-1).sum(-1)  # (2 groups, 2 arms)
    assert bool((counts > 0).all())  # every (exit point, arm) learnt something
    val = t.evaluate(task.val)
    assert bool((val["depth"] < 3).any())  # some samples halt at inference
    assert val["flop_saving"] > 0
    chosen = calibrate_budget(model, controller, task.val, 0.6)
    assert chosen["flop_ratio"] <= 0.6
    again = t.evaluate(task.val)
    assert again["flops_per_sample"] / t.full_flops == pytest.approx(chosen["flop_ratio"])
