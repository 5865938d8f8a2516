"""The bandit benchmark runner: curves that repeat exactly for any worker count or seed block,
the report's parts, bad input caught before any work, and a failing policy reported by name."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import banditformer as bf
from banditformer.bandits import UCB1
from banditformer.bench.bandits import BanditBenchConfig, run_bandits
from banditformer.bench.report import format_report, write_report
from banditformer.plugins import PluginManager, hookimpl, set_plugin_manager


def test_runs_give_monotone_curves_and_repeat_exactly() -> None:
    config = BanditBenchConfig(problem="bernoulli_easy", policies=["ucb1", "thompson_beta"], horizon=200, seeds=4)
    report = run_bandits(config)
    assert report.rounds[-1] == 200 and report.rounds == sorted(set(report.rounds))
    for r in report.results:
        assert r.error is None and r.regret.shape == (4, len(report.rounds))
        assert bool((r.regret.diff(dim=1) >= 0).all())  # cumulative regret never falls
        assert r.regret_ci95 > 0 and r.decisions == 800
    again = run_bandits(config)
    assert all(torch.equal(a.regret, b.regret) for a, b in zip(report.results, again.results, strict=True))
    assert report.lower_bound is not None and len(report.lower_bound) == len(report.rounds)
    assert "Lai-Robbins" in format_report(report)
    gaussian = run_bandits(BanditBenchConfig(problem="gaussian", policies=["thompson_gaussian"], horizon=20, seeds=2))
    assert gaussian.lower_bound is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"problem": "nope"}, "available: bernoulli_close"),
        ({"policies": ["nope"]}, "available: "),
        ({"policies": ["linucb"]}, "context-free"),
        ({"policies": "ucb1"}, "list of policy names"),
        ({"horizon": 0}, "horizon"),
        ({"seeds": 0}, "seeds"),
        ({"seed": -1}, "seed"),
        ({"problem": "gaussian", "policies": ["ucb1"]}, "rewards in"),
        ({"problem": "linear_contextual", "policies": ["linucb"], "mabwiser": True}, "context-free one-arm problem"),
    ],
)
def test_bad_configurations_fail_before_any_work(kwargs: dict, match: str) -> None:
    with pytest.raises(bf.InputValidationError, match=match):
        BanditBenchConfig(**kwargs)


class Broken(UCB1):
    def _select(self, *args, **kwargs):
        if int(self.counts.sum()) >= 5:
            raise RuntimeError("broken on purpose")
        return super()._select(*args, **kwargs)


def test_a_policy_that_raises_is_reported_by_name_and_the_others_still_run(tmp_path: Path) -> None:
    class Mine:
        @hookimpl
        def banditformer_add_policies(self):
            return {"broken": Broken}

    pm = PluginManager(autoload=False)
    pm.register(Mine(), name="mine")
    set_plugin_manager(pm)
    try:
        config = BanditBenchConfig(problem="bernoulli_two", policies=["broken", "ucb1"], horizon=40, seeds=2)
        report = run_bandits(config)
    finally:
        set_plugin_manager(None)
    broken, ucb = report.results
    assert broken.error is not None and "broken on purpose" in broken.error and math.isnan(broken.regret_mean)
    assert ucb.error is None and ucb.regret.shape[1] == len(report.rounds)
    assert "broken" in format_report(report) and "FAILED" in format_report(report)
    doc = json.loads((write_report(report, tmp_path) / "results.json").read_text())
    assert doc["results"][0]["error"] and doc["results"][1]["regret_mean"] > 0


def test_the_cli_writes_a_results_folder(tmp_path: Path, capsys) -> None:
    from banditformer.cli import main

    code = main(["bench", "bandits", "--policies", "ucb1", "--horizon", "50", "--seeds", "2", "--quiet",
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    (folder,) = tmp_path.iterdir()
    assert (folder / "results.json").exists() and (folder / "regret.csv").exists()
    assert (folder / "regret.png").exists() or pytest.importorskip("matplotlib") is None
    assert "ucb1" in capsys.readouterr().out


def test_a_toml_config_sets_the_options_and_flags_override_it(tmp_path: Path, capsys) -> None:
    from banditformer.cli import main

    config = tmp_path / "bench.toml"
    config.write_text('problem = "bernoulli_two"\npolicies = ["ucb1", "kl_ucb"]\nhorizon = 40\nseeds = 4\n'
                      "quiet = true\nno_plot = true\n")  # fmt: skip
    assert main(["bench", "bandits", "--config", str(config), "--seeds", "2", "--out", str(tmp_path / "r")]) == 0
    (folder,) = (tmp_path / "r").iterdir()
    doc = json.loads((folder / "results.json").read_text())
    assert doc["config"]["problem"] == "bernoulli_two" and doc["config"]["horizon"] == 40
    assert doc["config"]["seeds"] == 2 and doc["config"]["policies"] == ["ucb1", "kl_ucb"]
    assert not (folder / "regret.png").exists()
    for text, expected in [("horizn = 5\n", "unknown ['horizn']"), ('horizon = "x"\n', "'horizon'"), ("[", "TOML")]:
        config.write_text(text)
        assert main(["bench", "bandits", "--config", str(config)]) == 2
        assert expected in capsys.readouterr().err


def test_linucb_learns_the_linear_problem_that_context_free_policies_cannot() -> None:
    config = BanditBenchConfig(problem="linear_contextual", policies=["linucb", "ucb1"], horizon=400, seeds=4)
    linucb, ucb = run_bandits(config).results
    assert linucb.error is None and ucb.error is None
    assert linucb.regret_mean < 0.5 * ucb.regret_mean
    assert linucb.arm_counts is not None and float(linucb.arm_counts.sum()) == 400 * 4


def test_combinatorial_and_per_seed_policies_run_and_repeat() -> None:
    semi = BanditBenchConfig(problem="topk_semibandit", policies=["cts", "cucb"], horizon=300, seeds=3)
    a, b = run_bandits(semi), run_bandits(semi)
    for r, again in zip(a.results, b.results, strict=True):
        assert r.error is None and torch.equal(r.regret, again.regret)
        assert float(r.arm_counts.sum()) == 300 * 3 * 3  # k = 3 base arms a round
    cts = a.results[0]
    assert cts.arm_counts[:, :3].sum() > cts.arm_counts[:, 3:].sum()  # the best three dominate
    # `bucketed` cannot hold a group per seed: it keeps one instance per seed, each on its own stream
    wine = BanditBenchConfig(problem="wine_bandit", policies=["bucketed"], horizon=60, seeds=3)
    pytest.importorskip("sklearn")
    r1, r2 = run_bandits(wine).results[0], run_bandits(wine).results[0]
    assert r1.error is None and r1.regret.shape == (3, len(wine.rounds())) and torch.equal(r1.regret, r2.regret)
    assert len(set(r1.final.tolist())) > 1  # independent runs


def test_workers_spread_the_policies_without_changing_the_numbers() -> None:
    config = BanditBenchConfig(problem="bernoulli_easy", policies=["ucb1", "thompson_beta"], horizon=100, seeds=3)
    one = run_bandits(config)
    two = run_bandits(config, workers=2)
    assert two.meta["workers"] == 2
    for a, b in zip(one.results, two.results, strict=True):
        assert a.policy == b.policy and torch.equal(a.regret, b.regret) and torch.equal(a.arm_counts, b.arm_counts)
    with pytest.raises(bf.InputValidationError, match="workers"):
        run_bandits(config, workers=0)


def test_seed_blocks_split_one_policy_over_processes_with_the_same_numbers() -> None:
    config = BanditBenchConfig(problem="bernoulli_easy", policies=["thompson_beta"], horizon=80, seeds=5, seed_block=2)
    assert config.blocks() == [(0, 2), (2, 2), (4, 1)]  # (first seed, seeds)
    one, three = run_bandits(config), run_bandits(config, workers=3)
    assert one.results[0].regret.shape == (5, len(config.rounds())) and one.results[0].decisions == 400
    assert torch.equal(one.results[0].regret, three.results[0].regret)
    whole = run_bandits(BanditBenchConfig(problem="bernoulli_easy", policies=["thompson_beta"], horizon=80, seeds=5))
    assert torch.equal(whole.results[0].regret, one.results[0].regret)  # blocks change nothing
    with pytest.raises(bf.InputValidationError, match="seed_block"):
        BanditBenchConfig(seed_block=-1)


# ------------------------------------------------------ issue 12: checked before computing
@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"seed": 2**63}, "expected `seed` in [0, 9223372036854775807], got 9223372036854775808"),
        ({"horizon": 100, "checkpoints": 101}, "expected `checkpoints` at most `horizon` (100), got 101"),
        ({"horizon": 5, "checkpoints": 11}, "expected `checkpoints` at most `horizon` (5), got 11"),
        ({"mabwiser": 1}, "expected `mabwiser` to be a bool, got 1"),
    ],
)
def test_sizes_are_checked_against_what_the_run_can_hold(kwargs: dict, says: str) -> None:
    with pytest.raises(bf.InputValidationError) as info:
        BanditBenchConfig(**{"problem": "bernoulli_two", "policies": ["ucb1"], **kwargs})
    assert str(info.value) == says
    BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=5)  # the default 10 checkpoints fit any


def test_a_run_that_cannot_fit_in_memory_is_refused_with_the_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    from banditformer.core import validation

    monkeypatch.setattr(validation, "available_memory", lambda: 10**9)
    ok = BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=1000, seeds=20)
    assert sum(ok.memory_estimate().values()) < 10**6
    with pytest.raises(bf.InputValidationError) as info:
        BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=10**12)  # a byte a round: 1 TB
    assert str(info.value).startswith(
        "expected a run of 1 policy(ies) x 20 seed(s) x 10 checkpoints over 1000000000000 rounds to fit in the "
        "1 GB of memory available, got an estimate of 1 TB (round marks 1 TB,"
    )
    with pytest.raises(bf.InputValidationError, match=r"x 30000000 checkpoints .* got an estimate of [\d.]+ GB"):
        BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=3 * 10**7, checkpoints=3 * 10**7)
    # the policy's statistics per seed count: LinUCB holds a d x d matrix per arm and seed
    small = BanditBenchConfig(problem="linear_contextual", policies=["linucb"], seeds=10, horizon=10)
    block = small.memory_estimate()["block"] * 10**4  # ~ the block of 10**5 seeds
    monkeypatch.setattr(validation, "available_memory", lambda: int(block / 2))
    with pytest.raises(bf.InputValidationError, match=r"got an estimate of [\d.]+ [GM]B \(block "):
        BanditBenchConfig(problem="linear_contextual", policies=["linucb"], seeds=10**5, horizon=10)
