"""MOSS-anytime: the index against its formula by hand, the arm it picks, batches and groups, learning."""

from __future__ import annotations

import math

import pytest
import torch

from banditformer import InputValidationError, make_policy
from banditformer.bandits import MOSS
from banditformer.bandits.moss import moss_index
from tests.bandits.test_known_answers import simulate

F64 = torch.float64


def by_hand(mean: float, n: int, t: int, k: int, alpha: float = 1.0) -> float:
    return mean + math.sqrt((1 + alpha) / 2 * max(0.0, math.log(t / (k * n))) / n)


def test_moss_index_matches_the_formula() -> None:
    sums = torch.tensor([3.0, 1.0, 0.0, 2.0], dtype=F64)
    counts = torch.tensor([4.0, 2.0, 0.0, 10.0], dtype=F64)
    t = torch.tensor(16.0, dtype=F64)
    idx = moss_index(sums, counts, t)
    assert idx[0].item() == pytest.approx(0.75)  # n = t / K: ln 1 = 0, no bonus
    assert idx[1].item() == pytest.approx(0.5 + math.sqrt(math.log(2.0) / 2))
    assert idx[2].item() == math.inf
    assert idx[3].item() == pytest.approx(0.2)  # n > t / K: ln+ is 0, the index is the mean
    wide = moss_index(sums, counts, t, alpha=2.0)
    assert wide[1].item() == pytest.approx(by_hand(0.5, 2, 16, 4, alpha=2.0))
    assert wide[1].item() == pytest.approx(0.5 + math.sqrt(1.5 * math.log(2.0) / 2))


def test_moss_index_is_batched_over_groups() -> None:
    sums = torch.tensor([[4.2, 0.8, 2.0], [1.0, 5.0, 9.0]], dtype=F64)
    counts = torch.tensor([[6.0, 2.0, 4.0], [2.0, 10.0, 12.0]], dtype=F64)
    idx = moss_index(sums, counts, counts.sum(1))
    for g in range(2):
        t = int(counts[g].sum())
        want = [by_hand(float(s / n), int(n), t, 3) for s, n in zip(sums[g], counts[g], strict=True)]
        assert idx[g].tolist() == pytest.approx(want)


def _crafted(num_groups: int = 2) -> MOSS:
    # group 0: means 0.7, 0.4, 0.5 after 6, 2, 4 plays (t = 12, t / K = 4): arm 1 gets the only big bonus
    # group 1: means 0.5, 0.5, 0.75 after 2, 10, 12 plays (t = 24, t / K = 8)
    p = MOSS(num_arms=3, num_groups=num_groups, seed=0)
    p.counts.copy_(torch.tensor([[6.0, 2.0, 4.0], [2.0, 10.0, 12.0]], dtype=F64)[:num_groups])
    p.sums.copy_(torch.tensor([[4.2, 0.8, 2.0], [1.0, 5.0, 9.0]], dtype=F64)[:num_groups])
    return p


def test_picks_the_arm_of_highest_index_not_of_highest_mean() -> None:
    p = _crafted(num_groups=1)
    # indices 0.7, 0.4 + sqrt(ln 2 / 2) = 0.989, 0.5: the least played arm, though its mean is lowest
    assert by_hand(0.4, 2, 12, 3) > by_hand(0.7, 6, 12, 3) > by_hand(0.5, 4, 12, 3)
    assert p.select(n=3).tolist() == [1, 1, 1]  # tried arms: every row of the group plays the argmax
    assert p.select(n=1, explore=False).tolist() == [0]  # greedy: the empirical mean


def test_rows_and_groups_use_their_own_statistics() -> None:
    p = _crafted()
    # group 1: 0.5 + sqrt(ln 4 / 2) = 1.33, 0.5, 0.75 (arms 1 and 2 have n >= t / K)
    assert by_hand(0.5, 2, 24, 3) > 0.75
    groups = torch.tensor([0, 1, 1, 0, 1])
    assert p.select(groups=groups).tolist() == [1, 0, 0, 1, 0]
    p.counts[1, 0] = 0.0  # an untried arm goes first, in its group only
    p.sums[1, 0] = 0.0
    assert p.select(groups=groups).tolist() == [1, 0, 0, 1, 0]
    p.counts[1, 2] = 0.0
    p.sums[1, 2] = 0.0
    assert p.select(groups=groups).tolist() == [1, 0, 2, 1, 0]  # untried arms 0, 2 dealt round-robin


def test_untried_arms_each_play_once_before_any_repeat() -> None:
    p = MOSS(num_arms=5, seed=0)
    played = []
    for _ in range(5):
        arm = p.select(n=1)
        p.update(arm, torch.rand(1))
        played.append(int(arm))
    assert sorted(played) == list(range(5))
    assert MOSS(num_arms=5).select(n=5).tolist() == [0, 1, 2, 3, 4]


def test_a_batched_update_adds_counts_and_sums() -> None:
    p = MOSS(num_arms=3, num_groups=2)
    p.update(torch.tensor([0, 2, 0, 1]), torch.tensor([1.0, 0.5, 0.25, 0.0]), groups=torch.tensor([0, 1, 0, 0]))
    assert p.counts.tolist() == [[2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert p.sums.tolist() == [[1.25, 0.0, 0.0], [0.0, 0.0, 0.5]]


@pytest.mark.parametrize(
    ("means", "horizon", "most"),
    [([0.7, 0.3], 1000, 20.0), ([0.9] + [0.5] * 9, 2000, 90.0)],
    ids=["2-armed", "10-armed"],
)
def test_learns_the_best_arm(means: list[float], horizon: int, most: float) -> None:
    # 24 runs as 24 groups, fixed seeds. MOSS's mean regret is about 9 and 58 here; UCB1 has 21 and 215,
    # greedy 68 and 106: an index without MOSS's vanishing bonus misses these bounds.
    regret, late_plays = simulate("moss", means, horizon)
    assert (late_plays.argmax(1) == 0).all()
    assert late_plays[:, 0].sum() / late_plays.sum() > 0.95
    assert regret.mean() < most


def test_registered_and_options_checked() -> None:
    assert type(make_policy("moss", num_arms=2)) is MOSS
    assert float(MOSS(num_arms=2, alpha=1.35).alpha) == 1.35
    with pytest.raises(InputValidationError, match=r"expected `alpha` in \[0, inf\], got -1.0"):
        MOSS(num_arms=2, alpha=-1.0)
    with pytest.raises(InputValidationError, match="expected `alpha` to be finite"):
        MOSS(num_arms=2, alpha=math.inf)
    with pytest.raises(InputValidationError, match="expected `alpha` to be a number, got str"):
        MOSS(num_arms=2, alpha="1")  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="expected `num_arms`"):
        MOSS(num_arms=0)
    with pytest.raises(InputValidationError, match="expected `alpha` = 1"):  # a checkpoint of another alpha
        MOSS(num_arms=2).load_state_dict(MOSS(num_arms=2, alpha=2.0).state_dict())
