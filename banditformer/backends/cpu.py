"""The CPU backend."""

from __future__ import annotations

import resource
import sys

import torch

from banditformer.backends.base import TorchBackend

__all__ = ["CPUBackend"]


class CPUBackend(TorchBackend):
    """Runs on the host CPU; autocast in bfloat16; ``timer`` uses wall-clock time.

    ``memory_stats`` reports the process's peak resident set size (the CPU has no allocator
    counters like CUDA's), with ``allocated`` unknown (0).
    """

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

    def memory_stats(self) -> dict[str, int]:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
        return {"allocated": 0, "peak_allocated": int(peak)}
