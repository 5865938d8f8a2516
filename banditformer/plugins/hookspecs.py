"""The hook specifications: every way a plugin extends banditformer.

A plugin is a module or object with functions named like these hooks and marked with
``banditformer.plugins.hookimpl``. Registry hooks return ``{name: factory}``; all results are
collected (none wins over another), and a name provided twice is a :class:`DuplicateNameError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

PROJECT = "banditformer"

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def banditformer_add_policies() -> Mapping[str, Callable[..., Any]]:
    """Contribute bandit policies.

    :return: a mapping from a unique policy name to a factory, called as
        ``factory(num_arms, *, context_dim=None, num_groups=1, seed=0, **options)`` and returning a
        :class:`banditformer.core.Policy` or :class:`banditformer.core.CombinatorialPolicy`.
    """


@hookspec
def banditformer_add_controllers() -> Mapping[str, Callable[..., Any]]:
    """Contribute architecture controllers.

    :return: a mapping from a unique controller name to a factory, called as
        ``factory(num_layers, num_heads, **options)`` and returning a
        :class:`banditformer.core.Controller`.
    """


@hookspec
def banditformer_add_backends() -> Mapping[str, Callable[..., Any]]:
    """Contribute compute backends.

    :return: a mapping from a unique backend name to a :class:`banditformer.core.Backend` subclass
        (or factory); its constructor raises :class:`BackendUnavailableError` when it cannot run
        on this machine.
    """


@hookspec
def banditformer_add_tasks() -> Mapping[str, Callable[..., Any]]:
    """Contribute model tasks (data sets with a fixed split).

    :return: a mapping from a unique task name to a factory taking ``seed`` and options.
    """


@hookspec
def banditformer_add_problems() -> Mapping[str, Callable[..., Any]]:
    """Contribute bandit problems for the benchmark harness.

    :return: a mapping from a unique problem name to a factory taking ``seed`` and options.
    """


@hookspec
def banditformer_on_metrics(source: str, step: int, metrics: Mapping[str, float]) -> None:
    """Observe metrics as they are produced (for loggers).

    :param source: who reports, e.g. ``"bench.quick"`` or ``"train"``.
    :param step: a step or round counter of that source.
    :param metrics: name -> value.
    :return: ignored; every implementation is called.
    """
