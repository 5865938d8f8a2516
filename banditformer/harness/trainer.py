"""Training and evaluation of a dynamic transformer with an architecture controller.

One step: ``stem`` -> ``controller.decide(context, explore=True)`` -> ``run`` the rest -> loss ->
``controller.feedback(decision, quality, flops)`` (quality: probability of the true class) ->
AdamW step under a cosine schedule with gradient clipping. Evaluation decides with
``explore=False``. Checkpoints hold the model, optimizer, scheduler, controller (its policies'
statistics and generators) and every RNG state, and are written atomically (temporary file,
``fsync``, rename), so a run resumed from one ends exactly where an uninterrupted run ends (on
the CPU).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from banditformer.core.backend import Backend
from banditformer.core.controller import Controller
from banditformer.core.errors import InputValidationError
from banditformer.core.random import derive_seed, make_generator
from banditformer.core.validation import check_float, check_int
from banditformer.harness.tasks import Split, Task

__all__ = ["TrainConfig", "Trainer", "save_atomic"]

CHECKPOINT_FORMAT = "banditformer-checkpoint-1"


@dataclass
class TrainConfig:
    """Optimisation settings.

    Attributes:
        epochs, batch_size: the schedule.
        lr, weight_decay, grad_clip: AdamW and gradient-norm clipping.
        seed: seeds the data order and the global RNG (dropout) for reproducible runs.
        autocast: run forward passes under the backend's autocast.
        progress: show a progress bar (loss, accuracy, FLOP saving).
        greedy_tail: the last share of the training steps decides greedily (``explore=False``,
            as at inference), so the network fine-tunes on the architectures it will run; the
            controller still gets feedback. 0 explores to the end.
    """

    epochs: int = 5
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    autocast: bool = False
    progress: bool = True
    greedy_tail: float = 0.0

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("weight_decay", self.weight_decay, low=0.0)
        check_float("grad_clip", self.grad_clip, low=0.0, low_open=True)
        check_int("seed", self.seed, low=0)
        check_float("greedy_tail", self.greedy_tail, low=0.0, high=1.0, high_open=True)


def save_atomic(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file beside ``path``, ``fsync``, then rename over ``path``:
    a crash leaves either the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Trainer:
    """Trains ``model`` on ``task`` with ``controller`` choosing each sample's architecture.

    Args:
        model: a :class:`~banditformer.model.DynamicTransformer`.
        controller: any :class:`~banditformer.core.Controller` (DHT or a baseline).
        task: a :class:`~banditformer.harness.tasks.Task`.
        config: a :class:`TrainConfig`.
        backend: where to run (default: the model's backend, or the CPU).
    """

    def __init__(
        self, model: Any, controller: Controller, task: Task, config: TrainConfig, backend: Backend | None = None
    ) -> None:
        from banditformer.plugins import make_backend

        if not isinstance(controller, Controller):
            raise InputValidationError(f"expected a Controller, got {type(controller).__name__}")
        if not isinstance(task, Task):
            raise InputValidationError(f"expected a Task, got {type(task).__name__}")
        if not isinstance(config, TrainConfig):
            raise InputValidationError(f"expected a TrainConfig, got {type(config).__name__}")
        self.backend = backend or model.backend or make_backend("cpu")
        self.model = model.to(self.backend.device)
        self.controller = controller.to(self.backend.device)
        self.task, self.config = task, config
        self.steps_per_epoch = math.ceil(len(task.train) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total_steps)
        self.step = 0
        self.full_flops = model.cost_table().full
        self.history: list[dict[str, float]] = []
        self.train_flops = 0.0  # summed per-sample forward FLOPs of every training sample so far
        self.train_samples = 0
        torch.manual_seed(derive_seed(config.seed, "global"))  # dropout draws from the global RNG

    # ----------------------------------------------------------------------------------- data
    def _order(self, epoch: int) -> Tensor:
        return torch.randperm(
            len(self.task.train), generator=make_generator(derive_seed(self.config.seed, "epoch", epoch))
        )

    def _batch(self, split: Split, index: Tensor) -> tuple[Tensor, Tensor]:
        return split.x[index].to(self.backend.device), split.y[index].to(self.backend.device)

    # ----------------------------------------------------------------------------------- steps
    def _forward(self, x: Tensor, explore: bool, gate: bool = False) -> tuple[Tensor, Any, Tensor | None]:
        with self.backend.autocast(enabled=self.config.autocast):
            h, context = self.model.stem(x)
            decision = self.controller.decide(context, explore=explore)
            head_gate = None
            if gate:  # ones whose gradient is each head's importance (the logits are unchanged)
                head_gate = torch.ones(decision.heads.shape, device=h.device, requires_grad=True)
            logits = self.model.run(h, decision, head_gate=head_gate)
        return logits.float(), decision, head_gate

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, float]:
        """One optimisation step on a batch; returns its loss, accuracy and FLOP ratio.

        The controller's feedback comes after the backward pass, so that a controller that
        rewards heads by importance gets ``|dL/d gate|`` per sample (the batch loss is a mean, so
        the gradients are scaled back by the batch size)."""
        self.model.train()
        explore = self.step < self.total_steps * (1.0 - self.config.greedy_tail)
        logits, decision, gate = self._forward(x, explore=explore, gate=self.controller.wants_head_importance)
        loss = F.cross_entropy(logits, y)
        quality = logits.detach().softmax(-1).gather(1, y.unsqueeze(1)).squeeze(1)
        flops = self.model.sample_flops(decision).to(quality.device)
        self.train_flops += float(flops.sum())
        self.train_samples += int(flops.numel())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        importance = None
        if gate is not None:
            grad = gate.grad if gate.grad is not None else torch.zeros_like(gate)
            importance = grad.abs() * y.shape[0]
        self.controller.feedback(decision, quality, flops.float(), head_importance=importance)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return {
            "loss": float(loss.detach()),
            "accuracy": float((logits.argmax(1) == y).float().mean()),
            "flop_ratio": float(flops.mean()) / self.full_flops,
        }

    @property
    def train_flop_ratio(self) -> float:
        """Mean forward FLOPs per training sample so far, over the full model's."""
        return self.train_flops / max(self.train_samples, 1) / self.full_flops

    @torch.no_grad()
    def evaluate(self, split: Split, batch_size: int = 256) -> dict[str, Any]:
        """Accuracy, FLOPs per sample and the chosen depths and heads on ``split``, deciding with
        ``explore=False``."""
        self.model.eval()
        correct, flops, depths, heads = 0, [], [], []
        for start in range(0, len(split), batch_size):
            x, y = self._batch(split, torch.arange(start, min(start + batch_size, len(split))))
            logits, decision, _ = self._forward(x, explore=False)
            correct += int((logits.argmax(1) == y).sum())
            flops.append(self.model.sample_flops(decision).cpu())
            depths.append(decision.depth.cpu())
            heads.append(decision.head_counts.cpu())
        all_flops = torch.cat(flops)
        return {
            "accuracy": correct / max(len(split), 1),
            "flops_per_sample": float(all_flops.mean()),
            "flop_saving": 1.0 - float(all_flops.mean()) / self.full_flops,
            "flops": all_flops,
            "depth": torch.cat(depths),
            "head_counts": torch.cat(heads),
        }

    def fit(self, checkpoint: str | os.PathLike[str] | None = None, stop_after: int | None = None) -> dict[str, Any]:
        """Train to the end of the schedule (from wherever the trainer stands), evaluating on the
        validation split after each epoch and checkpointing there when ``checkpoint`` is given.

        Args:
            checkpoint: a file to write after every epoch (atomically).
            stop_after: stop after this many steps in total (to simulate an interrupted run).

        Returns:
            The last validation metrics and the per-epoch history.
        """
        bar = None
        if self.config.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, file=sys.stderr, dynamic_ncols=True)
        last: dict[str, Any] = {}
        try:
            while self.step < self.total_steps:
                epoch, offset = divmod(self.step, self.steps_per_epoch)
                order = self._order(epoch)
                bs = self.config.batch_size
                for start in range(offset * bs, len(order), bs):
                    if stop_after is not None and self.step >= stop_after:
                        return last
                    stats = self.train_step(*self._batch(self.task.train, order[start : start + bs]))
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(
                            loss=f"{stats['loss']:.3f}", acc=f"{stats['accuracy']:.2f}",
                            saving=f"{1 - stats['flop_ratio']:.0%}",
                        )  # fmt: skip
                val = self.evaluate(self.task.val)
                last = {k: v for k, v in val.items() if not isinstance(v, Tensor)}
                self.history.append({"epoch": epoch + 1, **last})
                if checkpoint is not None:
                    self.save(checkpoint)
        finally:
            if bar is not None:
                bar.close()
        return {**last, "history": self.history}

    # ------------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": asdict(self.config),
            "step": self.step,
            "model": self.model.state_dict(),
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": self.history,
            "train_flops": self.train_flops,
            "train_samples": self.train_samples,
            "rng_global": torch.get_rng_state(),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a checkpoint atomically."""
        save_atomic(self.state_dict(), path)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Resume from a checkpoint written by :meth:`save` for the same model, controller and
        config; a truncated or foreign file is an :class:`InputValidationError`."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise InputValidationError(
                f"expected a banditformer checkpoint at {str(path)!r}, got an unreadable file ({exc})"
            ) from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise InputValidationError(f"expected a {CHECKPOINT_FORMAT} file at {str(path)!r}, got something else")
        if state["config"] != asdict(self.config):
            raise InputValidationError(f"expected a checkpoint of config {asdict(self.config)}, got {state['config']}")
        self.model.load_state_dict(state["model"])
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.train_flops, self.train_samples = float(state["train_flops"]), int(state["train_samples"])
        torch.set_rng_state(state["rng_global"])
