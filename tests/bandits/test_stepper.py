"""``policy.stepper()``: the rounds of one row at a time are the batched path's rounds with one row,
for every registered one-arm policy (lean or generic), and bad scalars are refused unchanged."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from banditformer import InputValidationError, make_policy
from banditformer.core.stepper import LeanStepper, Stepper
from tests.bandits.helpers import CONTEXT_DIM, SINGLE, build, contexts, rewards_for, state_equal

#: The built-ins whose stepper is lean (the throughput benchmark's batch-1 cells depend on it).
LEAN = ["ucb1", "epsilon_greedy", "thompson_beta", "linucb", "thompson_gaussian", "lin_thompson"]


@pytest.mark.parametrize("name", SINGLE)
@given(
    num_arms=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    rounds=st.integers(1, 40),
    grouped=st.booleans(),
    batched_every=st.integers(0, 7),
)
@settings(max_examples=25)
def test_stepper_rounds_equal_batched_rounds_of_one_row(
    name: str, num_arms: int, seed: int, rounds: int, grouped: bool, batched_every: int
) -> None:
    probe = build(name, num_arms, seed)
    groups_n = 3 if grouped and probe.supports_groups else 1
    ref = build(name, num_arms, seed, num_groups=groups_n)
    stepped = build(name, num_arms, seed, num_groups=groups_n)
    gen = torch.Generator().manual_seed(seed)
    group = int(torch.randint(0, groups_n, (1,), generator=gen))
    g = torch.tensor([group])
    step = stepped.stepper(group)
    for t in range(rounds):
        x = contexts(1, gen)
        ctx = x if ref.is_contextual else None
        arm = ref.select(ctx, groups=g)
        got = step.select(x[0] if ref.is_contextual else None)
        assert type(got) is int and got == int(arm), (t, got, int(arm))
        r = rewards_for(ref, (1,), gen).double()
        ref.update(arm, r, ctx, groups=g)
        step.update(got, float(r), x[0].tolist() if ref.is_contextual else None)
        if batched_every and t % batched_every == 0:  # the batched path in between, on both
            xs = contexts(3, gen)
            gs = torch.randint(0, groups_n, (3,), generator=gen)
            arms = ref.select(xs, groups=gs)
            assert torch.equal(stepped.select(xs, groups=gs), arms)
            rs = rewards_for(ref, (3,), gen)
            ref.update(arms, rs, xs, groups=gs)
            stepped.update(arms, rs, xs, groups=gs)
    assert state_equal(ref, stepped, exact=True)  # statistics and generator, bit for bit


@pytest.mark.parametrize("name", LEAN)
def test_the_built_in_steppers_are_lean(name: str) -> None:
    step = build(name, 4).stepper()
    assert isinstance(step, LeanStepper)
    # off the lean path's conditions the same policy gets the generic stepper
    if name == "thompson_beta":
        assert type(make_policy(name, num_arms=3, prior_alpha=0.5).stepper()) is Stepper


@pytest.mark.parametrize("name", LEAN)
def test_a_stepper_follows_a_reset_and_a_load(name: str) -> None:
    p, fresh = build(name, 3, seed=4), build(name, 3, seed=4)
    step = p.stepper()
    gen = torch.Generator().manual_seed(0)
    x = contexts(1, gen)[0] if p.is_contextual else None
    for _ in range(5):
        step.update(step.select(x), 0.5, x)
    saved = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in p.state_dict().items()}
    for _ in range(5):
        step.update(step.select(x), 1.0, x)
    p.load_state_dict(saved)  # the views are of the same buffers: the stepper sees the load
    fresh.load_state_dict(saved)
    assert step.select(x) == fresh.stepper().select(x)
    p.reset()
    assert float(p.arm_counts.sum()) == 0.0
    step.update(step.select(x), 1.0, x)
    assert float(p.arm_counts.sum()) == 1.0  # written into the reset buffers, not stale copies


def test_a_stepper_follows_the_policy_to_new_buffers() -> None:
    p = make_policy("ucb1", num_arms=3, seed=0)
    step = p.stepper()
    step.update(0, 1.0)
    p.to(torch.device("cpu"))
    p._apply(lambda t: t.clone())  # every buffer replaced by a copy
    step.update(1, 1.0)
    assert p.arm_counts.tolist() == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("name", LEAN)
@pytest.mark.parametrize("move", ["share_memory", "assign", "set_", "data"])
def test_a_stepper_follows_a_buffer_whose_memory_moved(name: str, move: str) -> None:
    gen = torch.Generator().manual_seed(0)
    p = build(name, 3, seed=0)
    step = p.stepper()
    for _ in range(6):  # views taken, every arm tried
        x = contexts(1, gen)
        arm = step.select(x[0] if p.is_contextual else None)
        step.update(arm, float(rewards_for(p, (1,), gen)), x[0].tolist() if p.is_contextual else None)
    stat = "gram" if "gram" in p._buffers else "successes" if "successes" in p._buffers else "counts"
    if move == "share_memory":
        p.share_memory()
    elif move == "assign":
        setattr(p, stat, p._buffers[stat].clone())
    elif move == "set_":
        p._buffers[stat].set_(p._buffers[stat].clone())
    else:
        p._buffers[stat].data = p._buffers[stat].clone()
    ref = copy.deepcopy(p)
    for t in range(8):  # the stepper and the batched path on a copy agree round for round
        x = contexts(1, gen)
        ctx = x if p.is_contextual else None
        got = step.select(x[0] if p.is_contextual else None)
        assert got == int(ref.select(ctx, n=1)), (t, move)
        r = rewards_for(p, (1,), gen).double()
        step.update(got, float(r), x[0].tolist() if p.is_contextual else None)
        ref.update(torch.tensor([got]), r, ctx)
    assert state_equal(p, ref, exact=True)


BAD_ARMS = [(True, "an int"), (1.0, "an int"), ("1", "an int"), (3, "in [0, 3)"), (-1, "in [0, 3)"),
            (torch.tensor([0, 1]), "an int"), (torch.tensor(0.0), "an int")]  # fmt: skip
BAD_REWARDS = [(math.nan, "finite"), (1.5, "in [0, 1]"), (-0.1, "in [0, 1]"), ("0.5", "a float"),
               (None, "a float"), (True, "a float"), (torch.tensor([0.5, 0.5]), "a float")]  # fmt: skip


@pytest.mark.parametrize("name", [*LEAN, "kl_ucb"])
@pytest.mark.parametrize(("arm", "message"), BAD_ARMS)
def test_bad_arms_are_refused_and_change_nothing(name: str, arm: object, message: str) -> None:
    p = build(name, 3, seed=1)
    before = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in p.state_dict().items()}
    x = torch.zeros(CONTEXT_DIM) if p.is_contextual else None
    with pytest.raises(InputValidationError, match=f"expected `arm` .*{re.escape(message)}"):
        p.stepper().update(arm, 0.5, x)
    q = build(name, 3, seed=1)
    q.load_state_dict(before)
    assert state_equal(p, q, exact=True)


@pytest.mark.parametrize("name", [*LEAN, "kl_ucb"])
@pytest.mark.parametrize(("reward", "message"), BAD_REWARDS)
def test_bad_rewards_are_refused_and_change_nothing(name: str, reward: object, message: str) -> None:
    p = build(name, 3, seed=1)
    x = torch.zeros(CONTEXT_DIM) if p.is_contextual else None
    if p.reward_range != (0.0, 1.0) and message.startswith("in"):
        pytest.skip("the reward range differs")
    step = p.stepper()
    q = build(name, 3, seed=1)
    with pytest.raises(InputValidationError, match=f"expected `reward` .*{re.escape(message)}"):
        step.update(1, reward, x)
    assert state_equal(p, q, exact=True)


@pytest.mark.parametrize("name", ["linucb", "lin_thompson"])
@pytest.mark.parametrize(
    ("context", "message"),
    [
        (None, "expected a `context` of 3 numbers"),
        ([0.0, 1.0], r"expected `context` of shape \(1, 3\)"),
        ([0.0, math.nan, 1.0], "finite"),
        ([0.0, math.inf, 1.0], "finite"),
        (["a", "b", "c"], "expected `context` to be 3 numbers"),
        (torch.zeros(3, dtype=torch.long), "float"),
    ],
)
def test_bad_contexts_are_refused_before_anything_is_drawn(name: str, context: object, message: str) -> None:
    p = build(name, 3, seed=1)
    q = build(name, 3, seed=1)
    with pytest.raises(InputValidationError, match=message):
        p.stepper().select(context)
    with pytest.raises(InputValidationError, match=message):
        p.stepper().update(0, 0.5, context)
    assert state_equal(p, q, exact=True)


def test_contexts_may_be_arrays_lists_or_rows() -> None:
    p = make_policy("linucb", num_arms=3, context_dim=2, seed=0)
    step = p.stepper()
    x = [0.5, -1.0]
    arms = {step.select(x), step.select(np.asarray(x)), step.select(torch.tensor([x])), step.select(torch.tensor(x))}
    assert arms == {int(p.select(torch.tensor([x])))}


def test_a_group_out_of_range_is_refused() -> None:
    p = make_policy("ucb1", num_arms=3, num_groups=2)
    with pytest.raises(InputValidationError, match=r"expected `group` in \[0, 1\], got 2"):
        p.stepper(2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", LEAN)
def test_on_cuda_the_stepper_runs_the_batched_path(name: str) -> None:
    ref, stepped = build(name, 4, seed=2, device="cuda"), build(name, 4, seed=2, device="cuda")
    step = stepped.stepper()
    assert type(step) is Stepper
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        x = contexts(1, gen).cuda()
        arm = ref.select(x if ref.is_contextual else None)
        assert step.select(x[0] if ref.is_contextual else None) == int(arm)
        ref.update(arm, torch.full((1,), 0.5, device="cuda"), x if ref.is_contextual else None)
        step.update(int(arm), 0.5, x[0] if ref.is_contextual else None)
    assert state_equal(ref, stepped, exact=True)
