"""Probability matching for Beta Thompson sampling (``banditformer.bandits._matching``, which
``ThompsonBeta`` draws by at ``MATCH_ROWS`` rows or more): the quadrature against closed forms and
an adaptive integrator, the draws' law against independent Beta draws, and the fallbacks."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from banditformer import make_policy
from banditformer.bandits import _matching, thompson_beta
from banditformer.bandits._compiled import kernels
from banditformer.bandits._matching import argmax_probabilities
from banditformer.bandits.thompson_beta import MATCH_ROWS, ThompsonBeta

KERNELS = [None, kernels()] if kernels() is not None else [None]
KERNEL_IDS = ["numpy", "numba"][: len(KERNELS)]


def two_arm_closed_form(a1: int, b1: int, a2: int, b2: int) -> float:
    """P(X2 > X1) for X1 ~ Beta(a1, b1), X2 ~ Beta(a2, b2), integer a2: a finite sum, in 30-digit
    arithmetic (mpmath, which torch depends on; in floats the sum loses 11 digits at 5,000 terms)."""
    with mpmath.workdps(30):
        log_b1 = mpmath.log(mpmath.beta(a1, b1))
        log = mpmath.log
        terms = (mpmath.exp(log(mpmath.beta(a1 + i, b1 + b2)) - log(b2 + i) - log(mpmath.beta(1 + i, b2)) - log_b1)
                 for i in range(a2))  # fmt: skip
        return float(mpmath.fsum(terms))


def quad_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The arm probabilities by scipy's adaptive quadrature, with scipy's Beta density and CDF."""
    out = []
    for k in range(a.shape[0]):

        def f(x: float, k: int = k) -> float:
            others = [stats.beta.cdf(x, a[j], b[j]) for j in range(a.shape[0]) if j != k]
            return stats.beta.pdf(x, a[k], b[k]) * float(np.prod(others))

        lo, hi = stats.beta.ppf([1e-15, 1 - 1e-15], a[k], b[k])
        quantiles = [1e-6, 0.01, 0.1, 0.5, 0.9, 0.99, 1 - 1e-6]
        points = sorted({float(q) for j in range(a.shape[0]) for q in stats.beta.ppf(quantiles, a[j], b[j])})
        points = [p for p in points if lo < p < hi] or None
        out.append(integrate.quad(f, lo, hi, points=points, limit=500, epsabs=1e-15, epsrel=1e-12)[0])
    return np.asarray(out)


@pytest.mark.parametrize("kern", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize(
    ("a1", "b1", "a2", "b2"),
    [(1, 1, 1, 1), (2, 3, 3, 2), (10, 5, 9, 6), (300, 700, 290, 690), (5000, 5000, 5050, 4950), (40, 2, 1, 1)],
)
def test_two_arms_match_the_closed_form(kern, a1: int, b1: int, a2: int, b2: int) -> None:
    p = argmax_probabilities(np.array([[a1, a2]], float), np.array([[b1, b2]], float), kern)
    want = two_arm_closed_form(a1, b1, a2, b2)
    assert p is not None
    assert p[0, 1] == pytest.approx(want, abs=1e-13) and p[0].sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("kern", KERNELS, ids=KERNEL_IDS)
def test_equal_arms_share_the_win(kern) -> None:
    for a, b in [(1.0, 1.0), (4.0, 6.0), (1e6, 3e5)]:
        p = argmax_probabilities(np.full((1, 7), a), np.full((1, 7), b), kern)
        assert p is not None and np.abs(p - 1 / 7).max() < 1e-12


CASES = [
    ([1e6 * 0.5, 101.0, 5e4], [1e6 * 0.5, 99.0, 5e4]),  # widths a hundred-fold apart
    ([1.0, 1.0, 200.0], [50.0, 30.0, 1.0]),  # skewed, windows clipped at 0 and 1
    ([1.17, 2.5, 1.004], [3.5, 1.3, 1.02]),  # fractional concentrations near 1: graded panels
    ([62588.0, 294.0, 279.0, 369.0, 259.0], [15446.0, 130.0, 132.0, 143.0, 116.0]),  # a leader, long shots
    ([34.9, 2.08, 2546.5, 1.005], [8.65, 1.18, 73247.0, 2.76]),
]


@pytest.mark.parametrize("kern", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_arms_match_adaptive_quadrature(kern, case: int) -> None:
    a, b = (np.asarray(v) for v in CASES[case])
    p = argmax_probabilities(a[None], b[None], kern)
    assert p is not None
    np.testing.assert_allclose(p[0], quad_reference(a, b), rtol=0, atol=1e-9)


@pytest.mark.skipif(kernels() is None, reason="numba is not installed")
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 6), st.floats(0.01, 0.99), st.booleans()), min_size=2, max_size=12),
)
def test_kernel_agrees_with_numpy(arms: list[tuple[float, float, bool]]) -> None:
    n = np.array([10**e for e, _, _ in arms])
    mean = np.array([m for _, m, _ in arms])
    whole = np.array([w for _, _, w in arms])
    a = 1.0 + np.where(whole, np.round(n * mean), n * mean)
    b = 1.0 + np.where(whole, np.round(n * (1 - mean)), n * (1 - mean))
    x = argmax_probabilities(a[None], b[None])
    y = argmax_probabilities(a[None], b[None], kernels())
    assert (x is None) == (y is None)
    if x is not None:
        assert np.abs(x - y).max() < 1e-12


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 6), st.floats(0.01, 0.99)), min_size=2, max_size=10),
    st.randoms(use_true_random=False),
)
def test_probabilities_sum_to_one_and_follow_their_arms(arms: list[tuple[float, float]], rnd) -> None:
    n = np.array([10**e for e, _ in arms])
    mean = np.array([m for _, m in arms])
    a, b = 1.0 + n * mean, 1.0 + n * (1 - mean)
    p = argmax_probabilities(a[None], b[None], kernels())
    assert p is not None and abs(p.sum() - 1.0) < 1e-12 and (p >= 0).all()
    order = list(range(len(arms)))
    rnd.shuffle(order)
    q = argmax_probabilities(a[None, order], b[None, order], kernels())
    assert q is not None and np.abs(q[0] - p[0, order]).max() < 1e-11  # a permutation of the arms permutes them
    more = a.copy()
    more[0] += 0.1 * a[0]  # more successes for arm 0: its chance does not fall
    r = argmax_probabilities(more[None], b[None], kernels())
    assert r is not None and r[0, 0] >= p[0, 0] - 1e-11


def test_outside_the_quadrature_gives_none() -> None:
    assert argmax_probabilities(np.array([[0.5, 2.0]]), np.array([[1.0, 1.0]])) is None  # a density unbounded at 0
    assert argmax_probabilities(np.array([[np.inf, 2.0]]), np.array([[1.0, 1.0]])) is None


def _posterior_policy(draws: str = "row", seed: int = 0, **kwargs) -> ThompsonBeta:
    p = ThompsonBeta(num_arms=5, draws=draws, seed=seed, **kwargs)
    p.successes.copy_(torch.tensor([[30.0, 28.0, 25.0, 10.0, 0.0]], dtype=torch.float64))
    p.failures.copy_(torch.tensor([[20.0, 21.0, 22.0, 40.0, 3.0]], dtype=torch.float64))
    return p


def _beta_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every select call draws a Beta sample per row and arm (no probability matching)."""
    monkeypatch.setattr(thompson_beta, "MATCH_ROWS", 2**62)


def test_matched_draws_have_the_law_of_row_draws() -> None:
    n = 200_000
    matched = _posterior_policy().select(n=n)
    rng = np.random.default_rng(7)  # an independent sampler: NumPy's Beta draws
    alpha = np.array([31.0, 29.0, 26.0, 11.0, 1.0])
    beta = np.array([21.0, 22.0, 23.0, 41.0, 4.0])
    direct = np.bincount(rng.beta(alpha, beta, size=(n, 5)).argmax(1), minlength=5)
    ours = np.bincount(matched.numpy(), minlength=5)
    table = np.stack([ours, direct])[:, (ours + direct) > 0]
    assert stats.chi2_contingency(table)[1] > 1e-4  # the same law (a false alarm 1 in 10,000 seeds)


def test_beta_draws_have_the_law_too(monkeypatch: pytest.MonkeyPatch) -> None:
    _beta_draws(monkeypatch)  # the other sampler, against the same probabilities: the two agree
    n = 100_000
    drawn = np.bincount(_posterior_policy().select(n=n).numpy(), minlength=5)
    p = argmax_probabilities(np.array([[31.0, 29.0, 26.0, 11.0, 1.0]]), np.array([[21.0, 22.0, 23.0, 41.0, 4.0]]))
    assert stats.chisquare(drawn[p[0] > 0], n * p[0][p[0] > 0])[1] > 1e-4 and drawn[p[0] == 0].sum() == 0


@pytest.mark.parametrize("draws", ["row", "group"])
def test_propensities_are_the_probabilities(draws: str) -> None:
    policy = _posterior_policy(draws)
    arms, prop = policy.select(n=256, propensity=True)
    alpha, beta = policy.posterior()
    p = argmax_probabilities(alpha.numpy(), beta.numpy(), kernels())  # what the policy runs
    assert torch.equal(prop, torch.from_numpy(p[0])[arms])
    # and every arm's, without drawing from the stream
    state = policy.generator.get_state()
    assert torch.equal(policy.action_probabilities(n=3), torch.from_numpy(p).expand(3, 5))
    assert torch.equal(policy.generator.get_state(), state)


def test_few_rows_and_small_priors_draw_per_row(monkeypatch: pytest.MonkeyPatch) -> None:
    few = MATCH_ROWS - 1
    m = ThompsonBeta(num_arms=4, prior_alpha=0.5, seed=3)
    got = [_posterior_policy().select(n=few), m.select(n=4 * MATCH_ROWS)]
    _beta_draws(monkeypatch)
    r = ThompsonBeta(num_arms=4, prior_alpha=0.5, seed=3)
    assert torch.equal(got[0], _posterior_policy().select(n=few))
    assert torch.equal(got[1], r.select(n=4 * MATCH_ROWS))


def test_a_failed_sum_check_draws_per_row(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = 4 * MATCH_ROWS
    monkeypatch.setattr(_matching, "SUM_TOLERANCE", -1.0)
    got = _posterior_policy().select(n=rows)
    _beta_draws(monkeypatch)
    assert torch.equal(got, _posterior_policy().select(n=rows))


def test_matched_draws_are_seeded_and_grouped() -> None:
    a = make_policy("thompson_beta", num_arms=6, num_groups=3, seed=11)
    b = make_policy("thompson_beta", num_arms=6, num_groups=3, seed=11)
    groups = torch.arange(3).repeat(200)
    for _ in range(5):
        arms = a.select(groups=groups)
        assert torch.equal(arms, b.select(groups=groups))
        rewards = (arms.double() / 6 + 0.1).clamp(max=1.0)
        a.update(arms, rewards, groups=groups)
        b.update(arms, rewards, groups=groups)
    assert a.successes.sum() > 0
    # each group's arms follow its own probabilities (group 2 learns from other rewards than group 0)
    alpha, beta = a.posterior()
    p = argmax_probabilities(alpha.numpy(), beta.numpy(), kernels())
    arms = a.select(groups=torch.tensor([0, 2]).repeat_interleave(5000))
    for g, rows in ((0, arms[:5000]), (2, arms[5000:])):
        freq = np.bincount(rows.numpy(), minlength=6) / 5000
        assert np.abs(freq - p[g]).max() < 0.03


@pytest.mark.skipif(kernels() is None, reason="numba is not installed")
@pytest.mark.parametrize("num_groups", [1, 3])
def test_compiled_matched_rounds_equal_torch_rounds(num_groups: int) -> None:
    from banditformer.bandits import compiled_rounds
    from tests.bandits.helpers import state_equal

    compiled, reference = (ThompsonBeta(num_arms=6, num_groups=num_groups, seed=5) for _ in range(2))
    gen = torch.Generator().manual_seed(0)
    means = torch.linspace(0.2, 0.8, 6, dtype=torch.float64)
    for n in [MATCH_ROWS, 300, 1, 2048, 513]:
        groups = torch.randint(0, num_groups, (n,), generator=gen) if num_groups > 1 else None
        with compiled_rounds(True):
            arms = compiled.select(n=n, groups=groups)
        with compiled_rounds(False):
            expected = reference.select(n=n, groups=groups)
        assert torch.equal(arms, expected)
        rewards = (torch.rand(n, generator=gen, dtype=torch.float64) < means[arms]).double() * 0.9
        with compiled_rounds(True):
            compiled.update(arms, rewards, groups=groups)
        with compiled_rounds(False):
            reference.update(expected, rewards, groups=groups)
        assert state_equal(compiled, reference, exact=True)


def test_many_groups_with_few_rows_each_draw_per_row(monkeypatch: pytest.MonkeyPatch) -> None:
    # 20 groups and 200 rows: fewer than MATCH_ROWS rows per quadrature, so Beta draws per row;
    # the same rows in 1 group present (group 7): one quadrature, matched
    spread = torch.arange(20).repeat(10)
    one = torch.full((2 * MATCH_ROWS,), 7)
    got = [ThompsonBeta(num_arms=4, num_groups=20, seed=1).select(groups=g) for g in (spread, one)]
    _beta_draws(monkeypatch)
    assert torch.equal(got[0], ThompsonBeta(num_arms=4, num_groups=20, seed=1).select(groups=spread))
    assert not torch.equal(got[1], ThompsonBeta(num_arms=4, num_groups=20, seed=1).select(groups=one))


def test_grouped_propensities_are_each_groups_probabilities() -> None:
    policy = ThompsonBeta(num_arms=3, num_groups=3, seed=0)
    policy.successes.copy_(torch.tensor([[5.0, 1, 1], [1, 5, 1], [1, 1, 5]], dtype=torch.float64))
    groups = torch.tensor([2, 0, 2, 1])
    alpha, beta = policy.posterior()
    p = torch.from_numpy(argmax_probabilities(alpha.numpy(), beta.numpy(), kernels()))
    assert torch.equal(policy.action_probabilities(groups=groups), p[groups])
    assert policy.action_probabilities(groups=groups).argmax(1).tolist() == [2, 0, 2, 1]
