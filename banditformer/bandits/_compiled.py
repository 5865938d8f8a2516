"""Compiled CPU rounds: one numba kernel per ``select`` call of UCB1, epsilon-greedy and LinUCB
and per ``update`` call of the count and linear policies, in place of a dozen small torch
operations and the value checks' host sync.

At a few thousand rows a torch round of UCB1 spends most of its time in fixed per-operation cost
(about 5 µs per small op on a CPU core); the kernels in :mod:`banditformer.bandits._kernels` do
the same arithmetic in one pass over NumPy views of the buffers. They give the torch path's
arms and statistics (the same floating-point operations in the same order, with torch's own
results where its arithmetic is not libm's: UCB1's log of the total; property-tested), draw from
the policy's generator exactly as the torch path does, and check every row before any write,
raising the torch path's errors, so the choice of path changes speed only. LinUCB's ``select``
is the exception: it scores the torch path's ridge fit with its own order of the sums, so its
index agrees to rounding.

Used when numba is installed (``pip install 'banditformer[fast]'``), the policy is a built-in
class on the CPU and the call's tensors have the usual form (int64 arms and groups, float32 or
float64 rewards and contexts, no autograd history); anything else takes the torch path.
``BANDITFORMER_COMPILED=0`` in the environment (read at import), or :func:`compiled_rounds`
``(False)`` around a block, turns them off.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError
from banditformer.core.validation import check_arms, check_context, check_rewards

__all__ = [
    "COMPILED_ENV",
    "NO_GROUPS",
    "buffer_views",
    "builtin",
    "compiled_available",
    "compiled_rounds",
    "compiled_rounds_enabled",
    "context_bound",
    "context_rows",
    "cpu_rows",
    "draw_seed",
    "groups_in_range",
    "kernels",
    "raise_first",
    "scratch_tensor",
    "select_rows",
    "written",
]

#: The environment variable that turns compiled rounds off (``0``, ``false``, ``no``, ``off``).
COMPILED_ENV = "BANDITFORMER_COMPILED"

_SCOPED: ContextVar[bool | None] = ContextVar("banditformer_compiled_rounds", default=None)
_LOAD_LOCK = threading.Lock()
_KERNELS: ModuleType | None = None
_LOADED = False


def _env_enabled() -> bool:
    return os.environ.get(COMPILED_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


#: ``BANDITFORMER_COMPILED`` as read at import.
ENV_ENABLED = _env_enabled()


def compiled_available() -> bool:
    """Whether numba can be imported here (the kernels are then compiled on first use)."""
    return _load() is not None


def compiled_rounds_enabled() -> bool:
    """Whether policies on the CPU use the compiled rounds now: numba is installed, and neither
    ``BANDITFORMER_COMPILED`` nor an enclosing :func:`compiled_rounds` block turns them off."""
    return kernels() is not None


@contextlib.contextmanager
def compiled_rounds(enabled: bool) -> Iterator[None]:
    """Turn the compiled rounds on or off inside a ``with`` block (this thread or asyncio task
    only), e.g. to time or test the torch path beside them. On where numba is missing means
    the torch path, as outside the block.

    Examples:
        >>> import torch
        >>> from banditformer import make_policy
        >>> from banditformer.bandits import compiled_rounds
        >>> p = make_policy("ucb1", num_arms=3, seed=0)
        >>> with compiled_rounds(False):
        ...     p.select(n=4).tolist()
        [0, 1, 2, 0]
    """
    if not isinstance(enabled, bool):
        raise InputValidationError(f"expected `enabled` to be a bool, got {type(enabled).__name__} {enabled!r}")
    token = _SCOPED.set(enabled)
    try:
        yield
    finally:
        _SCOPED.reset(token)


def _load() -> ModuleType | None:
    global _KERNELS, _LOADED
    if not _LOADED:
        with _LOAD_LOCK:
            if not _LOADED:
                try:
                    from banditformer.bandits import _kernels
                except ImportError:  # numba (or its llvmlite) is not installed here
                    _kernels = None  # type: ignore[assignment]
                _KERNELS, _LOADED = _kernels, True
    return _KERNELS


def kernels() -> ModuleType | None:
    """The kernel module when compiled rounds are on (see :func:`compiled_rounds_enabled`), else ``None``."""
    scoped = _SCOPED.get()
    if not (ENV_ENABLED if scoped is None else scoped):
        return None
    return _KERNELS if _LOADED else _load()


def builtin(policy: Any) -> bool:
    """Whether ``policy``'s class is one of banditformer's own: a subclass may override any step
    of a round (``_select``, ``_update``, the means, ...), which a compiled round would skip, so
    subclasses take the torch path."""
    return type(policy).__module__.startswith("banditformer.bandits.")


def _plain(t: Tensor) -> bool:
    """A CPU tensor that ``numpy()`` views as it is: no autograd history to keep, no lazy
    negation or conjugation bit."""
    return t.is_cpu and not t.requires_grad and not t.is_neg() and not t.is_conj()


def cpu_rows(arms: object, rewards: object, groups: object) -> bool:
    """Whether an update call's tensors have the form the kernels take: ``(n,)`` int64 arms,
    ``(n,)`` float32/float64 rewards, ``groups`` ``None`` or ``(n,)`` int64, all on the CPU.
    Anything else goes to the torch path, which reports it."""
    if not (isinstance(arms, Tensor) and isinstance(rewards, Tensor)):
        return False
    if arms.dtype != torch.int64 or arms.ndim != 1 or not _plain(arms):
        return False
    if rewards.dtype not in (torch.float64, torch.float32) or rewards.shape != arms.shape or not _plain(rewards):
        return False
    if groups is None:
        return True
    return isinstance(groups, Tensor) and groups.dtype == torch.int64 and groups.shape == arms.shape and _plain(groups)


def select_rows(n: object, groups: object) -> tuple[int, np.ndarray] | None:
    """The rows of a context-free ``select`` call in the form the kernels take: ``(n, groups)``
    with ``groups`` a NumPy view of a ``(n,)`` int64 CPU tensor (its values are the kernel's to
    check) or an empty array for "every row in group 0"; ``None`` for anything else (no rows,
    another form), which the torch path then checks."""
    if groups is None:
        if type(n) is not int or n < 1:
            return None
        return n, NO_GROUPS
    if not isinstance(groups, Tensor) or groups.dtype != torch.int64 or groups.ndim != 1 or not _plain(groups):
        return None
    rows = groups.shape[0]
    if rows < 1 or (n is not None and (type(n) is not int or n != rows)):
        return None
    return rows, groups.numpy()


# Per-policy NumPy views and scratch tensors, held beside the policy rather than on it, so that a
# copy or a pickle of a policy never carries views of another policy's buffers.
_SCRATCH: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _scratch(policy: Any) -> dict[str, Any]:
    entry = _SCRATCH.get(policy)
    if entry is None:
        entry = _SCRATCH[policy] = {}
    return entry


def context_rows(policy: Any, context: object, n: object, groups: object) -> tuple[np.ndarray, np.ndarray] | None:
    """A contextual call's ``(n, d)`` float32/float64 CPU context and its groups as the kernels
    take them (NumPy views; an empty array for "every row in group 0"), or ``None`` for anything
    else, which the torch path then checks."""
    if not isinstance(context, Tensor) or context.dtype not in (torch.float64, torch.float32):
        return None
    if context.ndim != 2 or not _plain(context) or context.shape[1] != policy.context_dim:
        return None
    rows = context.shape[0]
    if rows < 1 or (n is not None and (type(n) is not int or n != rows)):
        return None
    if groups is None:
        return context.numpy(), NO_GROUPS
    if not isinstance(groups, Tensor) or groups.dtype != torch.int64 or groups.shape != (rows,) or not _plain(groups):
        return None
    return context.numpy(), groups.numpy()


def groups_in_range(kern: ModuleType, policy: Any, groups: np.ndarray) -> bool:
    """Whether a select call's kernel ``groups`` (:data:`NO_GROUPS` or a view) index the policy's
    statistics; a call with one outside takes the torch path, which reports it."""
    return groups.shape[0] == 0 or bool(kern.groups_ok(groups, policy.num_groups))


def raise_first(
    policy: Any, kern: ModuleType, bad: int, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: object
) -> NoReturn:
    """Raise the torch path's error for an update kernel's failed checks ``bad`` (its flags), the
    first in the torch path's order: arms, rewards, context, groups."""
    device = policy.device
    low, high = policy.reward_range
    if bad & kern.BAD_ARMS:
        check_arms("arms", arms, policy.num_arms, device)
    if bad & kern.BAD_REWARDS:
        check_rewards("rewards", rewards, tuple(rewards.shape), device, low, high)
    if context is not None and bad & kern.BAD_CONTEXT:
        check_context("context", context, policy.context_dim, device, bound=policy.context_bound)
    if bad & kern.BAD_GROUPS:
        check_arms("groups", groups, policy.num_groups, device)
    raise InputValidationError("expected valid input, got a value check that failed without detail")


def context_bound(policy: Any, dtype: torch.dtype) -> float:
    """The bound the torch path checks contexts of ``dtype`` against: the policy's, or none
    (finite is the test) where it is beyond the dtype's range."""
    bound = policy.context_bound
    return bound if bound < torch.finfo(dtype).max else math.inf


def buffer_views(policy: Any, names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """NumPy views of a CPU policy's buffers ``names`` (0-dim ones as ``(1,)``), kept while each
    buffer is the same tensor at the same address (in-place updates, ``load_state_dict`` and
    ``reset`` keep both; a move to another device, an assignment, ``share_memory()``, ``set_`` or
    ``.data =`` change one, and the views are taken again). A policy moved off the CPU keeps the
    old views, and so its old CPU buffers, until it is freed or its next compiled call."""
    buffers = policy._buffers
    scratch = _scratch(policy)
    cached = scratch.get(names)
    if cached is not None:
        for name, tensor, address in zip(names, cached[0], cached[1]):  # noqa: B905 (all from names)
            current = buffers[name]
            if current is not tensor or current.data_ptr() != address:
                break
        else:
            return cached[2]
    tensors = tuple(buffers[name] for name in names)
    views = tuple(t.numpy().reshape(1) if t.ndim == 0 else t.numpy() for t in tensors)
    scratch[names] = (tensors, tuple(t.data_ptr() for t in tensors), views)
    return views


def written(policy: Any, names: tuple[str, ...]) -> None:
    """Tell torch that a kernel changed the buffers ``names`` in place through their views: their
    version counters move as an in-place torch op would move them (what caches of derived values,
    such as a stepper's ridge fit, and autograd's checks go by)."""
    buffers = policy._buffers
    for name in names:
        torch.autograd.graph.increment_version(buffers[name])


def scratch_tensor(policy: Any, name: str, size: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, np.ndarray]:
    """A ``(size,)`` CPU tensor kept for the policy's compiled calls under ``name``, and its
    NumPy view (its values are whatever the last call left)."""
    scratch = _scratch(policy)
    entry = scratch.get(name)
    if entry is None or entry[0].shape[0] != size or entry[0].dtype != dtype:
        tensor = torch.empty(size, dtype=dtype)
        entry = scratch[name] = (tensor, tensor.numpy())
    return entry


def draw_seed(policy: Any) -> int:
    """:func:`~banditformer.core.random.counter_seed` from a CPU policy's generator, as an int
    (through a one-element scratch tensor kept for the policy)."""
    tensor, view = scratch_tensor(policy, "seed", 1, torch.int64)
    tensor.random_(generator=policy.generator)
    return int(view[0])


#: The kernels' ``groups`` argument for "every row in group 0".
NO_GROUPS = np.zeros(0, dtype=np.int64)
