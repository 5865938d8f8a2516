"""Policies on CUDA tensors (skipped without a GPU)."""

import copy

import pytest
import torch

from banditformer import CombinatorialPolicy, InputValidationError, make_policy
from tests.bandits.helpers import ALL, build, play, state_equal

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("name", ALL)
def test_policy_runs_on_cuda_and_matches_its_contract(name: str) -> None:
    p = build(name, 6, seed=0, device="cuda")
    assert p.device.type == "cuda" and p.generator.device.type == "cuda"
    gen = torch.Generator(device="cuda").manual_seed(0)
    for _ in range(3):
        choice, _, _ = play(p, 64, gen)
        assert choice.device.type == "cuda"
    if isinstance(p, CombinatorialPolicy):
        assert p.select(torch.zeros(4, 3, device="cuda"), k=2).sum(1).tolist() == [2] * 4
    # same seed, same sequence on CUDA too
    q = build(name, 6, seed=0, device="cuda")
    g1, g2 = torch.Generator(device="cuda").manual_seed(1), torch.Generator(device="cuda").manual_seed(1)
    r = build(name, 6, seed=0, device="cuda")
    assert all(torch.equal(play(q, 16, g1)[0], play(r, 16, g2)[0]) for _ in range(3))


@pytest.mark.parametrize("name", ALL)
def test_cpu_tensors_are_rejected_by_a_cuda_policy(name: str) -> None:
    p = build(name, 4, seed=0, device="cuda")
    before = copy.deepcopy(p)
    with pytest.raises(InputValidationError, match="device"):
        if isinstance(p, CombinatorialPolicy):
            p.update(torch.ones(2, 4, dtype=torch.bool), torch.ones(2, 4), torch.zeros(2, 3))
        else:
            p.update(torch.zeros(2, dtype=torch.long), torch.ones(2), torch.zeros(2, 3))
    assert state_equal(p, before, exact=True)


@pytest.mark.parametrize("name", ALL)
def test_state_dict_moves_between_cpu_and_cuda(name: str) -> None:
    p = build(name, 4, seed=0)
    play(p, 8, torch.Generator().manual_seed(0))
    q = build(name, 4, seed=9, device="cuda")
    q.load_state_dict(p.state_dict())
    assert torch.equal(q.arm_counts.cpu(), p.arm_counts)
    play(q, 8, torch.Generator(device="cuda").manual_seed(0))


@pytest.mark.parametrize("name", ["thompson_beta", "cts", "ucb1"])
def test_state_loaded_with_map_location_cuda(name: str) -> None:
    import io

    p = build(name, 3, seed=0, device="cuda")
    play(p, 4, torch.Generator(device="cuda").manual_seed(0))
    buf = io.BytesIO()
    torch.save(p.state_dict(), buf)
    buf.seek(0)
    q = build(name, 3, seed=1, device="cuda")
    q.load_state_dict(torch.load(buf, map_location="cuda", weights_only=True))
    g1, g2 = torch.Generator(device="cuda").manual_seed(2), torch.Generator(device="cuda").manual_seed(2)
    assert torch.equal(play(p, 8, g1)[0], play(q, 8, g2)[0])


def test_policies_built_under_a_cuda_default_device_draw_on_cuda() -> None:
    torch.set_default_device("cuda")
    try:
        p = make_policy("thompson_beta", num_arms=3, seed=0)  # no .to(): the default device decides
        assert p.generator.device.type == "cuda" and p.select(n=4).device.type == "cuda"
    finally:
        torch.set_default_device("cpu")
