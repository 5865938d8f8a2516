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
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from banditformer.core.backend import Backend
from banditformer.core.controller import Controller
from banditformer.core.distributed import StateSync, fork_generators, rank_and_world
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
        autocast_dtype: ``"bfloat16"`` or ``"float16"`` (default: the backend's choice); float16
            on CUDA scales the loss (``torch.amp.GradScaler``) so that small gradients survive.
        progress: show a progress bar (loss, accuracy, FLOP saving).
        greedy_tail: the last share of the training steps decides greedily (``explore=False``,
            as at inference), so the network fine-tunes on the architectures it will run; the
            controller still gets feedback. 0 explores to the end.
        sync_every: under ``torch.distributed`` with several ranks, all-reduce the bandit
            statistics' increments every this many steps (see
            :mod:`banditformer.core.distributed`); ignored in a single process.
    """

    epochs: int = 5
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    autocast: bool = False
    autocast_dtype: str | None = None
    progress: bool = True
    greedy_tail: float = 0.0
    sync_every: int = 1

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("weight_decay", self.weight_decay, low=0.0)
        check_float("grad_clip", self.grad_clip, low=0.0, low_open=True)
        check_int("seed", self.seed, low=0)
        check_float("greedy_tail", self.greedy_tail, low=0.0, high=1.0, high_open=True)
        check_int("sync_every", self.sync_every, low=1)
        if self.autocast_dtype not in (None, "bfloat16", "float16"):
            raise InputValidationError(
                f"expected `autocast_dtype` in (None, 'bfloat16', 'float16'), got {self.autocast_dtype!r}"
            )


def save_atomic(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file beside ``path``, ``fsync``, then rename over ``path``:
    a crash leaves either the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; a checkpoint is an ordinary file (umask applies)
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Forward(nn.Module):
    """stem -> decide -> run as one module call, so that DistributedDataParallel wraps a whole
    forward pass. The controller is held outside the module tree: DDP must not broadcast its
    statistics (ranks merge increments instead, :class:`~banditformer.core.distributed.StateSync`)."""

    def __init__(
        self, model: nn.Module, controller: Controller, backend: Backend, autocast: bool, dtype: torch.dtype | None
    ) -> None:
        super().__init__()
        self.model = model
        self.__dict__["controller"] = controller
        self.__dict__["backend"] = backend
        self.autocast = autocast
        self.dtype = dtype
        self.last: tuple[Any, Tensor | None] = (None, None)  # the decision and gate of the latest call

    def forward(self, x: Tensor, explore: bool, gate: bool = False) -> Tensor:
        with self.backend.autocast(enabled=self.autocast, dtype=self.dtype):
            h, context = self.model.stem(x)
            decision = self.controller.decide(context, explore=explore)
            head_gate = None
            if gate:  # ones whose gradient is each head's importance (the logits are unchanged)
                head_gate = torch.ones(decision.heads.shape, device=h.device, requires_grad=True)
            logits = self.model.run(h, decision, head_gate=head_gate)
        self.last = (decision, head_gate)
        return logits.float()


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
        self.skipped_feedback = 0  # fp16 steps whose head-importance scores overflowed
        self.rank, self.world = rank_and_world()
        # dropout draws from the global RNG; rank 0 draws as a single process would
        torch.manual_seed(derive_seed(config.seed, "global", *([self.rank] if self.rank else [])))
        dtype = getattr(torch, config.autocast_dtype) if config.autocast_dtype else None
        self._net = _Forward(self.model, self.controller, self.backend, config.autocast, dtype)
        fp16 = config.autocast and (dtype or self.backend.autocast_dtype) == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if fp16 and self.backend.device.type == "cuda" else None
        self._step_net: nn.Module = self._net
        if self.world > 1:
            self._check_shards()
            from torch.nn.parallel import DistributedDataParallel

            fork_generators(self.controller, self.rank)
            cuda = self.backend.device.type == "cuda"
            self._step_net = DistributedDataParallel(
                self._net,
                device_ids=[self.backend.device] if cuda else None,
                find_unused_parameters=True,  # skipped blocks and heads have no gradient
            )
        self.sync = StateSync(self.controller, every=config.sync_every)

    def _check_shards(self) -> None:
        n, bs = len(self.task.train), self.config.batch_size
        last = n - (self.steps_per_epoch - 1) * bs
        if min(bs, last) < self.world:
            raise InputValidationError(
                f"expected every global batch to give each of {self.world} ranks a row (batch_size {bs}, last "
                f"batch {last}), got fewer rows than ranks"
            )

    # ----------------------------------------------------------------------------------- data
    def _order(self, epoch: int) -> Tensor:
        return torch.randperm(
            len(self.task.train), generator=make_generator(derive_seed(self.config.seed, "epoch", epoch))
        )

    def _batch(self, split: Split, index: Tensor) -> tuple[Tensor, Tensor]:
        return split.x[index].to(self.backend.device), split.y[index].to(self.backend.device)

    # ----------------------------------------------------------------------------------- steps
    def _forward(self, x: Tensor, explore: bool, gate: bool = False) -> tuple[Tensor, Any, Tensor | None]:
        logits = self._net(x, explore, gate)
        return (logits, *self._net.last)

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, float]:
        """One optimisation step on a batch; returns its loss, accuracy and FLOP ratio.

        The controller's feedback comes after the backward pass, so that a controller that
        rewards heads by importance gets ``|dL/d gate|`` per sample (the batch loss is a mean, so
        the gradients are scaled back by the global batch's size over the ranks)."""
        self.model.train()
        explore = self.step < self.total_steps * (1.0 - self.config.greedy_tail)
        logits = self._step_net(x, explore, self.controller.wants_head_importance)
        decision, gate = self._net.last
        loss = F.cross_entropy(logits, y)
        quality = logits.detach().softmax(-1).gather(1, y.unsqueeze(1)).squeeze(1)
        flops = self.model.sample_flops(decision).to(quality.device)
        # FLOPs, loss and accuracy over the global batch (summed over ranks when distributed)
        totals = torch.stack([
            flops.double().sum(), torch.tensor(float(flops.numel()), dtype=torch.float64, device=flops.device),
            loss.detach().double() * flops.numel(), (logits.argmax(1) == y).double().sum(),
        ])  # fmt: skip
        if self.world > 1:
            torch.distributed.all_reduce(totals)
        flop_sum, rows, loss_sum, correct = totals.tolist()
        self.train_flops += flop_sum
        self.train_samples += int(rows)
        self.optimizer.zero_grad(set_to_none=True)
        # Each rank's loss is a mean over its rows; weighted by its share of the global batch, the
        # gradient DDP averages is the global batch's mean loss's, also when the shards differ.
        local = float(y.shape[0])
        objective = loss * (local * self.world / rows) if self.world > 1 else loss
        (self.scaler.scale(objective) if self.scaler is not None else objective).backward()
        importance = None
        if gate is not None:
            grad = gate.grad if gate.grad is not None else torch.zeros_like(gate)
            if self.scaler is not None:  # the loss was scaled
                grad = grad / self.scaler.get_scale()
            importance = grad.abs() * (rows / self.world)  # d(sample loss)/d gate: undo the mean's 1/n
        if importance is not None and self.scaler is not None and not bool(torch.isfinite(importance).all()):
            # An fp16 step whose scaled gradients overflowed: the scaler skips the optimizer step,
            # and the bandits skip this step's feedback (its importance scores are meaningless).
            self.skipped_feedback += 1
        else:
            self.controller.feedback(decision, quality, flops.float(), head_importance=importance)
        self.sync.step()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return {"loss": loss_sum / rows, "accuracy": correct / rows, "flop_ratio": flop_sum / rows / self.full_flops}

    @property
    def train_flop_ratio(self) -> float:
        """Mean forward FLOPs per training sample so far, over the full model's."""
        return self.train_flops / max(self.train_samples, 1) / self.full_flops

    @torch.no_grad()
    def evaluate(self, split: Split, batch_size: int = 256) -> dict[str, Any]:
        """Accuracy, FLOPs per sample, the chosen depths and heads, and the wall time (decisions
        included) on ``split``, deciding with ``explore=False``. Under ``torch.distributed``
        each rank evaluates every ``world``-th sample and the results are gathered, in the
        split's order, on every rank."""
        self.model.eval()
        if self.world > 1:  # every rank decides from the same statistics (a collective: all ranks evaluate)
            self.sync.sync()
        hits, flops, depths, heads = [], [], [], []
        begin = time.perf_counter()
        mine = torch.arange(self.rank, len(split), self.world)
        for start in range(0, len(mine), batch_size):
            x, y = self._batch(split, mine[start : start + batch_size])
            logits, decision, _ = self._forward(x, explore=False)
            hits.append((logits.argmax(1) == y).cpu())
            flops.append(self.model.sample_flops(decision).cpu())
            depths.append(decision.depth.cpu())
            heads.append(decision.head_counts.cpu())
        parts = [torch.cat(p) if p else None for p in (hits, flops, depths, heads)]
        if self.world > 1:
            parts = [self._gather(p, len(split)) for p in parts]
        hit, all_flops, depth, head_counts = parts
        seconds = time.perf_counter() - begin
        return {
            "seconds": seconds,
            "accuracy": float(hit.double().sum()) / max(len(split), 1),
            "flops_per_sample": float(all_flops.mean()),
            "flop_saving": 1.0 - float(all_flops.mean()) / self.full_flops,
            "flops": all_flops,
            "depth": depth,
            "head_counts": head_counts,
        }

    def _gather(self, part: Tensor | None, n: int) -> Tensor:
        """Rows ``rank::world`` from every rank, put back in order (``n`` rows in all)."""
        pieces: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(pieces, part)
        template = next(p for p in pieces if p is not None)
        out = torch.empty((n, *template.shape[1:]), dtype=template.dtype)
        for r, piece in enumerate(pieces):
            if piece is not None:
                out[r :: self.world] = piece
        return out

    def fit(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        stop_after: int | None = None,
        checkpoint_every: int | None = None,
    ) -> dict[str, Any]:
        """Train to the end of the schedule (from wherever the trainer stands), evaluating on the
        validation split after each epoch and checkpointing there when ``checkpoint`` is given.

        Under ``torch.distributed`` every rank takes every ``world``-th row of each global batch
        of ``batch_size`` rows (the same batches a single process would take), and only rank 0
        writes checkpoints.

        Args:
            checkpoint: a file to write after every epoch (atomically).
            stop_after: stop after this many steps in total (to simulate an interrupted run).
            checkpoint_every: also write ``checkpoint`` every this many steps within an epoch.

        Returns:
            The last validation metrics and the per-epoch history.
        """
        if checkpoint_every is not None:
            check_int("checkpoint_every", checkpoint_every, low=1)
        bar = None
        if self.config.progress and self.rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, file=sys.stderr, dynamic_ncols=True, disable=None)
        last: dict[str, Any] = {}
        try:
            while self.step < self.total_steps:
                epoch, offset = divmod(self.step, self.steps_per_epoch)
                order = self._order(epoch)
                bs = self.config.batch_size
                for start in range(offset * bs, len(order), bs):
                    if stop_after is not None and self.step >= stop_after:
                        return {**last, "history": self.history}
                    rows = order[start : start + bs][self.rank :: self.world]
                    stats = self.train_step(*self._batch(self.task.train, rows))
                    mid_epoch = self.step % self.steps_per_epoch != 0  # an epoch's end writes its own
                    if checkpoint is not None and checkpoint_every and self.step % checkpoint_every == 0 and mid_epoch:
                        self.save(checkpoint)
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
            **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a checkpoint atomically (rank 0 only under ``torch.distributed``: the ranks hold
        the same model and statistics after a sync; the others wait for the file)."""
        if self.world > 1:
            self.sync.sync()
        if self.rank == 0:
            save_atomic(self.state_dict(), path)
        if self.world > 1:
            torch.distributed.barrier()

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
        missing = sorted(set(self.state_dict()) - set(state))
        if missing:
            raise InputValidationError(f"expected a complete checkpoint at {str(path)!r}, got one missing {missing}")
        mine = {k: v for k, v in asdict(self.config).items() if k != "progress"}  # display only
        saved = state["config"] if isinstance(state["config"], dict) else {}
        theirs = {k: v for k, v in saved.items() if k != "progress"}
        if theirs != mine:
            raise InputValidationError(f"expected a checkpoint of config {mine}, got {state['config']}")
        # All or nothing: a part that does not fit restores everything already loaded.
        import copy

        before = copy.deepcopy(self.state_dict())
        try:
            self._load_parts(state)
        except Exception as exc:
            self._load_parts(before)
            raise InputValidationError(f"expected a checkpoint of this model and controller at {str(path)!r}, got "
                                       f"one that does not fit, so nothing was loaded: {exc}") from None  # fmt: skip
        if self.world > 1:
            fork_generators(self.controller, self.rank)
            if self.rank:  # the checkpoint holds rank 0's global RNG; the others draw their own
                torch.manual_seed(derive_seed(self.config.seed, "global", self.rank, self.step))
        self.sync.refresh()
        self.sync.calls = self.step  # syncs stay on the same steps as in the uninterrupted run

    def _load_parts(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.train_flops, self.train_samples = float(state["train_flops"]), int(state["train_samples"])
        torch.set_rng_state(state["rng_global"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
