"""SW-UCB (banditformer.bandits.sw_ucb): the window's statistics against a plain-Python window fed one
row at a time, the index by hand, the arm it picks, learning on a switching problem, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from banditformer import InputValidationError, make_policy
from banditformer.bandits import SlidingWindowUCB
from banditformer.bandits.sw_ucb import key_runs, sw_ucb_index
from banditformer.problems import SwitchingBernoulliProblem


def reference_windows(
    rows: list[tuple[int, int, float]], num_groups: int, window: int
) -> list[list[tuple[int, float]]]:
    """Each group's last ``window`` (arm, reward) pairs, oldest first, the rows fed one at a time."""
    kept: list[list[tuple[int, float]]] = [[] for _ in range(num_groups)]
    for g, a, r in rows:
        kept[g] = [*kept[g], (a, r)][-window:]
    return kept


def assert_matches(p, rows: list[tuple[int, int, float]]) -> None:
    """``p``'s counts, sums and ring (read oldest first from ``rounds``) equal the reference's."""
    for g, pairs in enumerate(reference_windows(rows, p.num_groups, p.window)):
        counts = [sum(1 for a, _ in pairs if a == k) for k in range(p.num_arms)]
        sums = [sum(r for a, r in pairs if a == k) for k in range(p.num_arms)]
        assert p.counts[g].tolist() == counts
        assert p.sums[g].tolist() == pytest.approx(sums, abs=1e-12)
        assert int(p.rounds[g]) == sum(1 for gg, _, _ in rows if gg == g)
        start = int(p.rounds[g]) - len(pairs)
        slots = [(start + j) % p.window for j in range(len(pairs))]
        assert p.window_arms[g, slots].tolist() == [a for a, _ in pairs]
        assert p.window_rewards[g, slots].tolist() == pytest.approx([r for _, r in pairs], abs=0)
        assert int((p.window_arms[g] >= 0).sum()) == len(pairs)  # the other slots are empty


def test_key_runs() -> None:
    order, begin, rank, size = key_runs(torch.tensor([2, 0, 2, 2, 0, 1]))
    assert order.tolist() == [1, 4, 5, 0, 2, 3]
    assert rank.tolist() == [0, 0, 1, 2, 1, 0] and size.tolist() == [3, 2, 3, 3, 2, 1]
    assert [int(order[begin[i] + rank[i]]) for i in range(6)] == list(range(6))


def test_crafted_window_statistics() -> None:
    p = SlidingWindowUCB(num_arms=3, window=4, num_groups=2)
    groups = torch.tensor([0, 0, 1, 0, 0, 0, 0, 1])  # six rows of group 0: a batch longer than its window
    arms = torch.tensor([2, 0, 1, 1, 1, 0, 2, 1])
    rewards = torch.tensor([0.9, 0.1, 0.3, 0.5, 0.25, 1.0, 0.75, 0.6])
    p.update(arms, rewards, groups=groups)
    # group 0 keeps rows 3..6: arms 1, 1, 0, 2; group 1 rows 2 and 7: arm 1 twice
    assert p.counts.tolist() == [[1.0, 2.0, 1.0], [0.0, 2.0, 0.0]]
    assert p.sums.tolist() == [[1.0, 0.75, 0.75], [0.0, pytest.approx(0.9), 0.0]]
    assert p.rounds.tolist() == [6, 2]
    p.update(torch.tensor([0]), torch.tensor([0.5]), groups=torch.tensor([0]))  # pushes out arm 1 (0.5)
    assert p.counts[0].tolist() == [2.0, 1.0, 1.0] and p.sums[0].tolist() == [1.5, 0.25, 0.75]


@settings(max_examples=60, deadline=None)
@given(
    window=st.integers(1, 6),
    num_groups=st.integers(1, 3),
    batches=st.lists(st.integers(1, 20), min_size=1, max_size=5),
    seed=st.integers(0, 2**31 - 1),
)
def test_window_matches_rows_fed_one_at_a_time(window: int, num_groups: int, batches: list[int], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    p = SlidingWindowUCB(num_arms=3, window=window, num_groups=num_groups)
    rows: list[tuple[int, int, float]] = []
    for n in batches:  # batches often longer than the window, rows of several groups mixed
        g = torch.randint(0, num_groups, (n,), generator=gen)
        a = torch.randint(0, 3, (n,), generator=gen)
        r = torch.rand(n, generator=gen, dtype=torch.float64)
        p.update(a, r, groups=g)
        rows += list(zip(g.tolist(), a.tolist(), r.tolist(), strict=True))
        assert_matches(p, rows)


def test_index_by_hand_and_the_arm_picked() -> None:
    # window of 5 over arms (0, 1, 0, 1, 1) with rewards (1, 0.5, 0, 0.5, 1): old rows left
    p = SlidingWindowUCB(num_arms=3, window=5, c=0.5, xi=0.6)
    p.update(torch.tensor([2, 2, 0, 1, 0, 1, 1]), torch.tensor([1.0, 1.0, 1.0, 0.5, 0.0, 0.5, 1.0]))
    assert p.counts.tolist() == [[2.0, 3.0, 0.0]]
    table = sw_ucb_index(p.sums, p.counts, p.counts.sum(1), p.c, p.xi)[0]
    assert table[0].item() == pytest.approx(0.5 + 0.5 * math.sqrt(0.6 * math.log(5) / 2))
    assert table[1].item() == pytest.approx(2 / 3 + 0.5 * math.sqrt(0.6 * math.log(5) / 3))
    assert table[2].item() == math.inf  # arm 2's plays left the window: it is untried again
    assert p.select(n=2).tolist() == [2, 2]
    p.update(torch.tensor([2]), torch.tensor([0.0]))  # now arms 1, 0, 1, 1, 2
    # arm 0: 0 + 0.5 sqrt(0.6 ln 5 / 1) = 0.49 < arm 1: 2/3 + 0.5 sqrt(0.6 ln 5 / 3) = 0.95
    assert p.counts.tolist() == [[1.0, 3.0, 1.0]] and p.select(n=1).tolist() == [1]
    assert p.expected_rewards(n=1).tolist() == [[0.0, pytest.approx(2 / 3), 0.0]]


def test_the_window_forgets_a_good_arm() -> None:
    # arm 0 paid 1 long ago; UCB1 would still trust it, SW-UCB only sees its recent zeros
    p = SlidingWindowUCB(num_arms=2, window=6, c=0.0)
    p.update(torch.tensor([0] * 20 + [1, 0, 1, 0, 1, 0]), torch.tensor([1.0] * 20 + [0.5, 0.0] * 3))
    assert p.counts.tolist() == [[3.0, 3.0]] and p.sums.tolist() == [[0.0, 1.5]]
    assert p.select(n=1).tolist() == [1]


def simulate(policy, phases: list[list[float]], period: int, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-run regret and share of the last 200 rounds on the last phase's best arm (one run per group)."""
    env = SwitchingBernoulliProblem(phases, period=period, seed=3)
    groups = torch.arange(policy.num_groups)
    regret = torch.zeros(policy.num_groups, dtype=torch.float64)
    late = torch.zeros(policy.num_groups)
    for t in range(horizon):
        arms = policy.select(groups=groups)
        policy.update(arms, env.pull(arms), groups=groups)
        regret += env.regret(arms)
        if t >= horizon - 200:
            late += (arms == env.best_arm_of_last_round).float()
    return regret, late / 200


def test_learns_after_a_switch() -> None:
    # arm 0 pays 0.9 for 600 rounds, then 0.4 while arm 1 pays 0.6: a policy that kept the whole
    # history (window 10,000 here) keeps playing arm 0 (regret 107, late share 0.25); SW-UCB 31, 0.9
    regret, late = simulate(SlidingWindowUCB(num_arms=2, num_groups=16, seed=1), [[0.9, 0.5], [0.4, 0.6]], 600, 1200)
    assert regret.mean() < 60 and late.mean() > 0.75 and late.min() > 0.5


def test_regret_on_the_three_phase_problem() -> None:
    # bernoulli_switching's phases, 1,500 rounds: SW-UCB 52, the same without forgetting 221
    phases = [[0.8, 0.5, 0.2], [0.2, 0.5, 0.8], [0.5, 0.8, 0.2]]
    regret, late = simulate(SlidingWindowUCB(num_arms=3, num_groups=16, seed=1), phases, 500, 1500)
    assert regret.mean() < 100 and late.mean() > 0.8


def test_state_dict_round_trip_mid_window() -> None:
    gen = torch.Generator().manual_seed(0)
    p = SlidingWindowUCB(num_arms=4, window=7, num_groups=2, seed=0)
    groups = torch.tensor([0, 1, 0, 1, 0])
    for _ in range(3):  # 9 rounds of group 0, 6 of group 1: one window wrapped, one part full
        p.update(p.select(groups=groups), torch.rand(5, generator=gen), groups=groups)
    q = SlidingWindowUCB(num_arms=4, window=7, num_groups=2, seed=5)
    q.load_state_dict(p.state_dict())
    for _ in range(4):
        a, b = p.select(groups=groups), q.select(groups=groups)
        assert torch.equal(a, b)
        r = torch.rand(5, generator=gen)
        p.update(a, r, groups=groups)
        q.update(b, r, groups=groups)
    assert all(torch.equal(v, q.state_dict()[k]) for k, v in p.state_dict().items() if isinstance(v, torch.Tensor))


def test_loads_of_an_inconsistent_window_are_refused() -> None:
    p = SlidingWindowUCB(num_arms=3, window=4)
    p.update(torch.tensor([0, 1, 2]), torch.tensor([0.1, 0.2, 0.3]))
    good = p.state_dict()
    for key, value, match in [
        ("window_arms", torch.tensor([[0, 1, 3, -1]]), r"window_arms` in \[-1, 3\)"),
        ("counts", torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64), "tally|plays in"),
        ("rounds", torch.tensor([5]), r"min\(`rounds`, 4\)"),
    ]:
        bad = {**good, key: value}
        with pytest.raises(InputValidationError, match=match):
            p.load_state_dict(bad)
        assert p.counts.tolist() == [[1.0, 1.0, 1.0]]  # unchanged
    with pytest.raises(InputValidationError, match="window"):  # another configuration
        SlidingWindowUCB(num_arms=3, window=5).load_state_dict(good)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 0}, "window"),
        ({"window": 2.5}, "window"),
        ({"window": True}, "window"),
        ({"c": -0.1}, "`c`"),
        ({"xi": 0.0}, "`xi`"),
        ({"xi": float("nan")}, "`xi`"),
    ],
)
def test_bad_options_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(InputValidationError, match=match):
        SlidingWindowUCB(num_arms=3, **kwargs)
    with pytest.raises(InputValidationError, match=match):
        make_policy("sw_ucb", num_arms=3, **kwargs)
