"""Compute backends: where the model runs, in which precision, and how it is timed."""

from banditformer.backends.cpu import CPUBackend
from banditformer.backends.cuda import CUDABackend

__all__ = ["CPUBackend", "CUDABackend"]
