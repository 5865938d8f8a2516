"""The numba kernels of the compiled CPU rounds (:mod:`banditformer.bandits._compiled`).

Imported only through :func:`banditformer.bandits._compiled.kernels`, and only where numba is
installed. Each kernel is one pass (or two: check, then apply) over NumPy views of the policy's
buffers and the call's tensors, doing the floating-point operations of the torch path in its
order, so that a compiled round gives the torch path's arms and statistics (LinUCB's index: to
rounding):

- statistics ``(G, K)`` float64 (the linear ones ``(G, K, d, d)`` and ``(G, K, d)``), lifetime
  statistics ``(K,)`` float64;
- ``groups`` is ``(n,)`` int64, or ``(0,)`` for "every row in group 0";
- arms are written into a preallocated ``(n,)`` int64 ``out``.

Compiled on first use (about a second per kernel and argument types) and cached on disk by numba
(``cache=True``: next to this file, or in numba's user-wide cache where that is not writable).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from banditformer.core.random import SPLITMIX_GAMMA, SPLITMIX_MIX1, SPLITMIX_MIX2

# Arguments are checked before any write (index checks are always on: numba does not bounds-check).
_jit = numba.njit(cache=True, nogil=True)

#: Flags of :func:`count_update`'s result, one per failed check.
BAD_ARMS, BAD_REWARDS, BAD_GROUPS = 1, 2, 4

_GAMMA, _MIX1, _MIX2 = np.uint64(SPLITMIX_GAMMA), np.uint64(SPLITMIX_MIX1), np.uint64(SPLITMIX_MIX2)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


@numba.njit(inline="always")
def beats(value: float, top: float) -> bool:
    """Whether ``value`` takes the place of the running maximum ``top`` in an argmax that keeps
    the first maximum and, as ``torch.argmax``, treats NaN as above every number (the first NaN
    wins)."""
    return value > top or (math.isnan(value) and not math.isnan(top))


@numba.njit(inline="always")
def counter_uniform(seed: np.uint64, i: int) -> float:
    """:func:`banditformer.core.random.counter_uniform`, bit for bit (uint64 arithmetic wraps)."""
    z = seed + np.uint64(i + 1) * _GAMMA
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return np.float64(z >> _S11) * 1.1102230246251565e-16  # 2 ** -53


@_jit
def rows_bad(
    arms: np.ndarray,
    rewards: np.ndarray,
    groups: np.ndarray,
    num_groups: int,
    num_arms: int,
    check_rewards: bool,
    low: float,
    high: float,
) -> int:
    """The checks of an update call's rows: the OR of :data:`BAD_ARMS` (an arm outside
    ``[0, K)``), :data:`BAD_REWARDS` (with ``check_rewards``: a reward not finite or outside
    ``[low, high]``) and :data:`BAD_GROUPS` (``groups`` empty: every row in group 0), or 0."""
    grouped = groups.shape[0] > 0
    bad = 0
    for i in range(arms.shape[0]):
        a = arms[i]
        if a < 0 or a >= num_arms:
            bad |= BAD_ARMS
        if check_rewards:
            r = rewards[i]
            if not (math.isfinite(r) and r >= low and r <= high):
                bad |= BAD_REWARDS
        if grouped:
            g = groups[i]
            if g < 0 or g >= num_groups:
                bad |= BAD_GROUPS
    return bad


@_jit
def count_update(
    arms: np.ndarray,
    rewards: np.ndarray,
    groups: np.ndarray,
    num_groups: int,
    check_rewards: bool,
    low: float,
    high: float,
    counts: np.ndarray,
    sums: np.ndarray,
    arm_counts: np.ndarray,
    arm_sums: np.ndarray,
) -> int:
    """One update call of a count policy: check every row, then add row ``i``'s play and reward
    to ``counts``/``sums`` at ``(groups[i], arms[i])`` and to ``arm_counts``/``arm_sums`` at
    ``arms[i]``, rows in order (the torch path's ``index_add_`` order).

    Returns:
        0 when applied; otherwise the OR of :data:`BAD_ARMS` (an arm outside ``[0, K)``),
        :data:`BAD_REWARDS` (with ``check_rewards``: a reward not finite or outside
        ``[low, high]``) and :data:`BAD_GROUPS`, with nothing written.
    """
    n = arms.shape[0]
    grouped = groups.shape[0] > 0
    bad = rows_bad(arms, rewards, groups, num_groups, counts.shape[1], check_rewards, low, high)
    if bad:
        return bad
    # Each table's additions are the rows' in order; a run of rows on one (group, arm) keeps its
    # four running values in registers (a batch of an index policy is one long run).
    if n == 0:
        return 0
    g = groups[0] if grouped else 0
    a = arms[0]
    acc_count = counts[g, a]
    acc_sum = sums[g, a]
    acc_life_count = arm_counts[a]
    acc_life_sum = arm_sums[a]
    for i in range(n):
        gi = groups[i] if grouped else 0
        ai = arms[i]
        if ai != a or gi != g:  # (element stores, not tuple assignments: numba keeps those in memory)
            counts[g, a] = acc_count
            sums[g, a] = acc_sum
            arm_counts[a] = acc_life_count
            arm_sums[a] = acc_life_sum
            g = gi
            a = ai
            acc_count = counts[g, a]
            acc_sum = sums[g, a]
            acc_life_count = arm_counts[a]
            acc_life_sum = arm_sums[a]
        r = np.float64(rewards[i])
        acc_count += 1.0
        acc_sum += r
        acc_life_count += 1.0
        acc_life_sum += r
    counts[g, a] = acc_count
    sums[g, a] = acc_sum
    arm_counts[a] = acc_life_count
    arm_sums[a] = acc_life_sum
    return 0


@_jit
def groups_ok(groups: np.ndarray, num_groups: int) -> bool:
    """Whether every entry of ``groups`` is in ``[0, num_groups)``."""
    for i in range(groups.shape[0]):  # noqa: SIM110 (a loop numba compiles; all() over a generator it does not)
        if groups[i] < 0 or groups[i] >= num_groups:
            return False
    return True


@_jit
def deal_untried(best: np.ndarray, counts: np.ndarray, groups: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = best[groups[i]]``, except that rows of a group with untried arms (count
    ``<= 0``) are dealt them in index order, round-robin by the row's rank within its group
    (:func:`~banditformer.bandits._common.argmax_untried_first`). ``groups`` are checked."""
    num_groups, num_arms = counts.shape
    n = out.shape[0]
    grouped = groups.shape[0] > 0
    untried = np.zeros(num_groups, np.int64)
    any_untried = False
    for g in range(num_groups):
        for k in range(num_arms):
            if counts[g, k] <= 0.0:
                untried[g] += 1
                any_untried = True
    if not any_untried:
        if grouped:
            for i in range(n):
                out[i] = best[groups[i]]
        else:
            out[:] = best[0]
        return
    rank = np.zeros(num_groups, np.int64)
    for i in range(n):
        g = groups[i] if grouped else 0
        m = untried[g]
        if m == 0:
            out[i] = best[g]
            continue
        position = rank[g] % m
        rank[g] += 1
        seen = -1
        for k in range(num_arms):
            if counts[g, k] <= 0.0:
                seen += 1
                if seen == position:
                    out[i] = k
                    break


@_jit
def whole_totals(counts: np.ndarray, out: np.ndarray) -> bool:
    """``out[g] = max(sum_k counts[g, k], 1)`` when every count is a whole number and every
    group's total is below ``2**53`` (then every partial sum is exact, in any order, so it is
    torch's ``counts.sum(1)``); False otherwise (fractional, discounted counts, or totals past
    ``2**53``: the caller takes torch's sum)."""
    num_groups, num_arms = counts.shape
    for g in range(num_groups):
        total = 0.0
        for k in range(num_arms):
            c = counts[g, k]
            if not (c == math.floor(c) and c >= 0.0):
                return False
            total += c
        if not total < 9007199254740992.0:  # 2 ** 53 (counts are >= 0: partial sums are below it)
            return False
        out[g] = max(total, 1.0)
    return True


@_jit
def ucb1_select(
    sums: np.ndarray, counts: np.ndarray, c: np.ndarray, log_total: np.ndarray, groups: np.ndarray, out: np.ndarray
) -> None:
    """UCB1's arms (:func:`~banditformer.bandits.ucb1.ucb1_index`, then untried arms first):
    per group ``mean + c[0] * sqrt(2 ln t / n)``, its first maximum, then :func:`deal_untried`.
    ``log_total`` is ``(G,)`` ``ln max(t, 1)`` as torch computes it (its sum of the counts and its
    vectorised log, which can differ from libm's in the last bit). ``groups`` are checked."""
    num_groups, num_arms = counts.shape
    scale = c[0]
    best = np.zeros(num_groups, np.int64)
    for g in range(num_groups):
        log_t = log_total[g]
        top = -math.inf
        for k in range(num_arms):
            n_k = counts[g, k]
            if n_k > 0.0:
                safe = max(n_k, 1e-12)
                value = sums[g, k] / safe + scale * math.sqrt(2.0 * log_t / safe)
            else:
                value = math.inf
            if beats(value, top):
                top = value
                best[g] = k
    deal_untried(best, counts, groups, out)


@_jit
def epsilon_greedy_select(
    sums: np.ndarray,
    counts: np.ndarray,
    groups: np.ndarray,
    seed: int,
    rate: float,
    rates: np.ndarray,
    out: np.ndarray,
) -> None:
    """Epsilon-greedy's arms: with ``u`` row ``i``'s :func:`counter_uniform` of ``seed`` and
    ``eps`` its group's rate (``rates[g]``, or ``rate`` for every group when ``rates`` is empty),
    the row plays arm ``min(int(u / eps * K), K - 1)`` when ``u < eps``, else its group's greedy
    arm (the first maximum of ``sums / max(counts, 1e-12)``, untried arms first). ``groups`` are
    checked."""
    num_groups, num_arms = counts.shape
    best = np.zeros(num_groups, np.int64)
    for g in range(num_groups):
        top = -math.inf
        for k in range(num_arms):
            value = sums[g, k] / max(counts[g, k], 1e-12)
            if beats(value, top):
                top = value
                best[g] = k
    deal_untried(best, counts, groups, out)
    grouped = groups.shape[0] > 0
    stream = np.uint64(seed)
    shared = rates.shape[0] == 0
    if shared and not grouped:  # one rate (branch-free, so that it vectorises)
        eps = rate
        divisor = eps if eps > 0.0 else 1.0  # no row explores at 0
        for i in range(out.shape[0]):
            u = counter_uniform(stream, i)
            arm = min(np.int64(u / divisor * num_arms), num_arms - 1)
            out[i] = arm if u < eps else out[i]
        return
    for i in range(out.shape[0]):
        g = groups[i] if grouped else 0
        u = counter_uniform(stream, i)
        eps = rate if shared else rates[g]
        if u < eps:
            out[i] = min(np.int64(u / eps * num_arms), num_arms - 1)


#: :func:`linear_update`'s flag for a context that is not finite or beyond the bound.
BAD_CONTEXT = 8


@_jit
def contexts_ok(context: np.ndarray, bound: float) -> bool:
    """Whether every entry of ``(n, d)`` ``context`` is finite and within ``[-bound, bound]``."""
    n, d = context.shape
    for i in range(n):
        for j in range(d):
            x = context[i, j]
            if not (math.isfinite(x) and -bound <= x <= bound):
                return False
    return True


@_jit
def linear_update(
    arms: np.ndarray,
    rewards: np.ndarray,
    context: np.ndarray,
    groups: np.ndarray,
    num_groups: int,
    check_values: bool,
    low: float,
    high: float,
    bound: float,
    gram: np.ndarray,
    xr: np.ndarray,
    arm_counts: np.ndarray,
    arm_sums: np.ndarray,
) -> int:
    """One update call of a linear policy: check every row, then add row ``i``'s ``x x^T`` to
    ``gram[g, a]`` ``(G, K, d, d)`` and ``r x`` to ``xr[g, a]`` ``(G, K, d)`` in float64, rows in
    order, and its play and reward to the lifetime statistics (the torch path's ``add_at``).

    Returns:
        0 when applied; otherwise the OR of :data:`BAD_ARMS`, :data:`BAD_REWARDS` (with
        ``check_values``: not finite or outside ``[low, high]``), :data:`BAD_CONTEXT` (with ``check_values``) and
        :data:`BAD_GROUPS`, with nothing written.
    """
    n, d = context.shape
    num_arms = xr.shape[1]
    grouped = groups.shape[0] > 0
    bad = 0
    for i in range(n):
        if arms[i] < 0 or arms[i] >= num_arms:
            bad |= BAD_ARMS
        if grouped and (groups[i] < 0 or groups[i] >= num_groups):
            bad |= BAD_GROUPS
        if check_values:
            r = rewards[i]
            if not (math.isfinite(r) and r >= low and r <= high):
                bad |= BAD_REWARDS
    if check_values and not contexts_ok(context, bound):
        bad |= BAD_CONTEXT
    if bad:
        return bad
    x = np.empty(d)
    for i in range(n):
        a = arms[i]
        g = groups[i] if grouped else 0
        r = np.float64(rewards[i])
        for j in range(d):
            x[j] = np.float64(context[i, j])
        for j in range(d):
            for m in range(d):
                gram[g, a, j, m] += x[j] * x[m]
            xr[g, a, j] += r * x[j]
        arm_counts[a] += 1.0
        arm_sums[a] += r
    return 0


@_jit
def _score_layout(theta: np.ndarray, a_inv: np.ndarray, theta_t: np.ndarray, coef: np.ndarray) -> None:
    """The ridge fit ``theta`` ``(G, K, d)`` and ``A^-1`` ``(G, K, d, d)`` laid out for the row
    loops: ``theta_t[g, j, k] = theta[g, k, j]`` and ``coef[g, p, k] = A_k^-1[j, m]`` for the
    ``p``-th pair ``j <= m``, the two off-diagonal entries added, so that ``x^T A^-1 x`` is
    ``sum_p coef[p] x_j x_m``."""
    num_groups, num_arms, d = theta.shape
    for g in range(num_groups):
        for k in range(num_arms):
            for j in range(d):
                theta_t[g, j, k] = theta[g, k, j]
            p = 0
            for j in range(d):
                for m in range(j, d):
                    coef[g, p, k] = a_inv[g, k, j, j] if j == m else a_inv[g, k, j, m] + a_inv[g, k, m, j]
                    p += 1


#: Rows per block of :func:`_score_one_group` (its ``(rows, d (d + 1) / 2)`` products stay in cache).
SCORE_BLOCK = 512


@_jit
def _score_one_group(context: np.ndarray, theta_t: np.ndarray, coef: np.ndarray, alpha: float, out: np.ndarray) -> None:
    """:func:`linucb_select`'s index and argmax for rows of one group, in blocks of
    :data:`SCORE_BLOCK` rows: the products ``x_j x_m`` (``j <= m``) of each row, then ``x^T A^-1 x``
    and ``x^T theta`` of every arm as two matrix products (BLAS)."""
    n, d = context.shape
    pairs, num_arms = coef.shape
    block = min(n, SCORE_BLOCK)
    products = np.empty((block, pairs))
    x = np.empty((block, d))
    for start in range(0, n, block):
        rows = min(n, start + block) - start
        for i in range(rows):
            for j in range(d):
                x[i, j] = np.float64(context[start + i, j])
            p = 0
            for j in range(d):
                xj = x[i, j]
                for m in range(j, d):
                    products[i, p] = xj * x[i, m]
                    p += 1
        quad = np.dot(products[:rows], coef)  # (rows, K)
        mean = np.dot(x[:rows], theta_t)
        for i in range(rows):
            top = -math.inf
            best = 0
            for k in range(num_arms):
                value = mean[i, k] + alpha * math.sqrt(max(quad[i, k], 0.0))
                if beats(value, top):
                    top = value
                    best = k
            out[start + i] = best


@_jit
def linucb_select(
    theta: np.ndarray,
    a_inv: np.ndarray,
    alpha: float,
    context: np.ndarray,
    groups: np.ndarray,
    out: np.ndarray,
) -> None:
    """LinUCB's arms: the first maximum over arms of ``x^T theta_a + alpha * sqrt(max(x^T A_a^-1
    x, 0))`` for each row's context and group (checked), from the torch path's ridge fit
    (``theta`` ``(G, K, d)``, ``a_inv`` ``(G, K, d, d)``). The sums run in another order than the
    torch path's matrix products, so the index agrees with it to rounding."""
    num_groups, num_arms, d = theta.shape
    grouped = groups.shape[0] > 0
    pairs = d * (d + 1) // 2
    theta_t = np.empty((num_groups, d, num_arms))
    coef = np.empty((num_groups, pairs, num_arms))
    _score_layout(theta, a_inv, theta_t, coef)
    if num_groups == 1:
        _score_one_group(context, theta_t[0], coef[0], alpha, out)
        return
    x = np.empty(d)
    mean = np.empty(num_arms)
    quad = np.empty(num_arms)
    for i in range(context.shape[0]):
        g = groups[i] if grouped else 0
        for j in range(d):
            x[j] = np.float64(context[i, j])
        mean[:] = 0.0
        quad[:] = 0.0
        p = 0
        for j in range(d):  # arms innermost: independent sums that vectorise
            xj = x[j]
            for k in range(num_arms):
                mean[k] += xj * theta_t[g, j, k]
            for m in range(j, d):
                c = xj * x[m]
                for k in range(num_arms):
                    quad[k] += c * coef[g, p, k]
                p += 1
        top = -math.inf
        best = 0
        for k in range(num_arms):
            value = mean[k] + alpha * math.sqrt(max(quad[k], 0.0))
            if beats(value, top):
                top = value
                best = k
        out[i] = best


@_jit
def argmax_probabilities(
    alpha: np.ndarray,
    beta: np.ndarray,
    nodes: np.ndarray,
    weights: np.ndarray,
    cumulative: np.ndarray,
    reach_sds: float,
    panel_sds: float,
    grading: int,
    shared_logs: float,
    tolerance: float,
    out: np.ndarray,
) -> bool:
    """:func:`banditformer.bandits._matching.argmax_probabilities` for one group, in one pass:
    ``alpha``, ``beta`` ``(K,)`` (every entry at least 1), the Gauss-Legendre rule and its
    cumulative matrix, and the module's constants; writes ``(K,)`` probabilities into ``out`` and
    returns False (``out`` then unspecified) where they do not sum to 1 within ``tolerance``."""
    num_arms = alpha.shape[0]
    rule = nodes.shape[0]
    mean = np.empty(num_arms)
    sd = np.empty(num_arms)
    lo = np.empty(num_arms)
    hi = np.empty(num_arms)
    top_lo = -1.0
    for k in range(num_arms):
        total = alpha[k] + beta[k]
        mean[k] = alpha[k] / total
        sd[k] = math.sqrt(alpha[k] * beta[k] / (total * total * (total + 1.0)))
        reach = reach_sds * 0.5 / math.sqrt(total + 1.0)
        lo[k] = max(mean[k] - reach, 0.0)
        hi[k] = min(mean[k] + reach, 1.0)
        top_lo = max(top_lo, lo[k])
    out[:] = 0.0
    arms = np.empty(num_arms, np.int64)
    c = 0
    for k in range(num_arms):
        if hi[k] > top_lo:
            arms[c] = k
            c += 1
    if c == 1:
        out[arms[0]] = 1.0
        return True
    arms = arms[:c]
    # panel edges: every window end, equal panels between them at most panel_sds of every window met
    points = np.unique(np.concatenate((lo[arms], hi[arms])))
    segments = points.shape[0] - 1
    count = np.empty(segments, np.int64)
    for s in range(segments):
        mid = 0.5 * (points[s] + points[s + 1])
        width = math.inf
        for j in arms:
            if lo[j] <= mid < hi[j]:
                width = min(width, panel_sds * sd[j])
        count[s] = 1 if width == math.inf else max(1, math.ceil((points[s + 1] - points[s]) / width))
    grade_lo = False
    grade_hi = False
    for j in arms:
        if lo[j] == 0.0 and alpha[j] != math.floor(alpha[j]):
            grade_lo = True
        if hi[j] == 1.0 and beta[j] != math.floor(beta[j]):
            grade_hi = True
    grade_lo = grade_lo and points[0] == 0.0
    grade_hi = grade_hi and points[-1] == 1.0
    panels = count.sum() + (grading if grade_lo else 0) + (grading if grade_hi else 0)
    edges = np.empty(panels + 1)
    e = 0
    for s in range(segments):
        for i in range(count[s]):
            edges[e] = points[s] + (points[s + 1] - points[s]) * (i / count[s])
            e += 1
            if s == 0 and i == 0 and grade_lo:  # split the first panel towards 0
                first = points[0] + (points[1] - points[0]) / count[0]
                for h in range(grading, 0, -1):
                    edges[e] = first * 0.5**h
                    e += 1
    if grade_hi:
        last = edges[e - 1]
        for h in range(1, grading + 1):
            edges[e] = 1.0 - (1.0 - last) * 0.5**h
            e += 1
    edges[e] = points[-1]
    # densities relative to their value at the mean, normalised by their quadrature mass
    size = panels * rule
    density = np.empty((c, size))
    weight = np.empty(size)
    x = np.empty(size)
    for p in range(panels):
        half = 0.5 * (edges[p + 1] - edges[p])
        centre = 0.5 * (edges[p + 1] + edges[p])
        for i in range(rule):
            x[p * rule + i] = centre + half * nodes[i]
            weight[p * rule + i] = half * weights[i]
    log_x = np.empty(size)
    log_1mx = np.empty(size)
    for t in range(size):
        log_x[t] = math.log(x[t]) if x[t] > 0.0 else -math.inf
        log_1mx[t] = math.log1p(-x[t]) if x[t] < 1.0 else -math.inf
    for q in range(c):
        j = arms[q]
        m = mean[j]
        a1 = alpha[j] - 1.0
        b1 = beta[j] - 1.0
        shared = alpha[j] + beta[j] <= shared_logs
        log_m = math.log(m)
        log_1mm = math.log1p(-m)
        mass = 0.0
        for t in range(size):
            if shared:
                left = a1 * (log_x[t] - log_m) if a1 != 0.0 else 0.0
                right = b1 * (log_1mx[t] - log_1mm) if b1 != 0.0 else 0.0
            else:
                dx = x[t] - m
                left = a1 * math.log1p(dx / m) if a1 != 0.0 else 0.0
                right = b1 * math.log1p(-dx / (1.0 - m)) if b1 != 0.0 else 0.0
            value = math.exp(left + right)
            density[q, t] = value
            mass += weight[t] * value
        for t in range(size):
            density[q, t] /= mass
    # CDFs on the nodes: the cumulative integral of each panel's interpolant
    cdf = np.empty((c, size))
    for q in range(c):
        start = 0.0
        for p in range(panels):
            half = 0.5 * (edges[p + 1] - edges[p])
            base = p * rule
            for i in range(rule):
                acc = 0.0
                for m2 in range(rule):
                    acc += cumulative[i, m2] * density[q, base + m2]
                cdf[q, base + i] = min(max(start + half * acc, 0.0), 1.0)
            acc = 0.0
            for m2 in range(rule):
                acc += weights[m2] * density[q, base + m2]
            start += half * acc
    # p_k = sum over nodes of weight * f_k * prod_{j != k} F_j: prefix and suffix products
    prob = np.zeros(c)
    prefix = np.empty(c)
    for t in range(size):
        run = 1.0
        for q in range(c):
            prefix[q] = run
            run *= cdf[q, t]
        run = 1.0
        for q in range(c - 1, -1, -1):
            prob[q] += weight[t] * density[q, t] * prefix[q] * run
            run *= cdf[q, t]
    total = prob.sum()
    if not abs(total - 1.0) <= tolerance:
        return False
    for q in range(c):
        out[arms[q]] = max(prob[q], 0.0) / total
    return True


@_jit
def beta_update(
    arms: np.ndarray,
    rewards: np.ndarray,
    uniforms: np.ndarray,
    groups: np.ndarray,
    num_groups: int,
    check_rewards: bool,
    apply: bool,
    successes: np.ndarray,
    failures: np.ndarray,
    arm_counts: np.ndarray,
    arm_sums: np.ndarray,
) -> int:
    """One update call of Beta Thompson sampling without a discount: with ``apply`` False, check
    every row (as :func:`count_update`, rewards in [0, 1]) and return the flags; with ``apply``,
    add row ``i``'s outcome (``uniforms[i] < rewards[i]``, the Bernoulli trick, or the reward
    itself when ``uniforms`` is empty) to ``successes`` and its complement to ``failures`` at
    ``(groups[i], arms[i])``, and its play and reward to the lifetime ``arm_counts`` /
    ``arm_sums``, rows in order (the torch path's ``index_add_`` order), and return 0."""
    if not apply:
        return rows_bad(arms, rewards, groups, num_groups, successes.shape[1], check_rewards, 0.0, 1.0)
    n = arms.shape[0]
    grouped = groups.shape[0] > 0
    trick = uniforms.shape[0] > 0
    for i in range(n):
        g = groups[i] if grouped else 0
        a = arms[i]
        r = np.float64(rewards[i])
        outcome = (1.0 if uniforms[i] < r else 0.0) if trick else r
        successes[g, a] += outcome
        failures[g, a] += 1.0 - outcome
        arm_counts[a] += 1.0
        arm_sums[a] += r
    return 0


@_jit
def draw_categorical(cdf: np.ndarray, groups: np.ndarray, seed: np.uint64, out: np.ndarray) -> None:
    """Row ``i``'s arm: the first ``k`` with ``cdf[g, k] > u_i`` (``torch.searchsorted(...,
    right=True)``), ``u_i`` :func:`counter_uniform` ``(seed, i)`` and ``g`` its group (``groups``
    empty: group 0), clamped to ``K - 1``."""
    num_arms = cdf.shape[1]
    grouped = groups.shape[0] > 0
    for i in range(out.shape[0]):
        g = groups[i] if grouped else 0
        u = counter_uniform(seed, i)
        k = 0
        while k < num_arms - 1 and not cdf[g, k] > u:
            k += 1
        out[i] = k
