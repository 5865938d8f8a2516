"""The DHT controller: valid decisions, both modes, any registered policy per slot, and learning the
right depth per kind of sample on a problem with known difficulty."""

from __future__ import annotations

import pytest
import torch

from banditformer import CombinatorialPolicy, Decision, InputValidationError, Policy, list_policies, make_controller
from banditformer.bandits import CTS, UCB1, LinUCB
from banditformer.controllers import DHTController
from banditformer.controllers.dht import DHTRecord, dht_reward
from banditformer.plugins import make_policy

L, H, D = 4, 4, 2


def dht(**kwargs) -> DHTController:
    """The registry's ``dht`` controller of L blocks, H heads and D-wide contexts."""
    return make_controller("dht", num_layers=L, num_heads=H, context_dim=D, **kwargs)


def flops_of(decision, full: float = 1.0) -> torch.Tensor:
    """A stand-in cost model: the stem is one block; every other block costs its share of heads."""
    per_block = decision.head_counts[:, 1:].double() / H
    return full * (1.0 + per_block.sum(1)) / L


@pytest.mark.parametrize("mode", ["tree", "integrated"])
def test_decisions_are_valid_and_greedy_is_deterministic(mode: str) -> None:
    c = dht(full_flops=1.0, mode=mode, seed=0)
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
    c = dht(full_flops=1.0, mode=mode, lam=1.0, seed=1, depth_kwargs={"num_buckets": 2})
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


def _fits(name: str, slot: str) -> bool:
    """Whether registered policy ``name`` can be built for a DHT slot (3 blocks, 2 heads, 4-wide context)."""
    try:
        if slot == "depth":
            p = make_policy(name, num_arms=3, context_dim=4)
            return isinstance(p, Policy) and p.is_contextual
        p = make_policy(name, num_arms=2, num_groups=2)
    except InputValidationError:
        return False
    kind = Policy if slot == "counts" else CombinatorialPolicy
    return isinstance(p, kind) and not p.is_contextual


SLOTS = {slot: [n for n in list_policies() if _fits(n, slot)] for slot in ("depth", "counts", "heads")}


def test_every_slot_has_several_policies() -> None:
    # the slots' lists come from the registry; a filter that rejected everything would test nothing
    assert {"bucketed", "linucb", "lin_thompson"} <= set(SLOTS["depth"])
    assert {"ucb1", "kl_ucb", "thompson_beta", "epsilon_greedy"} <= set(SLOTS["counts"])
    assert {"cts", "cucb"} <= set(SLOTS["heads"])


@pytest.mark.parametrize("mode", ["tree", "integrated"])
@pytest.mark.parametrize("slot", ["depth", "counts", "heads"])
def test_any_registered_policy_fills_any_slot(slot: str, mode: str) -> None:
    # every policy that fits a slot, in that slot (the others at their defaults), decides valid
    # architectures and learns from feedback in both modes
    for name in SLOTS[slot]:
        arg = {"depth": "depth_policy", "counts": "count_policy", "heads": "head_policy"}[slot]
        c = make_controller("dht", num_layers=3, num_heads=2, context_dim=4, full_flops=1.0, mode=mode, **{arg: name})
        before = {k: v.clone() for k, v in c.state_dict().items() if isinstance(v, torch.Tensor)}
        for _ in range(3):
            d = c.decide(torch.randn(5, 4))
            assert bool(d.heads[:, 0].all()) and bool(((d.depth >= 1) & (d.depth <= 3)).all()), name
            c.feedback(d, torch.rand(5), torch.full((5,), 0.5))
        state = c.state_dict()
        changed = [k for k, v in state.items() if isinstance(v, torch.Tensor) and not torch.equal(v, before[k])]
        assert any(k.startswith(arg) for k in changed), f"{name} in the {slot} slot learned nothing"


def test_the_controller_receives_policy_objects() -> None:
    depth, counts, heads = LinUCB(L, context_dim=D), UCB1(H, num_groups=L - 1), CTS(H, num_groups=L - 1)
    c = DHTController(L, H, D, 1.0, depth_policy=depth, count_policy=counts, head_policy=heads)
    assert (c.depth_policy, c.count_policy, c.head_policy) == (depth, counts, heads)
    d = c.decide(torch.randn(6, D))
    c.feedback(d, torch.rand(6), flops_of(d))
    assert float(depth.arm_counts.sum()) == 6
    with pytest.raises(InputValidationError, match=r"`count_policy` to be a context-free Policy .*num_groups=3"):
        DHTController(L, H, D, 1.0, depth_policy=depth, count_policy=UCB1(H), head_policy=heads)
    with pytest.raises(InputValidationError, match=r"`head_policy` to be a context-free CombinatorialPolicy"):
        DHTController(L, H, D, 1.0, depth_policy=depth, count_policy=counts, head_policy=UCB1(H, num_groups=L - 1))
    integrated = make_controller("dht_integrated", num_layers=2, num_heads=2, context_dim=4, full_flops=1.0)
    assert integrated.mode == "integrated"


def test_bad_configuration_and_input() -> None:
    with pytest.raises(InputValidationError, match="context_dim"):
        dht(full_flops=1.0, depth_policy="ucb1")
    with pytest.raises(InputValidationError, match="`head_policy` to be a context-free CombinatorialPolicy"):
        dht(full_flops=1.0, head_policy="ucb1")
    with pytest.raises(InputValidationError, match="mode"):
        dht(full_flops=1.0, mode="forest")
    with pytest.raises(InputValidationError, match="full_flops"):
        dht(full_flops=0.0)
    c = dht(full_flops=1.0)
    with pytest.raises(InputValidationError, match="width 2"):
        c.decide(torch.randn(3, 5))
    d = c.decide(torch.randn(3, D))
    with pytest.raises(InputValidationError, match=r"quality` in \[0, 1\]"):
        c.feedback(d, torch.full((3,), 2.0), torch.ones(3))
    with pytest.raises(InputValidationError, match=r"made by this controller.s decide\(\), with a DHTRecord"):
        c.feedback(Decision.full(3, L, H), torch.rand(3), torch.ones(3))
    short = DHTRecord(d.record.context[:2], d.record.depth_arm, d.record.count_arm)
    with pytest.raises(InputValidationError, match=r"record.context of shape \(3, 2\), got shape \(2, 2\)"):
        c.feedback(Decision(d.depth, d.heads, short), torch.rand(3), torch.ones(3))


def test_lambda_adapts_to_a_flop_budget() -> None:
    # Quality never depends on the architecture here, so only the budget restrains the FLOPs: the
    # penalty must settle where the mean FLOP ratio meets the budget.
    gen = torch.Generator().manual_seed(0)
    c = dht(full_flops=1.0, lam=0.0, flop_budget=0.5, lam_lr=0.05, seed=0)
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
    c = dht(full_flops=1.0, mode=mode, head_reward="importance", seed=0)
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
    groups = c.head_policy.num_groups
    means = c.head_policy.expected_rewards(groups=torch.arange(groups)).mean(0)  # per head, over blocks
    assert means.argmax() == 3 and means.argmin() == 1
    assert not dht(full_flops=1.0, seed=0).wants_head_importance
    with pytest.raises(InputValidationError, match="head_reward"):
        dht(full_flops=1.0, head_reward="gradient")


def test_warmup_runs_the_full_model_and_teaches_the_policies_nothing() -> None:
    c = dht(full_flops=1.0, warmup_steps=3, seed=0)
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
        dht(full_flops=1.0, warmup_steps=-1)


def test_warmup_progress_survives_a_state_dict_round_trip() -> None:
    c = dht(full_flops=1.0, warmup_steps=2, seed=0)
    x = torch.randn(4, D)
    d = c.decide(x)
    c.feedback(d, torch.rand(4), flops_of(d))
    fresh = dht(full_flops=1.0, warmup_steps=2, seed=0)
    fresh.load_state_dict(c.state_dict())
    assert bool(fresh.decide(x).heads.all())  # one warm-up batch left
    d = fresh.decide(x)
    fresh.feedback(d, torch.rand(4), flops_of(d))
    assert int(fresh.feedback_calls) == 2 and not bool(fresh.decide(x).heads.all())


# ------------------------------------------------------------------ the inference knob (cost_bias)
def knobbed(mode: str = "tree", **kwargs) -> DHTController:
    from tests.controllers.test_stepwise_dht import TABLE  # 4 blocks of 2 heads

    options = {"full_flops": TABLE.full, "cost_table": TABLE, "mode": mode, **kwargs}
    return make_controller("dht", num_layers=4, num_heads=2, context_dim=D, **options)


def trained(c: DHTController, seed: int = 0) -> DHTController:
    """``c`` after 30 random feedback batches (statistics in every arm)."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(30):
        x = torch.randn(32, D, generator=gen)
        d = c.decide(x)
        c.feedback(d, torch.rand(32, generator=gen), flops_of(d, c.full_flops))
    return c


@pytest.mark.parametrize("mode", ["tree", "integrated"])
def test_the_cost_bias_trades_estimates_for_cost_and_zero_is_plain_greedy(mode: str) -> None:
    c = trained(knobbed(mode, depth_policy="linucb", seed=3))
    x = torch.randn(64, D, generator=torch.Generator().manual_seed(9))
    plain = c.decide(x, explore=False)
    c.set_operating_point(0.0)
    assert torch.equal(c.decide(x, explore=False).depth, plain.depth)
    costs = torch.tensor(c.depth_costs, dtype=torch.float64)
    # depth costs: stem + blocks before + one classifier, over the full model (10.5)
    torch.testing.assert_close(costs, torch.tensor([4.5, 6.5, 8.5, 10.5], dtype=torch.float64) / 10.5)
    means = c.depth_policy.expected_rewards(x)
    last_depth, last_heads = None, None
    for b in (-1.0, -0.05, 0.02, 0.1, 0.3, 1.0):
        c.set_operating_point(b)
        d = c.decide(x, explore=False)
        assert torch.equal(d.depth - 1, (means - b * costs).argmax(1))  # the knob's rule, row by row
        if last_depth is not None:  # a larger bias never buys a deeper or wider sample
            assert bool((d.depth <= last_depth).all())
            assert bool((d.heads[:, 1:].sum(-1) <= last_heads).all())
        last_depth, last_heads = d.depth, d.heads[:, 1:].sum(-1)
    assert float(c.cost_bias) == 1.0


def test_the_knob_needs_a_cost_table_survives_a_round_trip_and_refuses_bad_values() -> None:
    assert dht(full_flops=1.0).operating_points() is None
    with pytest.raises(InputValidationError, match="inference knob"):
        dht(full_flops=1.0).set_operating_point(0.1)
    c = trained(knobbed())
    assert len(c.operating_points()) == 107 and 0.0 in c.operating_points()
    c.set_operating_point(0.25)
    fresh = knobbed()
    fresh.load_state_dict(c.state_dict())
    x = torch.randn(16, D)
    assert float(fresh.cost_bias) == 0.25 and torch.equal(fresh.decide(x, explore=False).depth,
                                                          c.decide(x, explore=False).depth)  # fmt: skip
    for bad in (1.5, "0.1", True):
        with pytest.raises(InputValidationError, match="cost bias"):
            c.set_operating_point(bad)
    assert float(c.cost_bias) == 0.25
    from tests.model.test_dynamic import make_model

    with pytest.raises(InputValidationError, match="cost table of a 4-block, 2-head"):
        knobbed(cost_table=make_model(0, num_layers=3, num_heads=2).cost_table())


@pytest.mark.parametrize("mode", ["tree", "integrated"])
def test_a_mixed_knob_gives_each_sample_one_of_the_two_biases_at_the_mix_weight(mode: str) -> None:
    c = trained(knobbed(mode, depth_policy="linucb", seed=5))
    x = torch.randn(4000, D, generator=torch.Generator().manual_seed(2))
    low, high = 0.0, 1.0
    c.set_operating_point(low)
    d_low = c.decide(x, explore=False)
    c.set_operating_point(high)
    d_high = c.decide(x, explore=False)
    differs = (d_low.depth != d_high.depth) | (d_low.heads != d_high.heads).flatten(1).any(1)
    assert int(differs.sum()) > 500  # the two biases disagree on many samples
    for weight in (0.0, 0.3, 1.0):
        c.set_operating_mix(low, high, weight)
        d = c.decide(x, explore=False)
        took_low = (d.depth == d_low.depth) & (d.heads == d_low.heads).flatten(1).all(1)
        took_high = (d.depth == d_high.depth) & (d.heads == d_high.heads).flatten(1).all(1)
        assert bool((took_low | took_high).all())  # every sample is decided at one bias, whole
        share = float((took_high & ~took_low).sum()) / float(differs.sum())
        assert abs(share - weight) < 0.05, (weight, share)


def test_a_mix_survives_a_round_trip_draws_from_the_controller_seed_and_refuses_bad_values() -> None:
    c = trained(knobbed())
    c.set_operating_mix(0.01, 0.3, 0.4)
    fresh = knobbed()
    fresh.load_state_dict(c.state_dict())
    x = torch.randn(64, D, generator=torch.Generator().manual_seed(3))
    assert (float(fresh.cost_bias), float(fresh.cost_bias_high), float(fresh.cost_mix)) == (0.01, 0.3, 0.4)
    assert torch.equal(fresh.decide(x, explore=False).heads, c.decide(x, explore=False).heads)  # the same draws
    for bad in ((0.0, 2.0, 0.5), (0.0, 0.1, 1.5), ("0", 0.1, 0.5), (0.0, 0.1, True)):
        with pytest.raises(InputValidationError, match=r"cost bias|weight"):
            c.set_operating_mix(*bad)
    assert (float(c.cost_bias), float(c.cost_bias_high), float(c.cost_mix)) == (0.01, 0.3, 0.4)
    c.set_operating_point(0.2)  # a plain point ends the mix
    assert float(c.cost_mix) == 0.0
    with pytest.raises(InputValidationError, match="inference knob"):
        dht(full_flops=1.0).set_operating_mix(0.0, 0.1, 0.5)
    with pytest.raises(InputValidationError, match="mixes operating points"):
        make_controller("entropy_exit", num_layers=3, num_heads=2).set_operating_mix(0.1, 0.2, 0.5)
