"""Training an adapted model your way (banditformer/training/trainer.py with the model contract,
banditformer/adapters/adapted.py's freeze_original): the library's Trainer fine-tunes an adapted
tiny BERT with a halting bandit and with DHT (the loss goes down, the exit heads and the original
weights both learn, or the original stays as it was when frozen, the controller learns from its
feedback), and its checkpoint loads with weights_only=True into a fresh trainer that then goes on
exactly as the first."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import banditformer as bf
from banditformer.training import TrainConfig, Trainer, operating_curve
from tests.adapters.models import build, padded_token_task, token_task

pytestmark = pytest.mark.slow


def trainer_for(controller: str, *, frozen: bool = False, seed: int = 0) -> Trainer:
    model = build("bert", seed).adapted  # fresh: a training test must not change the cached cases
    if frozen:
        model.freeze_original()
    table = model.cost_table()
    kwargs: dict = {"num_layers": model.num_layers, "num_heads": model.num_heads}
    if controller == "dht":
        kwargs.update(context_dim=model.cfg.d_model, full_flops=table.full, seed=seed)
    elif controller == "bandit_halting":
        kwargs.update(full_flops=table.full, cost_table=table, seed=seed)
    config = TrainConfig(epochs=4, batch_size=32, lr=1e-3, seed=seed, progress=False)  # 8 steps
    return Trainer(model, bf.make_controller(controller, **kwargs), token_task(seed), config)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module, prefix: str) -> list[str]:
    after = module.state_dict()
    return [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]


def exit_losses(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """The cross-entropy of every exit on ``(x, y)``, without dropout (training's losses are noisy)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        h, _ = model.stem(x)
        full = bf.Decision.full(len(y), model.num_layers, model.num_heads)
        every = model.run_exits(h, full, all_exits=True).exit_logits  # (B, L, C)
    model.train(was)
    return [float(torch.nn.functional.cross_entropy(every[:, d], y)) for d in range(model.num_layers)]


@pytest.mark.parametrize("controller", ["bandit_halting", "dht"])
def test_the_trainer_fine_tunes_an_adapted_bert_and_every_part_learns(controller: str) -> None:
    trainer = trainer_for(controller)
    model = trainer.model
    weights, statistics = snapshot(model), snapshot(trainer.controller)
    x, y = trainer.task.train.x[:32], trainer.task.train.y[:32]
    before = exit_losses(model, x, y)
    losses = [trainer.train_step(x, y)["loss"] for _ in range(8)]
    assert all(torch.isfinite(torch.tensor(losses))), losses
    after = exit_losses(model, x, y)
    assert all(a < b for a, b in zip(after, before, strict=True)), (before, after)  # at every exit
    # both the new exit heads and the original's own weights (a block past the stem, its classifier) learnt
    assert changed(weights, model, "exit_heads.1.") and changed(weights, model, "exit_heads.2.")
    assert changed(weights, model, "model.bert.encoder.layer.2.attention")
    assert changed(weights, model, "model.classifier.")
    assert changed(statistics, trainer.controller, ""), "the controller learnt nothing from its feedback"
    metrics = trainer.evaluate(trainer.task.val)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["flops_per_sample"] <= trainer.full_flops


def test_a_frozen_original_stays_as_it_was_and_only_the_exit_heads_learn() -> None:
    trainer = trainer_for("entropy_exit", frozen=True)
    weights = snapshot(trainer.model)
    x, y = trainer.task.train.x[:32], trainer.task.train.y[:32]
    for _ in range(2):
        assert torch.isfinite(torch.tensor(trainer.train_step(x, y)["loss"]))
    assert changed(weights, trainer.model, "model.") == []
    assert changed(weights, trainer.model, "exit_heads.1.") and changed(weights, trainer.model, "exit_heads.2.")
    trainer.model.freeze_original(False)
    assert all(p.requires_grad for p in trainer.model.parameters())
    with pytest.raises(bf.InputValidationError, match="expected `frozen` to be a bool, got str"):
        trainer.model.freeze_original("yes")  # type: ignore[arg-type]
    assert all(p.requires_grad for p in trainer.model.parameters())


def test_an_adapted_models_checkpoint_loads_with_weights_only_and_the_run_goes_on_alike(tmp_path: Path) -> None:
    first = trainer_for("bandit_halting")
    train = first.task.train
    first.train_step(train.x[:32], train.y[:32])
    path = tmp_path / "adapted.pt"
    first.save(path)
    state = torch.load(path, weights_only=True)  # data only: nothing in it runs code
    assert state["step"] == 1 and any(k.startswith("exit_heads.") for k in state["model"])
    weights = snapshot(first.model)
    a = first.train_step(train.x[32:], train.y[32:])
    second = trainer_for("bandit_halting")
    assert changed(weights, second.model, "")
    second.load(path)  # the weights, the optimizer, the controller and the global RNG of step 1
    assert changed(weights, second.model, "") == []
    assert second.train_step(train.x[32:], train.y[32:]) == a  # the same step 2: same loss, same draws
    assert changed(snapshot(first.model), second.model, "") == []
    curve = operating_curve(second.model, second.controller, second.task.val)  # calibration takes it too
    assert len(curve) == len(second.controller.operating_points())


def test_the_trainer_refuses_a_module_without_the_model_contract_and_names_what_it_lacks() -> None:
    ctrl = bf.make_controller("static", num_layers=2, num_heads=2)
    config = TrainConfig(epochs=1, progress=False)

    class NoExits(torch.nn.Linear):  # a module with most of the contract, not run_exits
        cfg = backend = device = backend_for = stem = run = cost_table = sample_flops = None

    for model, lacks in ((torch.nn.Linear(2, 2), "it lacks cfg, backend, device"), (NoExits(2, 2), "run_exits")):
        with pytest.raises(bf.InputValidationError, match="or an adapted model") as info:
            Trainer(model, ctrl, token_task(), config)
        assert lacks in str(info.value) and "banditformer.adapt" in str(info.value)


@pytest.mark.parametrize(("name", "pad"), [("bert", 0), ("roberta", 1), ("gpt2", 0), ("plain", 0)])
def test_pad_token_id_masks_a_plain_id_tensor_as_the_tokenizers_attention_mask_does(name: str, pad: int) -> None:
    c = build(name, 0)
    masked = bf.adapt(c.original, family=c.adapted.family, pad_token_id=pad)
    x = padded_token_task(0, pad=pad).val.x[:8]
    mapping = {"input_ids": x, "attention_mask": (x != pad).long()}
    with torch.no_grad():
        want = c.call(c.original, mapping)
        torch.testing.assert_close(masked(x), want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(masked(mapping), want, rtol=1e-5, atol=1e-6)  # a mapping's own mask as well
        if name != "gpt2":  # causal, right-padded, read at the last real token: the pads come after it
            assert not torch.allclose(c.adapted(x), want, atol=1e-3)  # unmasked, the pads are attended to
    with pytest.raises(bf.InputValidationError, match="row 1 all padding"):
        masked(torch.stack([x[0], torch.full_like(x[0], pad)]))
    vocab = c.adapted.family.vocab_size(c.original)
    with pytest.raises(bf.InputValidationError, match=rf"`pad_token_id` in \[0, {vocab - 1}\], got {vocab}"):
        bf.adapt(c.original, family=c.adapted.family, pad_token_id=vocab)


def test_the_trainer_trains_and_evaluates_an_adapted_model_on_padded_id_tensors() -> None:
    """With ``pad_token_id`` a task of padded id tensors goes through the trainer as tokenized,
    masked batches: its evaluation scores the original's masked logits, and training (the static
    full model's: its last exit) lowers that exit's loss on the masked batches."""
    task = padded_token_task(0)
    model = bf.adapt(build("bert", 0).original, pad_token_id=0)
    ctrl = bf.make_controller("static", num_layers=model.num_layers, num_heads=model.num_heads)
    trainer = Trainer(model, ctrl, task, TrainConfig(epochs=1, batch_size=32, lr=1e-3, seed=0, progress=False))
    val = task.val
    with torch.no_grad():
        original = model.model(input_ids=val.x, attention_mask=(val.x != 0).long()).logits
    want = float((original.argmax(-1) == val.y).float().mean())
    assert trainer.evaluate(val)["accuracy"] == pytest.approx(want)
    x, y = task.train.x[:32], task.train.y[:32]
    mapping = {"input_ids": x, "attention_mask": (x != 0).long()}
    before = exit_losses(model, mapping, y)
    for _ in range(6):
        assert torch.isfinite(torch.tensor(trainer.train_step(x, y)["loss"]))
    after = exit_losses(model, mapping, y)
    assert after[-1] < before[-1], (before, after)
