import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from banditformer.core.random import derive_seed, make_generator, sample_beta, sample_log_gamma


@pytest.mark.parametrize("concentration", [0.05, 0.5, 1.0, 3.0, 200.0])
def test_gamma_moments(concentration: float) -> None:
    a = torch.full((200_000,), concentration, dtype=torch.float64)
    x = sample_log_gamma(a, make_generator(0)).exp()
    assert x.mean().item() == pytest.approx(concentration, rel=0.02)
    assert x.var().item() == pytest.approx(concentration, rel=0.05)


def test_beta_moments_and_range() -> None:
    a, b = torch.tensor(2.0, dtype=torch.float64), torch.tensor(5.0, dtype=torch.float64)
    x = sample_beta(a.expand(200_000), b, make_generator(1))
    assert bool(((x >= 0) & (x <= 1)).all())
    assert x.mean().item() == pytest.approx(2 / 7, rel=0.01)
    assert x.var().item() == pytest.approx(10 / (49 * 8), rel=0.03)


def test_tiny_concentrations_do_not_underflow_to_nan() -> None:
    x = sample_beta(
        torch.full((1000,), 1e-3, dtype=torch.float64), torch.tensor(1e-3, dtype=torch.float64), make_generator(0)
    )
    assert bool(torch.isfinite(x).all())


def test_samplers_use_only_their_generator() -> None:
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    a = sample_beta(torch.ones(10), torch.ones(10), make_generator(5))
    b = sample_beta(torch.ones(10), torch.ones(10), make_generator(5))
    assert torch.equal(a, b) and torch.equal(torch.rand(2), expected)


@given(seed=st.integers(0, 2**40), key=st.text(max_size=10))
def test_derive_seed_is_stable_and_in_range(seed: int, key: str) -> None:
    s = derive_seed(seed, key)
    assert s == derive_seed(seed, key) and 0 <= s < 2**63


@pytest.mark.cuda
def test_counter_uniforms_on_cuda_are_the_cpu_bits() -> None:
    from banditformer.core.random import counter_seed, counter_uniforms

    for seed in (0, 1234567, 2**63 - 1):
        cpu = counter_uniforms(torch.tensor(seed), 10_000)
        assert torch.equal(counter_uniforms(torch.tensor(seed, device="cuda"), 10_000).cpu(), cpu)
    gen = torch.Generator(device="cuda").manual_seed(3)
    assert counter_seed(gen).device.type == "cuda"


@pytest.mark.cuda
def test_epsilon_greedy_on_cuda_plays_the_stream_of_its_seed() -> None:
    from banditformer import make_policy
    from banditformer.core.random import counter_uniform

    policy = make_policy("epsilon_greedy", num_arms=4, epsilon=1.0, seed=0).to("cuda")
    state = policy.generator.get_state()
    arms = policy.select(n=64).cpu().tolist()  # epsilon 1: every row explores
    policy.generator.set_state(state)
    seed = int(torch.empty((), dtype=torch.int64, device="cuda").random_(generator=policy.generator))
    assert arms == [min(int(counter_uniform(seed, i) / 1.0 * 4), 3) for i in range(64)]
