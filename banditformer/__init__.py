"""banditformer: sample-adaptive transformers whose layers and heads are chosen per sample by
contextual bandit policies (the Dynamic Hierarchical Transformer, arXiv 2312.03038), inside a
plugin framework for bandit policies, architecture controllers and compute backends.

The names a user needs are here: the registry (``make_*``, ``list_*``), the model
(:class:`DynamicTransformer`, :class:`TransformerConfig`, and :func:`adapt` for a model you
already have), training (:class:`Trainer`,
:class:`TrainConfig`) and the contracts a plugin implements. The layers below this package
import only downwards (``docs/architecture.md`` draws them; import-linter enforces them).

Examples:
    >>> import torch, banditformer
    >>> policy = banditformer.make_policy("thompson_beta", num_arms=3, seed=0)
    >>> arms = policy.select(n=8)
    >>> policy.update(arms, torch.rand(8))
"""

from banditformer.adapters import adapt
from banditformer.core import (
    Backend,
    BackendUnavailableError,
    BanditformerError,
    CombinatorialPolicy,
    Controller,
    CostTable,
    Decision,
    DecisionRecord,
    DuplicateNameError,
    ExitPoint,
    InputValidationError,
    PluginError,
    PluginLoadError,
    PluginWarning,
    Policy,
    PolicyContractError,
    Split,
    Task,
    TrainingDivergedError,
    UnknownNameError,
    set_value_checks,
    value_checks,
)
from banditformer.model import DynamicTransformer, TransformerConfig
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
from banditformer.training import TrainConfig, Trainer

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "BanditformerError",
    "CombinatorialPolicy",
    "Controller",
    "CostTable",
    "Decision",
    "DecisionRecord",
    "DuplicateNameError",
    "DynamicTransformer",
    "ExitPoint",
    "InputValidationError",
    "PluginError",
    "PluginLoadError",
    "PluginWarning",
    "Policy",
    "PolicyContractError",
    "Split",
    "Task",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "TransformerConfig",
    "UnknownNameError",
    "__version__",
    "adapt",
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
