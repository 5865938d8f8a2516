"""Threshold early exit (``confidence_exit``, ``entropy_exit``, ``margin_exit``): a sample stops
at the first exit whose prediction is confident enough.

- ``entropy``: the prediction's normalised entropy is at most the threshold (BranchyNet,
  Teerapittayanon et al. 2016; DeeBERT, Xin et al. 2020);
- ``max_prob``: the top class probability is at least the threshold (Shallow-Deep Networks,
  Kaya et al. 2019);
- ``margin``: the top probability minus the second is at least the threshold.

While the trainer explores, every sample runs the full model (as DeeBERT and PABEE train: every
exit learns from every sample under the joint loss), unless ``train_halting``; when it decides
greedily (at inference, and in a ``TrainConfig.greedy_tail``, which fine-tunes on the
architectures inference runs) samples halt. The
threshold is the controller's knob: a calibration to a FLOP budget on the validation split sets it
(:func:`~banditformer.training.calibrate_budget`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from banditformer.controllers.static import Fixed
from banditformer.core.decision import Decision
from banditformer.core.errors import InputValidationError
from banditformer.core.exits import ExitPoint

__all__ = ["METRICS", "THRESHOLD_POINTS", "ExitRule", "ThresholdExit", "check_threshold", "exit_score"]

#: The confidence measures an exit can be judged by.
METRICS = ("max_prob", "margin", "entropy")


#: The thresholds a calibration to a FLOP budget tries: 401 from 0 to 1.
THRESHOLD_POINTS = [i / 400 for i in range(401)]


def check_threshold(value: object) -> float:
    """``value`` as a threshold in ``[0, 1]``, else an :class:`InputValidationError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise InputValidationError(f"expected a threshold in [0, 1], got {value!r}")
    return float(value)


def exit_score(point: ExitPoint, metric: str) -> Tensor:
    """``(n,)`` the exit's confidence by ``metric``, oriented so that higher is more confident
    (``entropy`` gives ``1 - entropy``), in ``[0, 1]``."""
    if metric == "max_prob":
        return point.max_prob
    if metric == "margin":
        return point.margin
    if metric == "entropy":
        return 1.0 - point.entropy
    raise InputValidationError(f"expected `metric` in {METRICS}, got {metric!r}")


class ExitRule(Fixed):
    """The base of the exit baselines that learn nothing: every sample plans the full model, and
    at an exit point :meth:`_stops` says who halts; in training nobody halts unless
    ``train_halting`` (the network then trains at full depth, every exit on every sample)."""

    def __init__(self, num_layers: int, num_heads: int, train_halting: bool = False) -> None:
        super().__init__(num_layers, num_heads)
        self.add_config("train_halting", bool(train_halting))

    @property
    def halts(self) -> bool:
        return True

    def _decide(self, context: Tensor, explore: bool) -> Decision:
        return Decision.full(context.shape[0], self.num_layers, self.num_heads, device=context.device)

    def _halt(self, point: ExitPoint, decision: Decision, explore: bool) -> Tensor:
        if explore and not self.train_halting:
            return torch.zeros(point.size, dtype=torch.bool, device=point.logits.device)
        return self._stops(point)

    def _stops(self, point: ExitPoint) -> Tensor:
        """``(n,)`` bool: who halts at a checked exit point (at inference)."""
        raise NotImplementedError


class ThresholdExit(ExitRule):
    """Halt at the first exit whose confidence passes ``threshold``.

    Args:
        num_layers, num_heads: the model's shape.
        threshold: in ``[0, 1]``; for ``max_prob`` and ``margin`` a sample halts when the measure
            is at least it, for ``entropy`` when the normalised entropy is at most it.
        metric: one of :data:`METRICS`.
        train_halting: halt in training too (default: train at full depth).

    Examples:
        >>> c = ThresholdExit(3, 2, threshold=0.8)
        >>> p = ExitPoint(1, 3, torch.arange(2), torch.tensor([[3.0, 0.0], [0.2, 0.0]]), torch.zeros(2, 4),
        ...               torch.ones(2, dtype=torch.long))
        >>> c.halt(p, Decision.full(2, 3, 2), explore=False).tolist()
        [True, False]
    """

    def __init__(
        self, num_layers: int, num_heads: int, threshold: float = 0.9, metric: str = "max_prob",
        train_halting: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(num_layers, num_heads, train_halting)
        if metric not in METRICS:
            raise InputValidationError(f"expected `metric` in {METRICS}, got {metric!r}")
        self.add_config("metric", metric)
        # adaptive: a calibration to a FLOP budget moves it, and a checkpoint restores it
        self.add_hyperparameter("threshold", threshold, low=0.0, high=1.0, adaptive=True)
        self._threshold = float(self.threshold)
        self.register_load_state_dict_post_hook(lambda m, _: setattr(m, "_threshold", float(m.threshold)))

    def _stops(self, point: ExitPoint) -> Tensor:
        if self.metric == "entropy":
            return point.entropy <= self._threshold
        return exit_score(point, self.metric) >= self._threshold

    def operating_points(self) -> list[float]:
        """:data:`THRESHOLD_POINTS`."""
        return list(THRESHOLD_POINTS)

    def set_operating_point(self, value: float) -> None:
        self._threshold = check_threshold(value)
        self.threshold.fill_(self._threshold)
