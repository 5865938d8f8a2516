"""The CPU backend."""

from __future__ import annotations

import torch

from banditformer.backends.base import TorchBackend

__all__ = ["CPUBackend"]


class CPUBackend(TorchBackend):
    """Runs on the host CPU; autocast in bfloat16; ``timer`` uses wall-clock time."""

    name = "cpu"
    # Measured with benchmarks/dynamic_execution.py on a 2-core Xeon (B=32, T=128, D=256, H=8):
    # grouped-per-head attention spends about 1.8x dense attention's time per useful FLOP.
    routed_overheads = (1.1, 1.8)

    @classmethod
    def is_available(cls) -> bool:
        return True

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def autocast_dtype(self) -> torch.dtype:
        return torch.bfloat16

    def synchronize(self) -> None:
        return None
