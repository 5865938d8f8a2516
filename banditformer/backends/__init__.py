"""The built-in compute backends and the torch kernels they share (``-> core``)."""

from __future__ import annotations

import torch

from banditformer.backends.base import TorchBackend
from banditformer.backends.cpu import CPUBackend
from banditformer.backends.cuda import CUDABackend
from banditformer.core.backend import Backend
from banditformer.core.errors import InputValidationError
from banditformer.core.validation import check_device

__all__ = ["CPUBackend", "CUDABackend", "TorchBackend", "default_backend"]


def default_backend(device: torch.device | str) -> Backend:
    """The built-in backend for ``device``: :class:`CPUBackend` or :class:`CUDABackend` of that
    device's index (what a model given no backend runs its fast path with).

    Examples:
        >>> default_backend("cpu")
        CPUBackend(device=cpu, autocast_dtype=torch.bfloat16)
    """
    device = check_device("device", device)
    if device.type == "cuda":
        return CUDABackend(device.index if device.index is not None else torch.cuda.current_device())
    if device.type == "cpu":
        return CPUBackend()
    raise InputValidationError(f"expected a cpu or cuda device for a built-in backend, got {device}")
