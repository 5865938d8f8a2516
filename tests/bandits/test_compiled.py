"""The compiled CPU rounds (banditformer.bandits._compiled): the torch path's arms, statistics,
draws and errors, call for call."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from banditformer import InputValidationError, make_policy
from banditformer.bandits import UCB1, compiled_available, compiled_rounds, compiled_rounds_enabled
from banditformer.core.policy import Policy
from banditformer.core.random import counter_seed, counter_uniform, counter_uniforms
from banditformer.core.validation import value_checks
from tests.bandits.helpers import state_equal

pytestmark = pytest.mark.skipif(not compiled_available(), reason="numba is not installed")

# every registered policy with a compiled step: a compiled update (CountState's), a compiled select, or both
COMPILED_UPDATE = [
    "ucb1",
    "epsilon_greedy",
    "epsilon_greedy_decay",
    "kl_ucb",
    "moss",
    "bayes_ucb",
    "thompson_gaussian",
    "thompson_beta",
    "thompson_beta_shared",
]
COMPILED_SELECT = ["ucb1", "discounted_ucb1", "epsilon_greedy", "epsilon_greedy_decay"]
LINEAR = ["linucb", "lin_thompson"]  # a compiled update; LinUCB also a compiled select
NUM_ARMS = 5


def pair(name: str, num_groups: int, seed: int = 3, **kwargs: object) -> tuple[Policy, Policy]:
    a = make_policy(name, num_arms=NUM_ARMS, num_groups=num_groups, seed=seed, **kwargs)
    b = make_policy(name, num_arms=NUM_ARMS, num_groups=num_groups, seed=seed, **kwargs)
    return a, b


def test_the_registry_names_above_are_those_with_compiled_steps() -> None:
    from banditformer import list_policies

    update, select = [], []
    for name in list_policies():
        cls = type(make_policy(name, num_arms=2, context_dim=2))
        if getattr(cls, "_compiled_update", Policy._compiled_update) is not Policy._compiled_update:
            update.append(name)
        if getattr(cls, "_compiled_select", Policy._compiled_select) is not Policy._compiled_select:
            select.append(name)
    # the discounted ones have their class's compiled update, which a discount sends to the torch path
    assert sorted(update) == sorted(COMPILED_UPDATE + LINEAR + ["discounted_ucb1", "discounted_thompson_beta"])
    assert sorted(select) == sorted([*COMPILED_SELECT, "linucb"])


rounds = st.lists(
    st.tuples(
        st.integers(1, 40),  # rows
        st.booleans(),  # pass groups
        st.sampled_from([torch.float32, torch.float64]),
        st.integers(0, 2**31 - 1),  # data seed
    ),
    min_size=1,
    max_size=8,
)


@pytest.mark.parametrize("name", sorted(set(COMPILED_UPDATE + COMPILED_SELECT)))
@settings(max_examples=25, deadline=None)
@given(steps=rounds, num_groups=st.sampled_from([1, 3]))
def test_compiled_rounds_equal_torch_rounds(name: str, steps: list, num_groups: int) -> None:
    compiled, reference = pair(name, num_groups)
    for n, grouped, dtype, data_seed in steps:
        gen = torch.Generator().manual_seed(data_seed)
        groups = torch.randint(0, num_groups, (n,), generator=gen) if grouped or num_groups > 1 else None
        if name == "thompson_gaussian":
            rewards = torch.randn(n, generator=gen).to(dtype)
        else:
            rewards = torch.rand(n, generator=gen).to(dtype)
        with compiled_rounds(True):
            arms = compiled.select(n=n, groups=groups)
        with compiled_rounds(False):
            expected = reference.select(n=n, groups=groups)
        assert torch.equal(arms, expected)
        assert arms.dtype == torch.int64
        with compiled_rounds(True):
            compiled.update(arms, rewards, groups=groups)
        with compiled_rounds(False):
            reference.update(expected, rewards, groups=groups)
        assert state_equal(compiled, reference, exact=True)  # statistics and generator, bit for bit


@pytest.mark.parametrize("name", LINEAR)
@settings(max_examples=25, deadline=None)
@given(steps=rounds, num_groups=st.sampled_from([1, 3]), dim=st.sampled_from([1, 4]))
def test_compiled_linear_rounds_equal_torch_rounds(name: str, steps: list, num_groups: int, dim: int) -> None:
    compiled = make_policy(name, num_arms=NUM_ARMS, context_dim=dim, num_groups=num_groups, seed=3)
    reference = make_policy(name, num_arms=NUM_ARMS, context_dim=dim, num_groups=num_groups, seed=3)
    for n, grouped, dtype, data_seed in steps:
        gen = torch.Generator().manual_seed(data_seed)
        groups = torch.randint(0, num_groups, (n,), generator=gen) if grouped or num_groups > 1 else None
        x = torch.randn(n, dim, generator=gen).to(dtype)
        rewards = torch.randn(n, generator=gen).to(dtype)
        with compiled_rounds(True):
            arms = compiled.select(x, groups=groups)
        with compiled_rounds(False):
            expected = reference.select(x, groups=groups)
        # the fit is another order of the same operations: the same arms but at rounding-level ties
        assert torch.equal(arms, expected)
        with compiled_rounds(True):
            compiled.update(arms, rewards, x, groups=groups)
        with compiled_rounds(False):
            reference.update(expected, rewards, x, groups=groups)
        assert state_equal(compiled, reference, exact=True)  # the update: bit for bit


@pytest.mark.parametrize(
    "context, rewards, message",
    [
        ([[0.0, float("nan")], [1.0, 1.0]], [0.5, 0.5], "expected `context` to be finite"),
        ([[0.0, 1e101], [1.0, 1.0]], [0.5, 0.5], r"expected `context` entries in \[-1e\+100, 1e\+100\]"),
        ([[0.0, 1.0], [1.0, 1.0]], [0.5, float("inf")], "expected `rewards` to be finite"),
    ],
)
def test_bad_linear_values_raise_the_torch_paths_error_and_change_nothing(
    context: list, rewards: list, message: str
) -> None:
    policy = make_policy("linucb", num_arms=3, context_dim=2, seed=0)
    x = torch.tensor(context, dtype=torch.float64)
    for compiled in (True, False):
        with compiled_rounds(compiled), pytest.raises(InputValidationError, match=message):
            policy.update(torch.tensor([0, 1]), torch.tensor(rewards, dtype=torch.float64), x)
        if "context" in message:
            with compiled_rounds(compiled), pytest.raises(InputValidationError, match=message):
                policy.select(x)
    assert policy.gram.abs().sum() == 0 and policy.arm_counts.sum() == 0


def test_linucb_scores_the_torch_paths_fit_also_where_it_is_spectral() -> None:
    policy = make_policy("linucb", num_arms=2, context_dim=2, seed=0)
    policy.gram[0, 0] = -10.0 * torch.eye(2, dtype=torch.float64)  # A = I - 10 I: no Cholesky factor
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with compiled_rounds(False):
        expected = policy.select(x)
    assert torch.equal(policy.select(x), expected)


def test_linucb_agrees_with_the_torch_path_on_ill_conditioned_designs() -> None:
    # contexts near 1e9 in every coordinate: the Cholesky factorisation is at the edge of failing
    gen = torch.Generator().manual_seed(52)
    policy = make_policy("linucb", num_arms=2, context_dim=3, seed=0)
    policy.update(torch.zeros(20, dtype=torch.long), torch.rand(20, generator=gen, dtype=torch.float64),
                  1e9 + torch.rand(20, 3, generator=gen, dtype=torch.float64))  # fmt: skip
    q = torch.randn(100, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with compiled_rounds(False):
        expected = policy.select(q)
    assert torch.equal(policy.select(q), expected)


def test_ucb1_takes_torchs_log_of_the_total() -> None:
    # ln 9170 is one of the totals where libm's log and torch's vectorised one differ in the last bit
    import math

    assert torch.log(torch.tensor([9170.0], dtype=torch.float64)).item() != math.log(9170.0)
    compiled, reference = (make_policy("ucb1", num_arms=2, seed=0) for _ in range(2))
    for p in (compiled, reference):  # total 9170; the two indices tie but for that last bit
        p.counts.copy_(torch.tensor([[1000.0, 8170.0]]))
        p.sums.copy_(torch.tensor([[412.1766358764863, 4085.0]], dtype=torch.float64))
    with compiled_rounds(False):
        expected = reference.select(n=4)
    assert torch.equal(compiled.select(n=4), expected)


@pytest.mark.parametrize("name", ["ucb1", "epsilon_greedy", "linucb"])
def test_nan_statistics_pick_the_arm_torch_argmax_picks(name: str) -> None:
    compiled = make_policy(name, num_arms=3, context_dim=2, epsilon=0.0, seed=0) if name == "epsilon_greedy" else \
        make_policy(name, num_arms=3, context_dim=2, seed=0)  # fmt: skip
    reference = copy.deepcopy(compiled)
    x = torch.ones(3, 2) if name == "linucb" else None
    with value_checks(False):
        for p, on in ((compiled, True), (reference, False)):
            with compiled_rounds(on):
                p.update(torch.tensor([0, 1, 2]), torch.tensor([0.9, float("nan"), 0.1]), x)
        with compiled_rounds(False):
            expected = reference.select(x, n=3)
        assert torch.equal(compiled.select(x, n=3), expected)


@pytest.mark.parametrize("move", ["share_memory", "set_", "data"])
def test_views_follow_a_buffer_whose_memory_moved(move: str) -> None:
    compiled, reference = pair("ucb1", 1)
    for p in (compiled, reference):
        p.update(torch.tensor([0]), torch.tensor([0.5]))  # the compiled one has views now
        if move == "share_memory":
            p.share_memory()
        elif move == "set_":
            p.counts.set_(p.counts.clone())
        else:
            p.counts.data = p.counts.clone()
    compiled.update(torch.tensor([0, 1]), torch.tensor([0.5, 1.0]))
    with compiled_rounds(False):
        reference.update(torch.tensor([0, 1]), torch.tensor([0.5, 1.0]))
    assert state_equal(compiled, reference, exact=True)


def test_tensors_that_require_grad_take_the_torch_path() -> None:
    ucb = make_policy("ucb1", num_arms=3, seed=0)
    ucb.update(torch.tensor([0, 1]), torch.tensor([0.5, 1.0], requires_grad=True))
    assert ucb.arm_counts.tolist() == [1.0, 1.0, 0.0]
    lin = make_policy("linucb", num_arms=3, context_dim=2, seed=0)
    x = torch.randn(4, 2, requires_grad=True)
    arms = lin.select(x)
    lin.update(arms, torch.ones(4), x)
    assert lin.arm_counts.sum() == 4


def test_the_compiled_steps_are_taken() -> None:
    policy = make_policy("epsilon_greedy", num_arms=NUM_ARMS, seed=0)
    assert compiled_rounds_enabled()
    assert policy._compiled_select(None, 4, None) is not None
    assert policy._compiled_update(torch.tensor([0, 1]), torch.tensor([0.5, 1.0]), None, None)
    with compiled_rounds(False):
        assert not compiled_rounds_enabled()
        assert policy._compiled_select(None, 4, None) is None
        assert not policy._compiled_update(torch.tensor([0, 1]), torch.tensor([0.5, 1.0]), None, None)
    assert policy.arm_counts.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "arms, rewards",
    [
        (torch.tensor([0, 1], dtype=torch.int32), torch.tensor([0.5, 1.0])),  # int32 arms
        (torch.tensor([0, 1]), torch.tensor([0.5, 1.0], dtype=torch.float16)),
        (torch.tensor([[0, 1]]), torch.tensor([[0.5, 1.0]])),
        (torch.tensor([0, 1]), torch.tensor([0.5])),
    ],
)
def test_other_forms_take_the_torch_path(arms: torch.Tensor, rewards: torch.Tensor) -> None:
    policy = make_policy("ucb1", num_arms=NUM_ARMS, seed=0)
    assert not policy._compiled_update(arms, rewards, None, None)
    assert policy.arm_counts.sum() == 0


def test_a_discount_or_an_own_update_takes_the_torch_update() -> None:
    class Doubled(UCB1):
        def _update(self, arms: torch.Tensor, rewards: torch.Tensor, context: object, groups: torch.Tensor) -> None:
            super()._update(arms, rewards * 0.5, context, groups)

    arms, rewards = torch.tensor([0, 0]), torch.tensor([1.0, 1.0])
    assert not make_policy("discounted_ucb1", num_arms=2)._compiled_update(arms, rewards, None, None)
    own = Doubled(num_arms=2)
    own.update(arms, rewards)
    assert own.sums[0].tolist() == [1.0, 0.0]  # its own _update ran


def test_select_calls_with_other_forms_take_the_torch_path() -> None:
    policy = make_policy("ucb1", num_arms=NUM_ARMS, seed=0)
    assert policy._compiled_select(None, 0, None) is None
    assert policy._compiled_select(None, True, None) is None
    assert policy._compiled_select(None, None, torch.tensor([0, 0], dtype=torch.int32)) is None
    assert (
        policy._compiled_select(None, 3, torch.tensor([0, 0])) is None
    )  # n and groups disagree: the torch path says so
    with pytest.raises(InputValidationError, match="one batch size"):
        policy.select(n=3, groups=torch.tensor([0, 0]))


@pytest.mark.parametrize("name", COMPILED_UPDATE)
@pytest.mark.parametrize(
    "arms, rewards, groups, message",
    [
        ([0, NUM_ARMS], [0.5, 0.5], None, r"expected `arms` in \[0, 5\), got values \[5\]"),
        ([0, -1], [0.5, 0.5], None, r"got values \[-1\]"),
        ([0, 1], [0.5, float("nan")], None, "to be finite"),
        ([0, 1], [0.5, float("inf")], None, "to be finite"),
        ([0, 1], [0.5, 0.5], [0, 3], r"expected `groups` in \[0, 2\), got values \[3\]"),
        ([0, 9], [0.5, float("nan")], [0, 3], "expected `arms`"),  # the first check in the torch path's order
    ],
)
def test_bad_values_raise_the_torch_paths_error_and_change_nothing(
    name: str, arms: list, rewards: list, groups: list | None, message: str
) -> None:
    policy = make_policy(name, num_arms=NUM_ARMS, num_groups=2, seed=0)
    g = None if groups is None else torch.tensor(groups)
    before = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in policy.state_dict().items()}
    for compiled in (True, False):
        with compiled_rounds(compiled), pytest.raises(InputValidationError, match=message):
            policy.update(torch.tensor(arms), torch.tensor(rewards), groups=g)
    after = policy.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items() if isinstance(v, torch.Tensor))


def test_rewards_out_of_range_are_refused() -> None:
    policy = make_policy("ucb1", num_arms=NUM_ARMS, seed=0)
    with pytest.raises(InputValidationError, match=r"expected `rewards` in \[0, 1\], got values \[1.5\]"):
        policy.update(torch.tensor([0, 1]), torch.tensor([0.5, 1.5]))
    assert policy.arm_counts.sum() == 0


def test_without_value_checks_rewards_pass_as_in_the_torch_path_but_arms_are_still_checked() -> None:
    compiled, reference = pair("ucb1", 1)
    arms, rewards = torch.tensor([0, 1]), torch.tensor([0.5, 7.0])
    with value_checks(False):
        compiled.update(arms, rewards)
        with compiled_rounds(False):
            reference.update(arms, rewards)
        assert state_equal(compiled, reference, exact=True)
        with pytest.raises(InputValidationError, match="expected `arms`"):  # numba does not bounds-check
            compiled.update(torch.tensor([0, 99]), rewards)
    assert compiled.arm_counts.sum() == 2


def test_a_bad_group_in_select_is_refused_before_anything_is_drawn() -> None:
    policy = make_policy("epsilon_greedy", num_arms=NUM_ARMS, num_groups=2, seed=0)
    state = policy.generator.get_state()
    with pytest.raises(InputValidationError, match=r"expected `groups` in \[0, 2\)"):
        policy.select(groups=torch.tensor([0, 2]))
    assert torch.equal(policy.generator.get_state(), state)


def test_views_follow_replaced_buffers() -> None:
    policy = make_policy("ucb1", num_arms=2, seed=0)
    policy.update(torch.tensor([0, 1]), torch.tensor([1.0, 0.0]))
    policy.load_state_dict(make_policy("ucb1", num_arms=2, seed=0).state_dict())  # in place
    policy.update(torch.tensor([1]), torch.tensor([1.0]))
    assert policy.counts.tolist() == [[0.0, 1.0]]
    policy.counts = torch.zeros(1, 2, dtype=torch.float64)  # a new tensor: the views are taken again
    policy.update(torch.tensor([0]), torch.tensor([1.0]))
    assert policy.counts.tolist() == [[1.0, 0.0]]
    assert policy.select(n=3).tolist() == [1, 1, 1]  # arm 1 untried in the new counts


def test_epsilon_greedy_explores_at_its_rate_with_uniform_arms() -> None:
    from scipy import stats

    policy = make_policy("epsilon_greedy", num_arms=4, epsilon=0.3, seed=11)
    policy.update(torch.arange(4), torch.tensor([0.9, 0.1, 0.1, 0.1]))  # greedy arm 0
    arms = policy.select(n=200_000)
    counts = torch.bincount(arms, minlength=4).double()
    # arm 0: 0.7 + 0.3 / 4 = 0.775; the others 0.075 each
    assert stats.chisquare(counts.numpy(), 200_000 * np.array([0.775, 0.075, 0.075, 0.075])).pvalue > 1e-3


def test_counter_uniforms_are_splitmix64() -> None:
    # Vigna's splitmix64.c from seed 1234567: the first outputs, and their top 53 bits as uniforms
    first = [6457827717110365317, 3203168211198807973, 9817491932198370423]
    assert [counter_uniform(1234567, i) for i in range(3)] == [(x >> 11) * 2.0**-53 for x in first]
    seeds = [0, 1, 1234567, 2**62 + 12345, 2**63 - 1]
    for seed in seeds:
        torch_u = counter_uniforms(torch.tensor(seed), 1000)
        assert torch_u.tolist() == [counter_uniform(seed, i) for i in range(1000)]
        assert float(torch_u.min()) >= 0.0 and float(torch_u.max()) < 1.0


def test_the_kernel_stream_is_the_torch_stream() -> None:
    from banditformer.bandits import _kernels

    probe = _kernels.numba.njit(lambda seed, n: [_kernels.counter_uniform(np.uint64(seed), i) for i in range(n)])
    for seed in (0, 77, 2**63 - 1):
        assert probe(seed, 500) == counter_uniforms(torch.tensor(seed), 500).tolist()


def test_counter_uniforms_are_uniform() -> None:
    from scipy import stats

    u = counter_uniforms(counter_seed(torch.Generator().manual_seed(5)), 200_000).numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    pairs = np.floor(u.reshape(-1, 2) * 10).astype(int)  # successive pairs: no serial correlation
    table = np.bincount(pairs[:, 0] * 10 + pairs[:, 1], minlength=100)
    assert stats.chisquare(table).pvalue > 1e-3


def test_the_environment_variable_turns_them_off() -> None:
    code = "from banditformer.bandits import compiled_rounds_enabled; print(compiled_rounds_enabled())"
    env = {**os.environ, "BANDITFORMER_COMPILED": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_numba_the_policies_run_the_torch_path() -> None:
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import torch\n"
        "from banditformer import make_policy\n"
        "from banditformer.bandits import compiled_available\n"
        "p = make_policy('ucb1', num_arms=3, seed=0)\n"
        "p.update(p.select(n=6), torch.ones(6))\n"
        "print(compiled_available(), p.counts.tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False [[2.0, 2.0, 2.0]]"


def test_compiled_rounds_takes_a_bool() -> None:
    with pytest.raises(InputValidationError, match="expected `enabled` to be a bool, got int 1"), compiled_rounds(1):  # type: ignore[arg-type]
        pass


def test_a_copied_policy_has_its_own_views_and_seed_scratch() -> None:
    import pickle

    policy = make_policy("epsilon_greedy", num_arms=3, seed=0)
    policy.update(torch.tensor([0, 1, 2]), torch.tensor([1.0, 0.0, 0.0]))
    policy.select(n=4)  # views and scratch exist now
    for clone in (copy.deepcopy(policy), pickle.loads(pickle.dumps(policy))):
        reference = copy.deepcopy(policy)
        with compiled_rounds(False):
            expected = reference.select(n=50)
            reference.update(expected, torch.ones(50))
        got = clone.select(n=50)
        clone.update(got, torch.ones(50))
        assert torch.equal(got, expected)
        assert state_equal(clone, reference, exact=True)
    assert policy.arm_counts.tolist() == [1.0, 1.0, 1.0]  # the copies wrote to their own buffers


@pytest.mark.parametrize("name", ["ucb1", "linucb"])
def test_a_compiled_update_moves_the_version_counters(name: str) -> None:
    policy = make_policy(name, num_arms=3, context_dim=2, seed=0)
    names = ("counts", "sums") if name == "ucb1" else ("gram", "xr")
    before = [policy._buffers[n]._version for n in (*names, "arm_counts")]
    x = torch.ones(2, 2) if name == "linucb" else None
    policy.update(torch.tensor([0, 1]), torch.tensor([0.5, 1.0]), x)
    assert all(policy._buffers[n]._version > v for n, v in zip((*names, "arm_counts"), before, strict=True))


def test_ucb1s_stepper_takes_torchs_log_of_the_total() -> None:
    batched, stepped = (make_policy("ucb1", num_arms=2, seed=0) for _ in range(2))
    for p in (batched, stepped):  # the state of test_ucb1_takes_torchs_log_of_the_total
        p.counts.copy_(torch.tensor([[1000.0, 8170.0]]))
        p.sums.copy_(torch.tensor([[412.1766358764863, 4085.0]], dtype=torch.float64))
    with compiled_rounds(False):
        expected = int(batched.select(n=1))
    assert stepped.stepper().select() == expected


def test_whole_totals_leave_sums_past_2_53_to_torch() -> None:
    from banditformer.bandits import _kernels

    out = np.zeros(1)
    assert _kernels.whole_totals(np.array([[3.0, 0.0, 4.0]]), out) and out[0] == 7.0
    assert _kernels.whole_totals(np.zeros((1, 3)), out) and out[0] == 1.0  # clamped, as torch's path
    assert not _kernels.whole_totals(np.array([[2.0**52, 2.0**52 + 2.0]]), out)  # 2**53 + 2: inexact order
    assert not _kernels.whole_totals(np.array([[0.5, 1.0]]), out)
