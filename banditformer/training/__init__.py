"""Training (``-> core, model``): the training loop, evaluation and FLOP
accounting (:mod:`~banditformer.training.trainer`), checkpoint files and their checks
(:mod:`~banditformer.training.checkpoint`), and the data-parallel parts
(:mod:`~banditformer.training.distributed`)."""

from banditformer.training.checkpoint import check_writable, remove_stale_temporaries, save_atomic
from banditformer.training.trainer import MetricsObserver, TrainConfig, Trainer

__all__ = ["MetricsObserver", "TrainConfig", "Trainer", "check_writable", "remove_stale_temporaries", "save_atomic"]
