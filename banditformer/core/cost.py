"""Per-sample compute: a cost table turns a decision into each sample's forward FLOPs with one gather.

Convention (fvcore's): one multiply-add counts as one FLOP. Training: a backward pass costs about
twice the forward, so training FLOPs are :data:`TRAIN_FLOPS_FACTOR` (3) times the forward FLOPs.
The tables are counted by :mod:`banditformer.model.flops`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from banditformer.core.decision import Decision
from banditformer.core.errors import InputValidationError
from banditformer.core.validation import check_float, check_int, check_tensor

__all__ = ["TRAIN_FLOPS_FACTOR", "CostTable"]

#: Forward + backward FLOPs over forward FLOPs.
TRAIN_FLOPS_FACTOR = 3.0


@dataclass
class CostTable:
    """Per-sample forward FLOPs of a dynamic transformer's pieces, at one sequence length.

    Attributes:
        stem: FLOPs of the embedding and block 0 (always run in full).
        layers: ``(L, H + 1)`` float64: ``layers[l, k]`` is the FLOPs of block ``l`` with ``k``
            heads (``k = 0``: the block is skipped, 0 FLOPs). Row 0 is the stem block's (unused
            by :meth:`sample_flops`, which counts it in ``stem``).
        classifier: FLOPs of the final norm, pooling and classifier.
        seq_len: the positions per sample the table was counted at.
        matmul_share: the part of the full model's FLOPs that are matrix products.

    Raises:
        InputValidationError: a table that is no cost table: ``layers`` not a floating ``(L, H + 1)``
            tensor (``L, H >= 1``) of finite entries ``>= 0`` with a zero first column, a negative
            or non-finite ``stem`` or ``classifier``, ``seq_len < 1``, ``matmul_share`` outside
            ``[0, 1]``.

    Examples:
        >>> table = CostTable(stem=10.0, layers=torch.tensor([[0.0, 1.0], [0.0, 3.0]]), classifier=2.0, seq_len=4)
        >>> table.full                                   # stem + block 1 with its one head + classifier
        15.0
    """

    stem: float
    layers: Tensor
    classifier: float
    seq_len: int
    matmul_share: float = 1.0

    def __post_init__(self) -> None:
        check_float("stem", self.stem, low=0.0)
        check_float("classifier", self.classifier, low=0.0)
        check_int("seq_len", self.seq_len, low=1)
        check_float("matmul_share", self.matmul_share, low=0.0, high=1.0)
        check_tensor("layers", self.layers, ndim=2, kind="float")
        if self.layers.shape[0] < 1 or self.layers.shape[1] < 2:
            raise InputValidationError(
                f"expected `layers` of shape (L, H + 1) with L >= 1 and H >= 1, got {tuple(self.layers.shape)}"
            )
        if not bool((torch.isfinite(self.layers) & (self.layers >= 0)).all()):
            raise InputValidationError(
                "expected `layers` to hold finite FLOP counts >= 0, got negative or non-finite entries"
            )
        if bool((self.layers[:, 0] != 0).any()):
            raise InputValidationError(
                f"expected `layers[:, 0]` = 0 (a skipped block costs nothing), got {self.layers[:, 0].tolist()}"
            )

    @property
    def num_layers(self) -> int:
        return int(self.layers.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.layers.shape[1]) - 1

    @property
    def full(self) -> float:
        """FLOPs of one sample through the full model."""
        return self.stem + float(self.layers[1:, -1].sum()) + self.classifier

    def sample_flops(self, decision: Decision, training: bool = False) -> Tensor:
        """Each sample's forward FLOPs under ``decision`` (times :data:`TRAIN_FLOPS_FACTOR` when
        ``training``), vectorised: one gather over the ``(B, L)`` head counts. A decision with
        ``exits`` (a multi-exit pass) pays the classifier once per exit evaluated.

        Returns:
            ``(B,)`` float64 on the decision's device.
        """
        if not isinstance(decision, Decision):
            raise InputValidationError(f"expected a Decision, got {type(decision).__name__}")
        decision.validate(self.num_layers, self.num_heads)
        table = self.layers.to(decision.depth.device)
        counts = decision.head_counts  # (B, L), 0 where the sample skips the block
        per_block = table.gather(1, counts.T).T  # (B, L): layers[l, counts[b, l]]
        exits = 1.0 if decision.exits is None else decision.exits.to(per_block.dtype)
        flops = self.stem + per_block[:, 1:].sum(1) + self.classifier * exits
        return flops * (TRAIN_FLOPS_FACTOR if training else 1.0)

    def flop_ratio(self, decision: Decision) -> Tensor:
        """``(B,)`` each sample's FLOPs over the full model's."""
        return self.sample_flops(decision) / self.full
