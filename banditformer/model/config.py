"""The one configuration dataclass of the dynamic transformer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from banditformer.core.errors import InputValidationError
from banditformer.core.task import Task
from banditformer.core.validation import check_float, check_int

__all__ = ["INPUT_KINDS", "POOLING", "TransformerConfig"]

INPUT_KINDS = ("tokens", "patches", "sequence")
POOLING = ("cls", "mean")


@dataclass
class TransformerConfig:
    """Shape of a :class:`~banditformer.model.DynamicTransformer` encoder classifier.

    Attributes:
        input: ``"tokens"`` (int ids ``(B, T)``), ``"patches"`` (images ``(B, C, H, W)``) or
            ``"sequence"`` (real values ``(B, T)`` or ``(B, T, F)``).
        num_classes: output classes.
        seq_len: T, tokens or sequence steps (for patches it is derived from the image size).
        vocab_size: token vocabulary (``input="tokens"``).
        image_size, patch_size, channels: image side, patch side and channels (``input="patches"``).
        features: F, values per step (``input="sequence"``).
        d_model: D, the width.
        num_layers: L, including the first layer, which is part of the always-run stem.
        num_heads: H; ``d_model`` must be a multiple of it.
        mlp_ratio: the MLP's hidden width is ``mlp_ratio * d_model``.
        pooling: ``"cls"`` (a learned class token) or ``"mean"`` over positions.
        dropout: dropout probability (0 makes the fast and reference paths equal exactly).
        bias: biases in the linear layers and norms.
        exit_heads: give every depth ``1 .. L-1`` its own final norm and classifier (the full
            depth keeps the main ones), as multi-exit networks do, instead of one classifier
            shared by all exits. Same FLOPs per sample; ``(L-1)(2D + D*C)`` more parameters.

    Examples:
        >>> cfg = TransformerConfig(input="sequence", num_classes=10, seq_len=40, d_model=64)
        >>> cfg.tokens_per_sample, cfg.head_dim
        (41, 16)
    """

    input: str = "tokens"
    num_classes: int = 2
    seq_len: int = 64
    vocab_size: int | None = None
    image_size: int | None = None
    patch_size: int | None = None
    channels: int = 1
    features: int = 1
    d_model: int = 128
    num_layers: int = 6
    num_heads: int = 4
    mlp_ratio: int = 4
    pooling: str = "cls"
    dropout: float = 0.0
    bias: bool = True
    exit_heads: bool = False

    def __post_init__(self) -> None:
        if self.input not in INPUT_KINDS:
            raise InputValidationError(f"expected `input` in {INPUT_KINDS}, got {self.input!r}")
        if self.pooling not in POOLING:
            raise InputValidationError(f"expected `pooling` in {POOLING}, got {self.pooling!r}")
        check_int("num_classes", self.num_classes, low=1)
        check_int("d_model", self.d_model, low=1)
        check_int("num_layers", self.num_layers, low=1)
        check_int("num_heads", self.num_heads, low=1)
        check_int("mlp_ratio", self.mlp_ratio, low=1)
        check_float("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        if self.d_model % self.num_heads:
            raise InputValidationError(
                f"expected `d_model` to be a multiple of `num_heads` ({self.num_heads}), got {self.d_model}"
            )
        if self.input == "tokens":
            check_int("vocab_size", self.vocab_size, low=1)
            check_int("seq_len", self.seq_len, low=1)
        elif self.input == "patches":
            check_int("image_size", self.image_size, low=1)
            check_int("patch_size", self.patch_size, low=1)
            check_int("channels", self.channels, low=1)
            if self.image_size % self.patch_size:  # type: ignore[operator]
                raise InputValidationError(
                    f"expected `image_size` to be a multiple of `patch_size` ({self.patch_size}), got {self.image_size}"
                )
            self.seq_len = (self.image_size // self.patch_size) ** 2  # type: ignore[operator]
        else:
            check_int("seq_len", self.seq_len, low=1)
            check_int("features", self.features, low=1)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def tokens_per_sample(self) -> int:
        """Positions the blocks see: ``seq_len`` plus one for the class token."""
        return self.seq_len + (1 if self.pooling == "cls" else 0)

    @classmethod
    def for_task(cls, task: Task, **overrides: Any) -> TransformerConfig:
        """The configuration for ``task``: the fields its data fixes (``task.model``: input kind,
        classes, sequence length, vocabulary, image size, ...) with ``overrides`` (width, depth,
        heads, ...) on top.

        Examples:
            >>> from banditformer.tasks import pointer_chasing
            >>> TransformerConfig.for_task(pointer_chasing(num_samples=30), d_model=16, num_heads=2).seq_len
            9
        """
        if not isinstance(task, Task):
            raise InputValidationError(f"expected a Task, got {type(task).__name__}")
        return cls(**{**task.model, **overrides})
