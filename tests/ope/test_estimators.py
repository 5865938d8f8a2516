"""Off-policy evaluation (banditformer/ope): the estimators' known answers on a crafted log, a
simulated log from which IPS, SNIPS and DR recover a known policy's value in their intervals, the doubly
robust estimate with a right model or right propensities, and logs that are data."""

from __future__ import annotations

import re

import pytest
import torch

from banditformer import InputValidationError
from banditformer.bandits import EpsilonGreedy
from banditformer.ope import (
    BanditLog,
    direct_method,
    doubly_robust,
    effective_sample_size,
    estimate_all,
    fit_reward_model,
    ips,
    snips,
    target_probabilities,
)

THETA = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [0.3, 0.3]], dtype=torch.float64)  # arm a pays sigmoid(theta_a . x)


def world(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Contexts ``(n, 2)`` and each arm's mean reward ``(n, 3)``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return x, torch.sigmoid(x @ THETA.T)


def target_of(x: torch.Tensor) -> torch.Tensor:
    """A fixed target: arm 0 where x0 > x1, else arm 1, 10% uniform: ``(n, 3)``."""
    best = torch.where(x[:, 0] > x[:, 1], 0, 1)
    return 0.9 * torch.nn.functional.one_hot(best, 3).double() + 0.1 / 3


def simulated_log(n: int, seed: int) -> tuple[BanditLog, torch.Tensor, float]:
    """A log of epsilon-greedy (0.3) learning as it goes, with its exact propensities; the target's
    action probabilities on it and the target's true value (from 200,000 fresh contexts)."""
    x, means = world(n, seed)
    logger = EpsilonGreedy(num_arms=3, epsilon=0.3, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    actions, props, rewards = [], [], []
    for start in range(0, n, 50):
        arms, p = logger.select(n=min(50, n - start), propensity=True)
        r = torch.bernoulli(means[start : start + 50].gather(1, arms.unsqueeze(1)).squeeze(1), generator=gen)
        logger.update(arms, r.float())
        actions.append(arms), props.append(p), rewards.append(r)
    log = BanditLog(torch.cat(actions), torch.cat(rewards), torch.cat(props), 3, x)
    fresh, fresh_means = world(200_000, seed + 99)
    true = float((target_of(fresh) * fresh_means).sum(1).mean())
    return log, target_of(x), true


def test_known_answers_on_a_crafted_log() -> None:
    log = BanditLog(torch.tensor([0, 1, 0, 2]), torch.tensor([1.0, 0.5, 0.0, 1.0]),
                    torch.tensor([0.5, 0.25, 0.5, 0.25]), 3)  # fmt: skip
    target = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    w = torch.tensor([2.0, 2.0, 2.0, 4.0], dtype=torch.float64)  # target / propensity on the logged action
    r = log.reward
    assert ips(log, target).value == pytest.approx(float((w * r).mean()))  # (2 + 1 + 0 + 4) / 4
    assert snips(log, target).value == pytest.approx(7.0 / 10.0)
    q = torch.full((4, 3), 0.5, dtype=torch.float64)
    assert direct_method(log, target, q).value == pytest.approx(0.5)
    dr = doubly_robust(log, target, q)  # 0.5 + mean(w (r - 0.5)) = 0.5 + (1 + 0 - 1 + 2) / 4
    assert dr.value == pytest.approx(1.0)
    assert ips(log, target).stderr == pytest.approx(float((w * r).std()) / 2)
    # SNIPS' delta-method error: the spread of w (r - 0.7) / mean(w), over sqrt(n)
    resid = w * (r - 0.7) / w.mean()  # 0.24, -0.16, -0.56, 0.48
    assert snips(log, target).stderr == pytest.approx(float(resid.std()) / 2)
    assert doubly_robust(log, target, q).stderr == pytest.approx(float((0.5 + w * (r - 0.5)).std()) / 2)


def test_a_context_free_reward_model_is_the_mean_per_action() -> None:
    log = BanditLog(torch.tensor([0, 1] * 4), torch.ones(8), torch.full((8,), 0.5), 2)
    torch.testing.assert_close(fit_reward_model(log), torch.ones(8, 2, dtype=torch.float64), atol=1e-6, rtol=0)
    assert direct_method(log, torch.tensor([[1.0, 0.0]] * 8)).value == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_estimator_recovers_a_known_policy_value_within_its_interval(seed: int) -> None:
    log, target, true = simulated_log(6000, seed)
    results = estimate_all(log, target)
    for name in ("ips", "snips", "dr"):
        est = results[name]
        assert est.covers(true), (name, est, true)
        assert est.stderr < 0.04, (name, est)  # an interval narrow enough to mean something
    # the direct method's linear model is misspecified (the means are sigmoids): it is biased, and
    # its interval, which counts only the rounds' spread, misses (see the DR test for a right model)
    assert results["dm"].stderr < 0.005 and abs(results["dm"].value - true) < 0.05
    # the logging policy's own average reward is not the target's value: the estimators had work to do
    assert abs(float(log.reward.mean()) - true) > 0.05


def test_doubly_robust_with_the_true_model_needs_no_propensities_and_with_a_wrong_model_leans_on_them() -> None:
    log, target, true = simulated_log(6000, 2)
    _, means = world(6000, 2)
    assert doubly_robust(log, target, means).covers(true)
    assert direct_method(log, target, means).covers(true)
    wrong = torch.full_like(means, 0.9)  # a badly wrong model: DM is off, DR corrects it
    assert not direct_method(log, target, wrong).covers(true)
    assert doubly_robust(log, target, wrong).covers(true)


def test_the_reward_model_is_cross_fitted_ridge_per_action() -> None:
    log, _, _ = simulated_log(3000, 3)
    q = fit_reward_model(log)
    _, means = world(3000, 3)
    assert q.shape == (3000, 3) and float((q - means).abs().mean()) < 0.1


def test_a_log_is_data_and_bad_logs_are_refused(tmp_path) -> None:
    log, target, _ = simulated_log(200, 4)
    path = log.save(tmp_path / "log.pt")
    again = BanditLog.load(path)
    assert torch.equal(again.action, log.action) and torch.equal(again.context, log.context)
    assert ips(again, target).value == ips(log, target).value
    (tmp_path / "bad.pt").write_bytes(b"not a log")
    with pytest.raises(InputValidationError, match="does not load"):
        BanditLog.load(tmp_path / "bad.pt")
    torch.save({"action": log.action, "reward": log.reward, "propensity": log.propensity,
                "num_arms": torch.tensor(2.9)}, tmp_path / "float_k.pt")  # fmt: skip
    with pytest.raises(InputValidationError, match="num_arms"):
        BanditLog.load(tmp_path / "float_k.pt")
    torch.save({"action": torch.zeros(2)}, tmp_path / "partial.pt")
    with pytest.raises(InputValidationError, match="expected a bandit log with"):
        BanditLog.load(tmp_path / "partial.pt")
    with pytest.raises(InputValidationError, match=r"propensities in \(0, 1\]"):
        BanditLog(torch.tensor([0]), torch.tensor([1.0]), torch.tensor([0.0]), 2)
    with pytest.raises(InputValidationError, match=r"actions in \[0, 2\)"):
        BanditLog(torch.tensor([2]), torch.tensor([1.0]), torch.tensor([0.5]), 2)
    with pytest.raises(InputValidationError, match="action probabilities"):
        ips(log, torch.ones(200, 3))
    with pytest.raises(InputValidationError, match="shape"):
        ips(log, target[:5])


# ------------------------------------------------- a target policy along the log, pooled logs, ESS
def test_a_fixed_target_gives_its_action_probabilities_on_every_logged_context() -> None:
    from banditformer.bandits import LinUCB

    log, _, _ = simulated_log(300, 5)
    eps = EpsilonGreedy(num_arms=3, epsilon=0.2, seed=0)
    eps.update(torch.tensor([2, 1, 0]), torch.tensor([1.0, 0.0, 0.0]))  # every arm tried; arm 2 the best
    state = {k: v.clone() for k, v in eps.state_dict().items() if isinstance(v, torch.Tensor)}
    got = target_probabilities(log, eps, learn=False)
    assert torch.equal(got, eps.action_probabilities(n=300))  # the same row, 300 times
    assert torch.allclose(got[0], torch.tensor([0.2 / 3, 0.2 / 3, 0.8 + 0.2 / 3], dtype=torch.float64))
    assert all(torch.equal(v, eps.state_dict()[k]) for k, v in state.items())  # it did not learn
    lin = LinUCB(num_arms=3, context_dim=2, seed=0)
    greedy = target_probabilities(log, lin, learn=False, explore=False)
    assert torch.equal(greedy, lin.action_probabilities(log.context, explore=False))


@pytest.mark.parametrize("batch", [1, 7])
def test_a_learning_target_steps_through_the_log_as_a_hand_loop_does(batch: int) -> None:
    from banditformer.bandits import LinUCB

    log, _, _ = simulated_log(120, 6)
    walked = LinUCB(num_arms=3, context_dim=2, seed=0)
    got = target_probabilities(log, walked, batch=batch)
    by_hand, rows = LinUCB(num_arms=3, context_dim=2, seed=0), []
    for start in range(0, 120, batch):
        ctx = log.context[start : start + batch]
        rows.append(by_hand.action_probabilities(ctx))
        by_hand.update(log.action[start : start + batch], log.reward[start : start + batch], ctx)
    assert torch.equal(got, torch.cat(rows))
    assert torch.equal(walked.gram, by_hand.gram)  # it learnt every logged round
    assert not torch.equal(got[0], got[-1])


def test_a_target_that_does_not_fit_the_log_is_refused_before_it_changes() -> None:
    from banditformer.bandits import CTS, UCB1, LinUCB, ThompsonGaussian

    log, _, _ = simulated_log(50, 7)
    free = BanditLog(log.action, log.reward, log.propensity, 3)
    cases = [
        (log, CTS(num_arms=3), "expected a one-arm Policy to evaluate"),
        (log, UCB1(num_arms=4), "expected a policy of the log's 3 arms, got 4"),
        (free, LinUCB(num_arms=3, context_dim=2), "expected a log with contexts for contextual policy LinUCB"),
        (log, LinUCB(num_arms=3, context_dim=5), "expected a policy of the log's context size 2, got context_dim 5"),
    ]
    for one, policy, says in cases:
        with pytest.raises(InputValidationError, match=re.escape(says)):
            target_probabilities(one, policy)
    shifted = BanditLog(log.action, log.reward + 2.0, log.propensity, 3, log.context)
    ucb = UCB1(num_arms=3)
    before = ucb.counts.clone()
    with pytest.raises(InputValidationError, match=r"expected the log's rewards in UCB1's reward range \[0, 1\]"):
        target_probabilities(shifted, ucb)
    assert torch.equal(ucb.counts, before)
    assert target_probabilities(shifted, ucb, learn=False).shape == (50, 3)  # a fixed target needs no range
    assert target_probabilities(shifted, ThompsonGaussian(num_arms=3, seed=0), batch=25).shape == (50, 3)
    with pytest.raises(InputValidationError, match="batch"):
        target_probabilities(log, ucb, batch=0)


def test_pooled_logs_and_the_effective_sample_size() -> None:
    a, _, _ = simulated_log(100, 8)
    b, _, _ = simulated_log(60, 9)
    both = BanditLog.cat([a, b])
    assert len(both) == 160 and torch.equal(both.context[100:], b.context) and both.context_dim == 2
    with pytest.raises(InputValidationError, match="expected logs of one problem"):
        BanditLog.cat([a, BanditLog(a.action, a.reward, a.propensity, 3)])
    with pytest.raises(InputValidationError, match="one or more BanditLogs"):
        BanditLog.cat([])
    log = BanditLog(torch.tensor([0, 1, 0, 1]), torch.ones(4), torch.full((4,), 0.5), 2)
    assert effective_sample_size(log, torch.full((4, 2), 0.5)) == pytest.approx(4.0)  # the logger itself
    assert effective_sample_size(log, torch.tensor([[1.0, 0.0]] * 4)) == pytest.approx(2.0)  # half the rounds
