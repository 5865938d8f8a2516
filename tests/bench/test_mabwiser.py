"""MABWiser's reference runs beside ours, and the checks that they can run."""

from __future__ import annotations

import pytest

import banditformer as bf
from banditformer.bench.bandits import BanditBenchConfig, run_bandits
from banditformer.bench.report import format_report


def test_mabwiser_references_run_beside_ours() -> None:
    pytest.importorskip("mabwiser")
    config = BanditBenchConfig(
        problem="bernoulli_two", policies=["ucb1", "thompson_beta", "epsilon_greedy"], horizon=60, seeds=3,
        mabwiser=True,
    )  # fmt: skip
    report = run_bandits(config)
    names = [r.policy for r in report.results]
    assert names == ["ucb1", "thompson_beta", "epsilon_greedy", "mabwiser:UCB1", "mabwiser:ThompsonSampling"]
    for r in report.results[3:]:
        assert r.error is None and r.regret.shape == (3, len(report.rounds))
        assert bool((r.regret.diff(dim=1) >= 0).all())
    assert "ucb1 vs mabwiser:UCB1" in format_report(report)


def test_missing_mabwiser_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from banditformer.bench.mabwiser import run_mabwiser

    monkeypatch.setitem(sys.modules, "mabwiser.mab", None)
    with pytest.raises(bf.BanditformerError, match="MABWiser"):
        run_mabwiser(BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=5, seeds=1))


def test_mabwiser_is_checked_when_the_configuration_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "mabwiser.mab", None)
    with pytest.raises(bf.InputValidationError, match=r"expected MABWiser installed for `mabwiser=True`"):
        BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=20, mabwiser=True)
    BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=20)  # not asked for: not needed


@pytest.mark.parametrize(
    ("kwargs", "policies", "says"),
    [
        ({"problem": "linear_contextual", "policies": ["linucb"]}, (),
         "expected a context-free one-arm problem for the MABWiser references, got 'linear_contextual'"),
        ({"problem": "bernoulli_two", "policies": ["kl_ucb"]}, ("kl_ucb",),
         "expected policies with a MABWiser reference ['thompson_beta', 'ucb1'], got ['kl_ucb']"),
    ],
)  # fmt: skip
def test_references_are_checked_before_they_run(kwargs: dict, policies: tuple, says: str) -> None:
    from banditformer.bench.mabwiser import check_mabwiser, run_mabwiser

    config = BanditBenchConfig(horizon=5, seeds=1, **kwargs)
    with pytest.raises(bf.InputValidationError) as info:
        check_mabwiser(config, policies)
    assert str(info.value) == says
    with pytest.raises(bf.InputValidationError):
        run_mabwiser(config, policies or ("ucb1",))
