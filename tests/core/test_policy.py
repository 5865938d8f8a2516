"""The policy contracts (core/policy.py): what PolicyBase, Policy and CombinatorialPolicy check and
guarantee for any implementation, shown on small policies defined here (outside banditformer, so
treated as plugin code) and on built-ins where the contract is the same for all of them."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch

import banditformer as bf
from banditformer import CombinatorialPolicy, InputValidationError, Policy, PolicyContractError, hookimpl
from banditformer.core.policy import top_k_mask
from banditformer.plugins import PluginManager, set_plugin_manager
from tests.bandits.helpers import state_equal


class Counter(Policy):
    """A small honest policy: row ``i`` plays arm ``i mod K`` (or ``out(n)``, to break the
    contract); it counts plays per group and arm, and can be told to raise in ``_update``."""

    def __init__(
        self,
        num_arms: int,
        *,
        out: Callable[[int], object] | None = None,
        fail: bool = False,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        self.add_state("plays", torch.zeros(num_groups, num_arms, dtype=torch.float64), low=0.0)
        self.out, self.fail = out, fail

    def _select(self, context, groups):
        n = groups.shape[0]
        torch.rand(1, generator=self.generator)  # a draw, so that tests can see whether select drew
        return self.out(n) if self.out is not None else torch.arange(n) % self.num_arms

    def _means(self, context, groups):
        return self.plays[groups]

    def _update(self, arms, rewards, context, groups):
        self.plays.index_put_((groups, arms), torch.ones_like(rewards), accumulate=True)
        torch.rand(1, generator=self.generator)
        if self.fail:
            raise RuntimeError("boom")


class FirstK(CombinatorialPolicy):
    """Takes base arms ``0 .. k[i]-1`` (or ``out(n, k)``); counts plays per group."""

    def __init__(self, num_arms: int, *, out: Callable | None = None, num_groups: int = 1, seed: int = 0) -> None:
        super().__init__(num_arms, num_groups=num_groups, seed=seed)
        self.add_state("plays", torch.zeros(num_groups, num_arms, dtype=torch.float64), low=0.0)
        self.out = out

    def _select(self, context, k, groups):
        if self.out is not None:
            return self.out(k.shape[0], k)
        return torch.arange(self.num_arms).unsqueeze(0) < k.unsqueeze(1)

    def _means(self, context, groups):
        return self.plays[groups]

    def _update(self, chosen, rewards, context, groups):
        self.plays.index_add_(0, groups, chosen.double())


def _registered(name: str, factory: Callable) -> PluginManager:
    class Plugin:
        @hookimpl
        def banditformer_add_policies(self):
            return {name: factory}

    manager = PluginManager(autoload=False)
    manager.register(Plugin(), name="mine")
    return manager


def _unchanged_after(policy: bf.PolicyBase, call: Callable[[], object], error: type, match: str) -> None:
    """``call`` raises ``error`` (message matching ``match``) and ``policy`` is as it was, its
    generator included."""
    before = copy.deepcopy(policy)
    with pytest.raises(error, match=match):
        call()
    assert state_equal(policy, before, exact=True)


# --------------------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_arms": 0}, r"expected `num_arms` in \[1, inf\], got 0"),
        ({"num_arms": 2.0}, r"expected `num_arms` to be an int"),
        ({"num_arms": True}, r"expected `num_arms` to be an int"),
        ({"num_arms": 2, "num_groups": 0}, r"expected `num_groups` in \[1, inf\]"),
        ({"num_arms": 2, "context_dim": 0}, r"expected `context_dim` in \[1, inf\]"),
        ({"num_arms": 2, "seed": -1}, r"expected `seed` in \[0, "),
        ({"num_arms": 2, "seed": 2**63}, r"expected `seed` in \[0, "),
    ],
)
def test_constructor_arguments_are_checked(kwargs: dict, match: str) -> None:
    with pytest.raises(InputValidationError, match=match):
        Counter(**kwargs)


def test_a_contextual_policy_needs_a_context_dim() -> None:
    class Contextual(Counter):
        is_contextual = True

    with pytest.raises(InputValidationError, match=r"expected `context_dim` .* for contextual policy Contextual"):
        Contextual(num_arms=2)
    p = Contextual(num_arms=2, context_dim=3)
    _unchanged_after(p, lambda: p.select(n=2), InputValidationError, r"expected a `context` tensor of shape \(n, 3\)")


def test_add_state_declares_a_reduction_and_refuses_another() -> None:
    p = Counter(num_arms=2)
    assert p.state_reductions == {"arm_counts": "sum", "arm_reward_sums": "sum", "plays": "sum"}
    p.add_state("peak", torch.zeros(2), reduce="max")
    assert p.state_reductions["peak"] == "max"
    with pytest.raises(InputValidationError, match=r"expected `reduce` in .*, got 'median'"):
        p.add_state("middle", torch.zeros(2), reduce="median")
    assert "middle" not in p.state_reductions and not hasattr(p, "middle")


# ------------------------------------------------------------------------------------- select
def test_n_and_k_are_keyword_only_for_every_policy_kind() -> None:
    one, comb = Counter(num_arms=3), FirstK(num_arms=3)
    for p in (one, comb, bf.make_policy("ucb1", num_arms=3), bf.make_policy("cts", num_arms=3)):
        _unchanged_after(p, lambda p=p: p.select(None, 2), TypeError, "positional argument")
        _unchanged_after(p, lambda p=p: p.expected_rewards(None, 2), TypeError, "positional argument")
    assert one.select(n=2).tolist() == [0, 1]
    assert comb.select(n=2, k=1).tolist() == [[True, False, False]] * 2


def test_a_one_arm_policy_refuses_a_k_and_a_combinatorial_one_needs_it() -> None:
    one, comb = Counter(num_arms=3), FirstK(num_arms=3)
    _unchanged_after(one, lambda: one.select(n=2, k=1), InputValidationError, r"expected `k` = None .* got 1")
    _unchanged_after(comb, lambda: comb.select(n=2), InputValidationError, r"expected `k` .* got None")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "expected `n`, `context` or `groups` to give the batch size, got none"),
        ({"n": -1}, r"expected `n` in \[0, inf\], got -1"),
        ({"n": 2, "groups": torch.zeros(3, dtype=torch.long)}, "expected one batch size .* n=2, groups.shape"),
        ({"groups": torch.tensor([0, 2])}, "groups"),
        ({"groups": torch.zeros(2)}, "groups"),
        ({"context": torch.zeros(2, 3)}, "context"),  # the policy was built without a context_dim of 3
        ({"context": torch.full((2, 2), math.nan)}, "context"),
    ],
)
def test_bad_select_arguments_raise_and_draw_nothing(kwargs: dict, match: str) -> None:
    p = Counter(num_arms=3, context_dim=2, num_groups=2)
    _unchanged_after(p, lambda: p.select(**kwargs), InputValidationError, match)


def test_an_empty_batch_selects_nothing_and_draws_nothing() -> None:
    one, comb = Counter(num_arms=3), FirstK(num_arms=3)
    rng = one.generator.get_state()
    arms = one.select(n=0)
    assert arms.shape == (0,) and arms.dtype == torch.int64
    assert torch.equal(one.generator.get_state(), rng)
    chosen = comb.select(n=0, k=2)
    assert chosen.shape == (0, 3) and chosen.dtype == torch.bool


def _bad_arms(p: Policy) -> list[tuple[Callable[[int], object], str]]:
    return [
        (lambda n: [0] * n, "got list"),
        (lambda n: torch.zeros(n + 1, dtype=torch.long), r"got shape \(4,\)"),
        (lambda n: torch.zeros(n), "dtype torch.float32"),
        (lambda n: torch.zeros(n, dtype=torch.bool), "dtype torch.bool"),
        (lambda n: torch.zeros(n, dtype=torch.long, device="meta"), "got a tensor on meta"),
        (lambda n: torch.full((n,), p.num_arms), r"values that break it: arms outside \[0, 3\)"),
        (lambda n: torch.full((n,), -1), r"arms outside \[0, 3\)"),
    ]


def test_a_plugin_select_that_breaks_the_contract_is_blamed_by_name() -> None:
    probe = Counter(num_arms=3)
    for out, match in _bad_arms(probe):
        set_plugin_manager(_registered("counter", lambda num_arms, **kw: Counter(num_arms, out=out, **kw)))  # noqa: B023
        try:
            p = bf.make_policy("counter", num_arms=3)
            with pytest.raises(PolicyContractError, match=r"plugin 'mine': policy 'counter' \(Counter\)._select broke"):
                p.select(n=3)
            with pytest.raises(PolicyContractError, match=match):
                p.select(n=3)
        finally:
            set_plugin_manager(None)


def test_an_unregistered_class_is_blamed_by_its_module() -> None:
    p = Counter(num_arms=3, out=lambda n: torch.full((n,), 7))
    with pytest.raises(
        PolicyContractError, match=r"plugin 'tests.core.test_policy': Counter._select broke .* got values"
    ):
        p.select(n=2)


@pytest.mark.parametrize(
    ("out", "match"),
    [
        (
            lambda n, k: torch.ones(n, 4, dtype=torch.bool),
            r"values that break it: rows without exactly k\[i\] base arms",
        ),
        (lambda n, k: torch.zeros(n, 5, dtype=torch.bool), r"got shape \(2, 5\)"),
        (lambda n, k: torch.zeros(n, 4, dtype=torch.long), "dtype torch.int64"),
        (lambda n, k: torch.zeros(n, dtype=torch.bool), r"got shape \(2,\)"),
    ],
)
def test_a_combinatorial_select_that_breaks_the_contract_is_blamed(out: Callable, match: str) -> None:
    p = FirstK(num_arms=4, out=out)
    with pytest.raises(
        PolicyContractError, match=r"FirstK._select broke the policy contract: expected a tensor of shape"
    ):
        p.select(k=torch.tensor([1, 2]))
    with pytest.raises(PolicyContractError, match=match):
        p.select(k=torch.tensor([1, 2]))


def test_with_value_checks_off_only_the_free_shape_and_dtype_checks_run() -> None:
    too_many = FirstK(num_arms=4, out=lambda n, k: torch.ones(n, 4, dtype=torch.bool))
    out_of_range = Counter(num_arms=3, out=lambda n: torch.full((n,), 9))
    float_arms = Counter(num_arms=3, out=lambda n: torch.zeros(n))
    with bf.value_checks(False):
        assert int(too_many.select(k=1, n=2).sum()) == 8
        assert out_of_range.select(n=2).tolist() == [9, 9]
        with pytest.raises(PolicyContractError, match=r"dtype torch\.float32"):
            float_arms.select(n=2)
    with pytest.raises(PolicyContractError, match="rows without exactly"):
        too_many.select(k=1, n=2)  # back on after the block


@pytest.mark.parametrize("name", ["ucb1", "cts"])
def test_value_checks_can_be_switched_off_but_shape_checks_stay(name: str) -> None:
    p = bf.make_policy(name, num_arms=3, seed=0)
    comb = isinstance(p, CombinatorialPolicy)
    choice = p.select(k=1, n=2) if comb else p.select(n=2)
    bad = torch.full((2, 3) if comb else (2,), 7.0)  # out of range
    with bf.value_checks(False):
        p.update(choice, bad)  # accepted: the caller vouches for the values
        assert float(p.arm_reward_sums.sum()) == 14.0
        with pytest.raises(InputValidationError, match="shape"):
            p.update(choice, bad[:1])
    with pytest.raises(InputValidationError, match=r"in \[0, 1\]"):
        p.update(choice, bad)  # back on after the context


# ------------------------------------------------------------------------------------- update
def test_update_keeps_the_lifetime_totals() -> None:
    p = Counter(num_arms=3, num_groups=2)
    p.update(torch.tensor([0, 2, 2]), torch.tensor([0.5, 1.0, 2.0]), groups=torch.tensor([0, 1, 0]))
    assert p.arm_counts.tolist() == [1.0, 0.0, 2.0] and p.arm_reward_sums.tolist() == [0.5, 0.0, 3.0]
    assert p.plays.tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    c = FirstK(num_arms=3)
    chosen = torch.tensor([[True, False, True], [False, False, True]])
    c.update(chosen, torch.tensor([[0.25, math.nan, 1.0], [math.inf, -5.0, 0.5]]))  # unchosen: ignored
    assert c.arm_counts.tolist() == [1.0, 0.0, 2.0] and c.arm_reward_sums.tolist() == [0.25, 0.0, 1.5]


def test_a_plugin_update_that_raises_is_blamed_and_changes_nothing() -> None:
    p = Counter(num_arms=3)
    p.update(torch.tensor([0, 1]), torch.tensor([1.0, 0.0]))
    p.fail = True
    _unchanged_after(
        p,
        lambda: p.update(torch.tensor([2]), torch.tensor([1.0])),
        PolicyContractError,
        r"Counter._update raised RuntimeError: boom; the policy's state was restored",
    )
    assert p.arm_counts.tolist() == [1.0, 1.0, 0.0]  # the lifetime totals were rolled back too


def _bad_updates() -> list[tuple[tuple, dict, str]]:
    arms, r = torch.tensor([0, 1]), torch.tensor([0.5, 0.5])
    return [
        ((arms, torch.tensor([0.5, math.nan])), {}, "rewards"),
        ((arms, torch.tensor([0.5, math.inf])), {}, "rewards"),
        ((arms, r[:1]), {}, r"rewards.*shape"),
        ((torch.tensor([0, 3]), r), {}, "arms"),
        ((arms.double(), r), {}, "arms"),
        ((arms, r, torch.full((2, 2), math.nan)), {}, "context"),
        ((arms, r, torch.zeros(3, 2)), {}, "batch size|context"),
        ((arms, r), {"groups": torch.tensor([0, 5])}, "groups"),
    ]


@pytest.mark.parametrize(("args", "kwargs", "match"), _bad_updates())
def test_check_update_raises_what_update_raises_and_neither_changes_anything(args, kwargs, match: str) -> None:
    p = Counter(num_arms=3, context_dim=2, num_groups=2)
    p.update(torch.tensor([0, 1]), torch.tensor([1.0, 0.0]), torch.zeros(2, 2))
    with pytest.raises(InputValidationError, match=match) as from_check:
        p.check_update(*args, **kwargs)
    _unchanged_after(p, lambda: p.update(*args, **kwargs), InputValidationError, match)
    with pytest.raises(InputValidationError) as from_update:
        p.update(*args, **kwargs)
    assert str(from_check.value) == str(from_update.value)


def test_check_update_of_good_input_changes_nothing() -> None:
    p, c = Counter(num_arms=3), FirstK(num_arms=3)
    before_p, before_c = copy.deepcopy(p), copy.deepcopy(c)
    p.check_update(torch.tensor([0, 2]), torch.tensor([1.0, 0.0]))
    c.check_update(torch.tensor([[True, False, False]]), torch.tensor([[1.0, math.nan, math.nan]]))
    assert state_equal(p, before_p, exact=True) and state_equal(c, before_c, exact=True)
    with pytest.raises(InputValidationError, match="rewards"):  # a NaN where a base arm was chosen
        c.check_update(torch.tensor([[True, False, False]]), torch.tensor([[math.nan, 0.0, 0.0]]))


# ------------------------------------------------------------------------------ reset, greedy mode
def test_reset_restores_every_statistic_and_keeps_configuration_and_generator() -> None:
    p = bf.make_policy("ucb1", num_arms=3, c=0.5, num_groups=2, seed=0)
    fresh = bf.make_policy("ucb1", num_arms=3, c=0.5, num_groups=2, seed=0)
    for _ in range(3):
        p.update(p.select(n=4), torch.rand(4))
    p.select(n=2)
    rng = p.generator.get_state()
    p.reset()
    for name in p.state_reductions:
        assert torch.equal(getattr(p, name), getattr(fresh, name)), name
    assert float(p.c) == 0.5 and torch.equal(p.generator.get_state(), rng)


@pytest.mark.parametrize("name", ["bucketed", "bucketed_combinatorial"])
def test_reset_resets_the_wrapped_policy(name: str) -> None:
    p = bf.make_policy(name, num_arms=3, context_dim=2, seed=0)
    x = torch.randn(6, 2)
    chosen = p.select(x, k=2) if isinstance(p, CombinatorialPolicy) else p.select(x)
    p.update(chosen, torch.rand(chosen.shape), x)
    assert float(p.base.arm_counts.sum()) > 0 and float(p.centroid_counts.sum()) > 0
    p.reset()
    assert float(p.arm_counts.sum()) == 0 and float(p.base.arm_counts.sum()) == 0
    assert float(p.centroid_counts.sum()) == 0


def test_greedy_select_maximises_expected_rewards_and_draws_nothing() -> None:
    p = Counter(num_arms=3, num_groups=2)
    p.update(torch.tensor([2, 2, 1]), torch.zeros(3), groups=torch.tensor([0, 0, 1]))
    groups = torch.tensor([0, 1, 1])
    assert p.expected_rewards(groups=groups).tolist() == [[0.0, 0.0, 2.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]
    rng = p.generator.get_state()
    assert p.select(groups=groups, explore=False).tolist() == [2, 1, 1]
    assert torch.equal(p.generator.get_state(), rng)  # Counter._select draws: it was not called
    c = FirstK(num_arms=3)
    c.update(torch.tensor([[False, True, True]]), torch.zeros(1, 3))
    assert c.select(n=1, k=2, explore=False).tolist() == [[False, True, True]]


def test_expected_rewards_checks_its_arguments() -> None:
    p = Counter(num_arms=3, context_dim=2)
    _unchanged_after(p, lambda: p.expected_rewards(torch.zeros(2, 5)), InputValidationError, "context")
    _unchanged_after(p, lambda: p.expected_rewards(), InputValidationError, "batch size")
    assert p.expected_rewards(n=2).shape == (2, 3)


def test_a_policy_without_means_says_it_has_no_greedy_mode() -> None:
    class NoMeans(Policy):
        def _select(self, context, groups):
            return torch.zeros_like(groups)

        def _update(self, arms, rewards, context, groups):
            return None

    p = NoMeans(num_arms=2)
    assert p.select(n=3).tolist() == [0, 0, 0]
    with pytest.raises(NotImplementedError, match="NoMeans has no greedy mode"):
        p.select(n=3, explore=False)
    with pytest.raises(NotImplementedError, match="NoMeans has no greedy mode"):
        p.expected_rewards(n=3)


def test_top_k_mask_varies_k_per_row_and_breaks_ties_to_the_lower_index() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1], [0.5, 0.5, 0.5]])
    assert top_k_mask(scores, torch.tensor([2, 1, 2])).tolist() == [
        [False, True, True],
        [True, False, False],
        [True, True, False],
    ]
