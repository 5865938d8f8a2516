"""The base of the built-in backends: the torch kernels, routed or masked by measured overheads."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from banditformer.backends import kernels
from banditformer.core.backend import AttentionWeights, Backend

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    """A backend whose routed attention is :func:`banditformer.backends.kernels.routed_attention`.

    Subclass it to keep the torch kernels and set the device, or override
    :meth:`routed_attention` to bring a faster kernel with the same result.
    """

    #: Time per useful FLOP of the routed-attention strategies (rows sharing a head set, rows
    #: grouped per head) relative to dense attention on this device; the kernel masks instead
    #: where routing would be slower. 1.0: always route.
    routed_overheads: ClassVar[tuple[float, float]] = (1.0, 1.0)

    def routed_attention(
        self,
        x: Tensor,
        heads: Tensor,
        weights: AttentionWeights,
        *,
        host_heads: Tensor | None = None,
        gate: Tensor | None = None,
    ) -> Tensor:
        """See :meth:`Backend.routed_attention`; ``x`` ``(n, T, D)``, ``heads`` ``(n, H)`` -> ``(n, T, D)``."""
        return kernels.routed_attention(
            x, heads, weights, overheads=self.routed_overheads, host_heads=host_heads, gate=gate
        )
