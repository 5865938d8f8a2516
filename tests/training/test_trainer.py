"""The trainer: it learns, evaluates greedily, runs its backend's kernels, reports its metrics to
an observer, and a resumed run ends exactly like an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import banditformer as bf
from banditformer.backends import CPUBackend
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


def rows(split: bf.Split, n: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` rows of ``split`` from ``start`` (the trainers here run on the CPU)."""
    return split.x[start : start + n], split.y[start : start + n]


def test_training_lowers_the_loss_and_evaluation_counts_what_the_model_predicts() -> None:
    trainer = setup("static", epochs=1)
    x, y = rows(trainer.task.train, 64)
    first = trainer.train_step(x, y)["loss"]
    for _ in range(30):
        last = trainer.train_step(x, y)["loss"]
    assert last < first
    test = trainer.task.test
    metrics = trainer.evaluate(test)
    with torch.no_grad():  # the static controller runs the full model
        expected = (trainer.model(test.x).argmax(1) == test.y).double().mean()
    assert metrics["accuracy"] == pytest.approx(float(expected), abs=1e-12)
    assert metrics["flop_saving"] == pytest.approx(0.0) and metrics["flops_per_sample"] == trainer.full_flops
    assert metrics["depth"].tolist() == [3] * len(test)
    assert metrics["head_counts"].tolist() == [[2, 2, 2]] * len(test)


class SpyBackend(CPUBackend):
    """A CPU backend that counts the calls of its routed-attention kernel."""

    def __init__(self) -> None:
        self.calls = 0

    def routed_attention(self, x, heads, weights, **kwargs):
        self.calls += 1
        return super().routed_attention(x, heads, weights, **kwargs)


def small_trainer(**kwargs) -> Trainer:
    """A trainer whose controller keeps head 0 only in blocks 1 and 2: every block routes."""
    task = bf.make_task("pointer_chasing", seed=0, num_samples=120, length=6, max_hops=2)
    torch.manual_seed(0)
    model_backend = kwargs.pop("model_backend", None)
    model = DynamicTransformer(TransformerConfig.for_task(task, d_model=16, num_layers=3, num_heads=2), model_backend)
    ctrl = bf.make_controller("static_small", num_layers=3, num_heads=2, depth=3, heads=1)
    return Trainer(model, ctrl, task, TrainConfig(epochs=2, batch_size=32, progress=False), **kwargs)


def test_a_trainer_given_a_backend_runs_its_kernels_in_training_and_evaluation() -> None:
    mine, the_models = SpyBackend(), SpyBackend()
    trainer = small_trainer(backend=mine, model_backend=the_models)
    assert trainer.backend is mine and trainer.model.backend is mine
    trainer.train_step(*rows(trainer.task.train, 32))
    assert mine.calls == 2  # blocks 1 and 2, one batch
    trainer.evaluate(trainer.task.val, batch_size=1000)
    assert mine.calls == 4 and the_models.calls == 0
    # without a backend: the model's own, else the default for the model's device
    assert small_trainer(model_backend=the_models).backend is the_models
    default = small_trainer()
    assert type(default.backend) is CPUBackend and default.model.backend is default.backend


def test_a_trainer_refuses_what_is_no_backend_or_observer_and_changes_nothing() -> None:
    task = bf.make_task("pointer_chasing", seed=0, num_samples=60, length=6, max_hops=2)
    model = DynamicTransformer(TransformerConfig.for_task(task, d_model=8, num_layers=2, num_heads=2))
    ctrl = bf.make_controller("static", num_layers=2, num_heads=2)
    config = TrainConfig(epochs=1, progress=False)
    with pytest.raises(bf.InputValidationError, match="expected `backend` to be a Backend or None, got str"):
        Trainer(model, ctrl, task, config, backend="cpu")  # type: ignore[arg-type]
    with pytest.raises(bf.InputValidationError, match=r"expected `on_metrics` to be a callable .* got int"):
        Trainer(model, ctrl, task, config, on_metrics=3)  # type: ignore[arg-type]
    with pytest.raises(bf.InputValidationError, match=r"an adapted model \(banditformer.adapt\), got Linear"):
        Trainer(torch.nn.Linear(2, 2), ctrl, task, config)  # type: ignore[arg-type]
    assert model.backend is None


class Recorder:
    """A plugin observing ``banditformer_on_metrics``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, dict]] = []

    @bf.hookimpl
    def banditformer_on_metrics(self, source, step, metrics):
        self.seen.append((source, step, dict(metrics)))


@pytest.fixture
def recorder():
    """A :class:`Recorder` registered with the process-wide plugin manager (alone) for the test."""
    from banditformer.plugins import PluginManager, set_plugin_manager

    plugin, pm = Recorder(), PluginManager()
    pm.register(plugin, name="recorder")
    set_plugin_manager(pm)
    yield plugin
    set_plugin_manager(None)


def test_a_registered_observer_receives_every_epochs_metrics_through_the_manager(recorder: Recorder) -> None:
    from banditformer.plugins import get_plugin_manager

    trainer = small_trainer(on_metrics=get_plugin_manager().notify_metrics)  # as the harness wires it
    result = trainer.fit()
    n = trainer.steps_per_epoch
    assert [(source, step) for source, step, _ in recorder.seen] == [("train", n), ("train", 2 * n)]
    assert [m for _, _, m in recorder.seen] == trainer.history
    assert recorder.seen[-1][2]["accuracy"] == result["accuracy"] and recorder.seen[0][2]["epoch"] == 1


def test_a_trainer_reports_only_to_the_observer_it_is_given(recorder: Recorder) -> None:
    small_trainer().fit()
    assert recorder.seen == []  # no observer given: no one is told (the trainer looks nothing up)
    calls = []
    trainer = small_trainer(on_metrics=lambda source, step, metrics: calls.append((source, step, metrics)))
    trainer.fit()
    n = trainer.steps_per_epoch
    assert [(source, step, m["epoch"]) for source, step, m in calls] == [("train", n, 1), ("train", 2 * n, 2)]
    assert recorder.seen == []
    calls[0][2]["accuracy"] = -1.0  # the observer gets a copy: the history is the trainer's
    assert trainer.history[0]["accuracy"] != -1.0


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
    with pytest.raises(bf.InputValidationError, match=r"expected a banditformer-checkpoint-2 file .* something else"):
        trainer.load(tmp_path / "foreign.pt")
    old = torch.load(tmp_path / "good.pt", weights_only=True)
    old["format"] = "banditformer-checkpoint-1"  # a file of the layout before the redesign
    save_atomic(old, tmp_path / "old.pt")
    with pytest.raises(bf.InputValidationError, match="got a banditformer-checkpoint-1 file, written before the pack"):
        trainer.load(tmp_path / "old.pt")
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
    trainer.train_step(*rows(task.train, 32))
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


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")
def test_overflowed_importance_scores_skip_the_feedback_instead_of_crashing() -> None:
    trainer = importance_trainer()
    ctrl = trainer.controller
    # What an fp16 step whose scaled gradients overflow gives: an infinite loss scale makes every
    # gradient, the head gate's included, non-finite.
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=float("inf"))
    before = int(ctrl.feedback_calls)
    weights = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train_step(*rows(trainer.task.train, 32))
    assert trainer.skipped_feedback == 1 and int(ctrl.feedback_calls) == before and trainer.step == 1
    assert all(torch.equal(a, p) for a, p in zip(weights, trainer.model.parameters(), strict=True))  # step skipped


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


def test_a_trainer_that_refuses_its_controller_moves_and_changes_nothing() -> None:
    # the controller's reductions are checked before the model or the controller moves
    from banditformer.controllers import Static
    from banditformer.tasks import pointer_chasing

    class OddReductions(Static):
        def __init__(self) -> None:
            super().__init__(num_layers=3, num_heads=2)
            self.register_buffer("odd", torch.zeros(2))

        @property
        def state_reductions(self) -> dict[str, str | None]:
            return {"odd": "median"}

    task = pointer_chasing(num_samples=60, seed=0)
    model = DynamicTransformer(TransformerConfig.for_task(task, d_model=16, num_layers=3, num_heads=2))
    with pytest.raises(bf.InputValidationError, match=r"reduction of `odd` in .* got 'median'"):
        Trainer(model, OddReductions(), task, TrainConfig(epochs=1, progress=False), backend=bf.make_backend("cpu"))
    assert model.backend is None  # not set to the refused trainer's backend
