"""Patience-based early exit (``patience_exit``; PABEE, Zhou et al. 2020): a sample stops once its
prediction has stayed the same for ``patience`` consecutive exits after the first that made it."""

from __future__ import annotations

from torch import Tensor

from banditformer.controllers.early_exit import ExitRule
from banditformer.core.errors import InputValidationError
from banditformer.core.exits import ExitPoint
from banditformer.core.validation import check_int

__all__ = ["PatienceExit"]


class PatienceExit(ExitRule):
    """Halt at exit ``d`` when the exits ``d - patience .. d`` all predict the same class
    (``point.patience > patience``). In training every sample runs the full model (PABEE trains
    all exits jointly, with the weighted loss); at inference samples halt. ``patience`` is the knob
    a calibration to a FLOP budget turns (integers ``1 .. L - 1``: coarse budgets on a shallow
    model).

    Examples:
        >>> import torch
        >>> from banditformer.core.decision import Decision
        >>> c = PatienceExit(4, 2, patience=1)
        >>> p = ExitPoint(2, 4, torch.arange(2), torch.zeros(2, 3), torch.zeros(2, 4), torch.tensor([2, 1]))
        >>> c.halt(p, Decision.full(2, 4, 2), explore=False).tolist()
        [True, False]
    """

    def __init__(self, num_layers: int, num_heads: int, patience: int = 2, train_halting: bool = False) -> None:
        super().__init__(num_layers, num_heads, train_halting)
        check_int("patience", patience, low=1)
        self.add_hyperparameter("patience", float(patience), low=1.0, adaptive=True)
        self._patience = int(patience)
        self.register_load_state_dict_post_hook(lambda m, _: setattr(m, "_patience", round(float(m.patience))))

    def _stops(self, point: ExitPoint) -> Tensor:
        return point.patience.to(point.logits.device) > self._patience

    def operating_points(self) -> list[float]:
        """Patience ``1 .. L - 1`` (``L - 1``: never halts, the last exit point showing at most
        ``L - 1`` agreeing exits); ``[1]`` for a model of fewer than 3 blocks."""
        return [float(p) for p in range(1, max(self.num_layers, 2))]

    def set_operating_point(self, value: float) -> None:
        if not isinstance(value, (int, float)) or float(value) != int(value) or int(value) < 1:
            raise InputValidationError(f"expected a patience, an integer >= 1, got {value!r}")
        self.patience.fill_(float(value))
        self._patience = int(value)
