"""The model contract: what a controller, the :class:`~banditformer.training.Trainer` and the
calibration drive. :class:`~banditformer.model.DynamicTransformer` and the adapted models of
:func:`banditformer.adapt` both keep it; a model of your own that keeps it trains the same way.

The hidden state ``h`` that :meth:`AdaptiveModel.stem` returns is the model's own business (a
``(B, T', D)`` tensor, or an adapted model's states with their padding mask): the callers only
hand it back to ``run`` and ``run_exits``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from banditformer.core.backend import Backend
from banditformer.core.cost import CostTable
from banditformer.core.decision import Decision
from banditformer.core.errors import InputValidationError
from banditformer.core.exits import ExitOutput
from banditformer.model.execution import HaltFn, RouteFn

__all__ = ["CONFIG_FIELDS", "MEMBERS", "AdaptiveModel", "ModelConfig", "check_model"]

#: What a model of the contract has (see :class:`AdaptiveModel`).
MEMBERS = ("cfg", "backend", "device", "backend_for", "stem", "run", "run_exits", "cost_table", "sample_flops")
#: What its ``cfg`` has.
CONFIG_FIELDS = ("num_layers", "num_heads", "num_classes")


class ModelConfig(Protocol):
    """What the callers read of a model's configuration: L blocks of H heads, C classes."""

    @property
    def num_layers(self) -> int: ...

    @property
    def num_heads(self) -> int: ...

    @property
    def num_classes(self) -> int: ...


class AdaptiveModel(Protocol):
    """A classifier whose depth and heads are chosen per sample (an ``nn.Module``).

    Attributes:
        cfg: its :class:`ModelConfig` (``num_layers``, ``num_heads``, ``num_classes``).
        backend: the backend whose kernels it runs, or ``None``; a trainer sets its own.
        device: where its parameters are (inputs must be there).
    """

    cfg: ModelConfig
    backend: Backend | None

    @property
    def device(self) -> torch.device: ...

    def backend_for(self, device: torch.device | str) -> Backend:
        """:attr:`backend` when set, else the built-in backend of ``device``."""
        ...

    def stem(self, x: Any) -> tuple[Any, Tensor]:
        """The part every sample runs: ``(h, context)``, ``context`` ``(B, D)`` detached."""
        ...

    def run(self, h: Any, decision: Decision, path: str = "fast", head_gate: Tensor | None = None) -> Tensor:
        """The rest under ``decision``: ``(B, C)`` logits."""
        ...

    def run_exits(
        self,
        h: Any,
        decision: Decision,
        *,
        halt: HaltFn | None = None,
        route: RouteFn | None = None,
        all_exits: bool = False,
        path: str = "fast",
        head_gate: Tensor | None = None,
    ) -> ExitOutput:
        """The rest, deciding at exit points (see :meth:`~banditformer.model.DynamicTransformer.run_exits`)."""
        ...

    def cost_table(self, ops: Sequence[str] | None = None) -> CostTable:
        """Per-sample forward FLOPs of the stem, of each block with ``1 .. H`` heads and of the classifier."""
        ...

    def sample_flops(self, decision: Decision, training: bool = False) -> Tensor:
        """``(B,)`` forward FLOPs of each sample under ``decision``."""
        ...


EXPECTED = "a DynamicTransformer or an adapted model (banditformer.adapt)"


def check_model(model: object, expected: str = EXPECTED) -> nn.Module:
    """Check that ``model`` is an ``nn.Module`` that keeps the contract; return it.

    Args:
        model: the model to check.
        expected: what the message says was expected first.

    Raises:
        InputValidationError: saying what was expected and what is missing; nothing is changed.

    Examples:
        >>> check_model(torch.nn.Linear(2, 2))  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        banditformer.core.errors.InputValidationError: expected a DynamicTransformer or an adapted model ...
    """
    name = type(model).__name__
    missing = [m for m in MEMBERS if not hasattr(model, m)]
    if not missing:
        missing = [f"cfg.{f}" for f in CONFIG_FIELDS if not hasattr(model.cfg, f)]  # type: ignore[attr-defined]
    if not isinstance(model, nn.Module) or missing:
        lacks = "it is no torch.nn.Module" if not isinstance(model, nn.Module) else f"it lacks {', '.join(missing)}"
        raise InputValidationError(
            f"expected {expected}, got {name} ({lacks}); any nn.Module "
            f"with the model contract banditformer.model.AdaptiveModel ({', '.join(MEMBERS)}) does as well"
        )
    return model
