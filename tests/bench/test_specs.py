"""Policy specs in the bandit benchmark (banditformer/bench/specs.py): parsing with known answers,
several option sets of one policy side by side, each a policy built with those options, and bad
specs refused before any run."""

from __future__ import annotations

import pytest
import torch

from banditformer import InputValidationError
from banditformer.bench.bandits import BanditBenchConfig, run_bandits
from banditformer.bench.specs import make_spec_policy, parse_policy


def test_specs_parse_to_a_name_and_typed_options() -> None:
    assert parse_policy("ucb1") == ("ucb1", {})
    assert parse_policy(" sw_ucb : window=100, c=0.6 ") == ("sw_ucb", {"window": 100, "c": 0.6})
    assert parse_policy("x:a=true,b=None,c=text,d=-2,e=1e-3") == (
        "x", {"a": True, "b": None, "c": "text", "d": -2, "e": 0.001}
    )  # fmt: skip
    p = make_spec_policy("ucb1:c=0.3,discount=0.9", num_arms=3)
    assert float(p.c) == pytest.approx(0.3) and float(p.discount) == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "expected a policy spec"),
        (":c=1", "policy name before"),
        ("ucb1:", "options after"),
        ("ucb1:c", "key=value"),
        ("ucb1:c=1,c=2", "once"),
        ("ucb1:num_groups=2", "the benchmark sets them"),
        (3, "expected a policy spec"),
    ],
)
def test_bad_specs_are_refused(spec, match) -> None:
    with pytest.raises(InputValidationError, match=match):
        parse_policy(spec)


def test_option_sets_of_one_policy_run_side_by_side_labelled_by_their_spec() -> None:
    specs = ["ucb1", "ucb1:c=0.2", "epsilon_greedy:epsilon=0.0"]
    report = run_bandits(BanditBenchConfig(problem="bernoulli_easy", policies=specs, horizon=300, seeds=3))
    by = {r.policy: r for r in report.results}
    assert sorted(by) == sorted(specs) and all(r.error is None for r in report.results)
    assert not torch.equal(by["ucb1"].regret, by["ucb1:c=0.2"].regret)  # the option changed the runs
    # a spec's runs are those of the policy built with its options, whatever runs beside it
    alone = run_bandits(BanditBenchConfig(problem="bernoulli_easy", policies=["ucb1:c=0.2"], horizon=300, seeds=3))
    assert torch.equal(alone.results[0].regret, by["ucb1:c=0.2"].regret)


@pytest.mark.parametrize(
    ("policies", "match"),
    [
        (["ucb1:cc=1"], "unexpected keyword argument 'cc'"),
        (["ucb1:c=1", "ucb1:c=1"], "more than once"),
        (["nope:c=1"], "available: "),
        (["ucb1:c=-1"], "c"),
    ],
)
def test_bad_options_fail_before_any_run(policies, match) -> None:
    with pytest.raises(InputValidationError, match=match):
        BanditBenchConfig(problem="bernoulli_easy", policies=policies, horizon=10, seeds=1)
