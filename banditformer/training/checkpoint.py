"""Checkpoints: files written atomically, refused when they cannot be written, read as data, and
checked field by field against the trainer that loads them before anything is applied.

A save goes to a hidden temporary beside the target (``.<name>.tmp-<pid>``), is synced and
renamed over it (:func:`banditformer.core.files.atomic_file`); a temporary that a killed save
left is removed by the next save or load of the same file.

A trainer's checkpoint is a dict: ``format``, ``config``, the counters (``step``,
``train_samples``, ``skipped_feedback``, ``train_flops``, ``history``), ``rng_global``, and the
parts a trainer trains (:class:`TrainingParts`: ``model``, ``controller``, ``optimizer``,
``scheduler`` and, under fp16 loss scaling, ``scaler``). :func:`check_checkpoint` checks one
without changing anything; :meth:`TrainingParts.load` loads the parts all or nothing.
"""

from __future__ import annotations

import copy
import glob
import math
import os
import pickle
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from banditformer.core.controller import Controller
from banditformer.core.errors import InputValidationError
from banditformer.core.files import atomic_file
from banditformer.core.state import same_value

__all__ = [
    "CHECKPOINT_FORMAT",
    "TrainingParts",
    "check_checkpoint",
    "check_module_state",
    "check_optimizer_state",
    "check_scheduler_state",
    "check_writable",
    "read_checkpoint",
    "remove_stale_temporaries",
    "save_atomic",
]

#: The layout of a checkpoint file. 2: the package layout of version 0.1's redesign (DHT's slots
#: are ``depth_policy``/``count_policy``/``head_policy``, exits ``exit_classifiers``, policies
#: keyed by class name); a file of format 1 does not fit it and is refused by name.
CHECKPOINT_FORMAT = "banditformer-checkpoint-2"


def _target(path: str | os.PathLike[str]) -> Path:
    """The file a save to ``path`` writes: a symlink's target (so the link keeps pointing at it).

    Raises:
        InputValidationError: for a symlink that resolves to no path (a loop).
    """
    target = Path(os.path.realpath(os.fspath(path)))
    if target.is_symlink():  # realpath gives up on a loop and returns a link
        raise InputValidationError(f"expected a path that resolves to a file, got {str(path)!r}, a loop of symlinks")
    return target


def _temporary(target: Path, pid: int | None = None) -> Path:
    """The temporary file a save of ``target`` by process ``pid`` writes first (hidden, beside it)."""
    return target.with_name(f".{target.name}.tmp-{os.getpid() if pid is None else pid}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, or cannot tell: keep its file
    return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries that killed saves of ``path`` left (their process is gone, or it is
    this one); returns what was removed. :func:`save_atomic` and :meth:`Trainer.load` call it."""
    target = _target(path)
    removed = []
    if not target.parent.is_dir():
        return removed
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def check_writable(path: str | os.PathLike[str], what: str = "checkpoint") -> Path:
    """Check, before a long run, that a file can be written at ``path`` (creating its folder):
    a writable folder, not a directory in the way. Returns the file a save writes (a symlink's
    target).

    Raises:
        InputValidationError: saying what is in the way.
    """
    target = _target(path)
    if target.is_dir():
        raise InputValidationError(f"expected a file path for the {what}, got the directory {str(path)!r}")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputValidationError(
                    f"expected a folder to hold the {what} at {str(path)!r}, got {str(parent)!r}, which is a file"
                )
            break
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe = _temporary(target)
        with open(probe, "wb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise InputValidationError(
            f"expected a writable place for the {what} at {str(path)!r}, got {type(exc).__name__}: "
            f"{exc.strerror or exc}"
        ) from None
    return target


def save_atomic(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file beside ``path``, ``fsync``, then rename over ``path``:
    a crash leaves either the old file or the new one, never a partial one.

    Through a symlink, the link's target is written (the link stays). The temporary is named
    ``.<name>.tmp-<pid>``: one that a killed save left is removed by the next save or load of
    the same file (:func:`remove_stale_temporaries`), so kills do not pile up hidden files."""
    target = _target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    with atomic_file(target, tmp=_temporary(target)) as tmp:
        torch.save(obj, tmp)  # an ordinary file: open() applies the umask


_ADAMW_SETTINGS = ("betas", "eps", "weight_decay", "amsgrad", "maximize")


def _adamw_state_keys(optimizer: torch.optim.Optimizer) -> set[str]:
    """The per-parameter state keys this optimizer keeps, from one step of a copy on a scratch
    parameter with the same settings."""
    group = {k: v for k, v in optimizer.param_groups[0].items() if k in ("lr", *_ADAMW_SETTINGS)}
    p = torch.zeros(1, requires_grad=True)
    scratch = type(optimizer)([p], **group)
    p.grad = torch.ones(1)
    scratch.step()
    return set(scratch.state[p])


def read_checkpoint(path: str | os.PathLike[str]) -> object:
    """Read a checkpoint file as data (``torch.load(weights_only=True)``: a crafted file cannot run
    code), first removing the temporaries killed saves of it left. Returns what the file holds,
    unchecked (see :func:`check_checkpoint`).

    Raises:
        InputValidationError: a file that needs code to load (refused, nothing ran), or one that
            cannot be read (truncated, not a checkpoint).
    """
    remove_stale_temporaries(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
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


def _bad(field: str, expected: str, got: object, where: str) -> InputValidationError:
    return InputValidationError(f"expected `{field}` in {where} to be {expected}, got {got!r}")


@dataclass
class TrainingParts:
    """The parts of a run a checkpoint holds state of, besides the trainer's counters.

    Attributes:
        model: the trained module.
        controller: the architecture controller (its policies' statistics and generators).
        optimizer, scheduler: the model's AdamW and its learning-rate schedule.
        scaler: the fp16 loss scaler, or ``None`` (then the checkpoint holds none).
    """

    model: nn.Module
    controller: Controller
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The checkpoint fields the parts' states go to."""
        return ("model", "controller", "optimizer", "scheduler", *(("scaler",) if self.scaler is not None else ()))

    def state_dict(self) -> dict[str, Any]:
        """``model``, ``controller``, ``optimizer``, ``scheduler`` (and ``scaler``) states."""
        return {
            "model": self.model.state_dict(),
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
        }

    def check(self, state: Mapping[str, Any], step: int, where: str = "the checkpoint") -> None:
        """Check the parts of ``state`` (a checkpoint at ``step``) without changing anything: the
        model has the same keys, dtypes and shapes and finite weights; the optimizer the same
        groups and settings, its state the parameters' shapes and finite values; the scheduler
        the same schedule, standing at ``step``; a scaler's state where this run scales fp16
        losses; the controller passes its own checks
        (:class:`~banditformer.core.state.CheckedModule`: configuration, ranges, generators).

        Raises:
            InputValidationError: naming the field, what was expected and what was got.
        """
        check_module_state("model", state["model"], self.model.state_dict(), where)
        check_optimizer_state(state["optimizer"], self.optimizer, where)
        check_scheduler_state(state["scheduler"], self.scheduler, step, where)
        if self.scaler is not None and not isinstance(state.get("scaler"), dict):
            raise _bad(
                "scaler", "a GradScaler state (this trainer scales fp16 losses)", type(state.get("scaler")), where
            )
        try:  # the controller's own checks (CheckedModule), run without loading
            self.controller.check_state_dict(state["controller"])
        except InputValidationError as exc:
            raise InputValidationError(f"expected a controller state in {where} that fits: {exc}") from None

    def load(self, state: Mapping[str, Any], where: str = "the checkpoint") -> None:
        """Load every part from ``state`` (checked first with :meth:`check`), all or nothing:
        should a part still fail, every part goes back to where it was.

        Raises:
            InputValidationError: a part that does not fit; nothing was loaded.
        """
        before = copy.deepcopy(self.state_dict())
        try:
            self._load(state)
        except Exception as exc:
            self._load(before)
            raise InputValidationError(f"expected a checkpoint of this model and controller at {where!r}, got "
                                       f"one that does not fit, so nothing was loaded: {exc}") from None  # fmt: skip

    def _load(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])


#: A trainer checkpoint's fields besides its parts (``skipped_feedback`` may be absent).
RUN_FIELDS = ("format", "config", "step", "history", "train_flops", "train_samples", "rng_global")


def check_checkpoint(
    state: object,
    parts: TrainingParts,
    config: Any,
    *,
    total_steps: int,
    full_flops: float,
    where: str = "the checkpoint",
) -> None:
    """Check a loaded trainer checkpoint against a run without changing anything.

    The format and every field: the configuration equals ``config`` (a
    :class:`~banditformer.training.TrainConfig`; ``progress``, display only, may differ; an error
    names the fields that differ, with both values); ``step`` is an int in ``[0, total_steps]``;
    ``train_samples`` and ``skipped_feedback`` are ints in ``[0, step * batch_size]``;
    ``train_flops`` is finite, in ``[0, train_samples * full_flops]`` (``full_flops``: the most one
    training sample can cost); ``history`` is a list of at
    most ``epochs`` records, each a mapping of names to finite numbers with an ``epoch`` in
    ``[1, epochs]``; the global RNG state has its shape; and the parts pass
    :meth:`TrainingParts.check`.

    Raises:
        InputValidationError: naming the field, what was expected and what was got.
    """
    if isinstance(state, dict) and state.get("format") == "banditformer-checkpoint-1":
        raise InputValidationError(
            f"expected a {CHECKPOINT_FORMAT} file at {where!r}, got a banditformer-checkpoint-1 file, written before "
            "the package's layout changed (its controller and model keys differ): retrain, or load it with the "
            "version that wrote it"
        )
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputValidationError(f"expected a {CHECKPOINT_FORMAT} file at {where!r}, got something else")
    missing = sorted({*RUN_FIELDS, *parts.names} - set(state))
    if missing:
        raise InputValidationError(f"expected a complete checkpoint at {where!r}, got one missing {missing}")
    mine = {k: v for k, v in asdict(config).items() if k != "progress"}  # display only
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
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= total_steps:
        raise _bad("step", f"an int in [0, {total_steps}] (the run's steps)", step, where)
    rows = step * config.batch_size
    for field in ("train_samples", "skipped_feedback"):
        v = state.get(field, 0)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= rows:
            raise _bad(field, f"an int in [0, {rows}] (step x batch_size)", v, where)
    flops = state["train_flops"]
    # full_flops: the most one training sample can cost (a multi-exit step pays every exit's
    # classifier, a sandwich step three more shapes)
    top = state["train_samples"] * full_flops * (1 + 1e-9)
    if isinstance(flops, bool) or not isinstance(flops, (int, float)) or not 0 <= flops <= top:
        raise _bad(
            "train_flops", f"a finite number in [0, {top:g}] (train_samples x the most a sample costs)", flops, where
        )
    history, epochs = state["history"], config.epochs
    if not isinstance(history, list) or len(history) > epochs:
        raise _bad("history", f"a list of at most {epochs} records", type(history).__name__, where)
    for i, record in enumerate(history):
        ok = isinstance(record, dict) and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for k, v in record.items()
        )
        epoch = record.get("epoch") if isinstance(record, dict) else None
        if not ok or not isinstance(epoch, int) or not 1 <= epoch <= epochs:
            raise _bad(f"history[{i}]", f"a record of finite numbers with an `epoch` in [1, {epochs}]", record, where)
    rng, own_rng = state["rng_global"], torch.get_rng_state()
    if not isinstance(rng, Tensor) or rng.dtype != own_rng.dtype or rng.shape != own_rng.shape:
        got = f"{rng.dtype} {tuple(rng.shape)}" if isinstance(rng, Tensor) else type(rng).__name__
        raise _bad("rng_global", f"a {own_rng.dtype} tensor of shape {tuple(own_rng.shape)}", got, where)
    parts.check(state, step, where)


def check_module_state(part: str, saved: object, own: Mapping[str, Any], where: str = "the checkpoint") -> None:
    """Check ``saved``, a module's state dict, against the module's own ``own``: the same keys,
    each tensor of the same dtype and shape, floating ones finite.

    Raises:
        InputValidationError: naming ``part.key``, what was expected and what was got.
    """
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


def check_optimizer_state(saved: object, optimizer: torch.optim.Optimizer, where: str = "the checkpoint") -> None:
    """Check ``saved`` against ``optimizer`` (an AdamW): the same parameter groups and settings
    (``betas``, ``eps``, ``weight_decay``, ``amsgrad``, ``maximize``: configuration; flags such as
    ``foreach`` may differ between machines), finite rates, and per-parameter state of the keys
    this optimizer keeps, the parameters' shapes, finite, moments and step counts ``>= 0``.

    Raises:
        InputValidationError: naming the field, what was expected and what was got.
    """
    own = optimizer.state_dict()
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    groups = groups if isinstance(groups, list) else None
    sizes = [len(g.get("params", ())) if isinstance(g, dict) else -1 for g in groups or ()]
    own_sizes = [len(g["params"]) for g in own["param_groups"]]
    if groups is None or not isinstance(saved.get("state"), dict) or sizes != own_sizes:  # type: ignore[union-attr]
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
    params = [p for g in optimizer.param_groups for p in g["params"]]
    ids = [i for g in groups for i in g["params"]]
    expected = _adamw_state_keys(optimizer)
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


#: A scheduler's state entries that give its position (checked through ``last_epoch``).
_SCHEDULE_POSITION = ("last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "_is_initial")


def check_scheduler_state(
    saved: object, scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, where: str = "the checkpoint"
) -> None:
    """Check ``saved`` against ``scheduler``: the same keys and schedule (``T_max``, ``base_lrs``,
    ...), standing at ``step`` (``last_epoch``), with finite last rates.

    Raises:
        InputValidationError: naming the field, what was expected and what was got.
    """
    own = scheduler.state_dict()
    if not isinstance(saved, dict) or set(saved) != set(own):
        got = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
        raise InputValidationError(f"expected `scheduler` in {where} to be a state with keys {sorted(own)}, got {got}")
    if saved.get("last_epoch") != step:
        raise InputValidationError(
            f"expected `scheduler.last_epoch` in {where} to be the checkpoint's step {step}, got "
            f"{saved.get('last_epoch')!r}"
        )
    for key, value in own.items():
        if key in _SCHEDULE_POSITION:
            continue
        if not same_value(saved[key], value):
            raise InputValidationError(
                f"expected `scheduler.{key}` in {where} = {value!r} (this trainer's schedule), got {saved[key]!r}"
            )
    last = saved.get("_last_lr")
    if not isinstance(last, list) or not all(
        isinstance(v, (int, float, Tensor)) and 0 <= float(v) < math.inf for v in last
    ):
        raise InputValidationError(f"expected `scheduler._last_lr` in {where} to be finite rates, got {last!r}")
