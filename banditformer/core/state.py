"""Checked module state: a load validates every entry of a state dict before it applies any.

:class:`CheckedModule` is the base of policies and controllers. What it holds falls in three kinds,
each declared where it is registered, and a load treats each kind its own way:

- **configuration** (:meth:`CheckedModule.add_hyperparameter`, :meth:`CheckedModule.add_config`):
  what the constructor was given (``c``, ``discount``, ``mode``, ...). A state dict holding other
  values is refused with an error naming both: a checkpoint does not silently reconfigure a live
  object.
- **adaptive state** (``add_hyperparameter(..., adaptive=True)``): a hyperparameter the object
  adapts as it runs (DHT's ``lam`` under a FLOP budget). Restored, if it lies in the
  constructor's range.
- **statistics** (:meth:`CheckedModule.add_statistic`; policies' ``add_state``): counts and sums.
  Restored, if finite (and non-negative where declared so).

Every other floating buffer must be finite. Keys, shapes and dtype kinds are checked for the whole
module tree, and each :class:`CheckedModule` below checks its own entries, before
``nn.Module.load_state_dict`` copies anything: a load that raises has changed nothing.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from banditformer.core.errors import InputValidationError
from banditformer.core.validation import check_float, format_interval

__all__ = ["CheckedModule", "StateSpec", "locked", "restored_on_error", "same_value", "trusted"]

KINDS = ("configuration", "adaptive", "statistic")


@dataclass(frozen=True)
class StateSpec:
    """How a load checks one buffer: its kind (see the module docstring) and its interval."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def interval(self) -> str:
        return format_interval(self.low, self.high, self.low_open, self.high_open)

    def bad(self, x: Tensor) -> Tensor:
        """A bool tensor: the entries of ``x`` outside the interval (NaN is outside)."""
        x = x.double()
        ok = torch.isfinite(x)
        if self.low is not None:
            ok &= x > self.low if self.low_open else x >= self.low
        if self.high is not None:
            ok &= x < self.high if self.high_open else x <= self.high
        return ~ok


F = TypeVar("F", bound=Callable[..., Any])


def locked(method: F) -> F:
    """Run a :class:`CheckedModule` method under the module's lock (:attr:`CheckedModule.lock`),
    so that concurrent calls from several threads run one at a time instead of interleaving
    their in-place updates."""

    @functools.wraps(method)
    def wrapper(self: CheckedModule, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def trusted(module: nn.Module) -> bool:
    """Whether every module in ``module``'s tree is banditformer's own (its built-ins do not raise
    on checked input, so they need no undo log); a plugin's or a user's class is not."""
    return all(type(m).__module__.startswith("banditformer.") for m in module.modules())


@contextlib.contextmanager
def restored_on_error(*modules: nn.Module) -> Iterator[None]:
    """A block after which, if it raised, every one of ``modules`` holds the state it had before
    (``state_dict`` snapshot, restored with ``load_state_dict``: statistics, generators, counters).
    Costs a copy of the state, so callers use it around code they cannot check first (a plugin's
    update) and not around built-ins."""
    # state_dict() holds the buffers themselves (cloned here) and freshly built extra states
    # (generator states are new tensors), which need no copy
    saved = [{k: v.clone() if isinstance(v, Tensor) else v for k, v in m.state_dict().items()} for m in modules]
    try:
        yield
    except BaseException:
        for m, state in zip(modules, saved, strict=True):
            m.load_state_dict(state)
        raise


def _kind(t: Tensor) -> str:
    if t.dtype == torch.bool:
        return "bool"
    return "float" if t.is_floating_point() else "int" if not t.is_complex() else "complex"


def _show(values: Tensor) -> str:
    return str([float(v) if values.is_floating_point() else int(v) for v in values.flatten()[:5].tolist()])


class CheckedModule(nn.Module):
    """An ``nn.Module`` whose ``load_state_dict`` checks every entry first (see the module docstring).

    Subclasses declare their buffers with :meth:`add_hyperparameter` and :meth:`add_statistic`,
    and plain configuration with :meth:`add_config`; the configuration travels in the module's
    extra state with its class name.
    """

    def __init__(self) -> None:
        super().__init__()
        self._specs: dict[str, StateSpec] = {}
        self._config_names: list[str] = []
        self._lock = threading.RLock()

    @property
    def lock(self) -> threading.RLock:
        """The module's re-entrant lock. Every public method that reads or changes the state
        (``select``, ``update``, ``decide``, ``feedback``, ``state_dict``, ``load_state_dict``,
        ...) holds it, so each call is atomic under threads; hold it yourself to make a sequence
        of calls atomic (``with policy.lock: arms = policy.select(...); policy.update(arms, r)``)."""
        return self._lock

    def __getstate__(self) -> dict[str, Any]:  # copy.deepcopy and pickle: a lock is not data
        state = self.__dict__.copy()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._lock = threading.RLock()

    # --------------------------------------------------------------------------- declaring
    def add_hyperparameter(
        self,
        name: str,
        value: object,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        adaptive: bool = False,
        dtype: torch.dtype | None = torch.float64,
    ) -> float:
        """Check ``value`` against its interval and register it as a 0-dim buffer ``name``.

        Args:
            adaptive: False (configuration: a load must hold the same value) or True (the object
                adapts it: a load restores any value in the interval).
            dtype: the buffer's dtype (``None``: torch's default dtype).

        Returns:
            The value as a float.
        """
        v = check_float(name, value, low=low, high=high, low_open=low_open, high_open=high_open)
        self.register_buffer(name, torch.tensor(v, dtype=dtype))
        self._specs[name] = StateSpec("adaptive" if adaptive else "configuration", low, high, low_open, high_open)
        return v

    def add_statistic(self, name: str, default: Tensor, *, low: float | None = None) -> None:
        """Register a statistic buffer (a count or a sum); a load requires it finite and, with
        ``low``, at least ``low``."""
        self.register_buffer(name, default.clone())
        self._specs[name] = StateSpec("statistic", low)

    def add_config(self, name: str, value: Any) -> Any:
        """Set attribute ``name`` to ``value`` (a number, string, bool, ``None`` or a tuple of
        them) and record it as configuration a load must match; returns ``value``."""
        setattr(self, name, value)
        if name not in self._config_names:
            self._config_names.append(name)
        return value

    @property
    def config(self) -> dict[str, Any]:
        """The configuration recorded by :meth:`add_config` (saved in the extra state)."""
        return {name: getattr(self, name) for name in self._config_names}

    @property
    def state_specs(self) -> dict[str, StateSpec]:
        """Name -> :class:`StateSpec` of every declared buffer."""
        return dict(self._specs)

    # ------------------------------------------------------------------------- extra state
    def get_extra_state(self) -> dict[str, Any]:
        return {"class": type(self).__qualname__, "config": self.config}

    def set_extra_state(self, state: Any) -> None:  # checked by check_extra_state first
        pass

    def check_extra_state(self, key: str, state: Any) -> None:
        """Raise :class:`InputValidationError` unless ``state`` is extra state this module can
        take: the same class and the same configuration."""
        if not isinstance(state, Mapping):
            raise InputValidationError(f"expected `{key}` to be a mapping, got {type(state).__name__}")
        mine = type(self).__qualname__
        saved = state.get("class", state.get("policy"))
        if saved is not None and saved != mine:
            raise InputValidationError(f"expected the state of a {mine} at `{key}`, got {saved}")
        config = state.get("config")
        if config is None and self.config:
            raise InputValidationError(
                f"expected `{key}` to hold the configuration of this {mine} ({sorted(self.config)}), got none "
                "(a state edited, or saved by a banditformer before configuration was recorded)"
            )
        if not isinstance(config, Mapping):
            raise InputValidationError(f"expected `{key}`['config'] to be a mapping, got {type(config).__name__}")
        missing = sorted(set(self.config) - set(config))
        if missing:
            raise InputValidationError(
                f"expected `{key}`['config'] to hold {sorted(self.config)}, got one without {missing}"
            )
        for name, value in self.config.items():
            if not same_value(config[name], value):
                raise InputValidationError(
                    f"expected `{name}` = {value!r} (the configuration of this {mine}), got {config[name]!r} in "
                    f"the state dict at `{key}`; build the object with the saved configuration to load it"
                )

    # ----------------------------------------------------------------------------- checking
    def check_own_state(self, state_dict: Mapping[str, Any], prefix: str = "") -> None:
        """Check this module's own buffers in ``state_dict`` (not its children's, nor its extra
        state: :meth:`check_extra_state`) under ``prefix``."""
        cls = type(self).__name__
        for name, buf in self._buffers.items():
            key = prefix + name
            if buf is None or name in self._non_persistent_buffers_set or key not in state_dict:
                continue
            value = state_dict[key]
            spec = self._specs.get(name)
            if spec is not None and spec.kind == "configuration":
                if not torch.equal(value.to(buf.dtype).cpu(), buf.cpu()):
                    raise InputValidationError(
                        f"expected `{key}` = {float(buf):g} (the configuration of this {cls}), got "
                        f"{float(value):g} in the state dict; build the object with the saved configuration "
                        "to load it"
                    )
                continue
            if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
                bad = value[~torch.isfinite(value)]
                raise InputValidationError(f"expected `{key}` to be finite, got values {_show(bad)}")
            if spec is not None and value.numel():
                bad = spec.bad(value)
                if bool(bad.any()):
                    raise InputValidationError(f"expected `{key}` in {spec.interval()}, got values {_show(value[bad])}")

    def check_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Check ``state_dict`` as :meth:`load_state_dict` would, changing nothing: the same keys
        (when ``strict``), shapes and dtype kinds as this module's own state dict, and the rules
        of every :class:`CheckedModule` in the tree (configuration, ranges, extra state).

        Raises:
            InputValidationError: naming the entry, what was expected and what was got.
        """
        if not isinstance(state_dict, Mapping):
            raise InputValidationError(f"expected a state dict (a mapping), got {type(state_dict).__name__}")
        own = self.state_dict()
        checked = [(p + "." if p else "", m) for p, m in self.named_modules() if isinstance(m, CheckedModule)]
        for prefix, module in checked:  # the class and configuration first: they explain other mismatches
            if prefix + "_extra_state" in state_dict:
                module.check_extra_state(prefix + "_extra_state", state_dict[prefix + "_extra_state"])
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        if strict and (missing or unexpected):
            raise InputValidationError(
                f"expected the state dict of a {type(self).__name__}, got missing keys {missing} and "
                f"unexpected keys {unexpected}"
            )
        for key, value in state_dict.items():
            mine = own.get(key)
            if not isinstance(mine, Tensor):
                continue
            if not isinstance(value, Tensor) or value.shape != mine.shape:
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise InputValidationError(f"expected `{key}` of shape {tuple(mine.shape)}, got {got}")
            if _kind(value) != _kind(mine):
                raise InputValidationError(f"expected `{key}` of dtype {mine.dtype}, got {value.dtype}")
        for prefix, module in checked:
            module.check_own_state(state_dict, prefix)

    @locked
    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return super().state_dict(*args, **kwargs)

    @locked
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load after :meth:`check_state_dict`: a load that fails changes nothing.

        Raises:
            InputValidationError: naming the entry, what was expected and what was got.
        """
        self.check_state_dict(state_dict, strict=strict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def same_value(a: Any, b: Any) -> bool:
    """Whether two configuration values are equal: tuples and lists alike, tensors by value,
    NaN equal to NaN, and a bool never equal to a number."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b
