"""The CUDA backend."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from banditformer.backends.base import TorchBackend
from banditformer.core.backend import AttentionWeights, Timing
from banditformer.core.errors import BackendUnavailableError, InputValidationError
from banditformer.core.validation import check_int

__all__ = ["ROUTED_KERNELS", "CUDABackend", "resolve_routed_kernel"]

#: Choices for the CUDA backend's routed-attention kernel.
ROUTED_KERNELS = ("torch", "triton", "auto")


def resolve_routed_kernel(kernel: str, has_triton: bool) -> str:
    """``"torch"`` or ``"triton"`` for a requested kernel: ``"auto"`` takes Triton where it is
    installed and falls back to the torch kernel otherwise; ``"triton"`` without Triton is an error."""
    if kernel not in ROUTED_KERNELS:
        raise InputValidationError(f"expected `kernel` in {ROUTED_KERNELS}, got {kernel!r}")
    if kernel == "auto":
        return "triton" if has_triton else "torch"
    if kernel == "triton" and not has_triton:
        raise BackendUnavailableError("expected Triton for kernel='triton', got no importable `triton` package")
    return kernel


class CUDABackend(TorchBackend):
    """Runs on one NVIDIA GPU; autocast in bfloat16 where supported, else float16; ``timer``
    measures with CUDA events on the current stream.

    Args:
        index: the CUDA device index.
        kernel: the routed-attention kernel of the dynamic transformer's fast path: ``"torch"``
            (default: :func:`banditformer.backends.kernels.routed_attention`, masking where routing
            would be slower), ``"triton"`` (the gather-GEMM kernels of
            :mod:`banditformer.backends.triton_kernels`; forward only fast, backward recomputes
            with torch; not yet tuned or timed on a GPU) or ``"auto"`` (Triton where installed).

    Raises:
        BackendUnavailableError: when torch sees no CUDA device (or not ``index``).
    """

    name = "cuda"
    # Measured on an H100 (bf16, B=64, T=256, D=1024, H=16) with the torch kernels: sliced-weight
    # blocks and above all the per-head loop are launch- and sync-bound, so the kernel masks
    # unless few heads are kept. A gather-GEMM kernel of its own would lower these.
    routed_overheads = (4.0, 10.0)

    def __init__(self, index: int = 0, kernel: str = "torch") -> None:
        check_int("index", index, low=0)
        from banditformer.backends import triton_kernels

        self.kernel = resolve_routed_kernel(kernel, triton_kernels.HAS_TRITON)
        if not self.is_available():
            build = torch.version.cuda or "none (a CPU-only build)"
            raise BackendUnavailableError(
                f"expected a CUDA device for backend 'cuda', got torch.cuda.is_available() = False "
                f"(torch {torch.__version__}, CUDA {build}); use backend 'cpu'"
            )
        count = torch.cuda.device_count()
        if index >= count:
            raise BackendUnavailableError(f"expected a CUDA device index in [0, {count}), got {index}")
        self._device = torch.device("cuda", index)

    @classmethod
    def is_available(cls) -> bool:
        return torch.cuda.is_available()

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def autocast_dtype(self) -> torch.dtype:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def routed_attention(
        self,
        x: torch.Tensor,
        heads: torch.Tensor,
        weights: AttentionWeights,
        *,
        host_heads: torch.Tensor | None = None,
        gate: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.kernel == "triton" and gate is None:  # the Triton kernels take no head gate
            from banditformer.backends.triton_kernels import triton_routed_attention

            return triton_routed_attention(x, heads, weights, host_heads=host_heads)
        return super().routed_attention(x, heads, weights, host_heads=host_heads, gate=gate)

    def synchronize(self) -> None:
        torch.cuda.synchronize(self._device)

    @contextlib.contextmanager
    def timer(self) -> Iterator[Timing]:
        """Time the block with CUDA events, so queued kernels are counted and no host clock races them."""
        timing = Timing()
        with torch.cuda.device(self._device):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield timing
            end.record()
            end.synchronize()
        timing.seconds = start.elapsed_time(end) / 1e3
