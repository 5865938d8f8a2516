"""Checked state (core/state.py): a load refuses bad statistics, other configurations and broken
generator states before it copies anything, and restores adaptive state within its range."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import banditformer as bf
from banditformer import InputValidationError
from banditformer.core.state import CheckedModule
from tests.bandits.helpers import ALL, build, play, state_equal


def _played(name: str = "ucb1", **kwargs) -> bf.PolicyBase:
    p = bf.make_policy(name, num_arms=3, seed=0, **kwargs)
    for _ in range(3):
        arms = p.select(n=4)
        p.update(arms, torch.rand(4, generator=torch.Generator().manual_seed(1)))
    return p


def _refused(module: torch.nn.Module, state: dict, match: str) -> None:
    before = copy.deepcopy(module.state_dict())
    with pytest.raises(InputValidationError, match=match):
        module.load_state_dict(state)
    after = module.state_dict()
    for key, value in before.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, after[key]), key
        elif "rng_state" in value:
            assert torch.equal(value["rng_state"], after[key]["rng_state"]), key
        else:
            assert value == after[key], key


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("counts", float("nan"), r"expected `counts` to be finite, got values \[nan"),
        ("counts", -2.0, r"expected `counts` in \[0, inf\], got values \[-2"),
        ("arm_counts", float("inf"), r"expected `arm_counts` to be finite"),
        ("sums", float("-inf"), r"expected `sums` to be finite"),
    ],
)
def test_bad_statistics_are_refused_and_nothing_changes(key: str, value: float, match: str) -> None:
    p = _played()
    state = p.state_dict()
    state[key] = state[key].clone()
    state[key].view(-1)[0] = value
    _refused(p, state, match)


def test_another_configuration_is_refused_naming_both_values() -> None:
    p, q = _played(c=1.0), _played(c=2.0)
    _refused(p, q.state_dict(), r"expected `c` = 1 \(the configuration of this UCB1\), got 2")
    crafted = p.state_dict()
    crafted["c"] = torch.tensor(-100.0, dtype=torch.float64)  # today's crafted checkpoint
    _refused(p, crafted, r"expected `c` = 1 .* got -100")
    eg, other = _played("epsilon_greedy"), _played("epsilon_greedy", schedule="inverse_time")
    _refused(eg, other.state_dict(), r"expected `schedule` = 'fixed' .* got 'inverse_time'")


def test_a_broken_generator_state_is_refused_before_any_statistic_is_copied() -> None:
    p, q = build("ucb1", 3, seed=0), build("ucb1", 3, seed=9)
    play(p, 5, torch.Generator().manual_seed(1))
    state = q.state_dict()
    state["_extra_state"] = {**state["_extra_state"], "rng_state": torch.zeros(7, dtype=torch.uint8)}
    play(q, 5, torch.Generator().manual_seed(0))  # statistics that differ from p's
    _refused(p, state, r"rng_state'\] to be the state of a cpu generator")
    state["_extra_state"]["rng_state"] = torch.zeros(5056, dtype=torch.float32)
    _refused(p, state, r"to be a 1-dim uint8 tensor")


@pytest.mark.parametrize("name", ALL)
def test_every_policy_refuses_non_finite_statistics(name: str) -> None:
    p = build(name, 3, seed=0)
    play(p, 6, torch.Generator().manual_seed(0))
    state = p.state_dict()
    stats = [
        f"{prefix}.{name}" if prefix else name
        for prefix, m in p.named_modules()
        if isinstance(m, CheckedModule)
        for name, spec in m.state_specs.items()
        if spec.kind == "statistic" and state[f"{prefix}.{name}" if prefix else name].is_floating_point()
    ]
    key = stats[-1]
    state[key] = torch.full_like(state[key], math.nan)
    before = copy.deepcopy(p)
    with pytest.raises(InputValidationError, match=f"expected `{key}` to be finite"):
        p.load_state_dict(state)
    assert state_equal(p, before, exact=True)


def _dht(**kwargs) -> bf.Controller:
    return bf.make_controller("dht", num_layers=3, num_heads=2, context_dim=4, full_flops=1e6, seed=0, **kwargs)


def test_dht_lam_is_configuration_at_a_fixed_lambda_and_state_under_a_budget() -> None:
    fixed = _dht(lam=0.5)
    crafted = fixed.state_dict()
    crafted["lam"] = torch.tensor(0.9, dtype=torch.float64)
    _refused(fixed, crafted, r"expected `lam` = 0.5 \(the configuration of this DHTController\), got 0.9")
    budgeted = _dht(lam=0.5, flop_budget=0.5)
    state = budgeted.state_dict()
    state["lam"] = torch.tensor(0.9, dtype=torch.float64)  # adapted: restored
    budgeted.load_state_dict(state)
    assert float(budgeted.lam) == 0.9
    state["lam"] = torch.tensor(-3.0, dtype=torch.float64)
    _refused(budgeted, state, r"expected `lam` in \[0, inf\], got values \[-3")
    _refused(budgeted, _dht(lam=0.5, flop_budget=0.25).state_dict(), r"expected `flop_budget` = 0.5 .* got 0.25")


def test_dht_refuses_a_negative_feedback_counter_and_another_mode() -> None:
    c = _dht()
    state = c.state_dict()
    state["feedback_calls"] = torch.tensor(-5)
    _refused(c, state, r"expected `feedback_calls` in \[0, inf\], got values \[-5\]")
    _refused(c, _dht(mode="integrated").state_dict(), r"expected `mode` = 'tree' .* got 'integrated'")


def test_check_state_dict_changes_nothing_and_agrees_with_load() -> None:
    c = _dht()
    state = c.state_dict()
    state["depth_policy.base.counts"] = -state["depth_policy.base.counts"] - 1
    before = copy.deepcopy(c.state_dict())
    with pytest.raises(InputValidationError, match=r"depth_policy\.base\.counts"):
        c.check_state_dict(state)
    assert all(torch.equal(v, c.state_dict()[k]) for k, v in before.items() if isinstance(v, torch.Tensor))


def test_random_baselines_save_their_generator() -> None:
    a = bf.make_controller("random", num_layers=3, num_heads=2, seed=0)
    a.decide(torch.randn(5, 4))
    b = bf.make_controller("random", num_layers=3, num_heads=2, seed=0)
    b.load_state_dict(a.state_dict())
    x = torch.randn(6, 4)
    da, db = a.decide(x), b.decide(x)
    assert torch.equal(da.depth, db.depth) and torch.equal(da.heads, db.heads)
    state = a.state_dict()
    state["_extra_state"] = {**state["_extra_state"], "rng_state": torch.zeros(3, dtype=torch.uint8)}
    _refused(b, state, r"rng_state'\] to be the state of a cpu generator")
