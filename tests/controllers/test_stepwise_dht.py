"""DHT as the sample goes (banditformer/controllers/stepwise_dht.py): head counts and head sets chosen
per block at the exit point before it, each sample's exit costs from the heads it ran, the rows each
policy learns from and their rewards, a checkpoint round trip, bad input refused with nothing
changed, and a tiny training run whose samples get different head counts at inference."""

from __future__ import annotations

import functools

import pytest
import torch

import banditformer as bf
from banditformer import Decision, InputValidationError
from banditformer.bandits import CTS, UCB1, LinUCB
from banditformer.controllers import StepwiseDHT
from banditformer.controllers.dht import dht_reward
from banditformer.controllers.halting import STOP
from banditformer.core import CostTable
from banditformer.core.exits import ExitPoint, exit_features
from banditformer.model import DynamicTransformer, TransformerConfig
from banditformer.training import TrainConfig, Trainer, calibrate_budget

# 4 blocks of 2 heads: a block costs 1 with one head, 2 with both; full = 4 + 3 * 2 + 0.5 = 10.5
TABLE = CostTable(stem=4.0, layers=torch.tensor([[0.0, 1.0, 2.0]] * 4), classifier=0.5, seq_len=4)


def stepwise(contextual: bool = False, lam: float = 1.0, **kwargs) -> StepwiseDHT:
    counts = LinUCB(2, context_dim=5, num_groups=3, seed=2) if contextual else UCB1(2, num_groups=3)
    return StepwiseDHT(4, 2, TABLE, policy=LinUCB(2, context_dim=5, num_groups=3, seed=1), count_policy=counts,
                       head_policy=CTS(2, num_groups=3, seed=3), lam=lam, reveal=0.0, **kwargs)  # fmt: skip


def at(depth: int, rows: list[int], logits: list[list[float]]) -> ExitPoint:
    return ExitPoint(depth, 4, torch.tensor(rows), torch.tensor(logits), torch.zeros(len(rows), 8),
                     torch.ones(len(rows), dtype=torch.long))  # fmt: skip


def run_batch(c: StepwiseDHT, explore: bool = True) -> tuple[Decision, dict[int, torch.Tensor]]:
    """Two samples: A (row 0) runs to depth 4, B (row 1) stops at exit 2. Each exit point is
    shown to halt (every running row) and then to route (the rows going on); returns the decision
    as run and each exit point's features."""
    d = c.decide(torch.zeros(2, 8), explore=explore)
    heads = d.heads.clone()
    feats = {}
    for depth, rows in ((1, [0, 1]), (2, [0, 1]), (3, [0])):
        p = at(depth, rows, [[float(depth), 0.0]] * len(rows))
        c.halt(p, d, explore=explore)
        feats[depth] = exit_features(p)
        going = [r for r in rows if not (r == 1 and depth == 2)]
        q = at(depth, going, [[float(depth), 0.0]] * len(going))
        heads[going, depth] = c.route(q, d, explore=explore)
    depth = torch.tensor([4, 2])
    return Decision(depth, heads, d.record, depth.clone()), feats


def test_route_picks_each_blocks_head_count_by_its_own_statistics_and_records_it() -> None:
    c = stepwise()
    # block 1 has learnt that one head pays, block 2 that two do
    for group, best in ((0, 0), (1, 1)):
        arms = torch.tensor([best, 1 - best] * 20)
        c.count_policy.update(arms, (arms == best).double() * 0.9, groups=torch.full((40,), group))
    d = c.decide(torch.zeros(3, 8), explore=False)
    one = c.route(at(1, [0, 1, 2], [[1.0, 0.0]] * 3), d, explore=False)
    two = c.route(at(2, [0, 2], [[1.0, 0.0]] * 2), d, explore=False)
    assert one.sum(1).tolist() == [1, 1, 1] and two.sum(1).tolist() == [2, 2]
    assert d.record.count_arm.tolist() == [[0, 1, -1], [0, -1, -1], [0, 1, -1]]
    assert c.routes and c.halts


def test_each_samples_exit_costs_are_those_of_the_heads_it_ran() -> None:
    c = stepwise()
    heads = torch.ones(2, 4, 2, dtype=torch.bool)
    heads[0, 1, 1] = False  # sample 0: one head in block 1
    d = Decision(torch.tensor([4, 2]), heads, None, torch.tensor([4, 2]))
    costs = c.sample_exit_costs(d) * TABLE.full
    # exit d: stem 4 + the blocks before it + 0.5 per exit evaluated
    torch.testing.assert_close(costs[0], torch.tensor([4.5, 6.0, 8.5, 11.0], dtype=torch.float64))
    torch.testing.assert_close(costs[1], torch.tensor([4.5, 7.0, 9.5, 12.0], dtype=torch.float64))  # every head
    torch.testing.assert_close(costs[1] / TABLE.full, torch.tensor(c.exit_costs, dtype=torch.float64))
    # and the model's own count: the last exit's cost is the decision's FLOPs
    assert float(costs[0, 3]) == pytest.approx(float(TABLE.sample_flops(d)[0]))


def test_feedback_rewards_each_block_decision_with_its_samples_reward_and_the_stop_arm_with_its_costs() -> None:
    c = stepwise(lam=1.0)
    ran, feats = run_batch(c)
    quality = torch.tensor([0.9, 0.6])
    flops = TABLE.sample_flops(ran)
    exit_quality = torch.tensor([[0.2, 0.4, 0.7, 0.9], [0.3, 0.6, 0.0, 0.0]])
    arms = ran.record.count_arm.clone()
    c.feedback(ran, quality, flops, exit_quality=exit_quality)
    r = dht_reward(quality.double(), flops / TABLE.full, 1.0)
    # counts: A's blocks 1..3, B's block 1, each with the arm chosen and its sample's reward
    counts, sums = torch.zeros(3, 2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)
    for i, blocks in ((0, (1, 2, 3)), (1, (1,))):
        for block in blocks:
            counts[block - 1, arms[i, block - 1]] += 1
            sums[block - 1, arms[i, block - 1]] += float(r[i].float())
    torch.testing.assert_close(c.count_policy.counts, counts)
    torch.testing.assert_close(c.count_policy.sums, sums)
    assert bool((arms[1, 1:] == -1).all())  # B was never routed past exit 2
    # the stop arm at A's exit 2 is rewarded with A's cost to exit 2 given the heads it ran
    cost = float(c.sample_exit_costs(ran)[0, 1])
    want = (0.4 - cost + 1.0) / 2.0
    x = feats[2].double()  # exit 2's features of A (row 0) and B (row 1)
    got = c.policy.xr[1, STOP] - want * x[0]  # B stopped there too: its own reward times its features
    cost_b = float(c.sample_exit_costs(ran)[1, 1])
    torch.testing.assert_close(got, (0.6 - cost_b + 1.0) / 2.0 * x[1], rtol=1e-6, atol=1e-7)


def test_a_contextual_head_count_policy_learns_from_the_exit_features_it_chose_by() -> None:
    c = stepwise(contextual=True)
    ran, feats = run_batch(c)
    arms = ran.record.count_arm.clone()
    c.feedback(ran, torch.tensor([0.9, 0.6]), TABLE.sample_flops(ran),
               exit_quality=torch.tensor([[0.2, 0.4, 0.7, 0.9], [0.3, 0.6, 0.0, 0.0]]))  # fmt: skip
    gram = torch.zeros(3, 2, 5, 5, dtype=torch.float64)
    for i, blocks in ((0, (1, 2, 3)), (1, (1,))):
        for block in blocks:
            x = feats[block][i].double()
            gram[block - 1, arms[i, block - 1]] += torch.outer(x, x)
    torch.testing.assert_close(c.count_policy.gram, gram)


def test_a_checkpoint_round_trip_keeps_every_policy_and_routes_alike() -> None:
    c = stepwise(contextual=True, flop_budget=0.5, seed=4)
    ran, _ = run_batch(c)
    c.feedback(ran, torch.tensor([0.9, 0.6]), TABLE.sample_flops(ran),
               exit_quality=torch.tensor([[0.2, 0.4, 0.7, 0.9], [0.3, 0.6, 0.0, 0.0]]))  # fmt: skip
    fresh = stepwise(contextual=True, flop_budget=0.5, seed=4)
    fresh.load_state_dict(c.state_dict())
    for name, value in c.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, fresh.state_dict()[name]), name
    p = at(1, [0, 1], [[3.0, 0.0], [0.1, 0.0]])
    d1, d2 = c.decide(torch.zeros(2, 8), explore=False), fresh.decide(torch.zeros(2, 8), explore=False)
    assert torch.equal(c.route(p, d1, explore=False), fresh.route(p, d2, explore=False))
    with pytest.raises(InputValidationError):
        stepwise(contextual=False, flop_budget=0.5, seed=4).load_state_dict(c.state_dict())  # another count policy


def test_bad_input_is_refused_and_changes_nothing() -> None:
    c = stepwise()
    ran, _ = run_batch(c)
    before = {k: v.clone() for k, v in c.state_dict().items() if isinstance(v, torch.Tensor)}
    q, eq = torch.tensor([0.9, 0.6]), torch.tensor([[0.2, 0.4, 0.7, 0.9], [0.3, 0.6, 0.0, 0.0]])
    planned_heads = Decision(ran.depth, torch.ones_like(ran.heads), ran.record, ran.exits)  # not the heads as run
    assert not torch.equal(planned_heads.heads, ran.heads)  # an untried UCB1 starts with one head
    with pytest.raises(InputValidationError, match="head counts that differ"):
        c.feedback(planned_heads, q, TABLE.sample_flops(planned_heads), exit_quality=eq)
    foreign = Decision(ran.depth, ran.heads, None, ran.exits)
    with pytest.raises(InputValidationError, match="Record"):
        c.feedback(foreign, q, TABLE.sample_flops(ran), exit_quality=eq)
    with pytest.raises(InputValidationError, match="Record"):
        c.route(at(1, [0], [[1.0, 0.0]]), foreign)
    for k, v in c.state_dict().items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, before[k]), k
    with pytest.raises(InputValidationError, match="cost table of a 3-block, 2-head model, got one of 4 blocks"):
        StepwiseDHT(3, 2, TABLE, policy=LinUCB(2, context_dim=5, num_groups=2), count_policy=UCB1(2, num_groups=2),
                    head_policy=CTS(2, num_groups=2))  # fmt: skip
    with pytest.raises(InputValidationError, match="head_policy"):
        StepwiseDHT(4, 2, TABLE, policy=LinUCB(2, context_dim=5, num_groups=3), count_policy=UCB1(2, num_groups=3),
                    head_policy=CTS(2))  # fmt: skip
    with pytest.raises(InputValidationError, match="count_policy"):
        StepwiseDHT(4, 2, TABLE, policy=LinUCB(2, context_dim=5, num_groups=3),
                    count_policy=LinUCB(2, context_dim=8, num_groups=3), head_policy=CTS(2, num_groups=3))  # fmt: skip


def test_warm_up_runs_every_head_and_teaches_nothing() -> None:
    c = stepwise(warmup_steps=1)
    ran, _ = run_batch(c)
    assert bool(ran.heads.all()) and bool((ran.record.count_arm == -1).all())
    c.feedback(ran, torch.tensor([0.9, 0.6]), TABLE.sample_flops(ran),
               exit_quality=torch.tensor([[0.2, 0.4, 0.7, 0.9], [0.3, 0.6, 0.0, 0.0]]))  # fmt: skip
    assert float(c.count_policy.counts.sum()) == 0 and int(c.feedback_calls) == 1


def test_a_tiny_run_gives_samples_their_own_head_counts_and_calibrates_to_a_budget() -> None:
    task = bf.make_task("pointer_chasing", seed=0, num_samples=300, length=6, max_hops=2)
    torch.manual_seed(0)
    model = DynamicTransformer(TransformerConfig.for_task(task, d_model=16, num_layers=4, num_heads=2, exit_heads=True))
    controller = bf.make_controller("stepwise_dht", num_layers=4, num_heads=2, cost_table=model.cost_table(), lam=0.5)
    assert type(controller.count_policy).__name__ == "LinUCB" and controller.count_policy.num_groups == 3
    t = Trainer(model, controller, task, TrainConfig(epochs=3, batch_size=32, lr=1e-2, progress=False))
    assert t.objective == "joint"
    t.fit()
    learnt = controller.head_policy.successes + controller.head_policy.failures
    assert bool((learnt.sum(1) > 0).all())  # every block's head set learnt
    assert bool((controller.count_policy.gram.diagonal(dim1=-2, dim2=-1).sum((1, 2)) > 0).all())
    controller.set_operating_point(-1.0)  # nobody stops: every block is routed at inference
    val = t.evaluate(task.val)
    assert bool((val["depth"] == 4).all())
    counts = val["head_counts"][:, 1:]
    assert bool((counts == 1).any())  # the count policies chose one head of two in some blocks (lam 0.5)
    controller.set_operating_point(0.0)
    chosen = calibrate_budget(model, controller, task.val, 0.6)
    assert chosen["flop_ratio"] <= 0.6
    again = t.evaluate(task.val)  # inference routes and halts as the calibration replayed
    assert again["flops_per_sample"] / t.full_flops == pytest.approx(chosen["flop_ratio"])
    assert again["accuracy"] == pytest.approx(chosen["accuracy"])
    # the fast path and the reference path route and halt alike on the trained controller
    h, context = model.stem(task.val.x[:64])
    d = controller.decide(context, explore=False)
    outs = [
        model.run_exits(h, d, halt=functools.partial(controller.halt, decision=d, explore=False),
                        route=functools.partial(controller.route, decision=d, explore=False), path=path)
        for path in ("fast", "reference")
    ]  # fmt: skip
    assert torch.equal(outs[0].depth, outs[1].depth) and torch.equal(outs[0].heads, outs[1].heads)
    torch.testing.assert_close(outs[0].logits, outs[1].logits, rtol=1e-5, atol=1e-5)
