"""Which registered policies can play which registered problem.

Problems are multi-armed, contextual (``context_dim``) or combinatorial semi-bandits (``k``); see
:mod:`banditformer.problems`. One-arm context-free policies play context-free problems; every
one-arm policy plays contextual problems (the context-free ones as baselines); combinatorial
policies play semi-bandits; and a policy's reward range must hold the problem's.

Examples:
    >>> "ucb1" in compatible_policies("bernoulli_two"), "cts" in compatible_policies("bernoulli_two")
    (True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from banditformer.bench.specs import make_spec_policy
from banditformer.core.errors import InputValidationError
from banditformer.core.policy import CombinatorialPolicy, Policy
from banditformer.plugins import list_policies, make_problem

__all__ = ["check_compatible", "compatible_policies", "problem_kind"]


def problem_kind(env: Any) -> tuple[int | None, int | None]:
    """``(context_dim, k)`` of a problem: ``None`` where it is not contextual / combinatorial."""
    return getattr(env, "context_dim", None), getattr(env, "k", None)


def _fits(policy: object, env: Any) -> bool:
    """Whether ``policy`` can play ``env``: the right action kind, a context when it needs one, and
    a reward range that holds the problem's."""
    context_dim, k = problem_kind(env)
    if not isinstance(policy, CombinatorialPolicy if k is not None else Policy):
        return False
    if policy.is_contextual and context_dim is None:
        return False
    low, high = policy.reward_range
    return low <= env.reward_range[0] and env.reward_range[1] <= high


def _probe(spec: str, env: Any) -> Any:
    context_dim, _ = problem_kind(env)
    return make_spec_policy(spec, num_arms=env.num_arms, context_dim=context_dim or 1)


def compatible_policies(problem: str, *, seed: int = 0) -> list[str]:
    """The registered policies that can play ``problem`` (see the module docstring), in registry
    order. A policy whose constructor raises is kept, so that a run reports its error by name."""
    env = make_problem(problem, seed=seed)
    names = []
    for name in list_policies():
        try:
            policy = _probe(name, env)
        except Exception:  # reported when it runs
            names.append(name)
            continue
        if _fits(policy, env):
            names.append(name)
    return names


def check_compatible(names: Sequence[str], problem: str, *, seed: int = 0) -> None:
    """Fail unless every named policy can play ``problem`` (a policy whose constructor raises
    passes here and fails, by name, when it runs)."""
    env = make_problem(problem, seed=seed)
    context_dim, k = problem_kind(env)
    kind = (
        f"a combinatorial policy (problem {problem!r} picks {k} arms a round)"
        if k is not None
        else ("a one-arm policy" if context_dim is not None else "a context-free, one-arm policy")
    )
    for name in names:
        try:
            policy = _probe(name, env)
        except Exception:
            continue
        if not _fits(policy, env):
            raise InputValidationError(
                f"expected {kind} taking rewards in {env.reward_range} (problem {problem!r}), got {name!r}; "
                f"such policies: {', '.join(compatible_policies(problem, seed=seed))}"
            )
