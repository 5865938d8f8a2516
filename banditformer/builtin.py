"""The built-in implementations, registered through the same hooks as any third-party plugin."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from banditformer import bandits, tasks
from banditformer.backends import CPUBackend, CUDABackend
from banditformer.controllers import DHTController, LayerDropController, RandomController, StaticFull, StaticSmall
from banditformer.plugins import hookimpl
from banditformer.problems import (
    BERNOULLI_INSTANCES,
    BernoulliProblem,
    GaussianProblem,
    LinearContextualProblem,
    SwitchingBernoulliProblem,
    TopKSemiBanditProblem,
    classification_problem,
)


@hookimpl
def banditformer_add_policies() -> dict[str, Callable[..., Any]]:
    return {
        "ucb1": bandits.UCB1,
        "discounted_ucb1": functools.partial(bandits.UCB1, discount=0.99),
        "kl_ucb": bandits.KLUCB,
        "epsilon_greedy": bandits.EpsilonGreedy,
        "epsilon_greedy_decay": functools.partial(
            bandits.EpsilonGreedy, epsilon=1.0, schedule="inverse_time", rate=0.05, min_epsilon=0.01
        ),
        "thompson_beta": bandits.BetaThompson,
        "thompson_beta_shared": functools.partial(bandits.BetaThompson, draws="group"),
        "discounted_thompson_beta": functools.partial(bandits.BetaThompson, discount=0.99),
        "thompson_gaussian": bandits.GaussianThompson,
        "linucb": bandits.LinUCB,
        "lin_thompson": bandits.LinearThompson,
        "bucketed": bandits.Bucketed,
        "bucketed_combinatorial": bandits.BucketedCombinatorial,
        "cts": bandits.CTS,
        "cts_shared": functools.partial(bandits.CTS, draws="group"),
        "cucb": bandits.CUCB,
    }


@hookimpl
def banditformer_add_controllers() -> dict[str, Callable[..., Any]]:
    return {
        "static": StaticFull,
        "static_small": StaticSmall,
        "random": RandomController,
        "layerdrop": LayerDropController,
        "dht": DHTController,
        "dht_integrated": functools.partial(DHTController, mode="integrated"),
    }


@hookimpl
def banditformer_add_backends() -> dict[str, Callable[..., Any]]:
    return {"cpu": CPUBackend, "cuda": CUDABackend}


@hookimpl
def banditformer_add_tasks() -> dict[str, Callable[..., Any]]:
    return {
        "pointer_chasing": tasks.pointer_chasing,
        "digits": tasks.digits,
        "mnist1d": tasks.mnist1d,
        "bbc_news": tasks.bbc_news,
    }


@hookimpl
def banditformer_add_problems() -> dict[str, Callable[..., Any]]:
    problems: dict[str, Callable[..., Any]] = {
        f"bernoulli_{name}": functools.partial(BernoulliProblem.instance, name) for name in BERNOULLI_INSTANCES
    }
    problems["gaussian"] = functools.partial(GaussianProblem, [1.0, 0.5, 0.0, -0.5])
    # abrupt changes: the best arm moves every 500 rounds
    problems["bernoulli_switching"] = functools.partial(
        SwitchingBernoulliProblem, [[0.8, 0.5, 0.2], [0.2, 0.5, 0.8], [0.5, 0.8, 0.2]], period=500
    )
    problems["linear_contextual"] = LinearContextualProblem
    problems["topk_semibandit"] = functools.partial(
        TopKSemiBanditProblem, [0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.2], k=3
    )
    # supervised-to-bandit: scikit-learn's bundled data sets, one arm per class
    problems["digits_bandit"] = functools.partial(classification_problem, "digits")
    problems["wine_bandit"] = functools.partial(classification_problem, "wine")
    return problems
