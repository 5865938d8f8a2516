"""Plugins: the hook specs, the manager, and the public registry helpers.

Examples:
    >>> from banditformer.plugins import list_policies, make_policy
    >>> "ucb1" in list_policies()
    True
    >>> make_policy("ucb1", num_arms=4).num_arms
    4
"""

from __future__ import annotations

from banditformer.plugins.manager import AUTOLOAD_ENV, ENTRY_POINT_GROUP, KINDS, Entry, PluginManager, hookimpl
from banditformer.plugins.registry import (
    check_registered,
    get_plugin_manager,
    list_backends,
    list_controllers,
    list_policies,
    list_problems,
    list_tasks,
    make_backend,
    make_controller,
    make_policy,
    make_problem,
    make_task,
    reload_plugins,
    set_plugin_manager,
)

__all__ = [
    "AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "KINDS",
    "Entry",
    "PluginManager",
    "check_registered",
    "get_plugin_manager",
    "hookimpl",
    "list_backends",
    "list_controllers",
    "list_policies",
    "list_problems",
    "list_tasks",
    "make_backend",
    "make_controller",
    "make_policy",
    "make_problem",
    "make_task",
    "reload_plugins",
    "set_plugin_manager",
]
