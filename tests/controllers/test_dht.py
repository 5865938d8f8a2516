"""The DHT controller: valid decisions, both modes, any registered policy per slot, and learning the
right depth per kind of sample on a problem with known difficulty."""

from __future__ import annotations

import pytest
import torch

from banditformer import InputValidationError, make_controller
from banditformer.controllers import DHTController
from banditformer.controllers.dht import dht_reward

L, H, D = 4, 4, 2


def flops_of(decision, full: float = 1.0) -> torch.Tensor:
    """A stand-in cost model: the stem is one block; every other block costs its share of heads."""
    per_block = decision.head_counts[:, 1:].double() / H
    return full * (1.0 + per_block.sum(1)) / L


@pytest.mark.parametrize("mode", ["tree", "integrated"])
def test_decisions_are_valid_and_greedy_is_deterministic(mode: str) -> None:
    c = DHTController(L, H, D, full_flops=1.0, mode=mode, seed=0)
    x = torch.randn(16, D)
    for explore in (True, False):
        d = c.decide(x, explore=explore)
        assert d.depth.shape == (16,) and d.heads.shape == (16, L, H)
        assert bool(d.heads[:, 0].all())  # the stem runs in full
        if mode == "integrated":  # one head set per sample, shared by its blocks
            assert bool((d.heads[:, 1:] == d.heads[:, 1:2]).all())
        c.feedback(d, torch.rand(16), flops_of(d))
    assert torch.equal(c.decide(x, explore=False).heads, c.decide(x, explore=False).heads)


def test_reward_trades_quality_for_flops() -> None:
    q = torch.tensor([1.0, 1.0, 0.0, 0.0])
    ratio = torch.tensor([0.0, 1.0, 0.0, 1.0])
    r = dht_reward(q, ratio, lam=1.0)
    assert r.tolist() == [1.0, 0.5, 0.5, 0.0]
    assert dht_reward(q, ratio, lam=0.0).tolist() == [1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("mode", ["tree", "integrated"])
def test_learns_the_depth_each_kind_of_sample_needs(mode: str) -> None:
    # Two kinds of sample, told apart by the context: "hard" ones (near +1) are right only with
    # depth >= 3, "easy" ones (near -1) at any depth. The heads do not matter, so fewer is better.
    gen = torch.Generator().manual_seed(0)
    c = DHTController(L, H, D, full_flops=1.0, mode=mode, lam=1.0, seed=1, depth_kwargs={"num_buckets": 2})
    for _ in range(250):
        hard = torch.rand(32, generator=gen) < 0.5
        x = torch.where(hard, 1.0, -1.0).unsqueeze(1) + 0.05 * torch.randn(32, D, generator=gen)
        d = c.decide(x)
        quality = torch.where(hard, (d.depth >= 3).double(), torch.ones(32, dtype=torch.float64)).float()
        c.feedback(d, quality, flops_of(d).float())
    probe = torch.cat([torch.full((8, D), 1.0), torch.full((8, D), -1.0)])
    d = c.decide(probe, explore=False)
    assert bool((d.depth[:8] >= 3).all())  # hard samples get the depth they need...
    assert bool((d.depth[8:] <= 2).all())  # ...easy ones stop early
    assert float(d.head_counts[:, 1:].float().mean()) < H  # and fewer heads than all


def test_any_registered_policy_fills_any_slot() -> None:
    c = make_controller(
        "dht",
        num_layers=3,
        num_heads=2,
        context_dim=4,
        full_flops=1.0,
        depth_policy="linucb",
        count_policy="thompson_beta",
        head_policy="cucb",
    )
    d = c.decide(torch.randn(5, 4))
    c.feedback(d, torch.rand(5), torch.full((5,), 0.5))
    assert (
        make_controller("dht_integrated", num_layers=2, num_heads=2, context_dim=4, full_flops=1.0).mode == "integrated"
    )


def test_bad_configuration_and_input() -> None:
    with pytest.raises(InputValidationError, match="contextual one-arm policy for depth"):
        DHTController(L, H, D, 1.0, depth_policy="ucb1")
    with pytest.raises(InputValidationError, match="combinatorial policy for heads"):
        DHTController(L, H, D, 1.0, head_policy="ucb1")
    with pytest.raises(InputValidationError, match="mode"):
        DHTController(L, H, D, 1.0, mode="forest")
    with pytest.raises(InputValidationError, match="full_flops"):
        DHTController(L, H, D, 0.0)
    c = DHTController(L, H, D, 1.0)
    with pytest.raises(InputValidationError, match="width 2"):
        c.decide(torch.randn(3, 5))
    d = c.decide(torch.randn(3, D))
    with pytest.raises(InputValidationError, match=r"quality` in \[0, 1\]"):
        c.feedback(d, torch.full((3,), 2.0), torch.ones(3))
    from banditformer import Decision

    with pytest.raises(InputValidationError, match=r"made by this controller.s decide\(\), with info"):
        c.feedback(Decision.full(3, L, H), torch.rand(3), torch.ones(3))


def test_lambda_adapts_to_a_flop_budget() -> None:
    # Quality never depends on the architecture here, so only the budget restrains the FLOPs: the
    # penalty must settle where the mean FLOP ratio meets the budget.
    gen = torch.Generator().manual_seed(0)
    c = DHTController(L, H, D, full_flops=1.0, lam=0.0, flop_budget=0.5, lam_lr=0.05, seed=0)
    ratios = []
    for _ in range(400):
        d = c.decide(torch.randn(32, D, generator=gen))
        flops = flops_of(d).float()
        quality = 0.5 + 0.5 * flops  # bigger is better: the controller wants the full model...
        c.feedback(d, quality.clamp(0, 1), flops)
        ratios.append(float(flops.mean()))
    assert float(c.lam) > 0.0  # ...so the penalty had to rise
    assert abs(sum(ratios[-100:]) / 100 - 0.5) < 0.15
    state = c.state_dict()
    assert "lam" in state and float(state["lam"]) == float(c.lam)


def test_importance_rewards_scale_each_chosen_head_by_its_share_of_the_top_score() -> None:
    from banditformer.controllers.dht import importance_rewards

    r = torch.tensor([0.5, 1.0, 0.3])
    imp = torch.tensor([[4.0, 2.0, 0.0, 7.0], [0.0, 0.0, 0.0, 0.0], [1.0, 3.0, 3.0, 0.0]])
    chosen = torch.tensor([[True, True, True, False], [True, False, True, False], [False, True, True, True]])
    out = importance_rewards(r, imp, chosen)
    expected = torch.tensor([[0.5, 0.25, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0], [0.0, 0.3, 0.3, 0.0]])
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("mode", ["tree", "integrated"])
def test_importance_reward_needs_scores_and_teaches_cts_which_heads_matter(mode: str) -> None:
    c = DHTController(L, H, D, full_flops=1.0, mode=mode, head_reward="importance", seed=0)
    assert c.wants_head_importance
    x = torch.randn(64, D)
    d = c.decide(x)
    with pytest.raises(InputValidationError, match="head_importance"):
        c.feedback(d, torch.rand(64), flops_of(d))
    with pytest.raises(InputValidationError, match="head_importance"):
        c.feedback(d, torch.rand(64), flops_of(d), head_importance=-torch.ones(64, L, H))
    # Head 1 never matters and head 3 always matters most; the sample reward is the same for all.
    importance = torch.tensor([0.5, 0.0, 0.5, 1.0]).expand(64, L, H).contiguous()
    for _ in range(30):
        d = c.decide(x)
        c.feedback(d, torch.full((64,), 0.9), flops_of(d), head_importance=importance)
    groups = c.heads.num_groups
    means = c.heads.expected_rewards(groups=torch.arange(groups)).mean(0)  # per head, over blocks
    assert means.argmax() == 3 and means.argmin() == 1
    assert not DHTController(L, H, D, full_flops=1.0, seed=0).wants_head_importance
    with pytest.raises(InputValidationError, match="head_reward"):
        DHTController(L, H, D, full_flops=1.0, head_reward="gradient")


def test_warmup_runs_the_full_model_and_teaches_the_policies_nothing() -> None:
    c = DHTController(L, H, D, full_flops=1.0, warmup_steps=3, seed=0)
    x = torch.randn(8, D)
    before = {k: v.clone() for k, v in c.state_dict().items() if k != "feedback_calls" and isinstance(v, torch.Tensor)}
    for _ in range(3):
        d = c.decide(x)
        assert bool((d.depth == L).all()) and bool(d.heads.all())
        c.feedback(d, torch.rand(8), flops_of(d))
    after = c.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert int(after["feedback_calls"]) == 3
    d = c.decide(x)  # the bandits take over
    assert not (bool((d.depth == L).all()) and bool(d.heads.all()))
    c.feedback(d, torch.rand(8), flops_of(d))
    assert int(c.feedback_calls) == 4
    with pytest.raises(InputValidationError, match="warmup_steps"):
        DHTController(L, H, D, full_flops=1.0, warmup_steps=-1)


def test_warmup_progress_survives_a_state_dict_round_trip() -> None:
    c = DHTController(L, H, D, full_flops=1.0, warmup_steps=2, seed=0)
    x = torch.randn(4, D)
    d = c.decide(x)
    c.feedback(d, torch.rand(4), flops_of(d))
    fresh = DHTController(L, H, D, full_flops=1.0, warmup_steps=2, seed=0)
    fresh.load_state_dict(c.state_dict())
    assert bool(fresh.decide(x).heads.all())  # one warm-up batch left
    d = fresh.decide(x)
    fresh.feedback(d, torch.rand(4), flops_of(d))
    assert int(fresh.feedback_calls) == 2 and not bool(fresh.decide(x).heads.all())
