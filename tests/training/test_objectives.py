"""Multi-exit training (banditformer/training/trainer.py): the objectives' known answers, what the
trainer feeds a halting controller, the sandwich rule's FLOPs, resumes that end where an
uninterrupted run ends, and calibration to a FLOP budget on the validation split
(banditformer/training/calibration.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import banditformer as bf
from banditformer.model import DynamicTransformer, TransformerConfig
from banditformer.training import (
    TrainConfig,
    Trainer,
    calibrate_budget,
    multi_exit_loss,
    operating_curve,
    record_exits,
)


def trainer(controller: str = "entropy_exit", objective: str = "auto", epochs: int = 2, **kwargs) -> Trainer:
    task = bf.make_task("pointer_chasing", seed=0, num_samples=300, length=6, max_hops=2)
    torch.manual_seed(0)
    model = DynamicTransformer(TransformerConfig.for_task(task, d_model=16, num_layers=3, num_heads=2, exit_heads=True))
    table = model.cost_table()
    options = {"num_layers": 3, "num_heads": 2, **kwargs}
    if controller == "threshold_bandit":
        options.update(full_flops=table.full, cost_table=table)
    if controller == "stepwise_dht":
        options.update(cost_table=table)
    if controller == "dht":
        options.update(context_dim=16, full_flops=table.full, cost_table=table)
    config = TrainConfig(epochs=epochs, batch_size=32, lr=1e-2, progress=False, objective=objective)
    return Trainer(model, bf.make_controller(controller, **options), task, config)


def test_the_joint_loss_weighs_exit_d_by_d_over_the_exits_each_sample_passed() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, generator=gen)
    depth, y = torch.tensor([4, 2, 1]), torch.tensor([0, 3, 1])
    want = []
    for i in range(3):
        d = int(depth[i])
        ce = [F.cross_entropy(logits[i, j : j + 1], y[i : i + 1]) for j in range(d)]
        want.append(sum((j + 1) * c for j, c in enumerate(ce)) / sum(range(1, d + 1)))
    torch.testing.assert_close(multi_exit_loss(logits, depth, y), torch.stack(want).mean())
    # distillation: the deepest exit teaches the shallower ones; a sample of depth 1 has no student
    t = 2.0
    kd = []
    for i in range(2):
        d = int(depth[i])
        teacher = (logits[i, d - 1] / t).softmax(-1)
        kls = [F.kl_div((logits[i, j] / t).log_softmax(-1), teacher, reduction="sum") * t * t for j in range(d - 1)]
        kd.append(sum(kls) / len(kls))
    kd.append(torch.tensor(0.0))
    mixed = multi_exit_loss(logits, depth, y, distill_weight=0.3, temperature=t)
    torch.testing.assert_close(mixed, 0.7 * torch.stack(want).mean() + 0.3 * torch.stack(kd).mean())


def test_objectives_resolve_and_a_bad_one_is_refused() -> None:
    assert trainer("entropy_exit").objective == "joint"
    assert trainer("static").objective == "last"
    assert trainer("static", objective="distill").objective == "distill"
    with pytest.raises(bf.InputValidationError, match="objective"):
        TrainConfig(objective="every")


def test_a_halting_controller_gets_every_exits_quality_and_pays_every_exit() -> None:
    t = trainer("threshold_bandit", reveal=0.5, lam=0.5)
    seen = {}
    original = t.controller._feedback

    def spy(decision, quality, flops, **extra):
        seen.update(decision=decision, quality=quality, flops=flops, **extra)
        original(decision, quality, flops, **extra)

    t.controller._feedback = spy
    x, y = t.task.train.x[:32], t.task.train.y[:32]
    t.train_step(x, y)
    d, q = seen["decision"], seen["exit_quality"]
    assert q.shape == (32, 3) and torch.equal(d.exits, d.depth)
    assert bool((q[d.depth == 3] > 0).all())
    # the exit a sample stopped at is the quality it was scored by
    torch.testing.assert_close(q[torch.arange(32), d.depth - 1], seen["quality"])
    table = t.model.cost_table()
    torch.testing.assert_close(seen["flops"].double(), table.sample_flops(d).double())
    assert bool((d.depth[d.record.reveal] == 3).all())  # revealed samples run to the full depth


def test_a_controller_is_rewarded_for_its_own_decisions_flops_not_the_sandwichs() -> None:
    t = trainer("threshold_bandit", objective="sandwich", reveal=0.5)
    seen = {}
    original = t.controller._feedback

    def spy(decision, quality, flops, **extra):
        seen.update(decision=decision, flops=flops)
        original(decision, quality, flops, **extra)

    t.controller._feedback = spy
    t.train_step(t.task.train.x[:32], t.task.train.y[:32])
    own = t.model.cost_table().sample_flops(seen["decision"])
    torch.testing.assert_close(seen["flops"].double(), own.double())
    assert t.train_flops > float(own.sum()) * 1.5  # the training compute counts the extra shapes


def test_the_sandwich_rule_trains_three_more_shapes_and_counts_their_flops() -> None:
    t = trainer("static", objective="sandwich")
    base = trainer("static")
    x, y = t.task.train.x[:32], t.task.train.y[:32]
    shapes = t._sandwich_shapes(1)  # this step's: the random one is drawn from (seed, step)
    t.train_step(x, y)
    base.train_step(x, y)
    table = t.model.cost_table()
    extra = sum(float(table.sample_flops(s)[0]) for s in shapes)
    assert shapes[0].depth.item() == 3 and shapes[1].depth.item() == 1
    assert t.train_flops == pytest.approx(base.train_flops + 32 * extra)
    assert math.isclose(t.train_flops / base.train_flops, 1 + extra / table.full, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("controller", "objective"), [("threshold_bandit", "auto"), ("static", "sandwich"), ("stepwise_dht", "auto")]
)
def test_a_resumed_multi_exit_run_ends_like_an_uninterrupted_one(tmp_path: Path, controller, objective) -> None:
    whole = trainer(controller, objective)
    final = whole.fit()
    part = trainer(controller, objective)
    part.fit(stop_after=5)
    part.save(tmp_path / "ckpt.pt")
    resumed = trainer(controller, objective)
    resumed.load(tmp_path / "ckpt.pt")
    again = resumed.fit()
    assert again["accuracy"] == final["accuracy"] and again["flops_per_sample"] == final["flops_per_sample"]
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_calibration_meets_the_budget_on_validation_exactly_as_inference_runs() -> None:
    t = trainer("entropy_exit", epochs=3)
    t.fit()
    curve = operating_curve(t.model, t.controller, t.task.val)
    assert len(curve) == 401 and float(t.controller.threshold) == 0.3  # the knob was left as it was
    ratios = [p["flop_ratio"] for p in curve]
    budget = (min(ratios) + max(ratios)) / 2
    chosen = calibrate_budget(t.model, t.controller, t.task.val, budget)
    assert chosen["flop_ratio"] <= budget and chosen["flop_ratio"] == max(r for r in ratios if r <= budget)
    val = t.evaluate(t.task.val)  # inference at the chosen knob gives what the calibration replayed
    assert val["accuracy"] == pytest.approx(chosen["accuracy"])
    assert val["flops_per_sample"] / t.full_flops == pytest.approx(chosen["flop_ratio"])
    before = float(t.controller.threshold)
    with pytest.raises(bf.InputValidationError, match="cheapest operating point costs"):
        calibrate_budget(t.model, t.controller, t.task.val, min(ratios) / 2)
    assert float(t.controller.threshold) == before  # an unreachable budget changed nothing
    with pytest.raises(bf.InputValidationError, match="operating points"):
        operating_curve(t.model, bf.make_controller("static", num_layers=3, num_heads=2), t.task.val)


def test_dht_meets_a_budget_at_inference_through_its_cost_bias() -> None:
    t = trainer("dht", epochs=3, lam=0.2)
    t.fit()
    curve = operating_curve(t.model, t.controller, t.task.val)
    assert len(curve) == 107 and float(t.controller.cost_bias) == 0.0  # the knob was left as it was
    greedy = t.evaluate(t.task.val)
    zero = next(p for p in curve if p["value"] == 0.0)  # bias 0 is the plain greedy inference
    assert zero["flop_ratio"] == pytest.approx(greedy["flops_per_sample"] / t.full_flops)
    assert zero["accuracy"] == pytest.approx(greedy["accuracy"])
    ratios = [p["flop_ratio"] for p in curve]
    assert ratios == sorted(ratios, reverse=True)  # a larger bias never costs more
    assert max(ratios) - min(ratios) > 0.2  # the knob spans a real range
    budget = (min(ratios) + max(ratios)) / 2
    step = max(r for r in ratios if r <= budget)  # the grid's best point within the budget
    chosen = calibrate_budget(t.model, t.controller, t.task.val, budget)
    if step < budget - 1e-9:  # a gap: the two points around the budget mixed per sample
        assert chosen["high"] in t.controller.operating_points() and 0.0 < chosen["weight"] <= 1.0
        assert step < chosen["flop_ratio"] <= budget
        assert budget - chosen["flop_ratio"] < max(0.01, (budget - step) / 2)  # closer than the grid gets
    else:
        assert chosen["flop_ratio"] == step
    val = t.evaluate(t.task.val)  # inference draws the calibration's per-sample choices again
    assert val["flops_per_sample"] / t.full_flops == pytest.approx(chosen["flop_ratio"])
    assert val["accuracy"] == pytest.approx(chosen["accuracy"])


class Cliff(bf.Controller):
    """A knob with a cliff: every sample runs the full model at value 0 and the stem alone at 1;
    mixed, each sample takes value 1 with the mix's weight (a draw from its generator)."""

    mixes_operating_points = True

    def __init__(self) -> None:
        super().__init__(3, 2)
        self.generator = torch.Generator().manual_seed(0)
        self.value, self.high, self.weight = 0.0, 0.0, 0.0

    def operating_points(self) -> list[float]:
        return [0.0, 1.0]

    def set_operating_point(self, value: float) -> None:
        self.value, self.high, self.weight = float(value), 0.0, 0.0

    def set_operating_mix(self, low: float, high: float, weight: float) -> None:
        self.value, self.high, self.weight = float(low), float(high), float(weight)

    def _decide(self, context: torch.Tensor, explore: bool) -> bf.Decision:
        b = context.shape[0]
        value = torch.full((b,), self.value)
        if self.weight:
            value = torch.where(torch.rand(b, generator=self.generator) < self.weight, self.high, value)
        depth = torch.where(value > 0, 1, 3)
        return bf.Decision(depth, torch.ones(b, 3, 2, dtype=torch.bool))

    def _feedback(self, decision: bf.Decision, quality: torch.Tensor, flops: torch.Tensor, **extra) -> None:
        pass


def test_a_knob_whose_points_are_far_apart_is_mixed_to_the_budget() -> None:
    task = bf.make_task("pointer_chasing", seed=0, num_samples=400, length=6, max_hops=2)
    torch.manual_seed(0)
    model = DynamicTransformer(TransformerConfig.for_task(task, d_model=16, num_layers=3, num_heads=2, exit_heads=True))
    c = Cliff()
    full, stem = (p["flop_ratio"] for p in operating_curve(model, c, task.val))
    assert full == pytest.approx(1.0) and stem < 0.5  # nothing between the two points
    budget = (full + stem) / 2
    chosen = calibrate_budget(model, c, task.val, budget)
    # within the budget: the stem (value 1); each sample takes the costlier point (value 0) at the weight
    assert chosen["value"] == 1.0 and chosen["high"] == 0.0 and chosen["flop_ratio"] <= budget
    assert budget - chosen["flop_ratio"] < 0.02  # the grid alone would give the stem, `stem` itself
    gen_before = c.generator.get_state()
    correct, flops = 0, 0.0  # inference at the mix draws what the calibration measured
    for x, y in [(task.val.x, task.val.y)]:
        h, context = model.stem(x)
        d = c.decide(context, explore=False)
        correct += int((model.run(h, d).argmax(-1) == y).sum())
        flops += float(model.cost_table().sample_flops(d).sum())
    assert flops / len(task.val) / model.cost_table().full == pytest.approx(chosen["flop_ratio"])
    assert correct / len(task.val) == pytest.approx(chosen["accuracy"])
    assert not torch.equal(c.generator.get_state(), gen_before)  # inference drew; the calibration put it back
    with pytest.raises(bf.InputValidationError, match="cheapest operating point costs"):
        calibrate_budget(model, c, task.val, stem / 2)


def test_record_exits_gives_each_depths_own_answer_at_the_full_shape_and_keeps_the_mode() -> None:
    task = bf.make_task("pointer_chasing", seed=0, num_samples=300, length=6, max_hops=2)
    torch.manual_seed(0)
    model = DynamicTransformer(TransformerConfig.for_task(task, d_model=16, num_layers=3, num_heads=2, exit_heads=True))
    x = task.train.x[:70]
    logits, context = record_exits(model, x, batch_size=32)  # three batches, the last short
    assert logits.shape == (70, 3, task.model["num_classes"]) and context.shape == (70, 16)
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        h, ctx = model.stem(x)
        for depth in (1, 2, 3):  # exit d's logits are the model's output at depth d with every head
            at = model.run(h, bf.Decision.uniform(70, 3, 2, depth, 2))
            torch.testing.assert_close(logits[:, depth - 1], at, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(context, ctx)
    assert not torch.equal(logits[:, 0], logits[:, 2])  # each depth's own classifier
    with pytest.raises(bf.InputValidationError, match="non-empty batch"):
        record_exits(model, x[:0])
