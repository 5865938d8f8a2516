"""Seed streams (issue 15.5): seed ``s``'s run of a policy, its problem's rewards and contexts and
the policy's own draws, is the same whatever the number of seeds beside it, the seed blocks and
the processes; batched policies play exactly as they would alone; MABWiser meets the same
streams; and results folders of the older shared streams do not resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import banditformer as bf
from banditformer.bandits import UCB1
from banditformer.bench import bandits as runner
from banditformer.bench.bandits import BanditBenchConfig, plays_batched, run_bandits
from banditformer.bench.compat import compatible_policies
from banditformer.bench.config import BANDIT_STREAMS
from banditformer.bench.runlog import RunLog
from banditformer.plugins import PluginManager, hookimpl, make_policy, make_problem, set_plugin_manager
from banditformer.problems import (
    BernoulliProblem,
    GaussianProblem,
    LinearContextualProblem,
    SeedStreams,
    SwitchingBernoulliProblem,
)


def curves(problem: str, policy: str, seeds: int, horizon: int = 60, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    run = run_bandits(BanditBenchConfig(problem=problem, policies=[policy], horizon=horizon, seeds=seeds, **kwargs))
    (result,) = run.results
    assert result.error is None, result.error
    return result.regret, result.arm_counts


@pytest.mark.parametrize(
    ("problem", "policy"),
    [
        ("bernoulli_easy", "thompson_beta"),  # randomised: one instance per seed
        ("bernoulli_easy", "epsilon_greedy"),
        ("bernoulli_easy", "ucb1"),  # an index policy: batched as groups
        ("linear_contextual", "linucb"),  # contextual, batched
        ("linear_contextual", "lin_thompson"),  # contextual, randomised
        ("topk_semibandit", "cts"),  # combinatorial, randomised
        ("bernoulli_switching", "sw_ucb"),  # a problem with a clock of its own
    ],
)
def test_a_seeds_run_does_not_depend_on_how_many_seeds_run_with_it(problem: str, policy: str) -> None:
    three, counts3 = curves(problem, policy, 3)
    five, counts5 = curves(problem, policy, 5)
    blocks, counts_b = curves(problem, policy, 5, seed_block=2)
    assert torch.equal(five[:3], three) and torch.equal(counts5[:3], counts3)
    assert torch.equal(blocks, five) and torch.equal(counts_b, counts5)
    assert len({tuple(row.tolist()) for row in five}) == 5  # and the seeds are independent runs
    other, _ = curves(problem, policy, 3, seed=1)
    assert not torch.equal(other, three)  # the master seed moves every stream


@pytest.mark.parametrize("problem", ["bernoulli_two", "linear_contextual", "topk_semibandit"])
def test_every_registered_policy_keeps_its_seeds_streams(problem: str) -> None:
    """Registry-wide: seed 1 of a 2-seed run is seed 1 of a 3-seed run in blocks of one."""
    names = compatible_policies(problem)
    two = run_bandits(BanditBenchConfig(problem=problem, policies=names, horizon=25, seeds=2))
    three = run_bandits(BanditBenchConfig(problem=problem, policies=names, horizon=25, seeds=3, seed_block=1))
    for a, b in zip(two.results, three.results, strict=True):
        assert a.error is None and b.error is None, (a.error, b.error)
        assert torch.equal(a.regret, b.regret[:2]), a.policy


@pytest.mark.parametrize("problem", ["bernoulli_easy", "linear_contextual", "bernoulli_switching"])
def test_batched_policies_play_each_seed_as_it_would_alone(problem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_problem(problem, seed=0)
    dim = getattr(env, "context_dim", None)
    names = [n for n in compatible_policies(problem) if plays_batched(make_policy(n, num_arms=env.num_arms,
                                                                                  context_dim=dim))]  # fmt: skip
    assert {"ucb1", "kl_ucb"} <= set(names) or problem == "linear_contextual"
    config = BanditBenchConfig(problem=problem, policies=names, horizon=70, seeds=4)
    batched = run_bandits(config)
    monkeypatch.setattr(runner, "plays_batched", lambda policy: False)  # one instance per seed
    alone = run_bandits(config)
    for a, b in zip(batched.results, alone.results, strict=True):
        assert a.error is None and torch.equal(a.regret, b.regret) and torch.equal(a.arm_counts, b.arm_counts), a.policy


class DrawsInUpdate(UCB1):
    """Declares `deterministic` (its select draws nothing) but its update draws: a Bernoulli trick."""

    def _update(self, arms, rewards, context, groups):
        u = torch.rand(rewards.shape, generator=self.generator, dtype=rewards.dtype)
        super()._update(arms, (u < rewards).to(rewards.dtype), context, groups)


class DrawsWhenBuilt(UCB1):
    """Draws once when built (a random tie order, say); nothing after."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.offset = float(torch.rand(1, generator=self.generator)) * 1e-9


@pytest.fixture
def drawing_plugins():
    class Mine:
        @hookimpl
        def banditformer_add_policies(self):
            return {"draws_in_update": DrawsInUpdate, "draws_when_built": DrawsWhenBuilt}

    pm = PluginManager()
    pm.register(Mine(), name="mine")
    set_plugin_manager(pm)
    yield
    set_plugin_manager(None)


@pytest.mark.parametrize("name", ["draws_in_update", "draws_when_built"])
def test_a_policy_that_draws_after_all_plays_one_instance_per_seed(name: str, drawing_plugins) -> None:
    assert not plays_batched(make_policy(name, num_arms=2, seed=0)) or name == "draws_in_update"
    two, _ = curves("bernoulli_two", name, 2, horizon=80)
    three, _ = curves("bernoulli_two", name, 3, horizon=80)
    assert torch.equal(three[:2], two)


def test_mabwiser_meets_the_same_seed_streams_as_ours() -> None:
    pytest.importorskip("mabwiser")
    config = BanditBenchConfig(problem="bernoulli_easy", policies=["ucb1", "thompson_beta"], horizon=200, seeds=3,
                               mabwiser=True)  # fmt: skip
    ours, _, theirs, ts = run_bandits(config).results
    assert theirs.policy == "mabwiser:UCB1" and torch.equal(ours.regret, theirs.regret)  # same arms, same rewards
    fewer = BanditBenchConfig(problem="bernoulli_easy", policies=["thompson_beta"], horizon=200, seeds=2, mabwiser=True)
    assert torch.equal(run_bandits(fewer).results[1].regret, ts.regret[:2])  # MABWiser's seeds keep their streams


def test_the_configuration_records_its_streams_and_an_older_folder_does_not_resume(tmp_path: Path, capsys) -> None:
    from banditformer.cli import main

    config = BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=20, seeds=2)
    assert config.record()["streams"] == BANDIT_STREAMS
    assert BanditBenchConfig.from_record(config.record()) == config
    with pytest.raises(bf.InputValidationError, match=r"expected a configuration recorded with streams 'per-seed'"):
        BanditBenchConfig.from_record({**config.record(), "streams": "per-block"})
    old = {k: v for k, v in config.record().items() if k != "streams"}  # what an older version recorded
    log = RunLog.create(tmp_path, "bandits", old, "0123456789", stamp="20250101-000000")
    log.begin(["ucb1, seeds 0-1"])
    log.record("ucb1, seeds 0-1", {"block": "from the shared streams"})
    log.close()
    before = sorted(p.name for p in (log.folder / "jobs").iterdir())
    assert main(["bench", "bandits", "--resume", str(log.folder), "--quiet", "--no-plot"]) == 2
    assert "an older version's folder, whose seeds shared one stream per block" in capsys.readouterr().err
    with RunLog.resume(log.folder, "bandits") as again, pytest.raises(bf.InputValidationError, match="older version"):
        run_bandits(config, log=again)
    assert sorted(p.name for p in (log.folder / "jobs").iterdir()) == before  # nothing ran
    # a new folder made with asdict(config) holds no job: it runs, and is marked for its resumes
    fresh = RunLog.create(tmp_path, "bandits", old, config.digest(), stamp="20250101-000001")
    first = run_bandits(config, log=fresh)
    fresh.close()
    assert json.loads((fresh.folder / "run.json").read_text())["config"]["streams"] == BANDIT_STREAMS
    with RunLog.resume(fresh.folder, "bandits") as again:
        assert torch.equal(run_bandits(config, log=again).results[0].regret, first.results[0].regret)
    assert config.problem_seed(3) == BanditBenchConfig(seeds=5).problem_seed(3) != config.problem_seed(2)
    problems = {config.problem_seed(s) for s in range(200)}
    assert len(problems) == 200 and not problems & {config.policy_seed(s) for s in range(200)}  # never one stream
    with pytest.raises(bf.InputValidationError, match="`s`"):
        config.problem_seed(-1)


# ------------------------------------------------------------------------- the streams themselves
def alone(problem, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    reward = problem.pull(action)
    return reward, problem.regret(action)


@settings(max_examples=25, deadline=None)
@given(
    seeds=st.lists(st.integers(0, 2**40), min_size=1, max_size=5, unique=True),
    kind=st.sampled_from(["bernoulli", "gaussian", "switching", "linear"]),
    rounds=st.integers(1, 6),
    data=st.data(),
)
def test_side_by_side_rows_are_drawn_as_each_instance_alone_draws_them(seeds, kind, rounds, data) -> None:
    def make(seed: int):
        return {
            "bernoulli": lambda: BernoulliProblem([0.9, 0.5, 0.1], seed=seed),
            "gaussian": lambda: GaussianProblem([1.0, 0.0, -0.5], std=0.7, seed=seed),
            "switching": lambda: SwitchingBernoulliProblem([[0.9, 0.2, 0.1], [0.1, 0.2, 0.9]], period=2, seed=seed),
            "linear": lambda: LinearContextualProblem(num_arms=3, context_dim=4, seed=seed),
        }[kind]()

    streams, singles = SeedStreams([make(s) for s in seeds]), [make(s) for s in seeds]
    ones = [SeedStreams([make(s)]) for s in seeds]
    for _ in range(rounds):
        arms = torch.tensor(data.draw(st.lists(st.integers(0, 2), min_size=len(seeds), max_size=len(seeds))))
        if kind == "linear":
            ctx = streams.contexts()
            assert torch.equal(ctx, torch.cat([p.contexts(1) for p in singles]))
            for one in ones:
                one.contexts()
        rewards, regret = streams.pull(arms), streams.regret(arms)
        for i, p in enumerate(singles):
            r, g = alone(p, arms[i : i + 1])
            assert torch.equal(rewards[i : i + 1], r) and torch.equal(regret[i : i + 1], g)
            arm = int(arms[i])
            assert ones[i].pull_one(arm) == float(r[0]) and ones[i].regret_one(arm) == float(g[0])


def test_side_by_side_streams_check_their_input() -> None:
    with pytest.raises(bf.InputValidationError, match="at least one problem"):
        SeedStreams([])
    with pytest.raises(bf.InputValidationError, match=r"expected instances of one problem"):
        SeedStreams([BernoulliProblem([0.5, 0.5]), BernoulliProblem([0.5, 0.5, 0.5])])
    two = SeedStreams([BernoulliProblem([0.5, 0.5], seed=0), BernoulliProblem([0.5, 0.5], seed=1)])
    state = [p.generator.get_state() for p in two.problems]
    with pytest.raises(bf.InputValidationError, match=r"expected `arms` in \[0, 2\)"):
        two.pull(torch.tensor([0, 2]))
    with pytest.raises(bf.InputValidationError, match="streams of one instance"):
        two.pull_one(0)
    with pytest.raises(bf.InputValidationError, match="context-free"):
        two.contexts()
    assert all(torch.equal(s, p.generator.get_state()) for s, p in zip(state, two.problems, strict=True))  # no draw
    with pytest.raises(bf.InputValidationError, match=r"expected an int arm in \[0, 2\), got 2"):
        SeedStreams([BernoulliProblem([0.5, 0.5])]).pull_one(2)


def test_results_record_the_streams(tmp_path: Path) -> None:
    from banditformer.bench.report import write_report

    report = run_bandits(BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=20, seeds=2))
    doc = json.loads((write_report(report, tmp_path) / "results.json").read_text())
    assert doc["config"]["streams"] == "per-seed"
