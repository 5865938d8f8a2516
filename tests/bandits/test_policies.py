"""Policy-specific behaviour and the pure formulas, each tested on its own."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from banditformer import InputValidationError, make_policy
from banditformer.bandits import (
    CTS,
    CUCB,
    KLUCB,
    UCB1,
    Bucketed,
    BucketedCombinatorial,
    EpsilonGreedy,
    LinUCB,
    ThompsonBeta,
    ThompsonGaussian,
)
from banditformer.bandits._common import argmax_untried_first, rank_within_group
from banditformer.bandits._linear import ridge_fit
from banditformer.bandits.cts import descending_rank
from banditformer.bandits.epsilon_greedy import epsilon_schedule
from banditformer.bandits.kl_ucb import bernoulli_kl, kl_ucb_index
from banditformer.bandits.thompson_gaussian import gaussian_posterior
from banditformer.bandits.ucb1 import ucb1_index
from banditformer.core.policy import top_k_mask


# ------------------------------------------------------------------------------------ formulas
def test_ucb1_index_matches_the_formula() -> None:
    sums = torch.tensor([3.0, 1.0, 0.0], dtype=torch.float64)
    counts = torch.tensor([4.0, 2.0, 0.0], dtype=torch.float64)
    idx = ucb1_index(sums, counts, counts.sum(), c=1.0)
    assert idx[0].item() == pytest.approx(0.75 + math.sqrt(2 * math.log(6) / 4))
    assert idx[1].item() == pytest.approx(0.5 + math.sqrt(2 * math.log(6) / 2))
    assert idx[2].item() == math.inf


@given(p=st.floats(0, 1), n=st.integers(1, 1000), t=st.integers(1, 10**6))
def test_kl_ucb_index_solves_its_equation(p: float, n: int, t: int) -> None:
    t = max(t, n)
    sums = torch.tensor([p * n], dtype=torch.float64)
    counts = torch.tensor([float(n)], dtype=torch.float64)
    q = kl_ucb_index(sums, counts, torch.tensor(float(t), dtype=torch.float64), c=0.0, iters=50)
    assert p - 1e-9 <= q.item() <= 1.0
    limit = math.log(t) / n
    assert bernoulli_kl(torch.tensor(p), q).item() <= limit + 1e-6
    if q.item() < 1 - 1e-6:  # the largest such q: a bit more breaks the budget
        assert bernoulli_kl(torch.tensor(p, dtype=torch.float64), q + 1e-4).item() > limit - 1e-9


def test_kl_ucb_is_tighter_than_ucb1() -> None:
    sums = torch.tensor([90.0, 10.0], dtype=torch.float64)
    counts = torch.tensor([100.0, 100.0], dtype=torch.float64)
    kl = kl_ucb_index(sums, counts, torch.tensor(200.0, dtype=torch.float64))
    ucb = ucb1_index(sums, counts, torch.tensor(200.0, dtype=torch.float64))
    assert bool((kl < ucb).all())


def test_epsilon_schedules() -> None:
    t = torch.tensor([0.0, 10.0, 100.0])
    assert epsilon_schedule(0.3, "fixed", 0.1, t).tolist() == pytest.approx([0.3, 0.3, 0.3])
    assert epsilon_schedule(1.0, "inverse_time", 0.1, t).tolist() == pytest.approx([1.0, 0.5, 1 / 11])
    assert epsilon_schedule(1.0, "exponential", 0.1, t, 0.01).tolist() == pytest.approx([1.0, math.exp(-1), 0.01])
    with pytest.raises(InputValidationError, match="schedule"):
        epsilon_schedule(1.0, "cosine", 0.1, t)


def test_gaussian_posterior_is_conjugate_update() -> None:
    mean, std = gaussian_posterior(torch.tensor(6.0), torch.tensor(3.0), prior_mean=0.0, prior_std=1.0, noise_std=1.0)
    assert mean.item() == pytest.approx(6.0 / 4.0)
    assert std.item() == pytest.approx(0.5)


def test_ridge_fit_solves_normal_equations() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    r = x @ w
    theta, a_inv = ridge_fit(x.T @ x, x.T @ r, torch.tensor(1e-6, dtype=torch.float64))
    assert torch.allclose(theta, w, atol=1e-4)
    assert torch.allclose(
        a_inv @ (x.T @ x + 1e-6 * torch.eye(4, dtype=torch.float64)), torch.eye(4, dtype=torch.float64)
    )


@given(
    scores=st.lists(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=5, max_size=5), min_size=1, max_size=6),
    data=st.data(),
)
def test_descending_rank_below_k_is_the_top_k_mask(scores: list[list[float]], data: st.DataObject) -> None:
    # CTS takes descending_rank(samples) < k (ranked once per group with shared draws); it must be
    # top_k_mask exactly, ties (frequent among the few values drawn here) to the lower index.
    s = torch.tensor(scores, dtype=torch.float64)
    k = torch.tensor(data.draw(st.lists(st.integers(0, 5), min_size=len(scores), max_size=len(scores))))
    rank = descending_rank(s)
    assert torch.equal(rank.sort(1).values, torch.arange(5).expand(len(scores), 5))  # a permutation per row
    assert torch.equal(rank < k.unsqueeze(1), top_k_mask(s, k))


def test_rank_within_group() -> None:
    assert rank_within_group(torch.tensor([2, 0, 2, 2, 0, 1])).tolist() == [0, 0, 1, 2, 1, 0]


# ----------------------------------------------------------------------------------- behaviour
@pytest.mark.parametrize("name", ["ucb1", "kl_ucb", "discounted_ucb1", "epsilon_greedy"])
@pytest.mark.parametrize("num_arms", [1, 2, 7])
def test_untried_arms_each_play_once_before_any_repeat(name: str, num_arms: int) -> None:
    p = make_policy(name, num_arms=num_arms, seed=0, **({"epsilon": 0.0} if name == "epsilon_greedy" else {}))
    played = []
    for _ in range(num_arms):
        arm = p.select(n=1)
        p.update(arm, torch.rand(1))
        played.append(int(arm))
    assert sorted(played) == list(range(num_arms))
    q = make_policy(name, num_arms=num_arms, seed=0, **({"epsilon": 0.0} if name == "epsilon_greedy" else {}))
    assert sorted(q.select(n=num_arms).tolist()) == list(range(num_arms))  # one batch deals them all


def test_untried_rule_is_per_group() -> None:
    table = torch.tensor([[0.0, 0.0, 9.0], [0.0, 7.0, 0.0]])
    counts = torch.tensor([[0, 0, 5], [1, 1, 1]]).double()
    arms = argmax_untried_first(table, counts, torch.tensor([0, 1, 0, 0, 1]))
    assert arms.tolist() == [0, 1, 1, 0, 1]  # group 0 deals its untried arms 0, 1 round-robin; group 1 is greedy


@pytest.mark.parametrize("policy_cls", [ThompsonBeta, CTS])
def test_group_draws_are_shared_by_a_groups_rows(policy_cls) -> None:
    p = policy_cls(num_arms=6, draws="group", num_groups=2, seed=0)
    groups = torch.tensor([0, 1] * 20)
    if policy_cls is CTS:
        chosen = p.select(k=3, groups=groups)
        assert torch.equal(chosen[0::2], chosen[0].expand(20, 6)) and torch.equal(chosen[1::2], chosen[1].expand(20, 6))
    else:
        arms = p.select(groups=groups)
        assert bool((arms[0::2] == arms[0]).all() and (arms[1::2] == arms[1]).all())
    with pytest.raises(InputValidationError, match="draws"):
        policy_cls(num_arms=2, draws="column")


@given(seed=st.integers(0, 10**6), n=st.integers(1, 30))
def test_epsilon_zero_is_greedy_on_the_means(seed: int, n: int) -> None:
    p = EpsilonGreedy(num_arms=6, epsilon=0.0, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    p.update(torch.arange(6), torch.rand(6, generator=gen))
    for _ in range(3):
        arms = p.select(n=n)
        means = p.sums[0] / p.counts[0]
        assert bool((means[arms] == means.max()).all())
        p.update(arms, torch.rand(n, generator=gen))


def test_epsilon_one_explores_uniformly() -> None:
    p = EpsilonGreedy(num_arms=4, epsilon=1.0, seed=0)
    p.update(torch.arange(4), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    freq = torch.bincount(p.select(n=8000), minlength=4).double() / 8000
    assert torch.allclose(freq, torch.full((4,), 0.25, dtype=torch.float64), atol=0.03)


@pytest.mark.parametrize("policy_cls", [ThompsonBeta, CTS])
@given(seed=st.integers(0, 10**6), discount=st.floats(0.01, 1.0), trick=st.booleans())
def test_thompson_posterior_parameters_stay_positive(policy_cls, seed: int, discount: float, trick: bool) -> None:
    p = policy_cls(num_arms=5, discount=discount, bernoulli_trick=trick, prior_alpha=0.5, prior_beta=0.5, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(5):
        if policy_cls is CTS:
            chosen = p.select(k=2, n=8)
            p.update(chosen, torch.rand(8, 5, generator=gen))
        else:
            arms = p.select(n=8)
            p.update(arms, torch.rand(8, generator=gen))
        alpha, beta = p.posterior()
        assert bool((alpha > 0).all() and (beta > 0).all())


def test_gaussian_thompson_posterior_std_positive_and_shrinking() -> None:
    p = ThompsonGaussian(num_arms=3, seed=0)
    _, std0 = p.posterior()
    p.update(torch.tensor([0, 0, 0]), torch.tensor([1.0, -2.0, 0.5]))
    _, std1 = p.posterior()
    assert bool((std1 > 0).all()) and std1[0, 0] < std0[0, 0]


def test_discount_forgets_old_rewards() -> None:
    # Arm 0 was best, then arm 1 becomes best; the discounted policy switches, the plain one lags.
    plain, disc = UCB1(num_arms=2, seed=0), UCB1(num_arms=2, discount=0.9, seed=0)
    for p in (plain, disc):
        for _ in range(500):
            p.update(torch.tensor([0, 1]), torch.tensor([1.0, 0.0]))
        for _ in range(30):
            p.update(torch.tensor([0, 1]), torch.tensor([0.0, 1.0]))
    assert int(disc.select(n=1)) == 1
    assert int(plain.select(n=1)) == 0


def test_discount_is_one_round_per_row_of_a_group() -> None:
    # gamma 0.5; group 0 gets arm 0 (r=1), arm 0 (r=0), arm 1 (r=1) in one batch, group 1 one row
    p = UCB1(num_arms=2, num_groups=2, discount=0.5)
    p.counts.fill_(4.0)  # history, decayed by 0.5 per round of its own group
    p.sums.fill_(2.0)
    p.update(torch.tensor([0, 0, 1, 1]), torch.tensor([1.0, 0.0, 1.0, 1.0]), groups=torch.tensor([0, 0, 0, 1]))
    # group 0: three rounds, history x 0.125; row weights 0.25, 0.5, 1 (rounds after each row: 2, 1, 0)
    assert p.counts[0].tolist() == [4 * 0.125 + 0.25 + 0.5, 4 * 0.125 + 1.0]
    assert p.sums[0].tolist() == [2 * 0.125 + 0.25, 2 * 0.125 + 1.0]
    # group 1: one round, history x 0.5, its row at weight 1
    assert p.counts[1].tolist() == [2.0, 3.0] and p.sums[1].tolist() == [1.0, 2.0]
    # the same rows at batch 1, or in batches of 2, end in the same statistics
    for size in (1, 2):
        q = UCB1(num_arms=2, num_groups=2, discount=0.5)
        q.counts.fill_(4.0)
        q.sums.fill_(2.0)
        arms, r, g = torch.tensor([0, 0, 1, 1]), torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.tensor([0, 0, 0, 1])
        for i in range(0, 4, size):
            q.update(arms[i : i + size], r[i : i + size], groups=g[i : i + size])
        assert torch.allclose(q.counts, p.counts) and torch.allclose(q.sums, p.sums)


def test_bernoulli_trick_off_is_deterministic_fractional() -> None:
    p = ThompsonBeta(num_arms=2, bernoulli_trick=False)
    p.update(torch.tensor([0, 0]), torch.tensor([0.25, 0.5]))
    assert p.successes[0].tolist() == [0.75, 0.0] and p.failures[0].tolist() == [1.25, 0.0]


def test_linucb_learns_a_linear_reward() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # arm a pays x[a]
    p = LinUCB(num_arms=2, context_dim=2, alpha=0.5, seed=0)
    correct = []
    for _ in range(300):
        x = torch.rand(16, 2, generator=gen)
        arms = p.select(x)
        correct.append((arms == x.argmax(1)).double().mean())
        p.update(arms, (x * w[arms]).sum(1).clamp(0, 1), x)
    assert torch.stack(correct[-50:]).mean() > 0.9


def test_bucketed_learns_per_bucket_best_arm() -> None:
    # Two well-separated context clusters with opposite best arms.
    gen = torch.Generator().manual_seed(0)
    p = Bucketed(num_arms=2, context_dim=2, base=ThompsonBeta, num_buckets=2, seed=0)
    centers = torch.tensor([[5.0, 5.0], [-5.0, -5.0]])
    for _ in range(200):
        c = torch.randint(0, 2, (16,), generator=gen)
        x = centers[c] + 0.1 * torch.randn(16, 2, generator=gen)
        arms = p.select(x)
        p.update(arms, (arms == c).float(), x)
    x = centers.repeat(50, 1)
    assert (p.select(x) == torch.tensor([0, 1]).repeat(50)).double().mean() > 0.9
    c64 = centers.double()
    assert torch.allclose(p.centroids, c64, atol=0.5) or torch.allclose(p.centroids.flip(0), c64, atol=0.5)


def test_bucketed_rejects_a_contextual_or_wrong_base() -> None:
    with pytest.raises(InputValidationError, match="context-free"):
        Bucketed(num_arms=2, context_dim=2, base=LinUCB, base_kwargs={"context_dim": 2})
    with pytest.raises(InputValidationError, match="context-free"):  # by name, through the registry
        make_policy("bucketed", num_arms=2, context_dim=2, base="linucb", base_kwargs={"context_dim": 2})
    with pytest.raises(InputValidationError, match=r"expected `base` to be a policy or a policy factory.*got int"):
        Bucketed(num_arms=2, context_dim=2, base=3)  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match=r"got str \(a name is the registry's"):
        Bucketed(num_arms=2, context_dim=2, base="ucb1")  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="base_kwargs"):
        Bucketed(num_arms=2, context_dim=2, base_kwargs=[("c", 2.0)])  # type: ignore[arg-type]


def test_bucketed_takes_a_built_base_policy_that_fits() -> None:
    base = UCB1(3, num_groups=4, c=0.5)
    p = Bucketed(num_arms=3, context_dim=2, base=base, num_buckets=4)
    assert p.base is base
    x = torch.randn(6, 2)
    p.update(p.select(x), torch.rand(6), x)
    assert float(base.counts.sum()) == 6  # the policy given is the one that learns
    for bad, what in ((UCB1(3), "num_groups=4"), (UCB1(2, num_groups=4), "over 3 arms"), (CTS(3, num_groups=4), "")):
        with pytest.raises(InputValidationError, match=rf"expected `base` to be a context-free Policy .*{what}"):
            Bucketed(num_arms=3, context_dim=2, base=bad, num_buckets=4)
    with pytest.raises(InputValidationError, match=r"no `base_kwargs` with a base policy that is already built"):
        Bucketed(num_arms=3, context_dim=2, base=UCB1(3, num_groups=4), num_buckets=4, base_kwargs={"c": 2.0})
    combo = CTS(4, num_groups=8)
    assert BucketedCombinatorial(num_arms=4, context_dim=2, base=combo).base is combo


def test_bucketed_defaults_are_ucb1_and_cts() -> None:
    assert type(Bucketed(num_arms=2, context_dim=2).base) is UCB1
    assert type(BucketedCombinatorial(num_arms=2, context_dim=2).base) is CTS
    assert type(make_policy("bucketed", num_arms=2, context_dim=2).base) is UCB1
    assert type(make_policy("bucketed_combinatorial", num_arms=2, context_dim=2).base) is CTS


@pytest.mark.parametrize(
    ("name", "base", "cls"), [("bucketed", "kl_ucb", KLUCB), ("bucketed_combinatorial", "cucb", CUCB)]
)
def test_the_registry_builds_a_named_base_as_the_same_factory_would(name: str, base: str, cls: type) -> None:
    # make_policy("bucketed", base=<name>) is the wrapper given make_policy(<name>) as its factory:
    # the same class, options and seed, so the same numbers as the class given directly.
    by_name = make_policy(name, num_arms=4, context_dim=2, base=base, base_kwargs={"c": 0.5}, num_buckets=3, seed=7)
    wrapper = Bucketed if name == "bucketed" else BucketedCombinatorial
    direct = wrapper(num_arms=4, context_dim=2, base=cls, base_kwargs={"c": 0.5}, num_buckets=3, seed=7)
    assert type(by_name.base) is cls and float(by_name.base.c) == 0.5 and by_name.base.num_groups == 3
    assert by_name.base.seed == direct.base.seed
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        x = torch.randn(6, 2, generator=gen)
        kw = {"k": 2} if name != "bucketed" else {}
        a, b = by_name.select(x, **kw), direct.select(x, **kw)
        assert torch.equal(a, b)
        r = torch.rand(a.shape, generator=gen)
        by_name.update(a, r, x)
        direct.update(b, r, x)
    assert torch.equal(by_name.base.sums, direct.base.sums)


def test_a_plugin_policy_name_can_be_a_bucketed_base() -> None:
    from banditformer import hookimpl
    from banditformer.plugins import PluginManager, set_plugin_manager

    class Plugin:
        @hookimpl
        def banditformer_add_policies(self):
            return {"my_ucb": UCB1}

    manager = PluginManager(autoload=False)
    manager.register(Plugin(), name="mine")
    set_plugin_manager(manager)
    try:
        p = make_policy("bucketed", num_arms=3, context_dim=2, base="my_ucb", seed=0)
        assert type(p.base) is UCB1 and p.base._bf_origin == ("mine", "my_ucb")
    finally:
        set_plugin_manager(None)


def test_cucb_tries_every_base_arm_then_exploits() -> None:
    p = CUCB(num_arms=6, seed=0)
    chosen = p.select(k=6, n=2)
    assert chosen.all()  # untried arms first: every row takes them all
    chosen = p.select(k=3, n=1)
    p.update(chosen, torch.ones(1, 6))
    assert not (p.select(k=3, n=1) & chosen).any()  # the three still untried come next
    means = torch.tensor([0.9, 0.8, 0.7, 0.2, 0.1, 0.0])
    gen = torch.Generator().manual_seed(0)
    for _ in range(400):
        chosen = p.select(k=3, n=8)
        p.update(chosen, (torch.rand(8, 6, generator=gen) < means).float())
    top = p.select(k=3, n=1)[0]
    assert top.tolist() == [True, True, True, False, False, False]


def test_constructor_arguments_are_checked() -> None:
    with pytest.raises(InputValidationError, match="num_arms"):
        UCB1(num_arms=0)
    with pytest.raises(InputValidationError, match="discount"):
        UCB1(num_arms=2, discount=0.0)
    with pytest.raises(InputValidationError, match="epsilon"):
        EpsilonGreedy(num_arms=2, epsilon=1.5)
    with pytest.raises(InputValidationError, match="context_dim"):
        LinUCB(num_arms=2)
    with pytest.raises(InputValidationError, match="seed"):
        CTS(num_arms=2, seed=-1)
    with pytest.raises(InputValidationError, match="prior_alpha"):
        ThompsonBeta(num_arms=2, prior_alpha=0.0)


def test_bucketed_combinatorial_learns_per_bucket_best_subset() -> None:
    gen = torch.Generator().manual_seed(0)
    p = BucketedCombinatorial(num_arms=4, context_dim=2, base=CTS, num_buckets=2, seed=0)
    centers = torch.tensor([[5.0, 5.0], [-5.0, -5.0]])
    good = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])  # bucket 0 likes arms 0, 1
    for _ in range(150):
        c = torch.randint(0, 2, (16,), generator=gen)
        x = centers[c] + 0.1 * torch.randn(16, 2, generator=gen)
        chosen = p.select(x, k=2)
        p.update(chosen, good[c], x)
    chosen = p.select(centers.repeat(20, 1), k=2)
    assert (chosen == good.bool().repeat(20, 1)).all(1).double().mean() > 0.9


def test_bucketed_combinatorial_needs_a_combinatorial_base() -> None:
    with pytest.raises(InputValidationError, match="context-free CombinatorialPolicy"):
        BucketedCombinatorial(num_arms=3, context_dim=2, base=UCB1)  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="num_groups"):
        BucketedCombinatorial(num_arms=3, context_dim=2, num_groups=2)
