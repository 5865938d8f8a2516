"""Bandit problems: the non-stationary one switches its means on schedule."""

from __future__ import annotations

import pytest
import torch

import banditformer as bf
from banditformer.harness.problems import SwitchingBernoulliProblem


def test_switching_problem_changes_means_every_period_and_scores_regret_on_the_round_played() -> None:
    p = SwitchingBernoulliProblem([[0.9, 0.1], [0.2, 0.7]], period=3, seed=0)
    arms = torch.tensor([0, 1])
    seen = []
    for _ in range(7):
        rewards = p.pull(arms)
        assert rewards.shape == (2,) and set(rewards.tolist()) <= {0.0, 1.0}
        seen.append(p.regret(arms).tolist())
    phase0, phase1 = [0.0, 0.8], [0.5, 0.0]
    expected = [phase0] * 3 + [phase1] * 3 + [phase0]
    torch.testing.assert_close(torch.tensor(seen, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64))
    many = SwitchingBernoulliProblem([[1.0, 0.0], [0.0, 1.0]], period=2, seed=1)
    pays = [many.pull(torch.tensor([0]))[0].item() for _ in range(4)]
    assert pays == [1.0, 1.0, 0.0, 0.0]
    assert "bernoulli_switching" in bf.list_problems()


@pytest.mark.parametrize(("phases", "match"), [([0.5, 0.5], "table"), ([[0.5, 1.5]], r"\[0, 1\]")])
def test_switching_problem_checks_its_phases(phases, match: str) -> None:
    with pytest.raises(bf.InputValidationError, match=match):
        SwitchingBernoulliProblem(phases)
