"""The contracts every plugin implements. Imports nothing from the implementation packages."""

from banditformer.core.backend import Backend, Timing
from banditformer.core.controller import Controller
from banditformer.core.decision import Decision, DecisionRecord
from banditformer.core.errors import (
    BackendUnavailableError,
    BanditformerError,
    DuplicateNameError,
    InputValidationError,
    PluginError,
    PluginLoadError,
    PluginWarning,
    PolicyContractError,
    TrainingDivergedError,
    UnknownNameError,
)
from banditformer.core.policy import CombinatorialPolicy, Policy, PolicyBase
from banditformer.core.random import derive_seed, make_generator, sample_beta, sample_log_gamma
from banditformer.core.validation import (
    check_arms,
    check_context,
    check_float,
    check_int,
    check_rewards,
    check_tensor,
    set_value_checks,
    value_checks,
)

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "BanditformerError",
    "CombinatorialPolicy",
    "Controller",
    "Decision",
    "DecisionRecord",
    "DuplicateNameError",
    "InputValidationError",
    "PluginError",
    "PluginLoadError",
    "PluginWarning",
    "Policy",
    "PolicyBase",
    "PolicyContractError",
    "Timing",
    "TrainingDivergedError",
    "UnknownNameError",
    "check_arms",
    "check_context",
    "check_float",
    "check_int",
    "check_rewards",
    "check_tensor",
    "derive_seed",
    "make_generator",
    "sample_beta",
    "sample_log_gamma",
    "set_value_checks",
    "value_checks",
]
