"""The registry API: names to objects, at the edge. ``make_*`` builds a registered implementation
(checking the caller's arguments against its factory first), ``list_*`` names them."""

from __future__ import annotations

import inspect
from typing import Any

from banditformer.core.backend import Backend
from banditformer.core.controller import Controller
from banditformer.core.errors import InputValidationError, PluginError
from banditformer.core.policy import CombinatorialPolicy, Policy, PolicyBase
from banditformer.core.problem import BanditProblem
from banditformer.core.task import Task
from banditformer.core.validation import keep_value_checks
from banditformer.plugins.manager import KINDS, Entry, PluginManager

_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide manager, created (and entry points loaded) on first use."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager


def reload_plugins() -> PluginManager:
    """Forget the process-wide manager and load every plugin again (e.g. after a ``pip install``)."""
    set_plugin_manager(None)
    return get_plugin_manager()


def set_plugin_manager(manager: PluginManager | None) -> None:
    """Replace the process-wide manager (``None``: rebuild it on next use, e.g. after installing a plugin)."""
    global _manager
    _manager = manager


def _call_factory(entry: Entry, args: tuple, kwargs: dict[str, Any]) -> Any:
    """Call a registry factory, first checking the arguments against its signature, so that a
    caller's typo is an input error and not blamed on the plugin."""
    try:
        signature = inspect.signature(entry.factory)
    except (TypeError, ValueError):  # some callables have no signature
        signature = None
    if signature is not None:
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InputValidationError(
                f"expected arguments matching {entry.kind} {entry.name!r}{signature}, got "
                f"{', '.join([*map(repr, args), *(f'{k}={v!r}' for k, v in kwargs.items())])} ({exc})"
            ) from None
    # A factory is plugin code the registry runs: like an import, it must not turn the value
    # checks off for everyone (the manager restores them and names the plugin).
    with keep_value_checks() as changes:
        obj = entry.factory(*args, **kwargs)
    get_plugin_manager()._guard_value_checks(changes, entry.plugin, None, f"its {entry.kind} {entry.name!r} was built")
    return obj


def _build(kind: str, name: str, expected: type | tuple[type, ...], *args: Any, **kwargs: Any) -> Any:
    entry = get_plugin_manager().get(kind, name)
    obj = _call_factory(entry, args, kwargs)
    if not isinstance(obj, expected):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        raise PluginError(
            f"factory for {kind} {name!r} returned {type(obj).__name__}, expected {names}",
            plugin=entry.plugin,
            hook=KINDS[kind],
        )
    if isinstance(obj, PolicyBase):  # so that a contract breach names the plugin and the name
        obj._bf_origin = (entry.plugin, name)
    return obj


def make_policy(name: str, **kwargs: Any) -> Policy | CombinatorialPolicy:
    """Build a registered policy: ``make_policy("ucb1", num_arms=5, seed=0)`` -> a one-arm
    :class:`~banditformer.core.Policy` or a :class:`~banditformer.core.CombinatorialPolicy`."""
    return _build("policy", name, (Policy, CombinatorialPolicy), **kwargs)


def check_registered(kind: str, names: object) -> None:
    """Fail unless ``names`` (one name, or a non-empty list of names) are registered names of ``kind``,
    with an :class:`InputValidationError` that lists the available ones. For configurations, which
    check their names before any work."""
    if isinstance(names, str):
        names = [names]
    elif not isinstance(names, (list, tuple)) or not names:
        raise InputValidationError(f"expected a non-empty list of {kind} names, got {names!r}")
    known = get_plugin_manager().names(kind)
    for name in names:
        if name not in known:
            raise InputValidationError(f"expected a registered {kind}, got {name!r}; available: {', '.join(known)}")


def list_policies() -> list[str]:
    """Names of every registered policy (built-in and plugins)."""
    return get_plugin_manager().names("policy")


def make_controller(name: str, **kwargs: Any) -> Controller:
    """Build a registered controller: ``make_controller("static", num_layers=4, num_heads=8)``."""
    return _build("controller", name, Controller, **kwargs)


def list_controllers() -> list[str]:
    """Names of every registered controller."""
    return get_plugin_manager().names("controller")


def make_backend(name: str, **kwargs: Any) -> Backend:
    """Build a registered backend: ``make_backend("cpu")``.

    Raises:
        BackendUnavailableError: from the backend's constructor, when it cannot run here
            (``make_backend("cuda")`` on a machine without a GPU).
    """
    return _build("backend", name, Backend, **kwargs)


def list_backends(available_only: bool = False) -> list[str]:
    """Names of the registered backends (only those that can run here, if ``available_only``)."""
    reg = get_plugin_manager().registry("backend")
    return sorted(
        n
        for n, e in reg.items()
        if not available_only or not callable(getattr(e.factory, "is_available", None)) or e.factory.is_available()
    )


def list_tasks() -> list[str]:
    """Names of every registered model task."""
    return get_plugin_manager().names("task")


def make_task(name: str, **kwargs: Any) -> Task:
    """Build a registered task: ``make_task("digits", seed=0)`` -> :class:`~banditformer.core.task.Task`."""
    return _build("task", name, Task, **kwargs)


def make_problem(name: str, **kwargs: Any) -> BanditProblem:
    """Build a registered bandit problem: ``make_problem("bernoulli_easy", seed=0)`` -> an object
    with the members of :class:`~banditformer.core.problem.BanditProblem`."""
    return _build("problem", name, BanditProblem, **kwargs)


def list_problems() -> list[str]:
    """Names of every registered bandit problem."""
    return get_plugin_manager().names("problem")
