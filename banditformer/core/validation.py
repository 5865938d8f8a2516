"""Input checks shared by every public entry point.

Each check raises :class:`InputValidationError` with an "expected ..., got ..." message and never
mutates anything, so callers run all checks before touching state.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError

__all__ = [
    "check_arms",
    "check_context",
    "check_device",
    "check_float",
    "check_int",
    "check_rewards",
    "check_tensor",
    "index_ok",
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


_VALUE_CHECKS = True


def value_checks_enabled() -> bool:
    """Whether the value checks of :func:`values_ok` run (see :func:`set_value_checks`)."""
    return _VALUE_CHECKS


def set_value_checks(enabled: bool) -> None:
    """Turn the value checks (finite, in range, valid indices) on or off process-wide.

    They cost a few small ops and one host sync per call, which matters on CUDA in a tight loop.
    Shape, dtype and device checks need no sync and always run. Like
    ``torch.distributions.Distribution.set_default_validate_args``: turn off only code you trust.
    """
    global _VALUE_CHECKS
    _VALUE_CHECKS = bool(enabled)


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """A context in which value checks are on or off; the previous setting comes back after it.

    Examples:
        >>> import banditformer as bf, torch
        >>> p = bf.make_policy("ucb1", num_arms=2)
        >>> with value_checks(False):
        ...     p.update(p.select(n=4), torch.ones(4))
    """
    previous = _VALUE_CHECKS
    set_value_checks(enabled)
    try:
        yield
    finally:
        set_value_checks(previous)


def values_ok(checks: list[tuple[Callable[[], Tensor], Callable[[], object]]]) -> None:
    """Run value checks with one host sync (none when value checks are off).

    Args:
        checks: pairs of a function giving a 0-dim bool tensor (from :func:`index_ok`,
            :func:`range_ok`, ...) and a function that raises the detailed
            :class:`InputValidationError` for that check.

    Raises:
        InputValidationError: from the first failing check's function.
    """
    if not checks or not _VALUE_CHECKS:
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
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise InputValidationError(f"expected `{name}` in [{lo}, {hi}], got {value}")
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
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise InputValidationError(f"expected `{name}` in {lb}{lo}, {hi}{hb}, got {v}")
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
            raise InputValidationError(f"expected `{name}` in [{low}, {high}], got values {bad}")
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
