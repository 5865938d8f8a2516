"""Known-answer tests: on Bernoulli problems UCB1 and Thompson sampling find the best arm, and their
mean regret stays under the finite-time UCB1 bound of Auer, Cesa-Bianchi and Fischer (2002, Thm 1).

Each test runs many independent runs at once: run ``s`` is group ``s`` of one policy, so a step is
one batched select and update of ``seeds`` rows.
"""

from __future__ import annotations

import math

import pytest
import torch

from banditformer import make_policy
from banditformer.problems import BernoulliProblem

SEEDS = 24


def auer_ucb1_bound(means: list[float], horizon: int) -> float:
    """Thm 1: E[regret] <= sum_{gap>0} 8 ln n / gap + (1 + pi^2 / 3) sum gap."""
    best = max(means)
    gaps = [best - m for m in means if best - m > 0]
    return sum(8 * math.log(horizon) / g for g in gaps) + (1 + math.pi**2 / 3) * sum(gaps)


def simulate(name: str, means: list[float], horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return per-run cumulative pseudo-regret ``(SEEDS,)`` and per-run plays of each arm in the
    second half of the horizon ``(SEEDS, K)``."""
    problem = BernoulliProblem(means, seed=11)
    policy = make_policy(name, num_arms=len(means), num_groups=SEEDS, seed=5)
    groups = torch.arange(SEEDS)
    regret = torch.zeros(SEEDS, dtype=torch.float64)
    late_plays = torch.zeros(SEEDS, len(means))
    for t in range(horizon):
        arms = policy.select(groups=groups)
        policy.update(arms, problem.pull(arms), groups=groups)
        regret += problem.regret(arms)
        if t >= horizon // 2:
            late_plays[groups, arms] += 1
    return regret, late_plays


@pytest.mark.parametrize("name", ["ucb1", "thompson_beta"])
@pytest.mark.parametrize(
    ("means", "horizon"), [([0.7, 0.3], 1000), ([0.9] + [0.5] * 9, 2000)], ids=["2-armed", "10-armed"]
)
def test_finds_best_arm_with_regret_under_auer_bound(name: str, means: list[float], horizon: int) -> None:
    regret, late_plays = simulate(name, means, horizon)
    assert (late_plays.argmax(1) == 0).double().mean() >= 0.9  # the best arm is the most played, late on
    assert late_plays[:, 0].sum() / late_plays.sum() > 0.75  # and takes most late plays
    assert regret.mean() < auer_ucb1_bound(means, horizon)
    # and regret grows sublinearly: far below always playing a random arm
    uniform = horizon * (max(means) - sum(means) / len(means))
    assert regret.mean() < 0.5 * uniform
