"""Probability matching for Beta Thompson sampling: each arm's probability of holding the highest
posterior sample, by quadrature, so that a batch of rows draws its arms from one categorical
distribution instead of drawing ``K`` Beta variates per row.

Thompson sampling plays arm ``k`` with probability ``p_k = P(X_k = max_j X_j)``, the ``X_j``
independent Beta posterior samples. Rows of a call share the posterior, so their arms are
independent draws of that categorical distribution: drawing them from ``p`` is the same process
as drawing ``K`` Beta variates per row, in distribution (another random stream, the same law).

``p_k = integral f_k(x) prod_{j != k} F_j(x) dx`` (``f``, ``F``: Beta density and CDF) is computed
on Gauss-Legendre panels:

- every arm's mass lies within ``mean +- Z s``, ``s**2 = 1 / (4 (a + b + 1))`` a variance proxy
  under which Beta(a, b) is sub-Gaussian (Marchal and Arbel 2017), so that each tail outside its
  window holds at most ``exp(-Z**2 / 2) = 1e-16`` (:data:`TAIL`);
- an arm whose window ends below the highest window start wins with probability at most
  ``2 TAIL``: it gets 0, and the integral runs over the other arms (the contenders);
- panels are at most ``1.5`` standard deviations of every contender whose window they meet, with
  a breakpoint where each window starts, and each panel holds :data:`NODES` Gauss-Legendre
  nodes; the CDFs are the cumulative integrals of the densities on the same nodes (no special
  function: each density is normalised by its own quadrature mass).

Each call checks that the probabilities sum to 1 within :data:`SUM_TOLERANCE`; where they do not
(or a concentration is below 1, where a density is unbounded), :func:`argmax_probabilities`
returns ``None`` and the caller draws per row.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
from numpy.polynomial import legendre

__all__ = ["NODES", "SUM_TOLERANCE", "TAIL", "argmax_probabilities"]

#: Gauss-Legendre nodes per panel.
NODES = 12
#: The mass allowed outside each arm's window (per side).
TAIL = 1e-16
#: How far the probabilities of a group may sum from 1 before the call falls back to row draws.
SUM_TOLERANCE = 1e-10
#: Panel width in standard deviations of the narrowest contender it meets.
PANEL_SDS = 1.5
#: The largest ``a + b`` whose log density is taken from the nodes' shared logarithms.
SHARED_LOGS = 1000.0
#: Geometric splits of a panel that ends at 0 or 1 where a concentration is not an integer.
GRADING = 40
_Z = math.sqrt(2.0 * math.log(1.0 / TAIL))


def _rule() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1] and the ``(NODES, NODES)`` matrix ``S`` with
    ``(S @ g(nodes))[i]`` the integral of ``g``'s interpolant from -1 to node ``i``."""
    nodes, weights = legendre.leggauss(NODES)
    vander = legendre.legvander(nodes, NODES - 1)  # (NODES, NODES): P_k at the nodes
    integrated = np.empty_like(vander)
    for k in range(NODES):
        unit = np.zeros(NODES)
        unit[k] = 1.0
        integrated[:, k] = legendre.legval(nodes, legendre.legint(unit, lbnd=-1.0))
    return nodes, weights, integrated @ np.linalg.inv(vander)


_NODES, _WEIGHTS, _CUMULATIVE = _rule()


def _breakpoints(lo: np.ndarray, hi: np.ndarray, sd: np.ndarray, grade_lo: bool, grade_hi: bool) -> np.ndarray:
    """Panel edges from ``min(lo)`` to ``max(hi)``, an edge at every window's start and end and,
    between, panels of equal width at most ``PANEL_SDS`` standard deviations of every window
    ``[lo_j, hi_j)`` they meet; ``grade_lo`` / ``grade_hi``: the first / last panel is split
    geometrically towards 0 / 1 (:data:`GRADING` halvings), where a density like ``x ** 0.2`` is
    not smooth."""
    points = np.unique(np.concatenate([lo, hi]))
    start, stop = points[:-1], points[1:]  # (S,) segments between window ends
    mid = 0.5 * (start + stop)
    meets = (lo[:, None] <= mid) & (hi[:, None] > mid)  # (C, S)
    width = PANEL_SDS * np.where(meets, sd[:, None], np.inf).min(axis=0)
    count = np.where(np.isfinite(width), np.ceil((stop - start) / width), 1.0).astype(np.int64)
    seg = np.repeat(np.arange(start.size), count)
    step = np.arange(seg.size) - np.repeat(np.cumsum(count) - count, count)
    out = np.concatenate([start[seg] + (stop - start)[seg] * (step / count[seg]), stop[-1:]])
    halvings = 0.5 ** np.arange(GRADING, 0, -1)
    if grade_lo and out[0] == 0.0:
        out = np.concatenate([[0.0], out[1] * halvings, out[1:]])
    if grade_hi and out[-1] == 1.0:
        out = np.concatenate([out[:-1], 1.0 - (1.0 - out[-2]) * halvings[::-1], [1.0]])
    return out


def _one_group(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray | None:
    """``(K,)`` probabilities of each arm being the argmax of independent Beta(alpha, beta)
    samples, or ``None`` when they do not sum to 1 within :data:`SUM_TOLERANCE`."""
    total = alpha + beta
    mean = alpha / total
    sd = np.sqrt(alpha * beta / (total * total * (total + 1.0)))
    reach = _Z * 0.5 / np.sqrt(total + 1.0)  # Z sub-Gaussian proxies
    lo = np.maximum(mean - reach, 0.0)
    hi = np.minimum(mean + reach, 1.0)
    out = np.zeros(alpha.shape[0])
    contenders = np.flatnonzero(hi > lo.max())
    if contenders.size == 1:
        out[contenders[0]] = 1.0
        return out
    a, b = alpha[contenders], beta[contenders]
    # x ** (a - 1) with a fractional a is not smooth at 0: Gauss-Legendre wants a graded mesh there
    edges = _breakpoints(
        lo[contenders], hi[contenders], sd[contenders],
        grade_lo=bool(np.any((lo[contenders] == 0.0) & (a != np.round(a)))),
        grade_hi=bool(np.any((hi[contenders] == 1.0) & (b != np.round(b)))),
    )  # fmt: skip
    half = 0.5 * np.diff(edges)  # (P,)
    x = (0.5 * (edges[:-1] + edges[1:]))[:, None] + half[:, None] * _NODES  # (P, NODES)
    # The log density relative to its value at the mean c, then normalised by its quadrature
    # mass (the window holds all but 2 TAIL of it). Up to SHARED_LOGS observations, from the
    # nodes' logs, shared by the arms ((a - 1) (log x - log c): an error of a few 1e-16 times
    # a); beyond, in terms of x - c, no cancellation between terms of the order of a and b.
    c = mean[contenders][:, None, None]
    a1, b1 = (a - 1.0)[:, None, None], (b - 1.0)[:, None, None]
    shared = ((a + b) <= SHARED_LOGS)[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):  # a node that rounds to 0 or 1: log 0
        dx = x[None] - c
        left = np.where(shared, a1 * (np.log(x)[None] - np.log(c)), a1 * np.log1p(dx / c))
        right = np.where(shared, b1 * (np.log1p(-x)[None] - np.log1p(-c)), b1 * np.log1p(-dx / (1.0 - c)))
    # 0 * -inf (a concentration of 1 at a node that rounded to 0 or 1) is x ** 0 = 1: log 0
    density = np.exp(np.where(np.isnan(left), 0.0, left) + np.where(np.isnan(right), 0.0, right))
    panel_mass = (density @ _WEIGHTS) * half  # (C, P)
    norm = panel_mass.sum(axis=1, keepdims=True)
    density /= norm[:, :, None]
    panel_mass /= norm
    before = np.cumsum(panel_mass, axis=1) - panel_mass  # the CDF at each panel's start
    cdf = np.clip(before[:, :, None] + (density @ _CUMULATIVE.T) * half[None, :, None], 0.0, 1.0)
    # prod_{j != k} F_j without dividing by F_k (which may be 0): prefix and suffix products
    ones = np.ones((1, *cdf.shape[1:]))
    prefix = np.cumprod(np.concatenate([ones, cdf[:-1]]), axis=0)
    suffix = np.cumprod(np.concatenate([ones, cdf[:0:-1]]), axis=0)[::-1]
    p = np.einsum("cpn,cpn,n,p->c", density, prefix * suffix, _WEIGHTS, half)
    s = float(p.sum())
    if not abs(s - 1.0) <= SUM_TOLERANCE:
        return None
    out[contenders] = np.maximum(p, 0.0) / s
    return out


def argmax_probabilities(alpha: np.ndarray, beta: np.ndarray, kernels: ModuleType | None = None) -> np.ndarray | None:
    """Thompson sampling's arm probabilities under Beta posteriors.

    Args:
        alpha, beta: ``(G, K)`` float64 posterior parameters, every entry at least 1.
        kernels: the compiled kernels (:func:`banditformer.bandits._compiled.kernels`), which
            run the same quadrature in one pass (equal to rounding: the sums' order differs);
            ``None``: NumPy.

    Returns:
        ``(G, K)`` float64 rows summing to 1: ``[g, k]`` the probability that arm ``k`` holds the
        highest of ``K`` independent posterior samples of group ``g``; ``None`` when a
        concentration is below 1 or not finite, or a group's quadrature does not sum to 1 within
        :data:`SUM_TOLERANCE` (then draw per row).
    """
    if not (np.all(alpha >= 1.0) and np.all(beta >= 1.0) and np.isfinite(alpha).all() and np.isfinite(beta).all()):
        return None
    out = np.empty(alpha.shape)
    for g in range(alpha.shape[0]):
        if kernels is not None:
            ok = kernels.argmax_probabilities(
                alpha[g],
                beta[g],
                _NODES,
                _WEIGHTS,
                _CUMULATIVE,
                _Z,
                PANEL_SDS,
                GRADING,
                SHARED_LOGS,
                SUM_TOLERANCE,
                out[g],
            )
            if not ok:
                return None
            continue
        row = _one_group(alpha[g], beta[g])
        if row is None:
            return None
        out[g] = row
    return out
