"""Seeded randomness: sub-seeds from one master seed, samplers that take a ``torch.Generator``,
and counter-based uniforms.

``torch.distributions`` draws Gamma and Beta variates from the global RNG; these samplers take an
explicit generator instead, so that every draw in banditformer is reproducible from its seed.

:func:`counter_uniforms` turns one draw of the generator into ``n`` uniforms: the outputs of
splitmix64 (Steele, Lea and Flood 2014) from that seed, the same bits from torch on any device,
from Python (:func:`counter_uniform`) and from a compiled kernel, at a fraction of the cost of
``n`` draws from torch's CPU generator (about 5 ns per float64 there).
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

__all__ = [
    "SPLITMIX_GAMMA",
    "SPLITMIX_MIX1",
    "SPLITMIX_MIX2",
    "counter_seed",
    "counter_uniform",
    "counter_uniforms",
    "derive_seed",
    "make_generator",
    "sample_beta",
    "sample_log_gamma",
]

_SEED_MASK = (1 << 63) - 1
_U64 = (1 << 64) - 1

#: splitmix64's increment (the golden ratio in 64 bits) and its two mixing multipliers.
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
SPLITMIX_MIX1 = 0xBF58476D1CE4E5B9
SPLITMIX_MIX2 = 0x94D049BB133111EB


def _as_int64(x: int) -> int:
    """The int64 with the bits of the uint64 ``x``."""
    return x - (1 << 64) if x >= 1 << 63 else x


def _shift_right(z: Tensor, s: int) -> Tensor:
    """A logical right shift of int64 bits (torch's ``>>`` on int64 is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def counter_seed(generator: torch.Generator) -> Tensor:
    """One 0-dim int64 draw in ``[0, 2**63)`` from ``generator``, on its device: the seed of a
    :func:`counter_uniforms` stream."""
    return torch.empty((), dtype=torch.int64, device=generator.device).random_(generator=generator)


def counter_uniforms(seed: Tensor, n: int) -> Tensor:
    """``(n,)`` float64 uniforms in ``[0, 1)``: outputs ``1 .. n`` of splitmix64 started at
    ``seed``, each the top 53 bits of its 64-bit word over ``2**53``. Row ``i`` is
    :func:`counter_uniform` ``(seed, i)``, bit for bit.

    Args:
        seed: a 0-dim int64 tensor (:func:`counter_seed`); the result is on its device.
        n: the number of uniforms.

    Examples:
        >>> seed = torch.tensor(12345)
        >>> counter_uniforms(seed, 3).tolist() == [counter_uniform(12345, i) for i in range(3)]
        True
    """
    z = seed + torch.arange(1, n + 1, dtype=torch.int64, device=seed.device) * _as_int64(SPLITMIX_GAMMA)
    z = (z ^ _shift_right(z, 30)) * _as_int64(SPLITMIX_MIX1)  # int64 products wrap: the uint64 bits
    z = (z ^ _shift_right(z, 27)) * _as_int64(SPLITMIX_MIX2)
    z = z ^ _shift_right(z, 31)
    return _shift_right(z, 11).to(torch.float64) * 2.0**-53


def counter_uniform(seed: int, i: int) -> float:
    """Uniform ``i`` (from 0) of the :func:`counter_uniforms` stream of ``seed``, in Python."""
    z = (seed + (i + 1) * SPLITMIX_GAMMA) & _U64
    z = ((z ^ (z >> 30)) * SPLITMIX_MIX1) & _U64
    z = ((z ^ (z >> 27)) * SPLITMIX_MIX2) & _U64
    z ^= z >> 31
    return (z >> 11) * 2.0**-53


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
