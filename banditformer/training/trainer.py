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
import pickle
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from banditformer.core.backend import Backend
from banditformer.core.controller import Controller
from banditformer.core.errors import InputValidationError, TrainingDivergedError
from banditformer.core.random import derive_seed, make_generator
from banditformer.core.state import restored_on_error, same_value
from banditformer.core.task import Split, Task
from banditformer.core.validation import check_float, check_int, check_tensor
from banditformer.training.checkpoint import (
    _ADAMW_SETTINGS,
    CHECKPOINT_FORMAT,
    _adamw_state_keys,
    check_writable,
    remove_stale_temporaries,
    save_atomic,
)
from banditformer.training.distributed import StateSync, fork_generators, rank_and_world

__all__ = ["TrainConfig", "Trainer"]



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
            :mod:`banditformer.training.distributed`); ignored in a single process.
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


class _Forward(nn.Module):
    """stem -> decide -> run as one module call, so that DistributedDataParallel wraps a whole
    forward pass. The controller is held outside the module tree: DDP must not broadcast its
    statistics (ranks merge increments instead, :class:`~banditformer.training.distributed.StateSync`)."""

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
            try:  # decide checks that the context is finite; a model that makes NaN has diverged
                decision = self.controller.decide(context, explore=explore)
            except InputValidationError:
                if bool(torch.isfinite(context).all()):
                    raise
                raise TrainingDivergedError(
                    "expected finite activations, got NaN or inf in the stem's output (the model's weights are not "
                    "finite, or its inputs overflow)"
                ) from None
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
        task: a :class:`~banditformer.tasks.Task`.
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
        the gradients are scaled back by the global batch's size over the ranks).

        A step that raises changes nothing: every check (inputs, finite activations, loss and
        gradients, the controller's feedback) comes before the model, the optimizer, the counters
        or the policies change, and the random draws it made (dropout, exploration) are undone.

        Raises:
            InputValidationError: bad ``x`` or ``y``.
            TrainingDivergedError: non-finite activations, loss or gradients, naming the step.
        """
        self._check_batch(x, y)
        snapshot = self._rng_snapshot()
        try:
            return self._train_step(x, y)
        except BaseException as exc:
            self._rng_restore(snapshot)
            self.optimizer.zero_grad(set_to_none=True)
            if isinstance(exc, TrainingDivergedError):
                lr = self.optimizer.param_groups[0]["lr"]
                raise TrainingDivergedError(
                    f"training diverged at step {self.step} of {self.total_steps} (lr {lr:.3g}): {exc}; nothing of "
                    "this step was applied: lower `lr` or `grad_clip`, or resume from an earlier checkpoint"
                ) from None
            raise

    def _check_batch(self, x: Tensor, y: Tensor) -> None:
        check_tensor("x", x, device=self.backend.device)
        check_tensor("y", y, ndim=1, kind="int", device=self.backend.device)
        if x.ndim == 0 or x.shape[0] != y.shape[0] or y.shape[0] == 0:
            raise InputValidationError(f"expected `x` and `y` with the same number of rows >= 1, got "
                                       f"{tuple(x.shape)} and {tuple(y.shape)}")  # fmt: skip
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise InputValidationError("expected `x` to be finite, got NaN or inf entries")
        classes = self.model.cfg.num_classes
        if not bool(((y >= 0) & (y < classes)).all()):
            bad = y[(y < 0) | (y >= classes)][:5].tolist()
            raise InputValidationError(f"expected `y` in [0, {classes}), got values {bad}")

    def _rng_snapshot(self) -> list[tuple[Any, str, Any]]:
        """The states of every random source a step draws from: the global RNGs (dropout) and
        every ``torch.Generator`` the controller and its policies hold (exploration)."""
        out: list[tuple[Any, str, Any]] = [(torch, "global", torch.get_rng_state())]
        if self.backend.device.type == "cuda":
            out.append((torch.cuda, "cuda", torch.cuda.get_rng_state(self.backend.device)))
        for module in self.controller.modules():
            for name, value in vars(module).items():
                if isinstance(value, torch.Generator):
                    out.append((module, name, value.get_state()))
        return out

    def _rng_restore(self, snapshot: list[tuple[Any, str, Any]]) -> None:
        for owner, name, state in snapshot:
            if name == "global":
                torch.set_rng_state(state)
            elif name == "cuda":
                torch.cuda.set_rng_state(state, self.backend.device)
            else:
                getattr(owner, name).set_state(state)

    def _train_step(self, x: Tensor, y: Tensor) -> dict[str, float]:
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
        if not math.isfinite(loss_sum):
            raise TrainingDivergedError(f"expected a finite loss, got {loss_sum / rows}")
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
        if self.scaler is None:
            # Without a loss scaler a non-finite gradient is divergence: refuse the step before it
            # reaches the weights. (Under a scaler it is an overflow, and the scaler skips the step.)
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            if not bool(torch.isfinite(norm)):
                raise TrainingDivergedError(f"expected finite gradients, got a gradient norm of {float(norm)}")
        # Everything was checked: apply. Should the optimizer's step still fail (or Ctrl-C come),
        # the controller goes back to where it was, so that it never runs a step ahead of the model.
        # An fp16 step whose scaled gradients overflowed: the scaler skips the optimizer step, and
        # the bandits skip this step's feedback (its importance scores are meaningless).
        overflow = self.scaler is not None and importance is not None and not bool(torch.isfinite(importance).all())
        with restored_on_error(self.controller):
            if not overflow:
                self.controller.feedback(decision, quality, flops.float(), head_importance=importance)
            self.sync.step()
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.scheduler.step()
        self.skipped_feedback += int(overflow)
        self.train_flops += flop_sum
        self.train_samples += int(rows)
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
        if stop_after is not None:
            check_int("stop_after", stop_after, low=0)
        if checkpoint is not None and self.rank == 0:
            check_writable(checkpoint)  # before the first step, not after the first epoch
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
            "skipped_feedback": self.skipped_feedback,
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
        config.

        The file is data: it is read with ``torch.load(weights_only=True)``, so a crafted file
        cannot run code. Every field is checked before anything is applied (see
        :meth:`check_state`), and the load is all or nothing.

        Raises:
            InputValidationError: a truncated, foreign or crafted file, or one that does not fit,
                saying which field was expected and what was got; nothing was loaded.
        """
        remove_stale_temporaries(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            first = str(exc).strip().splitlines()
            detail = next((line for line in first if "Unsupported" in line or "global" in line.lower()), first[0])
            raise InputValidationError(
                f"expected a banditformer checkpoint at {str(path)!r} holding only data (tensors, numbers, strings), "
                f"got a file that needs code to load; refused, nothing ran ({detail.strip()})"
            ) from None
        except Exception as exc:
            raise InputValidationError(
                f"expected a banditformer checkpoint at {str(path)!r}, got an unreadable file ({exc})"
            ) from None
        try:
            self.check_state(state, str(path))
        except InputValidationError as exc:
            raise InputValidationError(f"{exc}; nothing was loaded") from None
        # All or nothing: should a part still fail, restore everything already loaded.
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

    def check_state(self, state: object, where: str = "the checkpoint") -> None:
        """Check a loaded checkpoint against this trainer without changing anything.

        The format and every part: the configuration equals this trainer's (an error names the
        fields that differ, with both values); ``step`` is an int in ``[0, total_steps]``, and the
        scheduler stands at the same step; ``train_samples`` and ``skipped_feedback`` are ints
        in ``[0, step * batch_size]``; ``train_flops`` is finite, in ``[0, train_samples *
        full_flops]``; ``history`` is a list of at most ``epochs`` records, each a mapping of
        names to finite numbers with an ``epoch`` in ``[1, epochs]``; the global RNG state has
        its shape; the model has the same keys and shapes; the optimizer the same groups, its
        state the parameters' shapes and finite values; the controller passes its own checks
        (:class:`~banditformer.core.state.CheckedModule`: configuration, ranges, generators).

        Raises:
            InputValidationError: naming the field, what was expected and what was got.
        """

        def bad(field: str, expected: str, got: object) -> InputValidationError:
            return InputValidationError(f"expected `{field}` in {where} to be {expected}, got {got!r}")

        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise InputValidationError(f"expected a {CHECKPOINT_FORMAT} file at {where!r}, got something else")
        missing = sorted(set(self.state_dict()) - set(state) - {"skipped_feedback"})
        if missing:
            raise InputValidationError(f"expected a complete checkpoint at {where!r}, got one missing {missing}")
        mine = {k: v for k, v in asdict(self.config).items() if k != "progress"}  # display only
        saved = state["config"] if isinstance(state["config"], dict) else {}
        theirs = {k: v for k, v in saved.items() if k != "progress"}
        if theirs != mine:
            diff = ", ".join(
                f"`{k}` {theirs.get(k, '(missing)')!r} (this trainer: {mine.get(k, '(none)')!r})"
                for k in sorted(set(mine) | set(theirs)) if theirs.get(k, object()) != mine.get(k, object())
            )  # fmt: skip
            raise InputValidationError(
                f"expected a checkpoint of config {mine}, got one whose {diff}; build the trainer with the saved "
                "config to resume it"
            )
        step = state["step"]
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= self.total_steps:
            raise bad("step", f"an int in [0, {self.total_steps}] (the run's steps)", step)
        rows = step * self.config.batch_size
        for field in ("train_samples", "skipped_feedback"):
            v = state.get(field, 0)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= rows:
                raise bad(field, f"an int in [0, {rows}] (step x batch_size)", v)
        flops = state["train_flops"]
        top = state["train_samples"] * self.full_flops * (1 + 1e-9)
        if isinstance(flops, bool) or not isinstance(flops, (int, float)) or not 0 <= flops <= top:
            raise bad("train_flops", f"a finite number in [0, {top:g}] (train_samples x full FLOPs)", flops)
        history = state["history"]
        if not isinstance(history, list) or len(history) > self.config.epochs:
            raise bad("history", f"a list of at most {self.config.epochs} records", type(history).__name__)
        for i, record in enumerate(history):
            ok = isinstance(record, dict) and all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for k, v in record.items()
            )
            epoch = record.get("epoch") if isinstance(record, dict) else None
            if not ok or not isinstance(epoch, int) or not 1 <= epoch <= self.config.epochs:
                raise bad(f"history[{i}]", "a record of finite numbers with an `epoch` in "
                                           f"[1, {self.config.epochs}]", record)  # fmt: skip
        rng, own_rng = state["rng_global"], torch.get_rng_state()
        if not isinstance(rng, Tensor) or rng.dtype != own_rng.dtype or rng.shape != own_rng.shape:
            got = f"{rng.dtype} {tuple(rng.shape)}" if isinstance(rng, Tensor) else type(rng).__name__
            raise bad("rng_global", f"a {own_rng.dtype} tensor of shape {tuple(own_rng.shape)}", got)
        self._check_tensors("model", state["model"], self.model.state_dict(), where)
        self._check_optimizer(state["optimizer"], where)
        self._check_scheduler(state["scheduler"], step, where)
        if self.scaler is not None and not isinstance(state.get("scaler"), dict):
            raise bad("scaler", "a GradScaler state (this trainer scales fp16 losses)", type(state.get("scaler")))
        try:  # the controller's own checks (CheckedModule), run without loading
            self.controller.check_state_dict(state["controller"])
        except InputValidationError as exc:
            raise InputValidationError(f"expected a controller state in {where} that fits: {exc}") from None

    @staticmethod
    def _check_tensors(part: str, saved: object, own: dict[str, Any], where: str) -> None:
        if not isinstance(saved, dict):
            raise InputValidationError(f"expected `{part}` in {where} to be a state dict, got {type(saved).__name__}")
        missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
        if missing or unexpected:
            raise InputValidationError(
                f"expected `{part}` in {where} to be this {part}'s state, got missing keys {missing[:5]} and "
                f"unexpected keys {unexpected[:5]}"
            )
        for key, value in own.items():
            if not isinstance(value, Tensor):
                continue
            theirs = saved[key]
            if not isinstance(theirs, Tensor) or theirs.shape != value.shape or theirs.dtype != value.dtype:
                got = f"{theirs.dtype} {tuple(theirs.shape)}" if isinstance(theirs, Tensor) else type(theirs).__name__
                raise InputValidationError(
                    f"expected `{part}.{key}` in {where} to be {value.dtype} of shape {tuple(value.shape)}, got {got}"
                )
            if theirs.is_floating_point() and not bool(torch.isfinite(theirs).all()):
                raise InputValidationError(
                    f"expected `{part}.{key}` in {where} to be finite, got NaN or inf entries (a diverged model)"
                )

    def _check_optimizer(self, saved: object, where: str) -> None:
        own = self.optimizer.state_dict()
        groups = saved.get("param_groups") if isinstance(saved, dict) else None
        if not isinstance(groups, list) or not isinstance(saved.get("state"), dict) or [  # type: ignore[union-attr]
            len(g.get("params", ())) if isinstance(g, dict) else -1 for g in groups
        ] != [len(g["params"]) for g in own["param_groups"]]:
            raise InputValidationError(f"expected `optimizer` in {where} to be the state of this model's AdamW, got "
                                       "one of other parameter groups")  # fmt: skip
        for i, (mine, theirs) in enumerate(zip(own["param_groups"], groups, strict=True)):
            # The optimizer's hyperparameters are configuration (implementation flags such as
            # `foreach` or `fused` may differ between machines); lr follows the schedule.
            needed = [k for k in ("lr", "initial_lr", *_ADAMW_SETTINGS) if k in mine]
            absent = [k for k in needed if k not in theirs]
            if absent:
                raise InputValidationError(f"expected `optimizer.param_groups[{i}]` in {where} with {needed}, got "
                                           f"one without {absent}")  # fmt: skip
            for key in _ADAMW_SETTINGS:
                value = mine.get(key)
                if key in mine and not same_value(theirs[key], value):
                    raise InputValidationError(
                        f"expected `optimizer.param_groups[{i}].{key}` in {where} = {value!r} (this trainer's "
                        f"AdamW), got {theirs[key]!r}"
                    )
            for key in ("lr", "initial_lr"):
                v = theirs[key]
                if isinstance(v, Tensor):
                    v = float(v)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf:
                    raise InputValidationError(
                        f"expected `optimizer.param_groups[{i}].{key}` in {where} to be a finite number >= 0, got {v!r}"
                    )
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        ids = [i for g in groups for i in g["params"]]
        expected = _adamw_state_keys(self.optimizer)
        for pid, entry in saved["state"].items():  # type: ignore[index]
            if pid not in ids or not isinstance(entry, dict):
                raise InputValidationError(f"expected `optimizer.state` in {where} keyed by parameter, got {pid!r}")
            if set(entry) != expected:
                raise InputValidationError(
                    f"expected `optimizer.state[{pid}]` in {where} with {sorted(expected)}, got {sorted(entry)}"
                )
            shape = params[ids.index(pid)].shape
            for name, t in entry.items():
                if not isinstance(t, Tensor) or (t.ndim and t.shape != shape) or not bool(torch.isfinite(t).all()):
                    raise InputValidationError(
                        f"expected `optimizer.state[{pid}].{name}` in {where} to be finite and of shape "
                        f"{tuple(shape)}, got {tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}"
                    )
                low = 0.0 if name in ("step", "exp_avg_sq", "max_exp_avg_sq") else None
                if low is not None and bool((t < low).any()):
                    raise InputValidationError(f"expected `optimizer.state[{pid}].{name}` in {where} >= 0, got "
                                               f"{float(t.min())}")  # fmt: skip

    def _check_scheduler(self, sched: object, step: int, where: str) -> None:
        own = self.scheduler.state_dict()
        if not isinstance(sched, dict) or set(sched) != set(own):
            got = sorted(sched) if isinstance(sched, dict) else type(sched).__name__
            raise InputValidationError(
                f"expected `scheduler` in {where} to be a state with keys {sorted(own)}, got {got}"
            )
        if sched.get("last_epoch") != step:
            raise InputValidationError(
                f"expected `scheduler.last_epoch` in {where} to be the checkpoint's step {step}, got "
                f"{sched.get('last_epoch')!r}"
            )
        for key, value in own.items():
            if key in ("last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "_is_initial"):
                continue  # the schedule's position: checked through last_epoch
            if not same_value(sched[key], value):
                raise InputValidationError(
                    f"expected `scheduler.{key}` in {where} = {value!r} (this trainer's schedule), got {sched[key]!r}"
                )
        last = sched.get("_last_lr")
        if not isinstance(last, list) or not all(
            isinstance(v, (int, float, Tensor)) and 0 <= float(v) < math.inf for v in last
        ):
            raise InputValidationError(f"expected `scheduler._last_lr` in {where} to be finite rates, got {last!r}")

    def _load_parts(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.train_flops, self.train_samples = float(state["train_flops"]), int(state["train_samples"])
        self.skipped_feedback = int(state.get("skipped_feedback", 0))
        torch.set_rng_state(state["rng_global"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
