"""Shared helpers for the policy tests: build any registered policy and feed it valid data."""

from __future__ import annotations

import math

import torch

from banditformer import CombinatorialPolicy, list_policies, make_policy
from banditformer.bench.specs import make_spec_policy
from banditformer.core.policy import PolicyBase

CONTEXT_DIM = 3


def build(name: str, num_arms: int, seed: int = 0, device: str = "cpu", **kwargs) -> PolicyBase:
    """The registered policy ``name``, or a spec ``name:key=value,...`` (one of its ``option_sets``)."""
    return make_spec_policy(name, num_arms=num_arms, context_dim=CONTEXT_DIM, seed=seed, **kwargs).to(device)


def is_combinatorial(name: str) -> bool:
    return isinstance(build(name, 2), CombinatorialPolicy)


def with_option_sets(names: list[str]) -> list[str]:
    """Every registered name, then a spec per option set its class declares (``option_sets``),
    once per class."""
    specs, seen = list(names), set()
    for name in names:
        cls = type(make_policy(name, num_arms=2, context_dim=CONTEXT_DIM))
        if cls in seen:
            continue
        seen.add(cls)
        specs += [name + ":" + ",".join(f"{k}={v}" for k, v in options.items()) for options in cls.option_sets]
    return specs


ALL = with_option_sets(list_policies())
SINGLE = [n for n in ALL if not is_combinatorial(n)]
COMBINATORIAL = [n for n in ALL if is_combinatorial(n)]


def rewards_for(policy: PolicyBase, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    low, high = policy.reward_range
    u = torch.rand(shape, generator=gen, device=gen.device)
    if math.isfinite(low) and math.isfinite(high):
        return low + (high - low) * u
    return torch.randn(shape, generator=gen, device=gen.device)


def contexts(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(n, CONTEXT_DIM, generator=gen, device=gen.device)


def play(policy: PolicyBase, n: int, gen: torch.Generator, k: int | None = None) -> tuple:
    """One select + update round of ``n`` rows; returns (choice, rewards, context)."""
    x = contexts(n, gen)
    if isinstance(policy, CombinatorialPolicy):
        kk = torch.randint(0, policy.num_arms + 1, (n,), generator=gen, device=gen.device) if k is None else k
        choice = policy.select(x, k=kk)
        r = rewards_for(policy, (n, policy.num_arms), gen)
    else:
        choice = policy.select(x)
        r = rewards_for(policy, (n,), gen)
    policy.update(choice, r, x)
    return choice, r, x


def state_equal(a: PolicyBase, b: PolicyBase, exact: bool = False) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        return False
    for key, va in sa.items():
        vb = sb[key]
        if isinstance(va, torch.Tensor):
            ok = torch.equal(va, vb) if exact else torch.allclose(va, vb, rtol=1e-9, atol=1e-9)
            if not ok:
                return False
        elif isinstance(va, dict) and not torch.equal(va["rng_state"], vb["rng_state"]):  # the generator
            return False
    return True
