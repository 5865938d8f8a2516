"""The harness's propensity logs (issue 15.3): ``run_bandits(..., log_dir=DIR)`` writes each
policy's and seed's rounds as a data-only BanditLog, with an index, changing no number; the folder
is checked before any work; a resume needs the logs of the jobs it does not run again; and the logs
give back a known policy's value through the estimators."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import banditformer as bf
from banditformer.bench.bandits import LOG_INDEX, BanditBenchConfig, log_name, run_bandits
from banditformer.bench.runlog import RunLog
from banditformer.ope import BanditLog, estimate_all
from banditformer.plugins import make_problem


def test_logs_hold_every_round_and_change_no_number(tmp_path: Path) -> None:
    policies = ["ucb1", "epsilon_greedy:epsilon=0.2", "thompson_beta"]
    config = BanditBenchConfig(problem="bernoulli_easy", policies=policies, horizon=60, seeds=3, seed_block=2)
    plain = run_bandits(config)
    logged = run_bandits(config, log_dir=tmp_path / "logs")
    for a, b in zip(plain.results, logged.results, strict=True):
        assert torch.equal(a.regret, b.regret) and torch.equal(a.arm_counts, b.arm_counts), a.policy
    index = json.loads((tmp_path / "logs" / LOG_INDEX).read_text())
    assert index["config"] == config.record() and len(index["logs"]) == 3 * 3
    assert logged.meta["logs"] == str(tmp_path / "logs" / LOG_INDEX)
    means = make_problem("bernoulli_easy").means
    for run in logged.results:
        for s in range(3):
            entry = next(e for e in index["logs"] if e["policy"] == run.policy and e["seed"] == s)
            log = BanditLog.load(tmp_path / "logs" / entry["file"])
            assert (
                len(log) == 60
                and log.num_arms == 5
                and log.context is None
                and entry["file"] == log_name(run.policy, s)
            )
            assert torch.equal(torch.bincount(log.action, minlength=5).double(), run.arm_counts[s])
            regret = float((means.max() - means[log.action]).sum())
            assert math.isclose(regret, float(run.regret[s, -1]), rel_tol=1e-12)
            assert bool(((log.reward == 0) | (log.reward == 1)).all())
            if run.policy == "ucb1":
                assert bool((log.propensity == 1).all())  # an index policy
            elif run.policy.startswith("epsilon_greedy"):  # exact: 1 - eps + eps / K on the greedy arm, eps / K else
                allowed = torch.tensor([0.2 / 5, 0.8 + 0.2 / 5, 1.0 / 5, 1.0], dtype=torch.float64)
                assert bool(((log.propensity[:, None] - allowed).abs().min(1).values < 1e-6).all())  # eps is float32
            else:  # Thompson sampling: a Monte-Carlo estimate, never 0
                assert (
                    bool(((log.propensity > 0) & (log.propensity <= 1)).all()) and len(set(log.propensity.tolist())) > 1
                )


def test_contextual_logs_hold_the_contexts(tmp_path: Path) -> None:
    config = BanditBenchConfig(problem="linear_contextual", policies=["linucb"], horizon=30, seeds=2)
    run_bandits(config, log_dir=tmp_path)
    log = BanditLog.load(tmp_path / log_name("linucb", 1))
    env = make_problem("linear_contextual", seed=config.problem_seed(1))
    assert log.context is not None and log.context.shape == (30, env.context_dim)
    for t in range(30):  # seed 1's own stream, replayed with the logged actions: the same contexts and rewards
        assert torch.equal(log.context[t], env.contexts(1)[0].double())
        assert float(log.reward[t]) == float(env.pull(log.action[t : t + 1])[0])


def test_a_bad_log_folder_fails_before_any_work(tmp_path: Path) -> None:
    config = BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=10, seeds=2)
    (tmp_path / "file").write_text("x")
    with pytest.raises(bf.InputValidationError, match=r"expected a folder for the logs at .*, got a file"):
        run_bandits(config, log_dir=tmp_path / "file")
    with pytest.raises(bf.InputValidationError, match="expected a writable folder for the logs"):
        run_bandits(config, log_dir=tmp_path / "file" / "below")
    semi = BanditBenchConfig(problem="topk_semibandit", policies=["cts"], horizon=10, seeds=1)
    with pytest.raises(bf.InputValidationError, match="expected a one-arm problem to log"):
        run_bandits(semi, log_dir=tmp_path / "semi")
    assert not (tmp_path / "semi").exists()
    with pytest.raises(bf.InputValidationError, match="expected `log_dir` to be a path, got int"):
        run_bandits(config, log_dir=3)


def test_a_resume_needs_the_logs_of_the_jobs_it_does_not_run_again(tmp_path: Path) -> None:
    config = BanditBenchConfig(problem="bernoulli_two", policies=["ucb1", "kl_ucb"], horizon=20, seeds=2)
    with RunLog.create(tmp_path / "runs", "bandits", config.record(), config.digest()) as log:
        first = run_bandits(config, log=log, log_dir=tmp_path / "logs")
    folder = log.folder
    with RunLog.resume(folder, "bandits") as again:  # the same logs: nothing runs, the same numbers
        same = run_bandits(config, log=again, log_dir=tmp_path / "logs")
    assert all(torch.equal(a.regret, b.regret) for a, b in zip(first.results, same.results, strict=True))
    with RunLog.resume(folder, "bandits") as again, pytest.raises(bf.InputValidationError) as info:
        run_bandits(config, log=again, log_dir=tmp_path / "elsewhere")
    assert "got 4 missing, e.g. 'ucb1-seed0.pt'" in str(info.value)


def test_the_logs_give_back_a_known_policys_value(tmp_path: Path) -> None:
    """End to end: epsilon-greedy's logs of the linear contextual problem, and the oracle target
    (the best arm for each context), whose value is known from the problem's parameters."""
    config = BanditBenchConfig(problem="linear_contextual", policies=["epsilon_greedy:epsilon=0.5"], horizon=1500,
                               seeds=2)  # fmt: skip
    run_bandits(config, log_dir=tmp_path)
    log = BanditLog.cat([BanditLog.load(tmp_path / log_name(config.policies[0], s)) for s in range(2)])
    env = make_problem("linear_contextual", seed=0)
    best = (log.context @ env.theta.T).argmax(1)
    target = torch.nn.functional.one_hot(best, env.num_arms).double()
    fresh = make_problem("linear_contextual", seed=12345).contexts(200_000).double()
    true = float((fresh @ env.theta.T).max(1).values.mean())
    logged = float(log.reward.mean())
    results = estimate_all(log, target)
    for name in ("ips", "snips", "dr"):
        assert results[name].covers(true), (name, results[name], true)
    assert not results["ips"].covers(logged)  # the logger's own value is far from it
