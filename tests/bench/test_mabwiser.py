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
    text = format_report(report)
    assert "ucb1 vs mabwiser:UCB1" in text
    # like with like: beside MABWiser (one seed at a time) its pairs play one seed at a time too
    assert [r.played for r in report.results] == ["per seed"] * 5
    assert "not like with like" not in text


def test_each_run_says_how_its_seeds_played_and_the_record_keeps_it() -> None:
    from banditformer.bench.results import PolicyRun

    config = BanditBenchConfig(problem="bernoulli_two", policies=["ucb1", "thompson_beta"], horizon=30, seeds=3)
    report = run_bandits(config)
    assert [r.played for r in report.results] == ["batched", "per seed"]  # an index policy batches its seeds
    assert "batched" in format_report(report)
    record = report.results[0].to_record()
    assert PolicyRun.from_record(record).played == "batched"
    del record["played"]  # a record written before the field
    assert PolicyRun.from_record(record).played == ""
    with pytest.raises(ValueError, match="how the seeds played"):
        PolicyRun.from_record({**record, "played": 3})


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
