"""The plugin manager: built-ins and entry-point plugins through the same hooks, one failure at a time.

Built-in implementations are a plugin like any other (:mod:`banditformer.builtin`),
registered first. Entry points of group ``banditformer`` are then loaded one by one: a plugin that
fails to import, breaks a hookspec, implements an unknown hook, raises in a hook or returns the
wrong type is reported by name (a :class:`PluginWarning`, and in :attr:`PluginManager.failures`)
and skipped, while the others load. Set ``BANDITFORMER_DISABLE_PLUGIN_AUTOLOAD=1`` (or ``true``,
``yes``, ``on``) to skip entry points altogether; ``0``, ``false``, ``no``, ``off`` or empty load them.

A plugin may not change the value checks for everyone: one that calls ``set_value_checks`` (or
leaves a ``value_checks`` block open) while it is imported, registered or asked for its
implementations is reported by name (a :class:`PluginWarning`) and the setting is restored. An
import slower than :data:`SLOW_IMPORT_SECONDS` names itself on stderr while it runs.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from banditformer.core.errors import (
    DuplicateNameError,
    PluginError,
    PluginLoadError,
    PluginWarning,
    UnknownNameError,
)
from banditformer.core.validation import keep_value_checks, value_checks_enabled
from banditformer.plugins import hookspecs

__all__ = [
    "AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "KINDS",
    "SLOW_IMPORT_SECONDS",
    "Entry",
    "PluginManager",
    "autoload_from_env",
    "hookimpl",
]

ENTRY_POINT_GROUP = "banditformer"
AUTOLOAD_ENV = "BANDITFORMER_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN = "builtin"
#: The module of the built-in implementations, registered as the entry point ``builtin`` of
#: group ``banditformer`` by the package's own ``pyproject.toml``.
BUILTIN_MODULE = "banditformer.builtin"

#: Seconds an entry point's import may take before a line on stderr names the plugin being loaded.
SLOW_IMPORT_SECONDS = 3.0

_DISABLE = ("1", "true", "yes", "on")
_ENABLE = ("", "0", "false", "no", "off")


def autoload_from_env() -> bool:
    """Whether entry points load, from ``BANDITFORMER_DISABLE_PLUGIN_AUTOLOAD``: unset, empty, ``0``,
    ``false``, ``no`` or ``off`` (any case): yes; ``1``, ``true``, ``yes`` or ``on``: no; anything
    else: no, with a :class:`PluginWarning` that names the values it takes."""
    raw = os.environ.get(AUTOLOAD_ENV)
    if raw is None or raw.strip().lower() in _ENABLE:
        return True
    if raw.strip().lower() not in _DISABLE:
        warnings.warn(
            f"expected {AUTOLOAD_ENV} to be one of {', '.join(_DISABLE)} (skip plugins) or "
            f"{', '.join(v or 'empty' for v in _ENABLE)} (load them), got {raw!r}; skipping plugins' entry points",
            PluginWarning,
            stacklevel=3,
        )
    return False


#: kind -> the registry hook that provides it.
KINDS: dict[str, str] = {
    "policy": "banditformer_add_policies",
    "controller": "banditformer_add_controllers",
    "backend": "banditformer_add_backends",
    "task": "banditformer_add_tasks",
    "problem": "banditformer_add_problems",
}

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)


@dataclass(frozen=True)
class Entry:
    """One implementation in a registry: its kind, name, factory and the plugin it came from."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str


class PluginManager:
    """Loads plugins and builds the name -> factory registries.

    Args:
        autoload: load entry points of group ``banditformer``; default: unless the environment
            variable ``BANDITFORMER_DISABLE_PLUGIN_AUTOLOAD`` says not to (:func:`autoload_from_env`).
        builtins: register the built-in implementations.

    Examples:
        >>> pm = PluginManager(autoload=False)
        >>> "ucb1" in pm.names("policy")
        True
    """

    def __init__(self, *, autoload: bool | None = None, builtins: bool = True) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.failures: list[PluginError] = []
        self._order: list[str] = []  # registration order: earlier plugins win name clashes
        self._registries: dict[str, dict[str, Entry]] = {}
        if builtins:
            self._load_builtins()
        if autoload is None:
            autoload = autoload_from_env()
        if autoload:
            self.load_entry_points()

    # -------------------------------------------------------------------------------- loading
    def _fail(self, error: PluginError) -> None:
        if any(str(seen) == str(error) for seen in self.failures):
            return  # registries are re-collected after a new registration: report each failure once
        self.failures.append(error)
        warnings.warn(str(error), PluginWarning, stacklevel=3)

    def _guard_value_checks(self, changes: list[str], plugin: str, entry_point: str | None, when: str) -> None:
        """Warn, naming the plugin, when it changed the value checks (already restored)."""
        for change in changes:
            state = "on" if value_checks_enabled() else "off"
            error = PluginError(
                f"{change} while {when}; restored them ({state} as before): a plugin must not change them for "
                "everyone (use `with banditformer.value_checks(False):` around code that needs them off)",
                plugin=plugin,
                entry_point=entry_point,
            )
            warnings.warn(str(error), PluginWarning, stacklevel=4)

    def register(self, plugin: object, name: str | None = None, entry_point: str | None = None) -> bool:
        """Register a plugin object (a module, class or instance with hook implementations).

        A plugin that changes the value checks meanwhile is reported (:class:`PluginWarning`)
        and the setting restored.

        Returns:
            True if it was registered; False if it was rejected (the reason is in :attr:`failures`).
        """
        label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        with keep_value_checks() as changes:
            ok = self._register(plugin, name, entry_point, label)
        self._guard_value_checks(changes, label, entry_point, "it was registered")
        return ok

    def _register(self, plugin: object, name: str | None, entry_point: str | None, label: str) -> bool:
        try:
            registered = self._pm.register(plugin, name=name)
        except Exception as exc:  # pluggy's PluginValidationError, or a clashing plugin name
            self._fail(PluginLoadError(f"{type(exc).__name__}: {exc}", plugin=label, entry_point=entry_point))
            return False
        if registered is None:
            self._fail(PluginLoadError("already registered", plugin=label, entry_point=entry_point))
            return False
        label = self._pm.get_name(plugin) or label
        for caller in self._pm.get_hookcallers(plugin) or []:
            if caller.spec is None and not all(i.optionalhook for i in caller.get_hookimpls()):
                self._pm.unregister(plugin)
                self._fail(
                    PluginLoadError(
                        f"implements unknown hook {caller.name!r}; known hooks: {', '.join(sorted(KINDS.values()))}, "
                        "banditformer_on_metrics",
                        plugin=label,
                        entry_point=entry_point,
                        hook=caller.name,
                    )
                )
                return False
        self._order.append(label)
        self._registries.clear()
        return True

    def _load_builtins(self) -> None:
        """Register the built-in implementations through their entry point, the door every plugin
        uses (the manager imports no implementation). Run from a source tree that was not
        installed, the entry point is the one ``pyproject.toml`` declares."""
        ep = builtin_entry_point()
        obj, exc = _load_noting_slow(ep)
        if exc is not None:  # the package itself is broken: not a plugin failure to skip past
            raise PluginLoadError(
                f"failed to import: {type(exc).__name__}: {exc}", plugin=BUILTIN, entry_point=ep.value
            )
        self.register(obj, name=BUILTIN, entry_point=ep.value)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Import and register every entry point of ``group``, one at a time (the built-ins' own
        entry point is registered by the constructor, first, or not at all)."""
        # Sorted by name, so which plugin keeps a clashing name does not depend on the file system.
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: (e.name, e.value)):
            if (ep.name, ep.value) == (BUILTIN, BUILTIN_MODULE):
                continue
            if self._pm.has_plugin(ep.name):
                self._fail(
                    PluginLoadError(
                        f"a plugin named {ep.name!r} is already registered (from "
                        f"{getattr(self._pm.get_plugin(ep.name), '__name__', '?')}); skipped",
                        plugin=ep.name,
                        entry_point=ep.value,
                    )
                )
                continue
            with keep_value_checks() as changes:
                obj, exc = _load_noting_slow(ep)
            self._guard_value_checks(changes, ep.name, ep.value, "it was imported")
            if exc is not None:
                self._fail(
                    PluginLoadError(
                        f"failed to import: {type(exc).__name__}: {exc}", plugin=ep.name, entry_point=ep.value
                    )
                )
                continue
            self.register(obj, name=ep.name, entry_point=ep.value)

    @property
    def plugins(self) -> list[str]:
        """Names of the registered plugins, in registration order."""
        return list(self._order)

    # ----------------------------------------------------------------------------- registries
    def registry(self, kind: str) -> dict[str, Entry]:
        """Name -> :class:`Entry` for one kind (``policy``, ``controller``, ``backend``, ``task``,
        ``problem``), built on first use from every plugin's hook."""
        if kind not in KINDS:
            raise UnknownNameError("registry kind", kind, list(KINDS))
        if kind not in self._registries:
            self._registries[kind] = self._collect(kind)
        return self._registries[kind]

    def _collect(self, kind: str) -> dict[str, Entry]:
        hook_name = KINDS[kind]
        impls = getattr(self._pm.hook, hook_name).get_hookimpls()
        rank = {name: i for i, name in enumerate(self._order)}
        impls = sorted(impls, key=lambda impl: rank.get(impl.plugin_name, len(rank)))
        out: dict[str, Entry] = {}
        for impl in impls:
            plugin = impl.plugin_name
            try:
                with keep_value_checks() as changes:
                    result = impl.function()
            except Exception as exc:
                self._fail(PluginError(f"raised {type(exc).__name__}: {exc}", plugin=plugin, hook=hook_name))
                continue
            finally:
                self._guard_value_checks(changes, plugin, None, f"its hook {hook_name!r} ran")
            if not isinstance(result, Mapping):
                self._fail(
                    PluginError(
                        f"expected a mapping of name -> factory, got {type(result).__name__}",
                        plugin=plugin,
                        hook=hook_name,
                    )
                )
                continue
            for name, factory in result.items():
                if not isinstance(name, str) or not name or not callable(factory):
                    self._fail(
                        PluginError(
                            "expected a non-empty str name and a callable factory, "
                            f"got {name!r} -> {type(factory).__name__}",
                            plugin=plugin,
                            hook=hook_name,
                        )
                    )
                    continue
                if name in out:
                    self._fail(DuplicateNameError(kind, name, out[name].plugin, plugin))
                    continue
                out[name] = Entry(kind, name, factory, plugin)
        return out

    def names(self, kind: str) -> list[str]:
        """Sorted names of one kind."""
        return sorted(self.registry(kind))

    def get(self, kind: str, name: str) -> Entry:
        """The entry for ``name``; :class:`UnknownNameError` (listing the known names) if absent."""
        reg = self.registry(kind)
        if name not in reg:
            raise UnknownNameError(kind, name, list(reg))
        return reg[name]

    def notify_metrics(self, source: str, step: int, metrics: Mapping[str, float]) -> None:
        """Call every ``banditformer_on_metrics`` observer; one that raises is reported by name
        (a :class:`PluginWarning` and :attr:`failures`) and the others are still called."""
        payload = dict(metrics)
        for impl in self._pm.hook.banditformer_on_metrics.get_hookimpls():
            try:
                impl.function(source=source, step=step, metrics=payload)
            except Exception as exc:
                self._fail(
                    PluginError(
                        f"raised {type(exc).__name__}: {exc}", plugin=impl.plugin_name, hook="banditformer_on_metrics"
                    )
                )


def builtin_entry_point() -> importlib.metadata.EntryPoint:
    """The entry point of the built-in implementations: the installed package's, or (in a source
    tree that was not installed) the one its ``pyproject.toml`` declares."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=BUILTIN):
        if ep.value == BUILTIN_MODULE:
            return ep
    return importlib.metadata.EntryPoint(name=BUILTIN, value=BUILTIN_MODULE, group=ENTRY_POINT_GROUP)


def _load_noting_slow(ep: importlib.metadata.EntryPoint) -> tuple[Any, BaseException | None]:
    """``(ep.load(), None)``, or ``(None, the exception)`` when the import fails (anything but
    KeyboardInterrupt, SystemExit included); an import slower than :data:`SLOW_IMPORT_SECONDS`
    names itself on stderr while it runs, and says how long it took."""
    start = time.perf_counter()
    noted = threading.Event()

    def note() -> None:
        noted.set()
        print(f"banditformer: loading plugin {ep.name!r} (entry point {ep.value!r}) ...", file=sys.stderr, flush=True)

    timer = threading.Timer(SLOW_IMPORT_SECONDS, note)
    timer.daemon = True
    timer.start()
    try:
        return ep.load(), None
    except BaseException as exc:  # an import can raise anything, SystemExit included
        if isinstance(exc, KeyboardInterrupt):
            raise
        return None, exc
    finally:
        timer.cancel()
        if noted.is_set():
            print(
                f"banditformer: plugin {ep.name!r} took {time.perf_counter() - start:.1f} s to import",
                file=sys.stderr,
                flush=True,
            )
