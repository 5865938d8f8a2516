"""Propensities from ``Policy.select(..., propensity=True)`` (banditformer/core/policy.py): exact for
epsilon-greedy, 1 for index policies and greedy inference, a Monte-Carlo estimate for Thompson
sampling that agrees with the policy's own frequencies, and a random stream left as it was."""

from __future__ import annotations

import copy

import torch

from banditformer.bandits import UCB1, EpsilonGreedy, ThompsonBeta


def test_epsilon_greedy_propensities_are_exact_and_match_its_frequencies() -> None:
    p = EpsilonGreedy(num_arms=3, epsilon=0.3, seed=1)
    p.update(torch.tensor([0, 1, 2]), torch.tensor([0.2, 0.9, 0.5]))  # greedy arm: 1
    arms, prop = p.select(n=20000, propensity=True)
    want = torch.where(arms == 1, 0.7 + 0.1, 0.1).double()
    torch.testing.assert_close(prop, want)
    freq = torch.bincount(arms, minlength=3).double() / arms.numel()
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.8, 0.1], dtype=torch.float64), atol=0.01, rtol=0)


def test_an_untried_arm_is_the_greedy_one_for_its_row() -> None:
    p = EpsilonGreedy(num_arms=3, epsilon=0.3, seed=0)  # nothing tried: rows are dealt arms 0, 1, 2
    arms, prop = p.select(n=3, propensity=True)
    greedy = torch.tensor([0, 1, 2])
    torch.testing.assert_close(prop, torch.where(arms == greedy, 0.8, 0.1).double())


def test_index_policies_and_greedy_inference_have_propensity_one() -> None:
    p = UCB1(num_arms=4)
    p.update(torch.tensor([0, 1, 2, 3]), torch.tensor([0.1, 0.2, 0.3, 0.4]))
    _, prop = p.select(n=5, propensity=True)
    assert bool((prop == 1).all())
    t = ThompsonBeta(num_arms=3)
    _, greedy = t.select(n=4, explore=False, propensity=True)
    assert bool((greedy == 1).all())
    arms, empty = t.select(n=0, propensity=True)
    assert arms.shape == (0,) and empty.shape == (0,)


def test_thompson_monte_carlo_propensities_match_its_frequencies_and_leave_the_stream_alone() -> None:
    p = ThompsonBeta(num_arms=3, seed=4)
    p.successes[0] = torch.tensor([3.0, 4.0, 1.0])
    p.failures[0] = torch.tensor([3.0, 2.0, 4.0])
    twin = copy.deepcopy(p)
    arms, prop = p.select(n=8, propensity=True)
    assert torch.equal(arms, twin.select(n=8))  # the estimate's draws were undone
    assert torch.equal(p.select(n=8), twin.select(n=8))  # and the stream goes on alike
    # the probability of each arm, from 40,000 of the policy's own draws
    freq = torch.bincount(twin.select(n=40000), minlength=3).double() / 40000
    se = 0.5 / (p.propensity_samples**0.5)
    assert bool(((prop - freq[arms]).abs() <= 4 * se).all()), (prop, freq[arms])
    assert bool((prop > 0).all() & (prop <= 1).all())


def test_action_probabilities_give_every_arm_and_draw_nothing() -> None:
    e = EpsilonGreedy(num_arms=3, epsilon=0.3, seed=1)
    e.update(torch.tensor([0, 1, 2]), torch.tensor([0.2, 0.9, 0.5]))
    torch.testing.assert_close(e.action_probabilities(n=2), torch.tensor([[0.1, 0.8, 0.1]] * 2, dtype=torch.float64))
    torch.testing.assert_close(e.action_probabilities(n=1, explore=False), torch.tensor([[0.0, 1.0, 0.0]]).double())
    t = ThompsonBeta(num_arms=3, seed=4)
    t.successes[0] = torch.tensor([3.0, 4.0, 1.0])
    t.failures[0] = torch.tensor([3.0, 2.0, 4.0])
    twin = copy.deepcopy(t)
    probs = t.action_probabilities(n=4)
    assert torch.equal(t.select(n=6), twin.select(n=6))  # nothing drawn from the stream
    freq = torch.bincount(twin.select(n=40000), minlength=3).double() / 40000
    torch.testing.assert_close(probs.sum(1), torch.ones(4, dtype=torch.float64))
    assert float((probs - freq).abs().max()) <= 4 * 0.5 / t.propensity_samples**0.5
    u = UCB1(num_arms=3)  # nothing tried: rows are dealt arms 0, 1, 2, one-hot
    assert torch.equal(u.action_probabilities(n=3), torch.eye(3, dtype=torch.float64))


def test_row_independent_policies_estimate_from_repeated_rows_as_the_loop_does() -> None:
    # rows_independent: the Monte-Carlo samples are drawn as repeated rows in a few calls; the
    # estimate must agree with one selection per sample (the loop) within the estimates' error,
    # and the stream is put back either way
    from banditformer import Policy, list_policies, make_policy

    declared = []
    for name in list_policies():
        p = make_policy(name, num_arms=4, context_dim=3, seed=2)
        if not isinstance(p, Policy) or not p.rows_independent:  # a combinatorial one has no propensities
            continue
        declared.append(name)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(40, 3, generator=gen)
        p.update(p.select(x), torch.rand(40, generator=gen), x)
        p.propensity_samples = 4096  # sigma of each frequency <= 0.5 / 64
        rows = x[:5]
        before = p.generator.get_state()
        fast = p.action_probabilities(rows)
        assert torch.equal(p.generator.get_state(), before)
        p.rows_independent = False
        slow = p.action_probabilities(rows)
        assert float((fast - slow).abs().max()) < 6 * 0.5 / 64 * 2**0.5, name
        assert torch.allclose(fast.sum(1), torch.ones(5, dtype=torch.float64))
    assert {"thompson_beta", "thompson_gaussian", "lin_thompson"} <= set(declared)
    assert "thompson_beta_shared" not in declared  # one draw per group couples its rows
