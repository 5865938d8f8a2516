"""A model task as plain data: a data set with a fixed split and the input shape a model needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

__all__ = ["Split", "Task"]


@dataclass
class Split:
    """Inputs ``x`` ``(n, ...)``, labels ``y`` ``(n,)`` int64 and, where known, each sample's
    ``difficulty`` ``(n,)``."""

    x: Tensor
    y: Tensor
    difficulty: Tensor | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Task:
    """A data set with its split and the input shape a model needs.

    Attributes:
        name: the registry name.
        model: :class:`~banditformer.model.TransformerConfig` fields fixed by the data
            (``input``, ``num_classes``, ``seq_len``, ``vocab_size``, ``image_size``, ...).
        classes: the class names, index = label.
    """

    name: str
    model: dict[str, Any]
    train: Split
    val: Split
    test: Split
    classes: list[str] = field(default_factory=list)
