"""Training: the trainer, its checkpoints and its distributed parts (``-> core, model``)."""

from banditformer.training.checkpoint import check_writable, remove_stale_temporaries, save_atomic
from banditformer.training.trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer", "check_writable", "remove_stale_temporaries", "save_atomic"]
