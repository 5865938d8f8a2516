"""The compute-backend contract: device, precision, synchronisation, timing and the routed-attention kernel."""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

__all__ = ["AttentionWeights", "Backend", "Timing"]


class AttentionWeights(NamedTuple):
    """One attention layer's parameters, as the kernels take them.

    Attributes:
        qkv_weight, qkv_bias: the fused ``(3D, D)`` input projection and its ``(3D,)`` bias (or None).
        proj_weight, proj_bias: the ``(D, D)`` output projection and its ``(D,)`` bias (or None).
        num_heads: H; ``D`` is a multiple of it.
    """

    qkv_weight: Tensor
    qkv_bias: Tensor | None
    proj_weight: Tensor
    proj_bias: Tensor | None
    num_heads: int


class Timing:
    """The result of :meth:`Backend.timer`: ``seconds`` is set when the ``with`` block exits."""

    def __init__(self) -> None:
        self.seconds: float = float("nan")

    def __repr__(self) -> str:
        return f"Timing(seconds={self.seconds:.6g})"


class Backend(ABC):
    """Where and how the model runs.

    Implementations say whether they can run here (:meth:`is_available`), give the device and the
    autocast dtype, synchronise, time a block correctly for their device, and supply the
    routed-attention kernel the dynamic model's fast path calls. A model runs its fast path with
    its ``backend``; a :class:`~banditformer.training.Trainer` makes its own backend the model's.
    """

    #: The registry name, e.g. ``"cpu"``.
    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def is_available(cls) -> bool:
        """True when this machine can run the backend."""

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """The device tensors live on."""

    @property
    @abstractmethod
    def autocast_dtype(self) -> torch.dtype:
        """The reduced-precision dtype used under :meth:`autocast`."""

    @abstractmethod
    def synchronize(self) -> None:
        """Wait until queued work on the device is done."""

    @abstractmethod
    def routed_attention(
        self,
        x: Tensor,
        heads: Tensor,
        weights: AttentionWeights,
        *,
        host_heads: Tensor | None = None,
        gate: Tensor | None = None,
    ) -> Tensor:
        """Self-attention in which row ``i`` runs only the heads in ``heads[i]``: the kernel the
        dynamic transformer's fast path calls. The built-in backends use
        :func:`banditformer.backends.kernels.routed_attention`; a backend may bring a faster one
        with the same result (full attention with the unchosen heads' outputs zeroed before the
        output projection).

        Args:
            x: ``(n, T, D)``; heads: ``(n, H)`` bool, at least one head per row;
            weights: the layer's projections and head count;
            host_heads: ``heads`` on the CPU, when the caller has it (spares a host sync).
            gate: ``(n, H)`` float multipliers of the heads' outputs, or ``None``: a kernel given a
                gate must let gradients reach it (it measures head importance during training).

        Returns:
            ``(n, T, D)``.
        """

    def autocast(self, enabled: bool = True, dtype: torch.dtype | None = None) -> contextlib.AbstractContextManager:
        """A ``torch.autocast`` context for this device (a no-op when ``enabled`` is False)."""
        return torch.autocast(self.device.type, dtype=dtype or self.autocast_dtype, enabled=enabled)

    @contextlib.contextmanager
    def timer(self) -> Iterator[Timing]:
        """Time the ``with`` block in seconds, including all device work it queued.

        Examples:
            >>> from banditformer import make_backend
            >>> with make_backend("cpu").timer() as t:
            ...     _ = torch.ones(100).sum()
            >>> t.seconds >= 0
            True
        """
        timing = Timing()
        self.synchronize()
        start = time.perf_counter()
        yield timing
        self.synchronize()
        timing.seconds = time.perf_counter() - start

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device}, autocast_dtype={self.autocast_dtype})"
