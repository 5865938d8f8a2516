"""Which policies can play which problem."""

from __future__ import annotations

import pytest

import banditformer as bf
from banditformer.bench.bandits import BanditBenchConfig


def test_default_policies_follow_the_problem_kind() -> None:
    from banditformer.bench.compat import compatible_policies

    flat = compatible_policies("bernoulli_easy")
    assert "ucb1" in flat and "linucb" not in flat and "cts" not in flat
    contextual = compatible_policies("linear_contextual")
    assert {"linucb", "lin_thompson", "bucketed", "ucb1"} <= set(contextual) and "cts" not in contextual
    assert set(compatible_policies("topk_semibandit")) == {"cts", "cts_shared", "cucb"}
    with pytest.raises(bf.InputValidationError, match="combinatorial policy"):
        BanditBenchConfig(problem="topk_semibandit", policies=["ucb1"])
    with pytest.raises(bf.InputValidationError, match="one-arm policy"):
        BanditBenchConfig(problem="linear_contextual", policies=["cts"])


def test_problem_kinds() -> None:
    from banditformer.bench.compat import problem_kind

    assert problem_kind(bf.make_problem("bernoulli_two")) == (None, None)
    assert problem_kind(bf.make_problem("topk_semibandit"))[1] == 3
    assert problem_kind(bf.make_problem("linear_contextual"))[0] is not None
