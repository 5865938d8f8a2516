"""The contracts every plugin implements. Imports nothing from the implementation packages."""

from banditformer.core.backend import AttentionWeights, Backend, Timing
from banditformer.core.controller import Controller
from banditformer.core.cost import TRAIN_FLOPS_FACTOR, CostTable
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
from banditformer.core.exits import ExitOutput, ExitPoint, exit_features
from banditformer.core.policy import CombinatorialPolicy, Policy, PolicyBase
from banditformer.core.problem import BanditProblem, CombinatorialProblem, ContextualProblem
from banditformer.core.random import derive_seed, make_generator, sample_beta, sample_log_gamma
from banditformer.core.stepper import LeanStepper, Stepper
from banditformer.core.task import Split, Task
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
    "TRAIN_FLOPS_FACTOR",
    "AttentionWeights",
    "Backend",
    "BackendUnavailableError",
    "BanditProblem",
    "BanditformerError",
    "CombinatorialPolicy",
    "CombinatorialProblem",
    "ContextualProblem",
    "Controller",
    "CostTable",
    "Decision",
    "DecisionRecord",
    "DuplicateNameError",
    "ExitOutput",
    "ExitPoint",
    "InputValidationError",
    "LeanStepper",
    "PluginError",
    "PluginLoadError",
    "PluginWarning",
    "Policy",
    "PolicyBase",
    "PolicyContractError",
    "Split",
    "Stepper",
    "Task",
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
    "exit_features",
    "make_generator",
    "sample_beta",
    "sample_log_gamma",
    "set_value_checks",
    "value_checks",
]
