"""M-UCB (banditformer.bandits.m_ucb): the change test by hand, restarts on a crafted change and against
a plain-Python M-UCB fed one row at a time, the index and the arm it picks, forced exploration,
learning on a switching problem, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from banditformer import InputValidationError, make_policy
from banditformer.bandits import MUCB
from banditformer.bandits.m_ucb import change_detected
from banditformer.bandits.ucb1 import ucb1_index
from tests.bandits.test_sw_ucb import simulate


def reference(rows: list[tuple[int, int, float]], num_groups: int, num_arms: int, window: int, threshold: float):
    """Plain M-UCB statistics: each group's per-arm rewards since its last restart, and its restarts."""
    since = [[[] for _ in range(num_arms)] for _ in range(num_groups)]
    restarts = [0] * num_groups
    for g, a, r in rows:
        since[g][a].append(r)
        last = since[g][a][-window:]
        if len(last) == window and abs(sum(last[: window // 2]) - sum(last[window // 2 :])) > threshold:
            since[g] = [[] for _ in range(num_arms)]
            restarts[g] += 1
    return since, restarts


def assert_matches(p: MUCB, rows: list[tuple[int, int, float]]) -> None:
    since, restarts = reference(rows, p.num_groups, p.num_arms, p.window, float(p.threshold))
    assert p.restarts.tolist() == restarts
    for g in range(p.num_groups):
        assert p.counts[g].tolist() == [len(r) for r in since[g]]
        assert p.sums[g].tolist() == pytest.approx([sum(r) for r in since[g]], abs=1e-9)
        for a, rewards in enumerate(since[g]):
            n = len(rewards)
            slots = [j % p.window for j in range(max(0, n - p.window), n)]
            assert p.history[g, a, slots].tolist() == rewards[-p.window :]


def test_change_detected_by_hand() -> None:
    rewards = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    assert change_detected(rewards, 1.5).tolist() == [True, False, False]  # |2 - 0|, |1 - 1|, |2 - 1|
    assert change_detected(rewards, 0.5).tolist() == [True, False, True]
    assert change_detected(rewards.flip(1), 1.5).tolist() == [True, False, False]  # both directions


def test_a_crafted_change_restarts_the_group() -> None:
    p = MUCB(num_arms=2, window=6, threshold=1.5, gamma=0.0, num_groups=2)
    # group 0, arm 0: six 1s (no test fires: 3 - 3), a 0 (3 - 2 = 1 <= 1.5), a 0 (3 - 1 = 2 > 1.5: restart),
    # then rows after the restart; group 1 sees the same first rows and no change
    arms = torch.tensor([0] * 8 + [1, 0, 0] + [0] * 6)
    rewards = torch.tensor([1.0] * 6 + [0.0, 0.0] + [0.5, 0.0, 1.0] + [1.0] * 6)
    groups = torch.tensor([0] * 11 + [1] * 6)
    p.update(arms, rewards, groups=groups)
    assert p.restarts.tolist() == [1, 0]
    assert p.counts.tolist() == [[2.0, 1.0], [6.0, 0.0]]  # group 0: only the rows after the detection
    assert p.sums.tolist() == [[1.0, 0.5], [6.0, 0.0]]
    assert p.history[0, 0, :2].tolist() == [0.0, 1.0] and p.history[0, 1, 0].item() == 0.5
    # the same rows one at a time end in the same state
    q = MUCB(num_arms=2, window=6, threshold=1.5, gamma=0.0, num_groups=2)
    for i in range(17):
        q.update(arms[i : i + 1], rewards[i : i + 1], groups=groups[i : i + 1])
    assert all(torch.equal(v, q.state_dict()[k]) for k, v in p.state_dict().items() if isinstance(v, torch.Tensor))


def test_the_test_waits_for_a_full_window_since_the_restart() -> None:
    p = MUCB(num_arms=1, window=4, threshold=0.5, gamma=0.0)
    p.update(torch.zeros(3, dtype=torch.long), torch.tensor([1.0, 0.0, 0.0]))  # |1 - 0| > 0.5, but 3 < w rewards
    assert p.restarts.tolist() == [0] and p.counts.tolist() == [[3.0]]
    p.update(torch.zeros(1, dtype=torch.long), torch.tensor([0.0]))  # 1, 0 | 0, 0: fires
    assert p.restarts.tolist() == [1] and p.counts.tolist() == [[0.0]]


@settings(max_examples=60, deadline=None)
@given(
    window=st.sampled_from([2, 4, 6]),
    threshold=st.sampled_from([0.0, 0.5, 1.0, 1.5]),
    num_groups=st.integers(1, 3),
    batches=st.lists(st.integers(1, 30), min_size=1, max_size=4),
    bernoulli=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_restarts_match_rows_fed_one_at_a_time(
    window: int, threshold: float, num_groups: int, batches: list[int], bernoulli: bool, seed: int
) -> None:
    # batches longer than the window, several groups, often several restarts in one batch
    gen = torch.Generator().manual_seed(seed)
    p = MUCB(num_arms=2, window=window, threshold=threshold, num_groups=num_groups)
    rows: list[tuple[int, int, float]] = []
    for n in batches:
        g = torch.randint(0, num_groups, (n,), generator=gen)
        a = torch.randint(0, 2, (n,), generator=gen)
        r = torch.rand(n, generator=gen, dtype=torch.float64)
        r = (r < 0.5).double() if bernoulli else r
        p.update(a, r, groups=g)
        rows += list(zip(g.tolist(), a.tolist(), r.tolist(), strict=True))
        assert_matches(p, rows)


def test_index_by_hand_and_the_arm_picked() -> None:
    p = MUCB(num_arms=3, window=10, threshold=5.0, gamma=0.0, c=0.3)
    p.update(torch.tensor([0, 1, 2, 0, 1, 0]), torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 1.0]))
    # n = 6 since the restart; arm 0: 2/3 over 3 plays, arm 1: 1 over 2, arm 2: 0 over 1
    bonus = [0.3 * math.sqrt(2 * math.log(6) / k) for k in (3, 2, 1)]
    by_hand = [2 / 3 + bonus[0], 1.0 + bonus[1], 0.0 + bonus[2]]
    assert ucb1_index(p.sums, p.counts, p.counts.sum(1), p.c)[0].tolist() == pytest.approx(by_hand)
    assert p.select(n=4).tolist() == [1, 1, 1, 1]
    assert p.expected_rewards(n=1).tolist() == [[pytest.approx(2 / 3), 1.0, 0.0]]


def test_forced_exploration_draws_from_the_policys_generator() -> None:
    p = MUCB(num_arms=3, gamma=1.0, seed=4)
    p.update(torch.tensor([0, 1, 2] * 5), torch.tensor([1.0, 0.0, 0.0] * 5))  # arm 0 is the greedy choice
    arms = p.select(n=3000)
    share = torch.bincount(arms, minlength=3) / 3000
    assert share.tolist() == pytest.approx([1 / 3] * 3, abs=0.04)  # uniform, the greedy arm no more often
    twin = MUCB(num_arms=3, gamma=1.0, seed=4)
    twin.update(torch.tensor([0, 1, 2] * 5), torch.tensor([1.0, 0.0, 0.0] * 5))
    assert torch.equal(twin.select(n=3000), arms)  # the seed decides the draws
    q = MUCB(num_arms=3, gamma=0.3, seed=4)
    q.update(torch.tensor([0, 1, 2] * 5), torch.tensor([1.0, 0.0, 0.0] * 5))
    off = (q.select(n=6000) != 0).double().mean().item()
    assert off == pytest.approx(0.3 * 2 / 3, abs=0.02)  # a random arm 30% of the time, not arm 0 in 2 of 3
    r = MUCB(num_arms=3, gamma=0.0, seed=4)
    r.update(torch.tensor([0, 1, 2] * 5), torch.tensor([1.0, 0.0, 0.0] * 5))
    assert bool((r.select(n=500) == 0).all())


def test_learns_after_a_switch() -> None:
    # arm 0 pays 0.9 for 600 rounds, then 0.4 while arm 1 pays 0.6: without its test (threshold
    # 1e9) M-UCB keeps playing arm 0 (regret 112, late share 0.17); with it, 19 and 0.95
    policy = MUCB(num_arms=2, num_groups=16, seed=1)
    regret, late = simulate(policy, [[0.9, 0.5], [0.4, 0.6]], 600, 1200)
    assert regret.mean() < 50 and late.mean() > 0.8
    assert bool((policy.restarts >= 1).all())


def test_state_dict_round_trip_mid_window() -> None:
    gen = torch.Generator().manual_seed(2)
    p = MUCB(num_arms=3, window=6, threshold=2.0, gamma=0.3, num_groups=2, seed=0)
    groups = torch.tensor([0, 1, 0, 1])
    for _ in range(3):  # history part full, a random forced-exploration stream to carry over
        p.update(p.select(groups=groups), torch.rand(4, generator=gen), groups=groups)
    q = MUCB(num_arms=3, window=6, threshold=2.0, gamma=0.3, num_groups=2, seed=7)
    q.load_state_dict(p.state_dict())
    for _ in range(8):
        a, b = p.select(groups=groups), q.select(groups=groups)
        assert torch.equal(a, b)
        r = (torch.rand(4, generator=gen) < 0.5).float()
        p.update(a, r, groups=groups)
        q.update(b, r, groups=groups)
    assert all(torch.equal(v, q.state_dict()[k]) for k, v in p.state_dict().items() if isinstance(v, torch.Tensor))
    with pytest.raises(InputValidationError, match="threshold"):  # another configuration
        MUCB(num_arms=3, window=6, threshold=3.0, gamma=0.3, num_groups=2).load_state_dict(p.state_dict())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 5}, "even"),
        ({"window": 0}, "window"),
        ({"window": 4.0}, "window"),
        ({"threshold": -1.0}, "threshold"),
        ({"gamma": 1.5}, "gamma"),
        ({"gamma": -0.1}, "gamma"),
        ({"c": -1.0}, "`c`"),
    ],
)
def test_bad_options_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(InputValidationError, match=match):
        MUCB(num_arms=3, **kwargs)
    with pytest.raises(InputValidationError, match=match):
        make_policy("m_ucb", num_arms=3, **kwargs)
