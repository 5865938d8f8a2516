"""The statistics both benches report, against known answers: the Student-t interval (scipy's
own), the Bernoulli KL divergence, the Lai-Robbins bound, interval agreement, the Pareto front."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

import banditformer as bf
from banditformer.bandits.kl_ucb import bernoulli_kl
from banditformer.bench.stats import ci95_halfwidth, lai_robbins_bound, pareto_front


def test_the_t_interval_of_a_known_sample_is_scipys() -> None:
    sample = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]  # mean 5, sample standard deviation sqrt(32 / 7)
    low, high = stats.t.interval(0.95, len(sample) - 1, loc=5.0, scale=stats.sem(sample))
    assert float(ci95_halfwidth(sample)) == pytest.approx((high - low) / 2, rel=1e-12)
    assert float(ci95_halfwidth(sample)) == pytest.approx(2.364624 * math.sqrt(32 / 7) / math.sqrt(8), rel=1e-6)
    assert float(ci95_halfwidth([1.0, 2.0, 3.0])) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)


def test_the_t_interval_is_per_column_nan_below_two_samples_and_exactly_the_formula() -> None:
    regret = torch.tensor([[1.0, 10.0], [2.0, 30.0], [4.0, 20.0]], dtype=torch.float64)  # (seeds, checkpoints)
    half = ci95_halfwidth(regret, dim=0)
    assert half.shape == (2,) and half.dtype == torch.float64
    assert half.tolist() == [float(ci95_halfwidth(regret[:, c])) for c in range(2)]
    rows = ci95_halfwidth(regret.T, dim=1)
    assert torch.equal(rows, half)
    # bit for bit what the benches computed before there was one function (results must not move)
    final = regret[:, -1]
    assert float(ci95_halfwidth(final)) == float(stats.t.ppf(0.975, 2) * final.std(unbiased=True) / math.sqrt(3))
    assert math.isnan(float(ci95_halfwidth([3.0])))
    assert ci95_halfwidth(torch.ones(1, 4)).isnan().all() and ci95_halfwidth(torch.ones(1, 4)).shape == (4,)
    assert float(ci95_halfwidth([2.5, 2.5, 2.5])) == 0.0
    with pytest.raises(bf.InputValidationError, match="at least one dimension"):
        ci95_halfwidth(torch.tensor(1.0))


def test_bernoulli_kl_known_values() -> None:
    p = torch.tensor([0.5, 0.6, 1.0, 0.0, 0.3], dtype=torch.float64)
    q = torch.tensor([0.5, 0.9, 0.5, 0.5, 0.3], dtype=torch.float64)
    kl = bernoulli_kl(p, q)
    expected = [0.0, 0.6 * math.log(0.6 / 0.9) + 0.4 * math.log(0.4 / 0.1), math.log(2), math.log(2), 0.0]
    assert kl.tolist() == pytest.approx(expected, abs=1e-9)
    assert bool((bernoulli_kl(torch.rand(100, dtype=torch.float64), torch.rand(100, dtype=torch.float64)) >= 0).all())


def test_lai_robbins_bound_known_values() -> None:
    kl = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)  # KL(0.5 || 0.9)
    assert lai_robbins_bound([0.9, 0.5], [1, 100]) == pytest.approx([0.0, 0.4 / kl * math.log(100)], rel=1e-12)
    assert lai_robbins_bound([0.5, 0.5], [10]) == [0.0]  # no suboptimal arm: nothing to lose
    for bad in ([1.5, 0.5], [], [[0.5, 0.4]], [math.nan, 0.5]):
        with pytest.raises(bf.InputValidationError, match=r"expected \(K,\) Bernoulli means in \[0, 1\]"):
            lai_robbins_bound(bad, [10])


def test_lai_robbins_bound_matches_the_formula() -> None:
    means = [0.9, 0.6, 0.5]
    kl = bernoulli_kl(torch.tensor([0.6, 0.5]), torch.tensor([0.9, 0.9]))
    assert float(kl[0]) == pytest.approx(0.6 * math.log(0.6 / 0.9) + 0.4 * math.log(0.4 / 0.1))
    constant = float(0.3 / kl[0] + 0.4 / kl[1])
    assert lai_robbins_bound(means, [1, 1000]) == pytest.approx([0.0, constant * math.log(1000)])


def test_agreement_compares_means_within_the_combined_interval() -> None:
    from banditformer.bench.results import PolicyRun
    from banditformer.bench.stats import agreement

    def run(values: list[float]) -> PolicyRun:
        return PolicyRun("p", torch.tensor(values, dtype=torch.float64).unsqueeze(1), 1.0, 1)

    assert agreement(run([10.0, 12.0, 14.0]), run([11.0, 13.0, 15.0]))
    assert not agreement(run([10.0, 10.5, 11.0]), run([30.0, 30.5, 31.0]))


def test_pareto_front_keeps_the_points_nothing_beats_in_both() -> None:
    assert pareto_front([(0.9, 0.1), (0.9, 0.1)]) == [True, True]  # ties stay
    assert pareto_front([(0.9, 0.1), (0.9, 0.2), (0.5, 0.9)]) == [False, True, True]
