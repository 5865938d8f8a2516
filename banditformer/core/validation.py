"""Input checks shared by every public entry point.

Each check raises :class:`InputValidationError` with an "expected ..., got ..." message and never
mutates anything, so callers run all checks before touching state.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError

__all__ = [
    "SEED_MAX",
    "available_memory",
    "check_arms",
    "check_context",
    "check_device",
    "check_float",
    "check_int",
    "check_memory",
    "check_rewards",
    "check_tensor",
    "format_bytes",
    "format_interval",
    "format_number",
    "index_ok",
    "keep_value_checks",
    "range_ok",
    "set_value_checks",
    "value_checks",
    "value_checks_enabled",
    "values_ok",
]


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"Tensor(shape={tuple(x.shape)}, dtype={x.dtype}, device={x.device})"
    return f"{type(x).__name__} {x!r}"


def format_number(x: float) -> str:
    """A number as messages print it: ``0`` and ``1`` for ``0.0`` and ``1.0``, ``inf``, and the
    shortest exact form otherwise (``0.1``, ``1e-07``), so that an interval reads ``[0, 1]``.

    Examples:
        >>> [format_number(v) for v in (0.0, 1.0, -2, 0.25, float("inf"), 1e-7)]
        ['0', '1', '-2', '0.25', 'inf', '1e-07']
    """
    if isinstance(x, float) and math.isfinite(x) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return str(x)


def format_interval(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    """An interval for messages: ``[0, 1]``, ``(0, inf]``."""
    lo = "-inf" if low is None else format_number(low)
    hi = "inf" if high is None else format_number(high)
    return f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"


def format_bytes(n: float) -> str:
    """A byte count for messages: ``'1.5 GB'`` (powers of 1000)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def available_memory() -> int:
    """Bytes of memory this process can use now: ``MemAvailable`` of ``/proc/meminfo`` where there is
    one (Linux), else the machine's physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): do not refuse
        return 2**63 - 1


def check_memory(what: str, needed: float, parts: dict[str, float] | None = None) -> None:
    """Fail unless an estimate of the memory ``what`` needs (``needed`` bytes) fits in
    :func:`available_memory`, with both figures and the estimate's largest ``parts`` in the message."""
    have = available_memory()
    if needed <= have:
        return
    detail = ""
    if parts:
        big = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
        detail = " (" + ", ".join(f"{k} {format_bytes(v)}" for k, v in big) + ")"
    raise InputValidationError(
        f"expected {what} to fit in the {format_bytes(have)} of memory available, got an estimate of "
        f"{format_bytes(needed)}{detail}"
    )


def index_ok(x: Tensor, high: int) -> Tensor:
    """A 0-dim bool tensor: every entry of ``x`` is in ``[0, high)`` (True when empty). No host sync."""
    return ((x >= 0) & (x < high)).all()


def range_ok(x: Tensor, low: float = -math.inf, high: float = math.inf) -> Tensor:
    """A 0-dim bool tensor: every entry of ``x`` is finite and in ``[low, high]``. No host sync.

    NaN fails every comparison, so a finite interval needs no separate finiteness test.
    """
    inside = (x >= low) & (x <= high)
    if not (math.isfinite(low) and math.isfinite(high)):
        inside = inside & torch.isfinite(x)
    return inside.all()


#: The largest seed: torch generators hold 64-bit seeds, and derived sub-seeds are in ``[0, 2**63)``.
SEED_MAX = 2**63 - 1

_VALUE_CHECKS = True  # the process-wide default, set by set_value_checks
# A block's own setting (value_checks), local to its thread / asyncio task; None: the default.
_SCOPED_VALUE_CHECKS: ContextVar[bool | None] = ContextVar("banditformer_value_checks", default=None)


def value_checks_enabled() -> bool:
    """Whether the value checks of :func:`values_ok` run here: the setting of the innermost
    :func:`value_checks` block of this thread (or asyncio task), else the process-wide default of
    :func:`set_value_checks`."""
    scoped = _SCOPED_VALUE_CHECKS.get()
    return _VALUE_CHECKS if scoped is None else scoped


def set_value_checks(enabled: bool) -> None:
    """Turn the value checks (finite, in range, valid indices) on or off process-wide: the default
    of every thread outside a :func:`value_checks` block.

    They cost a few small ops and one host sync per call, which matters on CUDA in a tight loop.
    Shape, dtype and device checks need no sync and always run. Like
    ``torch.distributions.Distribution.set_default_validate_args``: turn off only code you trust,
    and prefer the scoped :func:`value_checks` block. A plugin that changes the setting while it is
    imported or registered is reported by name and the setting is restored (see
    :class:`~banditformer.plugins.PluginManager`).
    """
    if not isinstance(enabled, bool):
        raise InputValidationError(f"expected `enabled` to be a bool, got {_describe(enabled)}")
    global _VALUE_CHECKS
    _VALUE_CHECKS = enabled


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """A block in which value checks are on or off, in this thread (or asyncio task) only; the
    previous setting comes back after it, and other threads are not affected.

    Examples:
        >>> import banditformer as bf, torch
        >>> p = bf.make_policy("ucb1", num_arms=2)
        >>> with value_checks(False):
        ...     p.update(p.select(n=4), torch.ones(4))
    """
    if not isinstance(enabled, bool):
        raise InputValidationError(f"expected `enabled` to be a bool, got {_describe(enabled)}")
    token = _SCOPED_VALUE_CHECKS.set(enabled)
    collected = False
    try:
        yield
    except GeneratorExit:  # a block entered, never exited, then garbage-collected
        collected = True
        raise
    finally:
        # Only a block that is exited resets the setting: a collected one's thread has moved on,
        # and a reset at collection time would undo whatever block is current there.
        if not collected:
            _SCOPED_VALUE_CHECKS.reset(token)


@contextlib.contextmanager
def keep_value_checks() -> Iterator[list[str]]:
    """A block after which the value-check setting is what it was before, whatever the block did.

    Yields a list that, after the block, holds what the block changed (empty when nothing):
    ``"turned value checks off process-wide (set_value_checks(False))"`` or
    ``"turned value checks off for the rest of this thread (an unclosed value_checks(False))"``.
    The plugin manager wraps each plugin's import and registration in it.
    """
    global _VALUE_CHECKS
    default, scoped = _VALUE_CHECKS, _SCOPED_VALUE_CHECKS.get()
    changes: list[str] = []
    try:
        yield changes
    finally:
        if default != _VALUE_CHECKS:
            word = "on" if _VALUE_CHECKS else "off"
            changes.append(f"turned value checks {word} process-wide (set_value_checks({_VALUE_CHECKS}))")
            _VALUE_CHECKS = default
        if _SCOPED_VALUE_CHECKS.get() != scoped:
            now = _SCOPED_VALUE_CHECKS.get()
            changes.append(
                f"turned value checks {'off' if now is False else 'on'} for the rest of this thread "
                f"(an unclosed value_checks({now}))"
            )
            _SCOPED_VALUE_CHECKS.set(scoped)


def values_ok(checks: list[tuple[Callable[[], Tensor], Callable[[], object]]]) -> None:
    """Run value checks with one host sync (none when value checks are off).

    Args:
        checks: pairs of a function giving a 0-dim bool tensor (from :func:`index_ok`,
            :func:`range_ok`, ...) and a function that raises the detailed
            :class:`InputValidationError` for that check.

    Raises:
        InputValidationError: from the first failing check's function.
    """
    if not checks or not value_checks_enabled():
        return
    flags = [ok() for ok, _ in checks]
    if bool(torch.stack(flags).all()):
        return
    for flag, (_, explain) in zip(flags, checks, strict=True):
        if not bool(flag):
            explain()
    raise InputValidationError("expected valid input, got a value check that failed without detail")  # unreachable


def check_tensor(
    name: str,
    x: object,
    *,
    ndim: int | None = None,
    shape: tuple[int | None, ...] | None = None,
    kind: str | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Check that ``x`` is a tensor of the given rank, shape, dtype kind and device.

    Args:
        name: the argument's name, used in the message.
        x: the object to check.
        ndim: the expected number of dimensions.
        shape: the expected shape; ``None`` entries match any size.
        kind: ``"float"``, ``"int"`` or ``"bool"``.
        device: the expected device (compared by type and index).

    Returns:
        ``x``, unchanged.
    """
    if not isinstance(x, Tensor):
        raise InputValidationError(f"expected `{name}` to be a torch.Tensor, got {_describe(x)}")
    if ndim is not None and x.ndim != ndim:
        raise InputValidationError(f"expected `{name}` to have {ndim} dimension(s), got {_describe(x)}")
    if shape is not None:
        ok = x.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape, strict=True))
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
            raise InputValidationError(f"expected `{name}` of shape {want}, got {_describe(x)}")
    if kind == "float" and not x.is_floating_point():
        raise InputValidationError(f"expected `{name}` to have a floating dtype, got {_describe(x)}")
    if kind == "int" and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise InputValidationError(f"expected `{name}` to have an integer dtype, got {_describe(x)}")
    if kind == "bool" and x.dtype != torch.bool:
        raise InputValidationError(f"expected `{name}` to have dtype torch.bool, got {_describe(x)}")
    if device is not None and not _same_device(x.device, device):
        raise InputValidationError(f"expected `{name}` on device {device}, got {_describe(x)}")
    return x


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type == "cuda":
        ia = a.index if a.index is not None else torch.cuda.current_device()
        ib = b.index if b.index is not None else torch.cuda.current_device()
        return ia == ib
    return True


def check_device(name: str, device: object) -> torch.device:
    """Check that ``device`` names a device torch can use here; return it as ``torch.device``."""
    try:
        dev = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError) as exc:
        raise InputValidationError(f"expected `{name}` to be a torch device, got {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputValidationError(f"expected `{name}` to be a device of this machine, got {dev} without a CUDA GPU")
    return dev


def check_int(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """Check that ``value`` is an int (not a bool) in ``[low, high]``; return it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputValidationError(f"expected `{name}` to be an int, got {_describe(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InputValidationError(f"expected `{name}` in {format_interval(low, high)}, got {value}")
    return value


def check_float(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that ``value`` is a finite real number in the given interval; return it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputValidationError(f"expected `{name}` to be a number, got {_describe(value)}")
    v = float(value)
    if not math.isfinite(v):
        raise InputValidationError(f"expected `{name}` to be finite, got {v}")
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high:
        interval = format_interval(low, high, low_open, high_open)
        raise InputValidationError(f"expected `{name}` in {interval}, got {v}")
    return v


def check_arms(name: str, arms: object, num_arms: int, device: torch.device, n: int | None = None) -> Tensor:
    """Check a ``(n,)`` integer tensor of arm indices in ``[0, num_arms)``; return it as int64."""
    arms = check_tensor(name, arms, shape=(n,), kind="int", device=device)
    if arms.numel() and bool(((arms < 0) | (arms >= num_arms)).any()):
        bad = arms[(arms < 0) | (arms >= num_arms)][:5].tolist()
        raise InputValidationError(f"expected `{name}` in [0, {num_arms}), got values {bad}")
    return arms.long()


def check_rewards(
    name: str,
    rewards: object,
    shape: tuple[int | None, ...],
    device: torch.device,
    low: float,
    high: float,
    mask: Tensor | None = None,
) -> Tensor:
    """Check a float reward tensor: finite and in ``[low, high]`` (where ``mask`` is True).

    Args:
        mask: a bool tensor of the same shape; only entries where it is True are checked
            (semi-bandit feedback ignores the rewards of unchosen arms).
    """
    rewards = check_tensor(name, rewards, shape=shape, kind="float", device=device)
    vals = rewards if mask is None else rewards[mask]
    if vals.numel():
        finite = torch.isfinite(vals)
        if not bool(finite.all()):
            bad = vals[~finite][:5].tolist()
            raise InputValidationError(f"expected `{name}` to be finite, got values {bad}")
        out = (vals < low) | (vals > high)
        if bool(out.any()):
            bad = vals[out][:5].tolist()
            raise InputValidationError(f"expected `{name}` in {format_interval(low, high)}, got values {bad}")
    return rewards


def check_context(
    name: str, context: object, dim: int | None, device: torch.device, n: int | None = None, bound: float = math.inf
) -> Tensor:
    """Check a ``(n, dim)`` finite float context tensor with entries in ``[-bound, bound]``."""
    context = check_tensor(name, context, shape=(n, dim), kind="float", device=device)
    if context.numel() and not bool(torch.isfinite(context).all()):
        raise InputValidationError(f"expected `{name}` to be finite, got NaN or inf entries")
    if context.numel() and bool((context.abs() > bound).any()):
        raise InputValidationError(
            f"expected `{name}` entries in [-{bound:g}, {bound:g}], got max |x| = {float(context.abs().max()):g}"
        )
    return context
