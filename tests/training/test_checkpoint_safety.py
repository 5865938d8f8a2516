"""Checkpoints are data and saves leave nothing behind; a train step that fails changes nothing;
divergence is reported as divergence. (The one-line cases are in tests/bad_inputs.py.)"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import banditformer as bf
from banditformer.controllers.dht import DHTRecord
from banditformer.training import TrainConfig, remove_stale_temporaries, save_atomic
from tests.bad_inputs import CASES, _RunsCode, _tiny_trainer


def _dht(num_layers: int, num_heads: int, context_dim: int, **kwargs) -> bf.Controller:
    return bf.make_controller("dht", num_layers=num_layers, num_heads=num_heads, context_dim=context_dim, **kwargs)


ROOT = Path(__file__).resolve().parents[2]


def test_a_crafted_checkpoint_runs_nothing_on_load(tmp_path: Path) -> None:
    _, action = CASES["checkpoint_that_runs_code"](tmp_path)
    with pytest.raises(bf.InputValidationError, match="nothing ran"):
        action()
    assert not (tmp_path / "pwned").exists()
    # The file is truly malicious: an unsafe load would have run its code.
    torch.save({"x": _RunsCode(tmp_path / "proof")}, tmp_path / "proof.ckpt")
    torch.load(tmp_path / "proof.ckpt", weights_only=False)
    assert (tmp_path / "proof").exists()


def _calls(text: str, name: str) -> list[str]:
    """The source of every call ``name(...)`` in ``text``, to its matching parenthesis."""
    out = []
    for m in re.finditer(re.escape(name) + r"\(", text):
        depth, i = 0, m.end() - 1
        for i in range(m.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
        out.append(text[m.start() : i + 1])
    return out


def test_every_torch_load_in_the_project_is_weights_only() -> None:
    calls = [
        (str(path.relative_to(ROOT)), call)
        for folder in ("banditformer", "tests", "examples", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
        for call in _calls(path.read_text(encoding="utf-8"), "torch.load")
    ]
    unsafe = [(p, c) for p, c in calls if "weights_only=True" not in c]
    unsafe = [(p, c) for p, c in unsafe if "proof.ckpt" not in c]  # the proof that the crafted file is malicious
    assert len(calls) > 10 and not unsafe, unsafe


def _rows(trainer: object, n: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training rows from ``start`` (the trainers here run on the CPU)."""
    split = trainer.task.train  # type: ignore[attr-defined]
    return split.x[start : start + n], split.y[start : start + n]


def test_checkpoint_resumes_with_adapted_lam_and_refuses_another_budget(tmp_path: Path) -> None:
    from banditformer.model import DynamicTransformer, TransformerConfig
    from banditformer.tasks import pointer_chasing
    from banditformer.training import Trainer

    def trainer(budget: float) -> Trainer:
        data = pointer_chasing(num_samples=60, seed=0)
        torch.manual_seed(0)
        model = DynamicTransformer(TransformerConfig.for_task(data, d_model=8, num_layers=2, num_heads=2))
        ctrl = _dht(2, 2, 8, full_flops=model.cost_table().full, flop_budget=budget, lam=0.1, seed=0)
        return Trainer(model, ctrl, data, TrainConfig(epochs=3, batch_size=16, progress=False))

    a = trainer(0.5)
    x, y = _rows(a, 16)
    for _ in range(3):
        a.train_step(x, y)
    assert float(a.controller.lam) != 0.1  # adapted
    a.save(tmp_path / "a.ckpt")
    b = trainer(0.5)
    b.load(tmp_path / "a.ckpt")
    assert float(b.controller.lam) == float(a.controller.lam)
    c = trainer(0.25)
    with pytest.raises(bf.InputValidationError, match=r"`flop_budget` = 0.25 .* got 0.5"):
        c.load(tmp_path / "a.ckpt")
    assert float(c.controller.lam) == 0.1 and c.step == 0


def test_a_save_through_a_symlink_writes_its_target(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    link = tmp_path / "latest.ckpt"
    link.symlink_to(tmp_path / "real" / "run.ckpt")
    save_atomic({"a": torch.ones(2)}, link)
    assert link.is_symlink() and (tmp_path / "real" / "run.ckpt").is_file()
    save_atomic({"a": torch.zeros(2)}, link)
    assert link.is_symlink() and torch.equal(torch.load(link, weights_only=True)["a"], torch.zeros(2))
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["run.ckpt"]


_SAVER = """
import sys, torch
from banditformer.training import save_atomic
big = {"w": torch.zeros(8_000_000)}  # 32 MB: long enough to be killed mid-write
print("ready", flush=True)
while True:
    save_atomic(big, sys.argv[1])
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_saves_killed_mid_write_leave_no_pile_of_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "run.ckpt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(target)], env=env, stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(0.3)
        proc.kill()
        proc.wait()
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".run.ckpt.tmp-")]
    assert len(left) <= 3  # at most one per killed process, named by its pid
    (tmp_path / ".run.ckpt.tmp-notapid").write_bytes(b"")  # not ours: kept
    save_atomic({"a": torch.ones(1)}, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.ckpt.tmp-notapid", "run.ckpt"]
    assert remove_stale_temporaries(target) == []


def _failing_feedback(*args: object, **kwargs: object) -> None:
    """A feedback that fails after the trainer's forward and backward passes ran."""
    raise bf.InputValidationError("expected nothing, got a feedback that fails on purpose")


def _state(trainer: object) -> dict:
    from tests.test_bad_inputs import _state as flat

    return flat(trainer)


def test_a_step_whose_feedback_fails_changes_nothing() -> None:
    trainer = _tiny_trainer(TrainConfig(epochs=3, batch_size=16, progress=False))
    x, y = _rows(trainer, 16)
    trainer.train_step(x, y)
    trainer.controller._feedback = _failing_feedback  # type: ignore[method-assign]
    before, rng = copy.deepcopy(_state(trainer)), torch.get_rng_state()
    counters = (trainer.step, trainer.train_samples, trainer.train_flops)
    with pytest.raises(bf.InputValidationError, match="on purpose"):
        trainer.train_step(x, y)
    after = _state(trainer)
    assert all(torch.equal(v, after[k]) if isinstance(v, torch.Tensor) else v == after[k] for k, v in before.items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert (trainer.step, trainer.train_samples, trainer.train_flops) == counters
    assert all(p.grad is None for p in trainer.model.parameters())


def test_non_finite_weights_are_reported_as_divergence_with_the_step() -> None:
    trainer = _tiny_trainer(TrainConfig(epochs=3, batch_size=16, progress=False))
    x, y = _rows(trainer, 16)
    trainer.train_step(x, y)
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    with pytest.raises(bf.TrainingDivergedError, match=r"training diverged at step 1 of 9 .* NaN or inf in the stem"):
        trainer.train_step(x, y)
    assert trainer.step == 1


# ---------------------------------------------------------- random bad inputs, state unchanged
def _flat(module: torch.nn.Module) -> dict:
    from tests.test_bad_inputs import _state as flat

    return flat(module)


def _unchanged(before: dict, after: dict) -> bool:
    return before.keys() == after.keys() and all(
        torch.equal(v, after[k]) if isinstance(v, torch.Tensor) else v == after[k] for k, v in before.items()
    )


_BAD_VALUES = st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.5, 1.5, 1e30])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(["tree", "integrated"]),
    importance=st.booleans(),
    field=st.sampled_from(["quality", "flops", "head_importance", "shape", "decision"]),
    row=st.integers(0, 4),
    value=_BAD_VALUES,
    seed=st.integers(0, 2**16),
)
def test_controllers_refuse_random_bad_feedback_and_change_nothing(mode, importance, field, row, value, seed) -> None:
    head_reward = "importance" if importance else "sample"
    c = _dht(3, 2, 4, full_flops=1e6, mode=mode, head_reward=head_reward, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 4, generator=gen)
    d = c.decide(x)
    quality, flops = torch.rand(5, generator=gen), torch.full((5,), 5e5)
    imp = torch.rand(5, 3, 2, generator=gen) if importance else None
    if field == "quality":
        quality[row] = value if not 0 <= value <= 1 else float("nan")
    elif field == "flops":
        flops[row] = value if value < 0 or value != value or value == float("inf") else -1.0
    elif field == "head_importance":
        imp = torch.rand(5, 3, 2, generator=gen)
        imp[row, 1, 0] = value if value < 0 or value != value or abs(value) == float("inf") else -1.0
        if not importance:
            imp = None
            quality[row] = float("nan")
    elif field == "shape":
        quality = quality[: row % 4 + 1]
    else:
        record = DHTRecord(d.record.context[: row % 4 + 1], d.record.depth_arm, d.record.count_arm)
        d = bf.Decision(d.depth, d.heads, record)
    before, calls = _flat(c), c._calls
    with pytest.raises(bf.InputValidationError, match="expected"):
        c.feedback(d, quality, flops, head_importance=imp)
    assert _unchanged(before, _flat(c)) and c._calls == calls


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["label", "rows", "dtype", "empty", "device"]), row=st.integers(0, 7), seed=st.integers(0, 99)
)
def test_the_trainer_refuses_random_bad_batches_and_changes_nothing(kind, row, seed) -> None:
    trainer = _TRAINER
    x, y = _rows(trainer, 8, seed % 30)
    if kind == "label":
        y = y.clone()
        y[row] = [-1, 8, 10**6][seed % 3]
    elif kind == "rows":
        y = y[: row % 7 + 1]
    elif kind == "dtype":
        y = y.float()
    elif kind == "empty":
        x, y = x[:0], y[:0]
    else:
        x = x.to("meta")
    before = _flat_trainer(trainer)
    with pytest.raises(bf.InputValidationError, match="expected"):
        trainer.train_step(x, y)
    assert _unchanged(before, _flat_trainer(trainer))


def _flat_trainer(trainer: object) -> dict:
    out = _flat(trainer)  # type: ignore[arg-type]
    out["counters"] = (trainer.step, trainer.train_samples, trainer.train_flops)  # type: ignore[attr-defined]
    return out


_TRAINER = _tiny_trainer(TrainConfig(epochs=3, batch_size=16, progress=False))


# ----------------------------------------------- the optimizer, the schedule and the weights
def _first(state: dict) -> tuple:
    return next(iter(state["optimizer"]["state"].items()))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s["optimizer"]["param_groups"][0].update(weight_decay=-5.0),
         r"`optimizer.param_groups\[0\].weight_decay` .* = 0.01 \(this trainer's AdamW\), got -5.0"),
        (lambda s: s["optimizer"]["param_groups"][0].update(betas="xx"), r"`optimizer.param_groups\[0\].betas`"),
        (lambda s: s["optimizer"]["param_groups"][0].update(lr=float("nan")), r"`optimizer.param_groups\[0\].lr`"),
        (lambda s: _first(s)[1].pop("exp_avg"), r"`optimizer.state\[0\]` .* with \['exp_avg', 'exp_avg_sq', 'step'\]"),
        (lambda s: _first(s)[1]["exp_avg_sq"].fill_(-1.0), r"`optimizer.state\[0\].exp_avg_sq` .* >= 0"),
        (lambda s: _first(s)[1]["step"].fill_(-5.0), r"`optimizer.state\[0\].step` .* >= 0"),
        (lambda s: s["scheduler"].update(T_max=0), r"`scheduler.T_max` .* = 9 \(this trainer's schedule\), got 0"),
        (lambda s: s["scheduler"].update(base_lrs=[float("nan")]), r"`scheduler.base_lrs`"),
        (lambda s: next(iter(s["model"].values())).fill_(float("nan")), r"to be finite, got NaN or inf .*diverged"),
        (lambda s: s["model"].update({k: v.long() for k, v in list(s["model"].items())[:1]}),
         r"to be torch.float32 of shape .*, got torch.int64"),
        (lambda s: s["controller"]["_extra_state"].pop("config"), r"to hold the configuration of this DHTController"),
        (lambda s: s["controller"]["depth_policy._extra_state"].update(rng_device="xyz"),
         r"to be a device type .*'xyz'"),
    ],
)  # fmt: skip
def test_a_checkpoint_whose_optimizer_schedule_or_weights_do_not_fit_is_refused(edit, match, tmp_path: Path) -> None:
    config = TrainConfig(epochs=3, batch_size=16, progress=False)
    trainer = _tiny_trainer(config)
    trainer.fit(stop_after=2)
    trainer.save(tmp_path / "ok.ckpt")
    state = torch.load(tmp_path / "ok.ckpt", weights_only=True)
    edit(state)
    torch.save(state, tmp_path / "bad.ckpt")
    fresh = _tiny_trainer(config)
    before = _flat_trainer(fresh)
    with pytest.raises(bf.InputValidationError, match=match):
        fresh.load(tmp_path / "bad.ckpt")
    assert _unchanged(before, _flat_trainer(fresh))
    fresh.load(tmp_path / "ok.ckpt")  # the unedited file still loads
    assert fresh.step == 2


def test_a_step_whose_optimizer_fails_leaves_the_controller_as_it_was() -> None:
    trainer = _tiny_trainer(TrainConfig(epochs=3, batch_size=16, progress=False))
    x, y = _rows(trainer, 16)
    trainer.train_step(x, y)
    before = _flat_trainer(trainer)

    def broken_step(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the optimizer failed")

    trainer.optimizer.step = broken_step  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="optimizer failed"):
        trainer.train_step(x, y)
    assert _unchanged(before, _flat_trainer(trainer)) and trainer.controller._calls == 1


class _RaisesInUpdate(bf.Policy):
    """A plugin policy whose `_update` fails after changing its statistics."""

    reward_range = (0.0, 1.0)

    def __init__(self, num_arms: int, **kwargs: object) -> None:
        super().__init__(num_arms, **kwargs)
        self.add_state("counts", torch.zeros(self.num_groups, num_arms, dtype=torch.float64), low=0.0)

    def _select(self, context, groups):
        return torch.zeros(groups.shape[0], dtype=torch.long)

    def _update(self, arms, rewards, context, groups):
        self.counts.add_(1.0)  # half done
        raise RuntimeError("boom in plugin update")


class _RaisesPlugin:
    @bf.hookimpl
    def banditformer_add_policies(self):
        return {"raises_in_update": _RaisesInUpdate}


@pytest.fixture
def raising_plugin():
    from banditformer.plugins import PluginManager, set_plugin_manager

    pm = PluginManager(autoload=False)
    pm.register(_RaisesPlugin(), name="fragile")
    set_plugin_manager(pm)
    yield
    set_plugin_manager(None)


def test_a_plugin_policy_whose_update_raises_is_rolled_back_and_named(raising_plugin) -> None:
    p = bf.make_policy("raises_in_update", num_arms=3)
    before = _flat(p)
    with pytest.raises(bf.PolicyContractError, match=r"plugin 'fragile': policy 'raises_in_update' .*_update raised "
                       r"RuntimeError: boom in plugin update; the policy's state was restored"):  # fmt: skip
        p.update(torch.tensor([0, 1]), torch.tensor([0.5, 0.5]))
    assert _unchanged(before, _flat(p))
    c = _dht(3, 2, 4, full_flops=100.0, count_policy="raises_in_update", flop_budget=0.5, seed=0)
    d = c.decide(torch.rand(4, 4))
    before = _flat(c)
    with pytest.raises(bf.PolicyContractError, match="boom"):
        c.feedback(d, torch.rand(4), torch.full((4,), 90.0))
    assert _unchanged(before, _flat(c)) and c._calls == 0  # lam and the depth policy too


def test_a_plugin_factory_cannot_turn_the_value_checks_off_for_everyone() -> None:
    from banditformer.bandits import UCB1
    from banditformer.plugins import PluginManager, set_plugin_manager

    class Sneaky(UCB1):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            bf.set_value_checks(False)

    class Plugin:
        @bf.hookimpl
        def banditformer_add_policies(self):
            return {"sneaky_ucb": Sneaky}

    pm = PluginManager(autoload=False)
    pm.register(Plugin(), name="sneaky")
    set_plugin_manager(pm)
    try:
        with pytest.warns(bf.PluginWarning, match=r"plugin 'sneaky'.*turned value checks off .* policy 'sneaky_ucb'"):
            bf.make_policy("sneaky_ucb", num_arms=2)
        with pytest.raises(bf.InputValidationError, match="finite"):
            bf.make_policy("ucb1", num_arms=2).update(torch.tensor([0]), torch.tensor([float("nan")]))
    finally:
        set_plugin_manager(None)


def test_an_absurd_flop_count_moves_lam_by_at_most_its_step() -> None:
    c = _dht(3, 2, 4, full_flops=100.0, flop_budget=0.5, lam=0.5, lam_lr=0.05, seed=0)
    d = c.decide(torch.rand(5, 4))
    c.feedback(d, torch.rand(5), torch.full((5,), 1e300, dtype=torch.float64))
    assert float(c.lam) == pytest.approx(0.5 + 0.05 * (1.0 - 0.5))


def test_a_loop_of_symlinks_is_refused(tmp_path: Path) -> None:
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    with pytest.raises(bf.InputValidationError, match="a loop of symlinks"):
        save_atomic({"a": torch.ones(1)}, tmp_path / "loop1")
    assert (tmp_path / "loop1").is_symlink()
    trainer = _tiny_trainer()
    with pytest.raises(bf.InputValidationError, match="a loop of symlinks"):
        trainer.fit(checkpoint=tmp_path / "loop1")
    assert trainer.step == 0


def test_training_parts_load_all_or_nothing() -> None:
    from banditformer.training.checkpoint import TrainingParts

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    parts = TrainingParts(model, bf.make_controller("static", num_layers=2, num_heads=2), optimizer, scheduler)
    assert parts.names == ("model", "controller", "optimizer", "scheduler")
    state = copy.deepcopy(parts.state_dict())
    state["model"]["weight"].fill_(7.0)  # loads first ...
    state["optimizer"]["param_groups"] = []  # ... then the optimizer refuses its state
    before = model.weight.detach().clone()
    with pytest.raises(bf.InputValidationError, match="does not fit, so nothing was loaded"):
        parts.load(state, "here")
    assert torch.equal(model.weight, before)
    state["optimizer"] = copy.deepcopy(optimizer.state_dict())
    parts.load(state)
    assert bool((model.weight == 7.0).all())
