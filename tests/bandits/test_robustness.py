"""Regression tests for robustness: state loading, dtype casts, numerics at the edges."""

from __future__ import annotations

import copy
import io

import pytest
import torch

import banditformer as bf
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


@pytest.mark.parametrize("name", ["ucb1", "thompson_beta", "cts", "linucb", "bucketed"])
def test_casting_a_model_keeps_policy_statistics_exact(name: str) -> None:
    model = torch.nn.ModuleDict({"policy": build(name, 3, seed=0), "linear": torch.nn.Linear(2, 2)})
    model.to(torch.bfloat16)
    assert model["linear"].weight.dtype == torch.bfloat16
    p = model["policy"]
    assert p.arm_counts.dtype == torch.float64
    play(p, 5, torch.Generator().manual_seed(0))  # still works
    assert float(p.arm_counts.sum()) > 0


@pytest.mark.parametrize("name", ["bucketed", "bucketed_combinatorial"])
def test_reset_resets_the_wrapped_policy(name: str) -> None:
    p = build(name, 3, seed=0)
    play(p, 6, torch.Generator().manual_seed(0))
    p.reset()
    assert float(p.arm_counts.sum()) == 0 and float(p.base.arm_counts.sum()) == 0
    assert float(p.centroid_counts.sum()) == 0


@pytest.mark.parametrize("name", ["linucb", "lin_thompson"])
def test_linear_policies_survive_ill_conditioned_designs(name: str) -> None:
    p = make_policy(name, num_arms=2, context_dim=2)
    x = torch.tensor([[1e8, 1e8]], dtype=torch.float64)  # 1e16 + ridge rounds to 1e16
    p.update(torch.tensor([0]), torch.tensor([0.5]), x)
    assert p.select(x).shape == (1,)
    q = make_policy(name, num_arms=2, context_dim=2, ridge=1e-20)
    ones = torch.ones(50, 2)
    q.update(torch.zeros(50, dtype=torch.long), torch.rand(50), ones)
    assert q.select(ones[:3]).shape == (3,)
    before = copy.deepcopy(q)
    with pytest.raises(InputValidationError, match=r"entries in \[-1e\+100, 1e\+100\]"):
        q.update(torch.tensor([0]), torch.tensor([0.5]), torch.tensor([[1e160, 1.0]], dtype=torch.float64))
    assert state_equal(q, before, exact=True)


def test_tiny_beta_priors_give_no_nan_samples() -> None:
    p = make_policy("thompson_beta", num_arms=4, prior_alpha=1e-310, prior_beta=1e-310, seed=0)
    arms = p.select(n=200)
    assert bool(((arms >= 0) & (arms < 4)).all())
    from banditformer.core.random import sample_beta

    tiny = torch.full((1000,), 1e-310, dtype=torch.float64)
    assert bool(torch.isfinite(sample_beta(tiny, tiny, torch.Generator().manual_seed(0))).all())


class _TooMany(bf.CombinatorialPolicy):
    """Picks every base arm whatever ``k`` says: a broken implementation."""

    def _select(self, context, k, groups):
        return torch.ones(k.shape[0], self.num_arms, dtype=torch.bool)

    def _update(self, chosen, rewards, context, groups):
        pass


class _FloatArms(bf.Policy):
    def _select(self, context, groups):
        return torch.zeros(groups.shape[0])

    def _update(self, arms, rewards, context, groups):
        pass


def test_a_broken_policy_implementation_is_blamed_by_class_and_module() -> None:
    with pytest.raises(bf.PolicyContractError, match=r"plugin 'tests.bandits.test_robustness': _TooMany._select broke"
                       r".* rows without exactly k\[i\] base arms"):  # fmt: skip
        _TooMany(num_arms=4).select(k=torch.tensor([1, 2]))
    with pytest.raises(bf.PolicyContractError, match=r"_FloatArms._select .* got shape \(3,\) and dtype torch.float32"):
        _FloatArms(num_arms=2).select(n=3)
    from banditformer import value_checks

    with value_checks(False):  # value checks off: only the free shape and dtype checks run
        assert _TooMany(num_arms=4).select(k=1, n=2).sum() == 8
