"""banditformer: sample-adaptive transformers whose layers and heads are chosen per sample by
contextual bandit policies (the Dynamic Hierarchical Transformer, arXiv 2312.03038), inside a
plugin framework for bandit policies, architecture controllers and compute backends.

Examples:
    >>> import torch, banditformer
    >>> policy = banditformer.make_policy("thompson_beta", num_arms=3, seed=0)
    >>> arms = policy.select(n=8)
    >>> policy.update(arms, torch.rand(8))
"""

from banditformer.core import (
    Backend,
    BackendUnavailableError,
    BanditformerError,
    CombinatorialPolicy,
    Controller,
    Decision,
    DuplicateNameError,
    InputValidationError,
    PluginError,
    PluginLoadError,
    PluginWarning,
    Policy,
    PolicyContractError,
    TrainingDivergedError,
    UnknownNameError,
    set_value_checks,
    value_checks,
)
from banditformer.plugins import (
    get_plugin_manager,
    hookimpl,
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
)

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "BanditformerError",
    "CombinatorialPolicy",
    "Controller",
    "Decision",
    "DuplicateNameError",
    "InputValidationError",
    "PluginError",
    "PluginLoadError",
    "PluginWarning",
    "Policy",
    "PolicyContractError",
    "TrainingDivergedError",
    "UnknownNameError",
    "__version__",
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
    "set_value_checks",
    "value_checks",
]
