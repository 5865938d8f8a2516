"""Per-sample compute: a cost table turns a decision into each sample's forward FLOPs with one gather.

Convention (fvcore's): one multiply-add counts as one FLOP. Training: a backward pass costs about
twice the forward, so training FLOPs are :data:`TRAIN_FLOPS_FACTOR` (3) times the forward FLOPs.
The tables are counted by :mod:`banditformer.model.flops`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from banditformer.core.decision import Decision
from banditformer.core.errors import InputValidationError

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
    """

    stem: float
    layers: Tensor
    classifier: float
    seq_len: int
    matmul_share: float = 1.0

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
        ``training``), vectorised: one gather over the ``(B, L)`` head counts.

        Returns:
            ``(B,)`` float64 on the decision's device.
        """
        if not isinstance(decision, Decision):
            raise InputValidationError(f"expected a Decision, got {type(decision).__name__}")
        decision.validate(self.num_layers, self.num_heads)
        table = self.layers.to(decision.depth.device)
        counts = decision.head_counts  # (B, L), 0 where the sample skips the block
        per_block = table.gather(1, counts.T).T  # (B, L): layers[l, counts[b, l]]
        flops = self.stem + per_block[:, 1:].sum(1) + self.classifier
        return flops * (TRAIN_FLOPS_FACTOR if training else 1.0)

    def flop_ratio(self, decision: Decision) -> Tensor:
        """``(B,)`` each sample's FLOPs over the full model's."""
        return self.sample_flops(decision) / self.full
