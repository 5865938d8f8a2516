"""Regression tests for robustness: state loading, dtype casts, numerics at the edges."""

from __future__ import annotations

import copy
import io

import pytest
import torch

from banditformer import InputValidationError, make_policy
from tests.bandits.helpers import ALL, build, play, state_equal


@pytest.mark.parametrize("name", ALL)
def test_saved_state_survives_torch_save_and_weights_only_load(name: str) -> None:
    p = build(name, 4, seed=0)
    play(p, 6, torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    torch.save(p.state_dict(), buf)
    buf.seek(0)
    q = build(name, 4, seed=5)
    q.load_state_dict(torch.load(buf, weights_only=True))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert all(torch.equal(play(p, 5, g1)[0], play(q, 5, g2)[0]) for _ in range(3))


@pytest.mark.parametrize("name", ALL)
def test_a_failed_load_changes_nothing(name: str) -> None:
    p = build(name, 3, seed=1)
    q = build(name, 4, seed=2)
    play(q, 5, torch.Generator().manual_seed(0))
    before = copy.deepcopy(q)
    with pytest.raises(InputValidationError, match=r"expected `.*` (of shape|= \d)"):
        q.load_state_dict(p.state_dict())
    assert state_equal(q, before, exact=True)
    with pytest.raises(InputValidationError, match="missing keys"):
        q.load_state_dict({})
    assert state_equal(q, before, exact=True)


def test_state_of_another_policy_class_is_refused() -> None:
    ucb, kl = make_policy("ucb1", num_arms=3), make_policy("kl_ucb", num_arms=3, c=2.0)
    with pytest.raises(InputValidationError, match=r"expected the state of a KLUCB .* got UCB1"):
        kl.load_state_dict(ucb.state_dict())
    assert float(kl.c) == 2.0


@pytest.mark.parametrize("name", ["ucb1", "thompson_beta", "cts", "linucb", "bucketed", "epsilon_greedy"])
def test_casting_a_model_keeps_policy_statistics_exact(name: str) -> None:
    model = torch.nn.ModuleDict({"policy": build(name, 3, seed=0), "linear": torch.nn.Linear(2, 2)})
    p = model["policy"]
    play(p, 5, torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in p.state_dict().items() if isinstance(v, torch.Tensor)}
    model.to(torch.bfloat16)
    assert model["linear"].weight.dtype == torch.bfloat16
    after = p.state_dict()
    for key, value in before.items():  # same dtype, same value to the last bit (bf16 keeps 8 bits)
        assert after[key].dtype == value.dtype and torch.equal(after[key], value), key
    play(p, 5, torch.Generator().manual_seed(0))  # still works
    assert float(p.arm_counts.sum()) > 0


@pytest.mark.parametrize("name", ["linucb", "lin_thompson"])
def test_linear_policies_fit_ill_conditioned_designs_without_nan(name: str) -> None:
    # 1e16 + ridge rounds to 1e16: the Cholesky factorisation fails and the spectral fallback
    # runs. Its fit must stay finite and still be the ridge estimate, not NaN or a lost direction.
    p = make_policy(name, num_arms=2, context_dim=2, seed=0)
    x = torch.tensor([[1e8, 1e8]], dtype=torch.float64)
    assert int(torch.linalg.cholesky_ex(x.T @ x + torch.eye(2, dtype=torch.float64))[1]) > 0  # the path under test
    p.update(torch.tensor([0]), torch.tensor([0.5]), x)
    theta, a_inv = p.fit()
    assert bool(torch.isfinite(theta).all() and torch.isfinite(a_inv).all())
    assert p.expected_rewards(x)[0].tolist() == pytest.approx([0.5, 0.0])  # arm 0 predicts what it was fed
    _, width = p.predict(x, torch.zeros(1, dtype=torch.long))
    assert bool(torch.isfinite(width).all()) and float(width[0, 1]) > 1e7  # arm 1 is unexplored
    if name == "linucb":
        assert p.select(x).tolist() == [1]  # the widest arm: optimism explores it

    q = make_policy(name, num_arms=2, context_dim=2, ridge=1e-20, seed=0)
    ones = torch.ones(50, 2)
    rewards = torch.rand(50, generator=torch.Generator().manual_seed(0))
    q.update(torch.zeros(50, dtype=torch.long), rewards, ones)  # 50 copies of one context: rank 1
    assert q.expected_rewards(ones[:1])[0, 0].item() == pytest.approx(rewards.double().mean().item(), rel=1e-9)
    eigenvalues = torch.linalg.eigvalsh(q.fit()[1])
    assert bool((eigenvalues > 0).all() and (eigenvalues <= 1 / q.ridge * (1 + 1e-9)).all())
    if name == "linucb":
        assert q.select(ones[:3]).tolist() == [1, 1, 1]
    before = copy.deepcopy(q)
    with pytest.raises(InputValidationError, match=r"entries in \[-1e\+100, 1e\+100\]"):
        q.update(torch.tensor([0]), torch.tensor([0.5]), torch.tensor([[1e160, 1.0]], dtype=torch.float64))
    assert state_equal(q, before, exact=True)


@pytest.mark.parametrize("name", ["thompson_beta", "thompson_beta_shared", "cts", "cts_shared"])
def test_tiny_beta_priors_give_finite_samples(name: str) -> None:
    # Beta(1e-310, 1e-310): denormal parameters, where log-space Gamma draws reach -inf and a
    # Beta draw could be -inf - -inf = NaN. The draws select makes must be numbers in [0, 1] (a NaN
    # would be the highest sample of its row, and still an arm in range: only the samples tell).
    p = make_policy(name, num_arms=4, prior_alpha=1e-310, prior_beta=1e-310, num_groups=50, seed=0)
    groups = torch.arange(50).repeat(4)
    samples = p._draw(groups, lambda s: s)  # the (n, K) draws of one select, per row
    assert samples.shape == (200, 4)
    assert bool(torch.isfinite(samples).all() and ((samples >= 0) & (samples <= 1)).all())
    assert p.expected_rewards(groups=groups[:3]).tolist() == [[0.5] * 4] * 3

    from banditformer.core.random import sample_beta

    tiny = torch.full((1000,), 1e-310, dtype=torch.float64)
    draws = sample_beta(tiny, tiny, torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(draws).all() and ((draws >= 0) & (draws <= 1)).all())


@pytest.mark.parametrize("name", ["cts", "cucb", "bucketed_combinatorial"])
def test_nan_rewards_of_unchosen_base_arms_are_ignored(name: str) -> None:
    # The contract: rewards where `chosen` is False may be anything, NaN included; they change
    # nothing, the same update with zeros there gives the same state.
    p = build(name, 4, seed=0)
    q = build(name, 4, seed=0)
    x = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))
    chosen = p.select(x, k=2)
    assert torch.equal(chosen, q.select(x, k=2))
    rewards = torch.rand(3, 4, generator=torch.Generator().manual_seed(1))
    p.update(chosen, torch.where(chosen, rewards, float("nan")), x)
    q.update(chosen, torch.where(chosen, rewards, 0.0), x)
    assert state_equal(p, q, exact=True)
    assert all(torch.isfinite(v).all() for v in p.state_dict().values() if isinstance(v, torch.Tensor))
