"""Seeded randomness: sub-seeds from one master seed, and samplers that take a ``torch.Generator``.

``torch.distributions`` draws Gamma and Beta variates from the global RNG; these samplers take an
explicit generator instead, so that every draw in banditformer is reproducible from its seed.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

__all__ = ["derive_seed", "make_generator", "sample_beta", "sample_log_gamma"]

_SEED_MASK = (1 << 63) - 1


def derive_seed(seed: int, *keys: object) -> int:
    """A sub-seed in ``[0, 2**63)`` determined by ``seed`` and ``keys`` (stable across runs).

    >>> derive_seed(0, "depth") == derive_seed(0, "depth") != derive_seed(0, "heads")
    True
    """
    text = repr((int(seed), *(str(k) for k in keys))).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & _SEED_MASK


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) & _SEED_MASK)
    return gen


def sample_log_gamma(concentration: Tensor, generator: torch.Generator) -> Tensor:
    """Log of Gamma(concentration, 1) variates, by Marsaglia and Tsang (2000).

    Working in log space keeps tiny concentrations (< 1) from underflowing to 0.

    Args:
        concentration: a tensor of any shape with positive entries.
        generator: the source of randomness, on the tensor's device.

    Returns:
        A tensor of the same shape and dtype.
    """
    a = concentration
    small = a < 1
    a1 = torch.where(small, a + 1, a)  # boost: G(a) = G(a + 1) * U^(1/a)
    d = a1 - 1.0 / 3.0
    c = torch.rsqrt(9.0 * d)
    log_out = torch.zeros_like(a)
    pending = torch.ones_like(a, dtype=torch.bool)
    # Acceptance is >= 95% per round, so a handful of rounds settle any batch.
    while True:
        x = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
        u = torch.rand(a.shape, generator=generator, device=a.device, dtype=a.dtype)
        v = (1 + c * x) ** 3
        safe_v = torch.where(v > 0, v, torch.ones_like(v))
        accept = (v > 0) & (torch.log(u) < 0.5 * x * x + d - d * safe_v + d * torch.log(safe_v))
        take = pending & accept
        log_out = torch.where(take, torch.log(d) + torch.log(safe_v), log_out)
        pending = pending & ~accept
        if not bool(pending.any()):
            break
    u = torch.rand(a.shape, generator=generator, device=a.device, dtype=a.dtype)
    return torch.where(small, log_out + torch.log(u) / a, log_out)


def sample_beta(alpha: Tensor, beta: Tensor, generator: torch.Generator) -> Tensor:
    """Beta(alpha, beta) variates (broadcast shapes), as X / (X + Y) with X, Y Gamma variates."""
    alpha, beta = torch.broadcast_tensors(alpha, beta)
    log_x = sample_log_gamma(alpha, generator)
    log_y = sample_log_gamma(beta, generator)
    return torch.sigmoid(log_x - log_y)
