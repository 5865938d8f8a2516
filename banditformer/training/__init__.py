"""Training (``-> core, model``): the training loop, evaluation and FLOP
accounting (:mod:`~banditformer.training.trainer`), checkpoint files and their checks
(:mod:`~banditformer.training.checkpoint`), and the data-parallel parts
(:mod:`~banditformer.training.distributed`)."""

from banditformer.training.calibration import calibrate_budget, operating_curve, record_exits, score_shapes
from banditformer.training.checkpoint import check_writable, remove_stale_temporaries, save_atomic
from banditformer.training.trainer import OBJECTIVES, MetricsObserver, TrainConfig, Trainer, multi_exit_loss

__all__ = [
    "OBJECTIVES",
    "MetricsObserver",
    "TrainConfig",
    "Trainer",
    "calibrate_budget",
    "check_writable",
    "multi_exit_loss",
    "operating_curve",
    "record_exits",
    "remove_stale_temporaries",
    "save_atomic",
    "score_shapes",
]
