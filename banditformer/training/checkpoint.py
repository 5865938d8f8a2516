"""Checkpoint files: written atomically, refused when they cannot be written, read as data.

A save goes to a hidden temporary beside the target (``.<name>.tmp-<pid>``), is synced and
renamed over it (:func:`banditformer.core.files.atomic_file`); a temporary that a killed save
left is removed by the next save or load of the same file.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import torch

from banditformer.core.errors import InputValidationError
from banditformer.core.files import atomic_file

__all__ = ["CHECKPOINT_FORMAT", "check_writable", "remove_stale_temporaries", "save_atomic"]

CHECKPOINT_FORMAT = "banditformer-checkpoint-1"


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
