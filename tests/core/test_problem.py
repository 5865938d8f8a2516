"""The bandit-problem protocols (core/problem.py), which the registry checks and the runner follows."""

from __future__ import annotations

import pytest
import torch

import banditformer as bf
from banditformer.core.problem import BanditProblem, CombinatorialProblem, ContextualProblem
from banditformer.plugins import PluginManager, hookimpl, set_plugin_manager
from banditformer.problems import BernoulliProblem, LinearContextualProblem, TopKSemiBanditProblem


def test_the_built_in_problems_are_of_the_kind_they_say() -> None:
    plain = BernoulliProblem([0.2, 0.8], seed=0)
    contextual = LinearContextualProblem(seed=0)
    topk = TopKSemiBanditProblem([0.9, 0.5, 0.1], k=2, seed=0)
    assert isinstance(plain, BanditProblem) and not isinstance(plain, (ContextualProblem, CombinatorialProblem))
    assert isinstance(contextual, ContextualProblem) and not isinstance(contextual, CombinatorialProblem)
    assert isinstance(topk, CombinatorialProblem) and not isinstance(topk, ContextualProblem)


class _NoRegret:
    num_arms = 2
    reward_range = (0.0, 1.0)

    def pull(self, arms: torch.Tensor) -> torch.Tensor:
        return torch.zeros(arms.shape[0])


def test_the_registry_refuses_a_factory_that_builds_no_problem() -> None:
    assert not isinstance(_NoRegret(), BanditProblem)

    class Plugin:
        @hookimpl
        def banditformer_add_problems(self):
            return {"no_regret": lambda seed=0: _NoRegret(), "fine": lambda seed=0: BernoulliProblem([0.5], seed=seed)}

    pm = PluginManager(autoload=False)
    pm.register(Plugin(), name="problems-plugin")
    set_plugin_manager(pm)
    try:
        with pytest.raises(bf.PluginError, match=r"'no_regret' returned _NoRegret, expected BanditProblem"):
            bf.make_problem("no_regret")
        assert isinstance(bf.make_problem("fine", seed=3), BanditProblem)
    finally:
        set_plugin_manager(None)
