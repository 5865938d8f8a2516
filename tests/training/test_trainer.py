"""The trainer: it learns, evaluates greedily, and a resumed run ends exactly like an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import banditformer as bf
from banditformer.model import DynamicTransformer, TransformerConfig
from banditformer.training import TrainConfig, Trainer, save_atomic


def setup(controller: str = "dht", epochs: int = 2, seed: int = 0) -> Trainer:
    task = bf.make_task("pointer_chasing", seed=0, num_samples=300, length=6, max_hops=2)
    torch.manual_seed(seed)
    model = DynamicTransformer(TransformerConfig.for_task(task, d_model=16, num_layers=3, num_heads=2, dropout=0.1))
    kwargs = {"num_layers": 3, "num_heads": 2}
    if controller == "dht":
        kwargs.update(context_dim=16, full_flops=model.cost_table().full, seed=seed)
    config = TrainConfig(epochs=epochs, batch_size=32, lr=1e-2, seed=seed, progress=False)
    return Trainer(model, bf.make_controller(controller, **kwargs), task, config)


def test_training_lowers_the_loss_and_reports_metrics() -> None:
    trainer = setup("static", epochs=1)
    x, y = trainer._batch(trainer.task.train, torch.arange(64))
    first = trainer.train_step(x, y)["loss"]
    for _ in range(30):
        last = trainer.train_step(x, y)["loss"]
    assert last < first
    metrics = trainer.evaluate(trainer.task.test)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["flop_saving"] == pytest.approx(0.0)
    assert metrics["depth"].shape == (len(trainer.task.test),)


def test_a_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = setup()
    final = whole.fit()
    interrupted = setup()
    interrupted.fit(stop_after=7)  # mid-epoch (10 steps per epoch)
    interrupted.save(tmp_path / "ckpt.pt")
    resumed = setup(seed=0)
    resumed.load(tmp_path / "ckpt.pt")
    again = resumed.fit()
    assert again["accuracy"] == final["accuracy"] and again["flops_per_sample"] == final["flops_per_sample"]
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for (name, a), b in zip(
        whole.controller.state_dict().items(), resumed.controller.state_dict().values(), strict=True
    ):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), name


def test_bad_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    trainer = setup(epochs=1)
    trainer.save(tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(bf.InputValidationError, match="unreadable"):
        trainer.load(tmp_path / "cut.pt")
    save_atomic({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(bf.InputValidationError, match="expected a banditformer-checkpoint-1 file"):
        trainer.load(tmp_path / "foreign.pt")
    other = setup(epochs=3)
    with pytest.raises(bf.InputValidationError, match="config"):
        other.load(tmp_path / "good.pt")
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_trainer_checks_its_arguments() -> None:
    trainer = setup(epochs=1)
    with pytest.raises(bf.InputValidationError, match="Controller"):
        Trainer(trainer.model, "dht", trainer.task, trainer.config)  # type: ignore[arg-type]
    with pytest.raises(bf.InputValidationError, match="epochs"):
        TrainConfig(epochs=0)


def importance_trainer() -> Trainer:
    """One epoch of a small DHT that rewards heads by importance, on pointer chasing."""
    task = bf.make_task("pointer_chasing", seed=0, num_samples=200, length=6, max_hops=2)
    torch.manual_seed(0)
    model = DynamicTransformer(TransformerConfig.for_task(task, d_model=16, num_layers=3, num_heads=2))
    ctrl = bf.make_controller(
        "dht", num_layers=3, num_heads=2, context_dim=16, full_flops=model.cost_table().full, head_reward="importance"
    )
    return Trainer(model, ctrl, task, TrainConfig(epochs=1, batch_size=32, progress=False))


def test_an_importance_rewarding_controller_gets_per_sample_head_scores() -> None:
    trainer = importance_trainer()
    task, ctrl = trainer.task, trainer.controller
    seen = []
    feedback = ctrl.feedback

    def spy(decision, quality, flops, head_importance=None):
        seen.append((decision, head_importance))
        feedback(decision, quality, flops, head_importance=head_importance)

    ctrl.feedback = spy
    trainer.train_step(*trainer._batch(task.train, torch.arange(32)))
    decision, importance = seen[0]
    assert importance is not None and importance.shape == (32, 3, 2)
    ran = decision.active_layers.unsqueeze(2) & decision.heads
    ran[:, 0] = False
    assert bool((importance[~ran] == 0).all()) and bool((importance[ran] > 0).any())
    trainer.fit()  # a whole epoch with importance rewards


def test_a_greedy_tail_trains_the_last_steps_on_inference_decisions() -> None:
    trainer = setup(epochs=2)
    trainer.config.greedy_tail = 0.5
    calls = []
    decide = trainer.controller.decide

    def spy(context, explore=True):
        calls.append(explore)
        return decide(context, explore=explore)

    trainer.controller.decide = spy
    trainer.evaluate = lambda split: {"accuracy": 0.0}  # only the training steps are counted here
    trainer.fit()
    assert len(calls) == trainer.total_steps
    half = trainer.total_steps // 2
    assert all(calls[:half]) and not any(calls[half + 1 :])
    with pytest.raises(bf.InputValidationError, match="greedy_tail"):
        TrainConfig(greedy_tail=1.0)


def test_overflowed_importance_scores_skip_the_feedback_instead_of_crashing() -> None:
    trainer = importance_trainer()
    task, ctrl = trainer.task, trainer.controller
    forward = trainer._net.forward

    def overflowing(*args, **kwargs):  # what an fp16 step whose scaled gradients overflowed gives
        logits = forward(*args, **kwargs)
        trainer._net.last[1].register_hook(lambda g: torch.full_like(g, float("inf")))
        return logits

    trainer._net.forward = overflowing
    trainer.scaler = torch.amp.GradScaler("cpu")  # as under fp16 autocast on CUDA
    before = int(ctrl.feedback_calls)
    trainer.train_step(*trainer._batch(task.train, torch.arange(32)))
    assert trainer.skipped_feedback == 1 and int(ctrl.feedback_calls) == before and trainer.step == 1


def test_a_checkpoint_loads_under_another_progress_setting_and_is_an_ordinary_file(tmp_path: Path) -> None:
    import dataclasses
    import os

    trainer = setup(epochs=1)
    trainer.fit(stop_after=2)
    path = tmp_path / "run.ckpt"
    trainer.save(path)
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    other = setup(epochs=1)
    other.config = dataclasses.replace(other.config, progress=True)
    other.load(path)
    assert other.step == 2
