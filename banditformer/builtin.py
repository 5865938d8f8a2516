"""The built-in implementations, registered through the same hooks as any third-party plugin."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from banditformer import bandits, tasks
from banditformer.backends import CPUBackend, CUDABackend
from banditformer.controllers import (
    BanditHalting,
    DHTController,
    LayerDropController,
    PatienceExit,
    RandomController,
    Static,
    StaticSmall,
    StepwiseDHT,
    ThresholdBandit,
    ThresholdExit,
)
from banditformer.controllers.dht import MODES
from banditformer.controllers.halting import EXIT_FEATURES
from banditformer.core.errors import InputValidationError
from banditformer.core.random import derive_seed
from banditformer.core.validation import check_int
from banditformer.plugins import hookimpl, make_policy
from banditformer.problems import (
    BERNOULLI_INSTANCES,
    BernoulliProblem,
    GaussianProblem,
    LinearContextualProblem,
    SwitchingBernoulliProblem,
    TopKSemiBanditProblem,
    classification_problem,
)


def _registered_policy(name: str, num_arms: int, **kwargs: Any) -> Any:
    """``make_policy(name, num_arms=num_arms, **kwargs)``: a registered name as a policy factory."""
    return make_policy(name, num_arms=num_arms, **kwargs)


def _base_by_name(wrapper: type[Any], default: str) -> Callable[..., Any]:
    """The registry's factory for a bucketed ``wrapper`` class, which takes its base policy as a
    factory: the same arguments, except that ``base`` may also be a registered policy name
    (plugin policies included; ``default`` when not given), built with ``make_policy``."""

    def factory(num_arms: int, *, base: str | Callable[..., Any] = default, **kwargs: Any) -> Any:
        built_by = functools.partial(_registered_policy, base) if isinstance(base, str) else base
        return wrapper(num_arms, base=built_by, **kwargs)

    # the wrapper's own signature, so that make_policy checks a caller's arguments against it
    signature = inspect.signature(wrapper)
    params = [
        p.replace(default=default, annotation="str | Callable[..., Policy]") if p.name == "base" else p
        for p in signature.parameters.values()
    ]
    factory.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=params, return_annotation=wrapper.__name__
    )
    factory.__doc__ = f"{wrapper.__name__} with ``base`` a registered policy name (default {default!r}) or a factory."
    return factory


@hookimpl
def banditformer_add_policies() -> dict[str, Callable[..., Any]]:
    return {
        "ucb1": bandits.UCB1,
        "discounted_ucb1": functools.partial(bandits.UCB1, discount=0.99, c=0.25),  # tuned on bernoulli_switching
        "sw_ucb": bandits.SlidingWindowUCB,
        "sw_kl_ucb": bandits.SlidingWindowKLUCB,
        "m_ucb": bandits.MUCB,
        "kl_ucb": bandits.KLUCB,
        "moss": bandits.MOSS,
        "bayes_ucb": bandits.BayesUCB,
        "exp3_ix": bandits.EXP3IX,
        "epsilon_greedy": bandits.EpsilonGreedy,
        "epsilon_greedy_decay": functools.partial(
            bandits.EpsilonGreedy, epsilon=1.0, schedule="inverse_time", rate=0.05, min_epsilon=0.01
        ),
        "thompson_beta": bandits.ThompsonBeta,
        "thompson_beta_shared": functools.partial(bandits.ThompsonBeta, draws="group"),
        "discounted_thompson_beta": functools.partial(bandits.ThompsonBeta, discount=0.99),
        "thompson_gaussian": bandits.ThompsonGaussian,
        "linucb": bandits.LinUCB,
        "lin_thompson": bandits.LinThompson,
        "bucketed": _base_by_name(bandits.Bucketed, "ucb1"),
        "bucketed_combinatorial": _base_by_name(bandits.BucketedCombinatorial, "cts"),
        "cts": bandits.CTS,
        "cts_shared": functools.partial(bandits.CTS, draws="group"),
        "cucb": bandits.CUCB,
    }


def dht(
    num_layers: int,
    num_heads: int,
    context_dim: int,
    full_flops: float,
    *,
    depth_policy: str = "bucketed",
    count_policy: str = "ucb1",
    head_policy: str = "cts",
    depth_kwargs: dict[str, Any] | None = None,
    count_kwargs: dict[str, Any] | None = None,
    head_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    **options: Any,
) -> DHTController:
    """The registry's ``dht`` factory: a :class:`~banditformer.controllers.DHTController` whose
    three policies are built from registered names (plugin policies included).

    Args:
        depth_policy, count_policy, head_policy: registered policy names for the slots
            (contextual for depth; context-free one-arm for head counts; combinatorial for heads).
        depth_kwargs, count_kwargs, head_kwargs: options for them.
        seed: master seed; each slot gets a derived sub-seed.
        num_layers, num_heads, context_dim, full_flops, options: as
            :class:`~banditformer.controllers.DHTController` takes them (``mode``, ``lam``, ...).
    """
    check_int("num_layers", num_layers, low=1)
    check_int("num_heads", num_heads, low=1)
    check_int("context_dim", context_dim, low=1)
    check_int("seed", seed, low=0)
    mode = options.get("mode", "tree")
    if mode not in MODES:
        raise InputValidationError(f"expected `mode` in {MODES}, got {mode!r}")
    for name, value in (("depth_kwargs", depth_kwargs), ("count_kwargs", count_kwargs), ("head_kwargs", head_kwargs)):
        if value is not None and not isinstance(value, dict):
            raise InputValidationError(f"expected `{name}` to be a dict of options, got {type(value).__name__}")
    groups = max(num_layers - 1, 1) if mode == "tree" else 1
    depth = make_policy(
        depth_policy, num_arms=num_layers, context_dim=context_dim, seed=derive_seed(seed, "depth"),
        **(depth_kwargs or {}),
    )  # fmt: skip
    counts = make_policy(
        count_policy, num_arms=num_heads, num_groups=groups, seed=derive_seed(seed, "counts"), **(count_kwargs or {})
    )
    heads = make_policy(
        head_policy, num_arms=num_heads, num_groups=groups, seed=derive_seed(seed, "heads"), **(head_kwargs or {})
    )
    return DHTController(
        num_layers, num_heads, context_dim, full_flops, depth_policy=depth, count_policy=counts, head_policy=heads,
        seed=derive_seed(seed, "mix"), **options,
    )  # fmt: skip


def _with_options_of(factory: Callable[..., Any], target: type, replaced: tuple[str, ...]) -> None:
    """Give ``factory`` (whose ``**options`` go to ``target``) the signature of both, without
    ``target``'s parameters in ``replaced``, so that the registry checks a caller's arguments
    against it (a misspelt option is an input error, not a ``TypeError`` from inside)."""
    own = inspect.signature(factory)
    kept = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    names = {p.name for p in kept}
    extra = [
        p
        for p in inspect.signature(target).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in names and p.name not in replaced
    ]
    positional = [p for p in kept if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    keyword = [p for p in kept if p.kind is inspect.Parameter.KEYWORD_ONLY]
    factory.__signature__ = own.replace(parameters=[*positional, *extra, *keyword])  # type: ignore[attr-defined]


_with_options_of(dht, DHTController, ("depth_policy", "count_policy", "head_policy", "seed"))


def threshold_bandit(
    num_layers: int,
    num_heads: int,
    full_flops: float,
    cost_table: Any,
    *,
    policy: str = "ucb1",
    policy_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    **options: Any,
) -> ThresholdBandit:
    """The registry's ``threshold_bandit`` factory: a
    :class:`~banditformer.controllers.ThresholdBandit` whose exit costs come from the model's
    ``cost_table`` and whose policy is built from a registered name (plugin policies included).

    Args:
        policy, policy_kwargs: a registered context-free policy over the thresholds, and its options.
        seed: master seed; the policy and the reveal draws get derived sub-seeds.
        num_layers, num_heads, full_flops, options: as ``ThresholdBandit`` takes them
            (``thresholds``, ``metric``, ``lam``, ``flop_budget``, ``reveal``, ...).
    """
    check_int("seed", seed, low=0)
    if policy_kwargs is not None and not isinstance(policy_kwargs, dict):
        raise InputValidationError(
            f"expected `policy_kwargs` to be a dict of options, got {type(policy_kwargs).__name__}"
        )
    costs = ThresholdBandit.costs_from_table(cost_table)
    arms = len(options.get("thresholds", inspect.signature(ThresholdBandit).parameters["thresholds"].default))
    built = make_policy(policy, num_arms=arms, seed=derive_seed(seed, "thresholds"), **(policy_kwargs or {}))
    return ThresholdBandit(
        num_layers, num_heads, full_flops, costs, policy=built, seed=derive_seed(seed, "reveal"), **options
    )


_with_options_of(threshold_bandit, ThresholdBandit, ("policy", "exit_costs"))


def bandit_halting(
    num_layers: int,
    num_heads: int,
    full_flops: float,
    cost_table: Any,
    *,
    policy: str = "linucb",
    policy_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    **options: Any,
) -> BanditHalting:
    """The registry's ``bandit_halting`` factory: a
    :class:`~banditformer.controllers.BanditHalting` whose exit costs come from the model's
    ``cost_table`` and whose stop-or-continue policy is built from a registered name (plugin
    policies included) with 2 arms, ``context_dim=5`` and one group per exit point.

    Args:
        policy, policy_kwargs: a registered contextual policy and its options.
        seed: master seed; the policy and the reveal draws get derived sub-seeds.
        num_layers, num_heads, full_flops, options: as ``BanditHalting`` takes them (``lam``,
            ``flop_budget``, ``reveal``, ``warmup_steps``, ...).
    """
    check_int("num_layers", num_layers, low=2)
    check_int("seed", seed, low=0)
    if policy_kwargs is not None and not isinstance(policy_kwargs, dict):
        raise InputValidationError(
            f"expected `policy_kwargs` to be a dict of options, got {type(policy_kwargs).__name__}"
        )
    costs = ThresholdBandit.costs_from_table(cost_table)
    built = make_policy(
        policy, num_arms=2, context_dim=EXIT_FEATURES, num_groups=num_layers - 1, seed=derive_seed(seed, "halting"),
        **(policy_kwargs or {}),
    )  # fmt: skip
    return BanditHalting(
        num_layers, num_heads, full_flops, costs, policy=built, seed=derive_seed(seed, "reveal"), **options
    )


_with_options_of(bandit_halting, BanditHalting, ("policy", "exit_costs"))


def stepwise_dht(
    num_layers: int,
    num_heads: int,
    cost_table: Any,
    *,
    policy: str = "linucb",
    count_policy: str = "linucb",
    head_policy: str = "cts",
    policy_kwargs: dict[str, Any] | None = None,
    count_kwargs: dict[str, Any] | None = None,
    head_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    **options: Any,
) -> StepwiseDHT:
    """The registry's ``stepwise_dht`` factory: a :class:`~banditformer.controllers.StepwiseDHT`
    whose three policies are built from registered names (plugin policies included), each with one
    statistics group per exit point: stop or continue (2 arms, contextual on the 5 exit
    features), the next block's head count (``H`` arms; given ``context_dim=5`` when the policy
    is contextual) and its head set (combinatorial).

    Args:
        policy, count_policy, head_policy: registered policy names for the three slots.
        policy_kwargs, count_kwargs, head_kwargs: options for them.
        seed: master seed; each slot and the reveal draws get derived sub-seeds.
        num_layers, num_heads, cost_table, options: as ``StepwiseDHT`` takes them (``lam``,
            ``flop_budget``, ``reveal``, ``warmup_steps``, ``head_reward``, ...).
    """
    check_int("num_layers", num_layers, low=2)
    check_int("num_heads", num_heads, low=1)
    check_int("seed", seed, low=0)
    for name, value in (("policy_kwargs", policy_kwargs), ("count_kwargs", count_kwargs), ("head_kwargs", head_kwargs)):
        if value is not None and not isinstance(value, dict):
            raise InputValidationError(f"expected `{name}` to be a dict of options, got {type(value).__name__}")
    groups = num_layers - 1
    stop = make_policy(
        policy, num_arms=2, context_dim=EXIT_FEATURES, num_groups=groups, seed=derive_seed(seed, "halting"),
        **(policy_kwargs or {}),
    )  # fmt: skip
    counts = make_policy(  # context-free policies ignore context_dim
        count_policy, num_arms=num_heads, context_dim=EXIT_FEATURES, num_groups=groups,
        seed=derive_seed(seed, "counts"), **(count_kwargs or {}),
    )  # fmt: skip
    heads = make_policy(
        head_policy, num_arms=num_heads, num_groups=groups, seed=derive_seed(seed, "heads"), **(head_kwargs or {})
    )
    return StepwiseDHT(
        num_layers, num_heads, cost_table, policy=stop, count_policy=counts, head_policy=heads,  # type: ignore[arg-type]
        seed=derive_seed(seed, "reveal"), **options,
    )  # fmt: skip


_with_options_of(stepwise_dht, StepwiseDHT, ("policy", "count_policy", "head_policy"))


@hookimpl
def banditformer_add_controllers() -> dict[str, Callable[..., Any]]:
    return {
        "static": Static,
        "static_small": StaticSmall,
        "static_grid": StaticSmall,  # bench model trains it at every uniform shape
        "random": RandomController,
        "layerdrop": LayerDropController,
        "dht": dht,
        "dht_integrated": functools.partial(dht, mode="integrated"),
        "threshold_bandit": threshold_bandit,
        "bandit_halting": bandit_halting,
        "stepwise_dht": stepwise_dht,
        "entropy_exit": functools.partial(ThresholdExit, metric="entropy", threshold=0.3),
        "confidence_exit": functools.partial(ThresholdExit, metric="max_prob"),
        "margin_exit": functools.partial(ThresholdExit, metric="margin", threshold=0.8),
        "patience_exit": PatienceExit,
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
        "listops": tasks.listops,
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
