"""SW-KL-UCB (banditformer.bandits.sw_kl_ucb): KL-UCB's index over the window's statistics, checked by
hand and against a plain-Python window; the arm it picks; learning on a switching problem; checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from banditformer import InputValidationError, make_policy
from banditformer.bandits import KLUCB, SlidingWindowKLUCB
from banditformer.bandits.kl_ucb import bernoulli_kl, kl_ucb_index
from tests.bandits.test_sw_ucb import assert_matches, simulate


@settings(max_examples=40, deadline=None)
@given(
    window=st.integers(1, 6),
    num_groups=st.integers(1, 3),
    batches=st.lists(st.integers(1, 20), min_size=1, max_size=4),
    seed=st.integers(0, 2**31 - 1),
)
def test_window_matches_rows_fed_one_at_a_time(window: int, num_groups: int, batches: list[int], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    p = SlidingWindowKLUCB(num_arms=3, window=window, num_groups=num_groups)
    rows: list[tuple[int, int, float]] = []
    for n in batches:
        g = torch.randint(0, num_groups, (n,), generator=gen)
        a = torch.randint(0, 3, (n,), generator=gen)
        r = torch.rand(n, generator=gen, dtype=torch.float64)
        p.update(a, r, groups=g)
        rows += list(zip(g.tolist(), a.tolist(), r.tolist(), strict=True))
        assert_matches(p, rows)


def kl_bound_by_hand(mean: float, n: float, t: float) -> float:
    """The largest q in [mean, 1] with n kl(mean, q) <= ln t, by a plain bisection of 60 steps."""
    lo, hi = mean, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        kl = float(bernoulli_kl(torch.tensor(mean, dtype=torch.float64), torch.tensor(mid, dtype=torch.float64)))
        lo, hi = (mid, hi) if n * kl <= math.log(t) else (lo, mid)
    return lo


def test_index_by_hand_and_the_arm_picked() -> None:
    # arm 0 was perfect 30 times long ago; the window of 8 holds arm 0: 1, 0, 0 and arm 1: 1, 1, 0, 1, 0
    p = SlidingWindowKLUCB(num_arms=3, window=8, iters=50)
    arms = [0] * 30 + [2, 0, 1, 1, 0, 0, 1, 1, 1]
    rewards = [1.0] * 30 + [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    p.update(torch.tensor(arms), torch.tensor(rewards))
    assert p.counts.tolist() == [[3.0, 5.0, 0.0]] and p.sums.tolist() == [[1.0, 3.0, 0.0]]
    assert p.select(n=1).tolist() == [2]  # arm 2's play left the window: untried again
    p.update(torch.tensor([2]), torch.tensor([0.0]))  # the oldest row (arm 0, reward 1) leaves
    assert p.counts.tolist() == [[2.0, 5.0, 1.0]] and p.sums.tolist() == [[0.0, 3.0, 0.0]]
    table = kl_ucb_index(p.sums, p.counts, p.counts.sum(1), 0.0, 50)[0].tolist()
    by_hand = [kl_bound_by_hand(0.0, 2, 8), kl_bound_by_hand(0.6, 5, 8), kl_bound_by_hand(0.0, 1, 8)]
    assert table == pytest.approx(by_hand, abs=1e-9)
    assert by_hand[1] > max(by_hand[0], by_hand[2])  # 0.93 against 0.65 and 0.875
    assert p.select(n=3).tolist() == [1, 1, 1]
    stationary = KLUCB(num_arms=3)  # the same rows without a window: arm 0's old run still wins
    stationary.update(torch.tensor([*arms, 2]), torch.tensor([*rewards, 0.0]))
    assert stationary.select(n=1).tolist() == [0]


def test_learns_after_a_switch() -> None:
    # arm 0 pays 0.9 for 600 rounds, then 0.4 while arm 1 pays 0.6: KL-UCB on the whole history
    # keeps playing arm 0 (regret 99, late share 0.30); SW-KL-UCB 35, 0.85
    policy = SlidingWindowKLUCB(num_arms=2, num_groups=16, seed=1)
    regret, late = simulate(policy, [[0.9, 0.5], [0.4, 0.6]], 600, 1200)
    assert regret.mean() < 60 and late.mean() > 0.7


def test_state_dict_round_trip_mid_window() -> None:
    gen = torch.Generator().manual_seed(1)
    p = SlidingWindowKLUCB(num_arms=3, window=5, num_groups=2, seed=0)
    groups = torch.tensor([0, 0, 1])
    for _ in range(3):  # group 0 wrapped (6 rounds), group 1 part full (3)
        p.update(p.select(groups=groups), torch.rand(3, generator=gen), groups=groups)
    q = SlidingWindowKLUCB(num_arms=3, window=5, num_groups=2, seed=9)
    q.load_state_dict(p.state_dict())
    for _ in range(4):
        a, b = p.select(groups=groups), q.select(groups=groups)
        assert torch.equal(a, b)
        r = torch.rand(3, generator=gen)
        p.update(a, r, groups=groups)
        q.update(b, r, groups=groups)
    assert all(torch.equal(v, q.state_dict()[k]) for k, v in p.state_dict().items() if isinstance(v, torch.Tensor))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"window": 0}, "window"), ({"window": "10"}, "window"), ({"c": -1.0}, "`c`"), ({"iters": 0}, "iters")],
)
def test_bad_options_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(InputValidationError, match=match):
        SlidingWindowKLUCB(num_arms=3, **kwargs)
    with pytest.raises(InputValidationError, match=match):
        make_policy("sw_kl_ucb", num_arms=3, **kwargs)
