"""The error hierarchy. Every message says what was expected and what was got."""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "BanditformerError",
    "DuplicateNameError",
    "InputValidationError",
    "PluginError",
    "PluginLoadError",
    "PluginWarning",
    "PolicyContractError",
    "TrainingDivergedError",
    "UnknownNameError",
]


class BanditformerError(Exception):
    """Base class of every error raised by banditformer."""


class InputValidationError(BanditformerError, ValueError):
    """An argument has the wrong shape, dtype, device, range or value.

    Raised before any state is touched, so the object is unchanged after it.
    """


class TrainingDivergedError(BanditformerError, RuntimeError):
    """Training produced non-finite values (activations, loss or gradients); the message names
    the step. Raised before the step changes anything, so the last good state is still there."""


class BackendUnavailableError(BanditformerError, RuntimeError):
    """A compute backend was asked for on a machine that cannot run it."""


class PluginError(BanditformerError):
    """A plugin could not be loaded or broke a hook's contract.

    Attributes:
        plugin: the plugin's name (its entry-point name, or the registered name).
        entry_point: the entry point's value (``module:attr``) or ``None`` for in-process plugins.
        hook: the hook involved, or ``None`` when the failure happened at import.
    """

    def __init__(
        self,
        message: str,
        *,
        plugin: str,
        entry_point: str | None = None,
        hook: str | None = None,
    ) -> None:
        where = f"plugin {plugin!r}"
        if entry_point:
            where += f" (entry point {entry_point!r})"
        if hook:
            where += f", hook {hook!r}"
        super().__init__(f"{where}: {message}")
        self.plugin = plugin
        self.entry_point = entry_point
        self.hook = hook


class PluginLoadError(PluginError):
    """A plugin failed to import or to register."""


class PolicyContractError(PluginError, RuntimeError):
    """A policy implementation returned what its contract rules out (arms out of range, a row
    with the wrong number of base arms, a wrong shape or dtype). The message names the policy,
    its plugin and its class: the fault is the implementation's, not the caller's."""


class DuplicateNameError(PluginError):
    """Two plugins provide an implementation under the same name."""

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        super().__init__(
            f"{kind} {name!r} is provided by both plugin {first!r} and plugin {second!r}; kept the one from {first!r}",
            plugin=second,
        )
        self.kind = kind
        self.name = name
        self.first = first
        self.second = second


class UnknownNameError(BanditformerError, KeyError):
    """A name that no loaded plugin provides."""

    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        msg = f"unknown {kind} {name!r}; expected one of: {', '.join(sorted(available)) or '(none)'}"
        super().__init__(msg)
        self.kind = kind
        self.name = name
        self.available = sorted(available)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class PluginWarning(UserWarning):
    """Issued when a plugin is skipped; the message names the plugin and what went wrong."""
