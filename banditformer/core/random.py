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

    Examples:
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
    """Log of Gamma(concentration, 1) variates, drawn from ``generator``.

    Uses torch's native Gamma sampler (``torch._standard_gamma``, which takes a generator where
    ``torch.distributions`` does not) on ``concentration + 1``, and the boost
    ``G(a) = G(a + 1) * U^(1/a)`` in log space, so that tiny concentrations do not underflow to 0.

    Args:
        concentration: a tensor of any shape with positive entries.
        generator: the source of randomness, on the tensor's device.

    Returns:
        A tensor of the same shape and dtype.
    """
    g = torch._standard_gamma(concentration + 1.0, generator=generator)
    u = torch.rand(concentration.shape, generator=generator, device=concentration.device, dtype=concentration.dtype)
    u = u.clamp(min=torch.finfo(u.dtype).tiny)  # log(0) would give -inf - -inf = NaN in a Beta
    # Clamped to a finite floor: with concentrations near 1e-308 log(u) / a reaches -inf, and a
    # Beta draw would then compute -inf - -inf = NaN.
    return (torch.log(g) + torch.log(u) / concentration).clamp(min=torch.finfo(concentration.dtype).min / 4)


def sample_beta(alpha: Tensor, beta: Tensor, generator: torch.Generator, *, min_concentration: float = 0.0) -> Tensor:
    """Beta(alpha, beta) variates (broadcast shapes), as X / (X + Y) with X, Y Gamma variates.

    Args:
        alpha, beta: positive concentrations, broadcast together.
        generator: the source of randomness, on the tensors' device.
        min_concentration: a lower bound on every entry of ``alpha`` and ``beta`` that the caller
            knows without looking (a Beta posterior is never below its prior). At 1 or more, X and
            Y come from one call of torch's Gamma sampler on the stacked concentrations, whose
            draws cannot underflow there (Gamma(a >= 1) is below 1e-300 with probability below
            1e-300); below 1, each comes from :func:`sample_log_gamma`, in log space, so that tiny
            concentrations give 0 or 1 rather than 0 / 0.

    Returns:
        The broadcast shape, the dtype of the inputs, values in ``[0, 1]``.
    """
    alpha, beta = torch.broadcast_tensors(alpha, beta)
    if min_concentration >= 1.0:
        x, y = torch._standard_gamma(torch.stack((alpha, beta)), generator=generator).unbind(0)
        return x / (x + y)  # both >= tiny and finite: in [0, 1], never 0 / 0
    log_x = sample_log_gamma(alpha, generator)
    log_y = sample_log_gamma(beta, generator)
    return torch.sigmoid(log_x - log_y)
