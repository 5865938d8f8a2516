"""The contracts every plugin implements. Imports nothing from the implementation packages."""

from banditformer.core.backend import Backend, Timing
from banditformer.core.controller import Controller
from banditformer.core.decision import Decision
from banditformer.core.errors import (
    BackendUnavailableError,
    BanditformerError,
    DuplicateNameError,
    InputValidationError,
    PluginError,
    PluginLoadError,
    PluginWarning,
    UnknownNameError,
)
from banditformer.core.policy import CombinatorialPolicy, Policy, PolicyBase
from banditformer.core.random import derive_seed, make_generator, sample_beta, sample_log_gamma

__all__ = [
    "Backend",
    "Timing",
    "Controller",
    "Decision",
    "Policy",
    "PolicyBase",
    "CombinatorialPolicy",
    "BanditformerError",
    "InputValidationError",
    "BackendUnavailableError",
    "PluginError",
    "PluginLoadError",
    "PluginWarning",
    "DuplicateNameError",
    "UnknownNameError",
    "derive_seed",
    "make_generator",
    "sample_beta",
    "sample_log_gamma",
]
