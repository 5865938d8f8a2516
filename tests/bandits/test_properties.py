"""Invariants every registered policy must hold, built-in or plugin (parametrized over the registry)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from banditformer import CombinatorialPolicy, InputValidationError
from banditformer.core.policy import PolicyBase
from tests.bandits.helpers import ALL, COMBINATORIAL, SINGLE, build, contexts, play, rewards_for, state_equal

arms_st = st.integers(1, 12)
rows_st = st.integers(0, 40)
seed_st = st.integers(0, 2**31 - 1)


@pytest.mark.parametrize("name", SINGLE)
@given(num_arms=arms_st, n=rows_st, seed=seed_st, warm=st.integers(0, 3))
def test_arms_in_range_and_shape(name: str, num_arms: int, n: int, seed: int, warm: int) -> None:
    p = build(name, num_arms, seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(warm):
        play(p, 5, gen)
    arms = p.select(contexts(n, gen))
    assert arms.shape == (n,) and arms.dtype == torch.int64
    assert bool(((arms >= 0) & (arms < num_arms)).all())


@pytest.mark.parametrize("name", COMBINATORIAL)
@given(num_arms=arms_st, n=rows_st, seed=seed_st, warm=st.integers(0, 3), data=st.data())
def test_combinatorial_rows_hold_exactly_k_distinct_arms(
    name: str, num_arms: int, n: int, seed: int, warm: int, data: st.DataObject
) -> None:
    p = build(name, num_arms, seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(warm):
        play(p, 5, gen)
    k = torch.tensor(data.draw(st.lists(st.integers(0, num_arms), min_size=n, max_size=n)), dtype=torch.long)
    chosen = p.select(contexts(n, gen), k=k)
    assert chosen.shape == (n, num_arms) and chosen.dtype == torch.bool
    assert torch.equal(chosen.sum(1), k)  # a bool mask: the k arms are distinct by construction


@pytest.mark.parametrize("name", ALL)
@given(num_arms=arms_st, rounds=st.lists(st.integers(0, 20), max_size=5), seed=seed_st)
def test_counts_and_sums_equal_what_was_fed(name: str, num_arms: int, rounds: list[int], seed: int) -> None:
    p = build(name, num_arms, seed)
    gen = torch.Generator().manual_seed(seed)
    counts = torch.zeros(num_arms, dtype=torch.float64)
    sums = torch.zeros(num_arms, dtype=torch.float64)
    for n in rounds:
        choice, r, _ = play(p, n, gen)
        if isinstance(p, CombinatorialPolicy):
            counts += choice.double().sum(0)
            sums += torch.where(choice, r.double(), 0.0).sum(0)
        else:
            counts.index_add_(0, choice, torch.ones(n, dtype=torch.float64))
            sums.index_add_(0, choice, r.double())
    assert torch.equal(p.arm_counts, counts)
    assert torch.allclose(p.arm_reward_sums, sums, atol=1e-9)


@pytest.mark.parametrize("name", ALL)
@given(num_arms=arms_st, seed=seed_st, warm=st.integers(0, 3))
def test_empty_update_is_a_no_op(name: str, num_arms: int, seed: int, warm: int) -> None:
    p = build(name, num_arms, seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(warm):
        play(p, 4, gen)
    before = copy.deepcopy(p)
    x = contexts(0, gen)
    if isinstance(p, CombinatorialPolicy):
        p.update(torch.zeros(0, num_arms, dtype=torch.bool), torch.zeros(0, num_arms), x)
    else:
        p.update(torch.zeros(0, dtype=torch.long), torch.zeros(0), x)
    assert state_equal(p, before, exact=True)


@pytest.mark.parametrize("name", ALL)
@given(num_arms=arms_st, n=st.integers(1, 16), seed=seed_st, grouped=st.booleans())
def test_batched_update_equals_one_by_one(name: str, num_arms: int, n: int, seed: int, grouped: bool) -> None:
    # Discounted policies included: each row is one round of its group, so a batch forgets as
    # its rows fed one at a time do (whatever the batch size), and groups decay only by their own rows.
    probe = build(name, num_arms, seed)
    groups_n = 3 if grouped and probe.supports_groups else 1
    batched = build(name, num_arms, seed, num_groups=groups_n)
    single = build(name, num_arms, seed, num_groups=groups_n)
    gen = torch.Generator().manual_seed(seed)
    x = contexts(n, gen)
    g = torch.randint(0, groups_n, (n,), generator=gen)
    if isinstance(batched, CombinatorialPolicy):
        choice = batched.select(x, k=torch.randint(0, num_arms + 1, (n,), generator=gen), groups=g)
        r = rewards_for(batched, (n, num_arms), gen)
    else:
        choice = batched.select(x, groups=g)
        r = rewards_for(batched, (n,), gen)
    single.load_state_dict(batched.state_dict())
    batched.update(choice, r, x, groups=g)
    for i in range(n):
        single.update(choice[i : i + 1], r[i : i + 1], x[i : i + 1], groups=g[i : i + 1])
    if batched.exact_batch_update:
        sb, ss = batched.state_dict(), single.state_dict()
        for key, value in sb.items():
            if isinstance(value, torch.Tensor):
                assert torch.allclose(value, ss[key], rtol=1e-9, atol=1e-9), key
    else:  # randomised or order-dependent updates: the fed totals still agree
        assert torch.equal(batched.arm_counts, single.arm_counts)
        assert torch.allclose(batched.arm_reward_sums, single.arm_reward_sums, atol=1e-9)


@pytest.mark.parametrize("name", ALL)
@given(num_arms=arms_st, seed=seed_st, warm=st.integers(0, 4))
def test_state_dict_round_trip_gives_same_future_selections(name: str, num_arms: int, seed: int, warm: int) -> None:
    p = build(name, num_arms, seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(warm):
        play(p, 6, gen)
    q = build(name, num_arms, seed + 1)  # another seed: everything must come from the state dict
    q.load_state_dict(p.state_dict())
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(3):
        c1, _, _ = play(p, 9, g1)
        c2, _, _ = play(q, 9, g2)
        assert torch.equal(c1, c2)


@pytest.mark.parametrize("name", ALL)
@given(num_arms=arms_st, seed=seed_st)
def test_same_seed_gives_same_sequence(name: str, num_arms: int, seed: int) -> None:
    runs = []
    for _ in range(2):
        p = build(name, num_arms, seed)
        gen = torch.Generator().manual_seed(seed)
        runs.append([play(p, 7, gen)[0] for _ in range(4)])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


@pytest.mark.parametrize("name", ALL)
def test_global_rng_is_never_used(name: str) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    p = build(name, 6, seed=1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        play(p, 8, gen)
    assert torch.equal(torch.rand(3), expected)


def _tensors(p: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of ``p``'s state dict, the generators' states included, on the CPU."""
    out = {}
    for key, value in p.state_dict().items():
        if isinstance(value, torch.Tensor):
            out[key] = value.detach().cpu().clone()
        elif isinstance(value, dict) and "rng_state" in value:
            out[key + ".rng_state"] = value["rng_state"].cpu().clone()
    return out


def _policies(p: torch.nn.Module) -> list[PolicyBase]:
    return [m for m in p.modules() if isinstance(m, PolicyBase)]  # the policy and any it wraps


@pytest.mark.parametrize("name", ALL)
def test_a_dtype_cast_or_a_move_to_its_own_device_changes_nothing(name: str) -> None:
    # .to() with a dtype, or to the device the policy is on, must keep every statistic's dtype and
    # value and must not re-seed a generator: the policy goes on exactly as an untouched twin.
    p, twin = build(name, 4, seed=0), build(name, 4, seed=0)
    play(p, 5, torch.Generator().manual_seed(0))
    play(twin, 5, torch.Generator().manual_seed(0))
    dtypes = {key: b.dtype for key, b in p.named_buffers()}
    p.to(torch.float16)
    p.to(torch.device("cpu"))
    p.to("cpu", torch.bfloat16)
    assert {key: b.dtype for key, b in p.named_buffers()} == dtypes
    assert _tensors(p).keys() == _tensors(twin).keys()
    assert all(torch.equal(v, _tensors(twin)[k]) for k, v in _tensors(p).items())
    assert all(m.generator.device.type == "cpu" for m in _policies(p))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert all(torch.equal(play(p, 6, g1)[0], play(twin, 6, g2)[0]) for _ in range(3))


@pytest.mark.cuda
@pytest.mark.parametrize("name", ALL)
def test_moves_between_devices_and_keeps_state(name: str) -> None:
    # CPU -> CUDA -> CPU with .to(): every buffer (wrapped policies' too) and every generator
    # moves, the values and dtypes stay, and the moved generators are a deterministic function of
    # the seed and the history (two policies moved alike draw alike).
    p = build(name, 4, seed=0)
    play(p, 6, torch.Generator().manual_seed(0))
    twin, saved = copy.deepcopy(p), _tensors(p)
    dtypes = {key: b.dtype for key, b in p.named_buffers()}
    for q in (p, twin):
        q.to("cuda")
    assert all(b.device.type == "cuda" for b in p.buffers())
    assert {key: b.dtype for key, b in p.named_buffers()} == dtypes
    assert all(m.device.type == "cuda" and m.generator.device.type == "cuda" for m in _policies(p))
    moved = _tensors(p)
    assert all(torch.equal(moved[k], v) for k, v in saved.items() if not k.endswith("rng_state"))
    g1, g2 = torch.Generator(device="cuda").manual_seed(1), torch.Generator(device="cuda").manual_seed(1)
    for _ in range(3):
        c1, _, _ = play(p, 8, g1)
        c2, _, _ = play(twin, 8, g2)
        assert c1.device.type == "cuda" and torch.equal(c1, c2)
    on_cuda = _tensors(p)
    p.to("cpu")
    assert all(b.device.type == "cpu" for b in p.buffers())
    assert all(m.generator.device.type == "cpu" for m in _policies(p))
    back = _tensors(p)
    assert all(torch.equal(back[k], v) for k, v in on_cuda.items() if not k.endswith("rng_state"))
    play(p, 4, torch.Generator().manual_seed(2))  # and it plays on the CPU again


# --------------------------------------------------------------------------------- invalid input
def _bad_updates(p, gen: torch.Generator) -> list[tuple[str, tuple]]:
    """(description, update arguments) pairs that every policy must reject."""
    n, k = 4, p.num_arms
    x = contexts(n, gen)
    low, high = p.reward_range
    if isinstance(p, CombinatorialPolicy):
        chosen = torch.zeros(n, k, dtype=torch.bool)
        chosen[:, 0] = True
        good = rewards_for(p, (n, k), gen)
        cases = [
            ("nan", (chosen, good.index_put((torch.tensor([1]), torch.tensor([0])), torch.tensor(float("nan"))), x)),
            ("inf", (chosen, good.index_put((torch.tensor([1]), torch.tensor([0])), torch.tensor(float("inf"))), x)),
            ("1-D rewards", (chosen, good[:, 0], x)),
            ("int rewards", (chosen, torch.ones(n, k, dtype=torch.long), x)),
            ("float mask", (chosen.float(), good, x)),
            ("wrong width", (torch.ones(n, k + 1, dtype=torch.bool), torch.zeros(n, k + 1), x)),
            ("meta device", (chosen, good.to("meta"), x)),
            ("context rows", (chosen, good, x[:-1])),
            ("context dim", (chosen, good, torch.zeros(n, 99))),
            ("nan context", (chosen, good, torch.full((n, x.shape[1]), float("nan")))),
            (
                "inf context",
                (chosen, good, x.index_put((torch.tensor([1]), torch.tensor([0])), torch.tensor(math.inf))),
            ),
        ]
        if high < float("inf"):
            cases.append(("above range", (chosen, torch.full((n, k), high + 0.5), x)))
        return cases
    arms = torch.zeros(n, dtype=torch.long)
    good = rewards_for(p, (n,), gen)
    cases = [
        ("nan", (arms, torch.tensor([0.5, float("nan"), 0.5, 0.5]), x)),
        ("inf", (arms, torch.tensor([0.5, float("inf"), 0.5, 0.5]), x)),
        ("-inf", (arms, torch.tensor([0.5, float("-inf"), 0.5, 0.5]), x)),
        ("2-D rewards", (arms, good.unsqueeze(1), x)),
        ("length mismatch", (arms, good[:-1], x)),
        ("int rewards", (arms, torch.ones(n, dtype=torch.long), x)),
        ("float arms", (arms.float(), good, x)),
        ("arm out of range", (torch.tensor([0, k, 0, 0]), good, x)),
        ("negative arm", (torch.tensor([0, -1, 0, 0]), good, x)),
        ("meta device", (arms, good.to("meta"), x)),
        ("not a tensor", (arms, [0.5] * n, x)),
        ("context rows", (arms, good, x[:-1])),
        ("context dim", (arms, good, torch.zeros(n, 99))),
        ("nan context", (arms, good, torch.full((n, x.shape[1]), float("nan")))),
        ("inf context", (arms, good, x.index_put((torch.tensor([1]), torch.tensor([0])), torch.tensor(math.inf)))),
    ]
    if high < float("inf"):
        cases.append(("above range", (arms, torch.full((n,), high + 0.5), x)))
        cases.append(("below range", (arms, torch.full((n,), low - 0.5), x)))
    return cases


@pytest.mark.parametrize("name", ALL)
def test_bad_updates_raise_and_leave_state_unchanged(name: str) -> None:
    p = build(name, 5, seed=3)
    gen = torch.Generator().manual_seed(0)
    play(p, 6, gen)
    for label, args in _bad_updates(p, gen):
        before = copy.deepcopy(p)
        with pytest.raises(InputValidationError, match="expected"):
            p.update(*args)
        assert state_equal(p, before, exact=True), label


@pytest.mark.parametrize("name", ALL)
def test_bad_selects_raise(name: str) -> None:
    p = build(name, 5, seed=3)
    before = copy.deepcopy(p)
    bad: list[dict] = [
        {"context": torch.zeros(3, 99)},
        {"context": torch.zeros(3)},
        {"context": torch.zeros(3, 3, dtype=torch.long)},
        {"context": torch.zeros(3, 3), "groups": torch.zeros(4, dtype=torch.long)},
        {"context": torch.zeros(3, 3), "groups": torch.full((3,), 99, dtype=torch.long)},
        {"context": torch.full((3, 3), float("nan"))},
        {"context": torch.tensor([[0.0, float("inf"), 0.0]] * 3)},
    ]
    if isinstance(p, CombinatorialPolicy):
        bad += [
            {"context": torch.zeros(2, 3), "k": torch.tensor([1, 6])},
            {"context": torch.zeros(2, 3), "k": torch.tensor([1, -1])},
            {"context": torch.zeros(2, 3), "k": torch.tensor([1.0, 2.0])},
            {"context": torch.zeros(2, 3), "k": torch.tensor([1, 2, 3])},
            {"context": torch.zeros(2, 3)},
        ]
        for kwargs in bad[:7]:
            kwargs.setdefault("k", 1)
    else:
        bad.append({"n": -1} if not p.is_contextual else {"context": None, "n": 2})
    for kwargs in bad:
        with pytest.raises(InputValidationError, match="expected"):
            p.select(**kwargs)
    assert state_equal(p, before, exact=True)


@pytest.mark.parametrize("name", ALL)
@given(num_arms=arms_st, n=rows_st, seed=seed_st, warm=st.integers(0, 3))
def test_greedy_mode_is_deterministic_and_maximises_expected_rewards(
    name: str, num_arms: int, n: int, seed: int, warm: int
) -> None:
    p = build(name, num_arms, seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(warm):
        play(p, 6, gen)
    x = contexts(n, gen)
    rng = p.generator.get_state()
    means = p.expected_rewards(x)
    assert means.shape == (n, num_arms)
    if isinstance(p, CombinatorialPolicy):
        k = torch.randint(0, num_arms + 1, (n,), generator=gen)
        chosen = p.select(x, k=k, explore=False)
        assert torch.equal(chosen, p.select(x, k=k, explore=False)) and torch.equal(chosen.sum(1), k)
        if n:  # every chosen arm scores at least as high as every unchosen one
            low = torch.where(chosen, means, torch.inf).min(1).values
            high = torch.where(chosen, -torch.inf, means).max(1).values
            assert bool((low >= high).all())
    else:
        arms = p.select(x, explore=False)
        assert torch.equal(arms, p.select(x, explore=False))
        if n:
            assert bool((means.gather(1, arms.unsqueeze(1)).squeeze(1) == means.max(1).values).all())
    assert torch.equal(p.generator.get_state(), rng)  # greedy draws nothing


@pytest.mark.parametrize("name", ALL)
def test_n_and_k_passed_positionally_are_a_type_error(name: str) -> None:
    p = build(name, 4, seed=0)
    before = copy.deepcopy(p)
    x = contexts(2, torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="positional"):
        p.select(x, 2)  # n for a one-arm policy, k for a combinatorial one: neither, by position
    with pytest.raises(TypeError, match="positional"):
        p.expected_rewards(x, 2)
    assert state_equal(p, before, exact=True)


@pytest.mark.parametrize("name", SINGLE)
@given(num_arms=arms_st, n=st.integers(0, 12), seed=seed_st, warm=st.integers(0, 3), explore=st.booleans())
def test_propensities_are_probabilities_and_leave_the_draws_alone(
    name: str, num_arms: int, n: int, seed: int, warm: int, explore: bool
) -> None:
    p = build(name, num_arms, seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(warm):
        play(p, 5, gen)
    p.propensity_samples = 16  # an instance override: the property, not the estimate's precision
    twin = copy.deepcopy(p)
    x = contexts(n, gen)
    arms, prop = p.select(x, explore=explore, propensity=True)
    assert torch.equal(arms, twin.select(x, explore=explore))
    assert prop.shape == (n,) and prop.dtype == torch.float64
    assert bool(((prop > 0) & (prop <= 1)).all())
    assert torch.equal(p.select(x), twin.select(x))  # the random stream is where it would be
    probs = p.action_probabilities(x, explore=explore)
    assert probs.shape == (n, num_arms) and bool((probs >= 0).all())
    torch.testing.assert_close(probs.sum(1), torch.ones(n, dtype=torch.float64))
    assert torch.equal(p.select(x), twin.select(x))  # action_probabilities drew nothing either
