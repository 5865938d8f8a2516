"""Training and evaluation of a dynamic transformer with an architecture controller.

One step: ``stem`` -> ``controller.decide(context, explore=True)`` -> ``run`` the rest -> loss ->
``controller.feedback(decision, quality, flops)`` (quality: probability of the true class) ->
AdamW step under a cosine schedule with gradient clipping. Evaluation decides with
``explore=False``. Checkpoints hold the model, optimizer, scheduler, controller (its policies'
statistics and generators) and every RNG state, and are written atomically (temporary file,
``fsync``, rename), so a run resumed from one ends exactly where an uninterrupted run ends (on
the CPU).

This module holds the training loop, evaluation, FLOP accounting and progress; the checks and
loading of checkpoints are :mod:`banditformer.training.checkpoint`'s, and the data-parallel parts
(DDP wrapping, per-rank seeds, gathering) :mod:`banditformer.training.distributed`'s. The trainer
runs the model with its backend's kernels and reports each epoch's metrics to an observer (see
:class:`Trainer`).
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from banditformer.core.backend import Backend
from banditformer.core.controller import Controller
from banditformer.core.decision import Decision
from banditformer.core.errors import InputValidationError, TrainingDivergedError
from banditformer.core.random import derive_seed, make_generator
from banditformer.core.state import restored_on_error
from banditformer.core.task import Split, Task
from banditformer.core.validation import check_float, check_int, check_tensor
from banditformer.model import AdaptiveModel, check_model
from banditformer.training.checkpoint import (
    CHECKPOINT_FORMAT,
    TrainingParts,
    check_checkpoint,
    check_writable,
    read_checkpoint,
    save_atomic,
)
from banditformer.training.distributed import (
    StateSync,
    check_shards,
    data_parallel,
    fork_generators,
    gather_rows,
    global_seed,
    rank_and_world,
    reduced_states,
    rejoin_ranks,
    sum_over_ranks,
)

__all__ = ["OBJECTIVES", "MetricsObserver", "TrainConfig", "Trainer", "multi_exit_loss"]

#: The training objectives (see :class:`TrainConfig`).
OBJECTIVES = ("auto", "last", "joint", "distill", "sandwich")


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
        objective: what the network learns from (see :func:`multi_exit_loss`):

            - ``"last"``: cross-entropy at each sample's own exit (the depth it ran to);
            - ``"joint"``: the weighted joint loss over every exit a sample passed, exit ``d``
              weighted by ``d`` (as PABEE and the multi-exit literature train);
            - ``"distill"``: the joint loss, and self-distillation of each shallower exit from
              the sample's deepest one (``distill_weight`` of the loss, at ``temperature``);
            - ``"sandwich"``: the sandwich rule of slimmable networks: each step the batch also
              runs the largest shape (the full model), the smallest (the stem alone) and one
              random uniform shape (depth and heads drawn per step from the seed), on the same
              stem, and their losses are added to the controller's (training FLOPs count them);
            - ``"auto"`` (default): ``"joint"`` for a controller that decides at exit points
              (its exits must learn to classify), ``"last"`` otherwise.
        distill_weight, temperature: the share of the distillation term and its softmax
            temperature (``"distill"``).
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
    objective: str = "auto"
    distill_weight: float = 0.5
    temperature: float = 2.0

    def resolved_objective(self, controller: Controller) -> str:
        """The objective a run with ``controller`` trains with (``"auto"`` resolved)."""
        if self.objective != "auto":
            return self.objective
        return "joint" if controller.halts or controller.routes else "last"

    def total_steps(self, train_rows: int) -> int:
        """Optimisation steps of the whole schedule on ``train_rows`` training rows (the last batch
        of an epoch may be short).

        Examples:
            >>> TrainConfig(epochs=3, batch_size=64).total_steps(1000)
            48
        """
        check_int("train_rows", train_rows, low=0)
        return math.ceil(train_rows / self.batch_size) * self.epochs

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("weight_decay", self.weight_decay, low=0.0)
        check_float("grad_clip", self.grad_clip, low=0.0, low_open=True)
        check_int("seed", self.seed, low=0)
        check_float("greedy_tail", self.greedy_tail, low=0.0, high=1.0, high_open=True)
        check_int("sync_every", self.sync_every, low=1)
        if self.objective not in OBJECTIVES:
            raise InputValidationError(f"expected `objective` in {OBJECTIVES}, got {self.objective!r}")
        check_float("distill_weight", self.distill_weight, low=0.0, high=1.0)
        check_float("temperature", self.temperature, low=0.0, low_open=True)
        if self.autocast_dtype not in (None, "bfloat16", "float16"):
            raise InputValidationError(
                f"expected `autocast_dtype` in (None, 'bfloat16', 'float16'), got {self.autocast_dtype!r}"
            )


class _Forward(nn.Module):
    """stem -> decide -> run as one module call, so that DistributedDataParallel wraps a whole
    forward pass; it returns everything it made: ``(logits, decision, gate)``. The controller is
    held outside the module tree: DDP must not broadcast its statistics (ranks merge increments
    instead, :class:`~banditformer.training.distributed.StateSync`)."""

    def __init__(
        self, model: nn.Module, controller: Controller, backend: Backend, autocast: bool, dtype: torch.dtype | None
    ) -> None:
        super().__init__()
        self.model = model
        self.__dict__["controller"] = controller
        self.__dict__["backend"] = backend
        self.autocast = autocast
        self.dtype = dtype

    def forward(
        self, x: Tensor, explore: bool, gate: bool = False, exits: bool = False, shapes: tuple[Decision, ...] = ()
    ) -> tuple[Tensor, Decision, Tensor | None, Tensor | None, list[Tensor]]:
        """``x`` ``(B, ...)`` -> float32 logits ``(B, C)``; the decision as run (the depth each
        sample reached: a halting controller's samples may stop before the planned depth, and
        the exits evaluated); with ``gate`` the ``(B, L, H)`` head gate of ones whose gradient is
        each head's importance (else None); with ``exits`` or a halting controller the
        ``(B, L, C)`` logits of every exit passed (else None); and the logits of each extra
        decision in ``shapes`` run on the same stem (the sandwich rule's shapes)."""
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
            exit_logits = None
            c = self.controller
            if c.halts or c.routes or exits:
                halt = functools.partial(c.halt, decision=decision, explore=explore) if c.halts else None
                route = functools.partial(c.route, decision=decision, explore=explore) if c.routes else None
                out = self.model.run_exits(h, decision, halt=halt, route=route, all_exits=exits, head_gate=head_gate)
                logits, exit_logits = out.logits, out.exit_logits
                heads = decision.heads if out.heads is None else out.heads
                decision = Decision(out.depth, heads, decision.record, out.exits)
            else:
                logits = self.model.run(h, decision, head_gate=head_gate)
            extra = [self.model.run(h, shape).float() for shape in shapes]
        # DDP passes the output through: the logits through its autograd sink, the decision (a
        # dataclass, a leaf to its pytree) and the gate (a leaf tensor) as they are.
        return logits.float(), decision, head_gate, None if exit_logits is None else exit_logits.float(), extra


def multi_exit_loss(
    exit_logits: Tensor, depth: Tensor, y: Tensor, *, distill_weight: float = 0.0, temperature: float = 1.0
) -> Tensor:
    """The weighted joint loss over the exits each sample passed, with optional self-distillation.

    Per sample ``i`` of depth ``D_i``: ``sum_d w_d CE_d / sum_d w_d`` over its exits ``d = 1 ..
    D_i``, with ``w_d = d`` (deeper exits weigh more, as PABEE trains); with ``distill_weight``
    ``a > 0``, ``(1 - a)`` times that plus ``a`` times the mean over its shallower exits of
    ``T^2 KL(p_T(deepest) || p_T(exit d))``, the deepest exit's softened prediction (detached)
    taught to the shallower ones (self-distillation, as in BYOT and DynaBERT). The mean over the
    batch.

    Args:
        exit_logits: ``(B, L, C)``, every exit's logits (zeros past each sample's depth).
        depth: ``(B,)`` int64 depths reached, ``1 .. L``.
        y: ``(B,)`` int64 labels.

    Examples:
        >>> logits = torch.tensor([[[2.0, 0.0], [4.0, 0.0]]])     # one sample, two exits
        >>> round(float(multi_exit_loss(logits, torch.tensor([2]), torch.tensor([0]))), 4)
        0.0544
    """
    b, layers, classes = exit_logits.shape
    reached = (torch.arange(1, layers + 1, device=depth.device).unsqueeze(0) <= depth.unsqueeze(1)).float()
    weights = torch.arange(1, layers + 1, device=depth.device, dtype=torch.float32).unsqueeze(0) * reached
    ce = F.cross_entropy(exit_logits.reshape(b * layers, classes), y.repeat_interleave(layers), reduction="none").view(
        b, layers
    )
    joint = ((ce * weights).sum(1) / weights.sum(1)).mean()
    if distill_weight <= 0.0:
        return joint
    deepest = exit_logits[torch.arange(b, device=depth.device), depth - 1].detach()
    teacher = (deepest / temperature).log_softmax(-1)
    student = (exit_logits / temperature).log_softmax(-1)
    kl = (teacher.exp().unsqueeze(1) * (teacher.unsqueeze(1) - student)).sum(-1) * temperature**2  # (B, L)
    shallower = reached * (torch.arange(1, layers + 1, device=depth.device).unsqueeze(0) < depth.unsqueeze(1))
    kd = ((kl * shallower).sum(1) / shallower.sum(1).clamp_min(1.0)).mean()
    return (1.0 - distill_weight) * joint + distill_weight * kd


#: ``on_metrics(source, step, metrics)``: an observer of the trainer's metrics.
MetricsObserver = Callable[[str, int, Mapping[str, float]], None]


class Trainer:
    """Trains ``model`` on ``task`` with ``controller`` choosing each sample's architecture.

    Args:
        model: a :class:`~banditformer.model.DynamicTransformer`, an adapted model of your own
            (:func:`banditformer.adapt`), or any ``nn.Module`` with the model contract
            (:class:`~banditformer.model.AdaptiveModel`). The trainer trains every parameter
            that requires a gradient: freeze some (``requires_grad_(False)``, or an adapted
            model's :meth:`~banditformer.adapters.AdaptedTransformer.freeze_original`) and they
            stay as they are.
        controller: any :class:`~banditformer.core.Controller` (DHT or a baseline).
        task: a :class:`~banditformer.core.task.Task`.
        config: a :class:`TrainConfig`.
        backend: where and with which kernels to run. The trainer runs the model it owns: it moves
            it (and the controller) to the backend's device and makes the backend the model's
            (``model.backend``), so the fast path's routed-attention kernels are this backend's, in
            training, in evaluation and afterwards. Default: the model's own backend, or else the
            built-in one for the device the model is on (``model.backend_for(model.device)``).
        on_metrics: called as ``on_metrics("train", step, metrics)`` on rank 0 after each
            epoch's validation (and its checkpoint), with the epoch's record as :attr:`history`
            holds it (``epoch``, ``accuracy``, ``flops_per_sample``, ``flop_saving``, ``seconds``)
            and ``step`` the training steps so far; ``None`` (default): no one. The harness and
            the command line pass the plugin manager's
            :meth:`~banditformer.plugins.PluginManager.notify_metrics`, so every registered
            ``banditformer_on_metrics`` plugin sees the trainer's metrics (one that raises is
            reported as a ``PluginWarning``; training goes on).

    Raises:
        InputValidationError: an argument of the wrong kind, saying what was expected; nothing
            was moved or changed.
    """

    def __init__(
        self,
        model: AdaptiveModel,
        controller: Controller,
        task: Task,
        config: TrainConfig,
        backend: Backend | None = None,
        on_metrics: MetricsObserver | None = None,
    ) -> None:
        check_model(model)
        if not isinstance(controller, Controller):
            raise InputValidationError(f"expected a Controller, got {type(controller).__name__}")
        if not isinstance(task, Task):
            raise InputValidationError(f"expected a Task, got {type(task).__name__}")
        if not isinstance(config, TrainConfig):
            raise InputValidationError(f"expected a TrainConfig, got {type(config).__name__}")
        if backend is not None and not isinstance(backend, Backend):
            raise InputValidationError(f"expected `backend` to be a Backend or None, got {type(backend).__name__}")
        if on_metrics is not None and not callable(on_metrics):
            raise InputValidationError(
                f"expected `on_metrics` to be a callable (source, step, metrics) or None, got "
                f"{type(on_metrics).__name__}"
            )
        self.steps_per_epoch = math.ceil(len(task.train) / config.batch_size)
        self.rank, self.world = rank_and_world()
        if self.world > 1:
            check_shards(len(task.train), config.batch_size, self.world)
        list(reduced_states(controller))  # the reductions StateSync needs: checked before anything moves
        if backend is None:
            backend = model.backend_for(model.device)
        self.backend = backend
        self.model = model.to(self.backend.device)
        self.model.backend = self.backend  # the fast path runs this backend's kernels
        self.controller = controller.to(self.backend.device)
        self.task, self.config = task, config
        self.on_metrics = on_metrics
        self.total_steps = config.total_steps(len(task.train))
        self.objective = config.resolved_objective(controller)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total_steps)
        self.step = 0
        self.full_flops = model.cost_table().full
        self.history: list[dict[str, float]] = []
        self.train_flops = 0.0  # summed per-sample forward FLOPs of every training sample so far
        self.train_samples = 0
        self.skipped_feedback = 0  # fp16 steps whose head-importance scores overflowed
        torch.manual_seed(global_seed(config.seed, self.rank))  # dropout: rank 0 draws as one process would
        dtype = getattr(torch, config.autocast_dtype) if config.autocast_dtype else None
        self._net = _Forward(self.model, self.controller, self.backend, config.autocast, dtype)
        fp16 = config.autocast and (dtype or self.backend.autocast_dtype) == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if fp16 and self.backend.device.type == "cuda" else None
        self._step_net: nn.Module = self._net
        if self.world > 1:
            fork_generators(self.controller, self.rank)
            self._step_net = data_parallel(self._net, self.backend.device)
        self.sync = StateSync(self.controller, every=config.sync_every)

    # ----------------------------------------------------------------------------------- data
    def _order(self, epoch: int) -> Tensor:
        return torch.randperm(
            len(self.task.train), generator=make_generator(derive_seed(self.config.seed, "epoch", epoch))
        )

    def _batch(self, split: Split, index: Tensor) -> tuple[Tensor, Tensor]:
        return split.x[index].to(self.backend.device), split.y[index].to(self.backend.device)

    # ----------------------------------------------------------------------------------- steps
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
        objective = self.objective
        shapes = self._sandwich_shapes(y.shape[0]) if objective == "sandwich" else ()
        logits, decision, gate, exit_logits, extra = self._step_net(
            x, explore, self.controller.wants_head_importance, objective in ("joint", "distill"), shapes
        )
        if objective in ("joint", "distill"):
            assert exit_logits is not None
            weight = self.config.distill_weight if objective == "distill" else 0.0
            loss = multi_exit_loss(
                exit_logits, decision.depth, y, distill_weight=weight, temperature=self.config.temperature
            )
        else:
            loss = F.cross_entropy(logits, y)
            for shape_logits in extra:  # the sandwich rule: the largest, smallest and a random shape too
                loss = loss + F.cross_entropy(shape_logits, y)
        probs = logits.detach().softmax(-1)
        quality = probs.gather(1, y.unsqueeze(1)).squeeze(1)
        exit_quality = None
        if self.controller.halts and exit_logits is not None:
            labels = y.view(-1, 1, 1).expand(-1, exit_logits.shape[1], 1)
            exit_quality = exit_logits.detach().softmax(-1).gather(2, labels).squeeze(2).float()
        flops = self.model.sample_flops(decision).to(quality.device)  # what the decision cost: its feedback
        spent = flops
        for shape in shapes:  # the sandwich's extra passes are training compute too, not the decision's
            spent = spent + self.model.sample_flops(shape).to(quality.device)
        # FLOPs, loss and accuracy over the global batch (summed over ranks when distributed)
        totals = torch.stack([
            spent.double().sum(), torch.tensor(float(flops.numel()), dtype=torch.float64, device=flops.device),
            loss.detach().double() * flops.numel(), (logits.argmax(1) == y).double().sum(),
        ])  # fmt: skip
        flop_sum, rows, loss_sum, correct = sum_over_ranks(totals).tolist()
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
                more = {} if exit_quality is None else {"exit_quality": exit_quality}
                self.controller.feedback(decision, quality, flops.float(), head_importance=importance, **more)
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

    def _sandwich_shapes(self, b: int) -> tuple[Decision, ...]:
        """The sandwich rule's extra shapes for this step: the full model, the stem alone and one
        uniform shape drawn from ``(seed, step)`` (so a resumed run draws the same ones)."""
        layers, heads = self.model.cfg.num_layers, self.model.cfg.num_heads
        dev = self.backend.device
        gen = make_generator(derive_seed(self.config.seed, "sandwich", self.step))
        depth = int(torch.randint(1, layers + 1, (1,), generator=gen))
        count = int(torch.randint(1, heads + 1, (1,), generator=gen))
        full = Decision.full(b, layers, heads, device=dev)
        stem = Decision.uniform(b, layers, heads, 1, heads, dev)
        return full, stem, Decision.uniform(b, layers, heads, depth, count, dev)

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
            logits, decision, _, _, _ = self._net(x, explore=False)
            hits.append((logits.argmax(1) == y).cpu())
            flops.append(self.model.sample_flops(decision).cpu())
            depths.append(decision.depth.cpu())
            heads.append(decision.head_counts.cpu())
        parts = [torch.cat(p) if p else None for p in (hits, flops, depths, heads)]
        if self.world > 1:
            parts = [gather_rows(p, len(split)) for p in parts]
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
            The last validation metrics and the per-epoch history (each epoch's record also goes
            to ``on_metrics``, see the class).
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
                if self.rank == 0:
                    self._report("train", dict(self.history[-1]))
        finally:
            if bar is not None:
                bar.close()
        return {**last, "history": self.history}

    def _report(self, source: str, metrics: dict[str, float]) -> None:
        if self.on_metrics is not None:
            self.on_metrics(source, self.step, metrics)

    # ------------------------------------------------------------------------------ checkpoints
    @property
    def _parts(self) -> TrainingParts:
        return TrainingParts(self.model, self.controller, self.optimizer, self.scheduler, self.scaler)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds: the format, the configuration, the counters, the model, the
        controller, the optimizer, the scheduler (and the fp16 loss scaler), the global RNG state."""
        parts = self._parts.state_dict()
        return {
            "format": CHECKPOINT_FORMAT,
            "config": asdict(self.config),
            "step": self.step,
            **{k: parts[k] for k in ("model", "controller", "optimizer", "scheduler")},
            "history": self.history,
            "train_flops": self.train_flops,
            "train_samples": self.train_samples,
            "skipped_feedback": self.skipped_feedback,
            "rng_global": torch.get_rng_state(),
            **({"scaler": parts["scaler"]} if "scaler" in parts else {}),
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
        cannot run code (:func:`~banditformer.training.checkpoint.read_checkpoint`). Every field
        is checked before anything is applied (see :meth:`check_state`), and the load is all or
        nothing (:meth:`~banditformer.training.checkpoint.TrainingParts.load`).

        Raises:
            InputValidationError: a truncated, foreign or crafted file, or one that does not fit,
                saying which field was expected and what was got; nothing was loaded.
        """
        state = read_checkpoint(path)
        try:
            self.check_state(state, str(path))
        except InputValidationError as exc:
            raise InputValidationError(f"{exc}; nothing was loaded") from None
        self._parts.load(state, str(path))
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.train_flops, self.train_samples = float(state["train_flops"]), int(state["train_samples"])
        self.skipped_feedback = int(state.get("skipped_feedback", 0))
        torch.set_rng_state(state["rng_global"])
        if self.world > 1:
            rejoin_ranks(self.controller, self.rank, self.config.seed, self.step)
        self.sync.refresh()
        self.sync.calls = self.step  # syncs stay on the same steps as in the uninterrupted run

    def check_state(self, state: object, where: str = "the checkpoint") -> None:
        """Check a loaded checkpoint against this trainer without changing anything: its
        configuration, counters, history and RNG state
        (:func:`~banditformer.training.checkpoint.check_checkpoint`) and its model, optimizer,
        scheduler and controller (:meth:`~banditformer.training.checkpoint.TrainingParts.check`).

        Raises:
            InputValidationError: naming the field, what was expected and what was got.
        """
        check_checkpoint(
            state, self._parts, self.config, total_steps=self.total_steps, full_flops=self.max_sample_flops, where=where
        )

    @property
    def max_sample_flops(self) -> float:
        """The most forward FLOPs one training sample can cost: the full model with every exit's
        classifier, and under the sandwich rule three more shapes (the full model twice, as an
        upper bound on the random one, and the stem)."""
        table = self.model.cost_table()
        every_exit = table.full + (table.num_layers - 1) * table.classifier
        return every_exit + (3 * table.full if self.objective == "sandwich" else 0.0)
