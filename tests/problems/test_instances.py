"""Bandit problems: the non-stationary one switches its means on schedule."""

from __future__ import annotations

import pytest
import torch

import banditformer as bf
from banditformer.problems import SwitchingBernoulliProblem


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


def test_topk_semibandit_pays_each_base_arm_and_scores_regret_against_the_best_set() -> None:
    from banditformer.problems import TopKSemiBanditProblem

    p = TopKSemiBanditProblem([1.0, 0.0, 0.5, 0.25], k=2, seed=0)
    chosen = torch.tensor([[True, False, True, False], [False, True, False, True]])
    r = p.pull(chosen)
    assert r.shape == (2, 4) and r[0, 0] == 1.0 and r[1, 1] == 0.0
    torch.testing.assert_close(p.regret(chosen), torch.tensor([0.0, 1.25], dtype=torch.float64))
    with pytest.raises(bf.InputValidationError, match="expected 2 chosen arms per row, got"):
        p.pull(torch.tensor([[True, True, True, False]]))
    with pytest.raises(bf.InputValidationError, match="k"):
        TopKSemiBanditProblem([0.5, 0.5], k=3)


def test_linear_contextual_rewards_are_linear_in_the_context_and_in_the_unit_interval() -> None:
    from banditformer.problems import LinearContextualProblem

    p = LinearContextualProblem(num_arms=4, context_dim=5, seed=3)
    x = p.contexts(256)
    assert x.shape == (256, 5) and bool((x[:, 0] == 1).all())
    means = x.double() @ p.theta.T
    assert bool(((means >= 0) & (means <= 1)).all())
    best = means.argmax(1)
    assert float(p.regret(best).abs().max()) < 1e-6
    worst = means.argmin(1)
    torch.testing.assert_close(p.regret(worst), means.max(1).values - means.min(1).values, atol=1e-6, rtol=0)
    # the instance is fixed by instance_seed; seed only moves the stream
    assert torch.equal(LinearContextualProblem(4, 5, seed=9).theta, p.theta)
    pulls = torch.stack([p.pull(best) for _ in range(200)]).mean(0)  # 200 draws of the same round
    assert float((pulls - means.max(1).values.float()).abs().mean()) < 0.1


def test_a_contextual_problem_needs_a_round_before_pull() -> None:
    from banditformer.problems import LinearContextualProblem

    p = LinearContextualProblem(seed=0)
    with pytest.raises(bf.InputValidationError, match=r"contexts\(n\)"):
        p.pull(torch.tensor([0]))
    p.contexts(3)
    with pytest.raises(bf.InputValidationError, match="arms"):
        p.pull(torch.tensor([0, 1]))  # 2 rows for a round of 3


@pytest.mark.parametrize(("name", "arms", "dim"), [("digits_bandit", 10, 65), ("wine_bandit", 3, 14)])
def test_supervised_data_sets_become_bandits_whose_regret_counts_mistakes(name: str, arms: int, dim: int) -> None:
    pytest.importorskip("sklearn")
    p = bf.make_problem(name, seed=0)
    assert (p.num_arms, p.context_dim) == (arms, dim)
    x = p.contexts(50)
    assert x.shape == (50, dim) and bool((x[:, -1] == 1).all())
    truth = p._round.argmax(1)
    assert float(p.regret(truth).sum()) == 0.0 and bool((p.pull(truth) == 1).all())
    wrong = (truth + 1) % arms
    assert float(p.regret(wrong).sum()) == 50.0 and bool((p.pull(wrong) == 0).all())
    with pytest.raises(bf.InputValidationError, match="data set"):
        from banditformer.problems import classification_problem

        classification_problem("iris")


def test_a_classification_problem_needs_samples_and_two_classes() -> None:
    from banditformer.problems import ClassificationProblem

    with pytest.raises(bf.InputValidationError, match="2 classes"):
        ClassificationProblem(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(bf.InputValidationError, match="samples"):
        ClassificationProblem(torch.randn(1, 2), torch.tensor([1]))
