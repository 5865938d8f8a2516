"""One training run of a controller on a task, with its results as a JSON-ready dict."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from banditformer.core.errors import InputValidationError
from banditformer.core.random import derive_seed
from banditformer.core.task import Split
from banditformer.core.validation import SEED_MAX, check_int, check_memory
from banditformer.model import DynamicTransformer, TransformerConfig
from banditformer.plugins import check_registered, get_plugin_manager, make_controller, make_task
from banditformer.training import TrainConfig, Trainer, calibrate_budget, operating_curve, score_shapes

__all__ = [
    "MODEL_DEFAULTS",
    "check_experiment",
    "controller_kwargs_for",
    "controller_parameters",
    "prepare_experiment",
    "run_experiment",
    "run_memory",
]

#: The model shape used unless overridden.
MODEL_DEFAULTS: dict[str, Any] = {"d_model": 64, "num_layers": 4, "num_heads": 4, "pooling": "mean"}


def controller_parameters(name: str) -> set[str]:
    """The keyword parameters a registered controller's factory takes (``context_dim``,
    ``full_flops``, ``seed`` and ``lam`` are filled in or swept when it takes them)."""
    entry = get_plugin_manager().registry("controller").get(name)
    if entry is None:
        return set()
    try:
        return set(inspect.signature(entry.factory).parameters)
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return set()


def controller_kwargs_for(
    controller: str,
    shape: dict[str, Any],
    full_flops: float,
    seed: int,
    extra: dict[str, Any] | None = None,
    table: Any = None,
) -> dict[str, Any]:
    """The options :func:`run_experiment` passes to the factory of ``controller``: the model's
    ``num_layers`` and ``num_heads``, then ``extra``, then ``context_dim``, ``full_flops``, the
    model's ``cost_table`` (``table``, when given) and a ``seed`` derived from ``seed`` where the
    factory takes them and ``extra`` does not set them."""
    kwargs = {"num_layers": shape["num_layers"], "num_heads": shape["num_heads"], **(extra or {})}
    accepts = controller_parameters(controller)
    filled = [("context_dim", shape["d_model"]), ("full_flops", full_flops)]
    if table is not None:
        filled.append(("cost_table", table))
    for name, value in filled:
        if name in accepts:
            kwargs.setdefault(name, value)
    if "seed" in accepts:
        kwargs.setdefault("seed", derive_seed(seed, "controller"))
    return kwargs


def run_memory(cfg: Any, batch_size: int) -> dict[str, float]:
    """A lower estimate of the bytes one training run of the model ``cfg`` (a
    :class:`~banditformer.model.TransformerConfig`) holds at once, by part: ``parameters`` (weights,
    gradients and AdamW's two moments, float32), ``activations`` (what the backward pass keeps for a
    batch of ``batch_size``: each block's hidden states and MLP, and its attention maps) and
    ``cost table`` (the FLOP count's traced copies). Computed from the shape alone, before anything
    is allocated."""
    d, L, h, t = cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.tokens_per_sample
    inputs = cfg.vocab_size or (cfg.channels * (cfg.patch_size or 1) ** 2 if cfg.input == "patches" else cfg.features)
    classes = cfg.num_classes * (L if cfg.exit_heads else 1)
    params = L * (4 + 2 * cfg.mlp_ratio) * d * d + (inputs + t + classes) * d
    per_sample = L * (t * d * (8 + 2 * cfg.mlp_ratio) + 2 * h * t * t)
    return {"parameters": 16.0 * params, "activations": 4.0 * per_sample * batch_size, "cost table": 8.0 * params}


def _add_spearman(result: dict[str, Any], difficulty: Any, flops: Any) -> None:
    """``result["spearman_difficulty_flops"]`` on tasks with known difficulty (None: undefined
    when either side is constant)."""
    if difficulty is None:
        return
    constant = bool((flops == flops[0]).all()) or bool((difficulty == difficulty[0]).all())
    rho = None if constant else float(stats.spearmanr(difficulty.numpy(), flops.numpy()).statistic)
    result["spearman_difficulty_flops"] = rho


def _model_keys(model: dict[str, Any] | None) -> dict[str, Any]:
    if model is None:
        return {}
    if not isinstance(model, dict):
        raise InputValidationError(f"expected `model` to be a dict of TransformerConfig options, got {model!r}")
    known = sorted(f.name for f in dataclasses.fields(TransformerConfig))
    unknown = sorted(set(model) - set(known))
    if unknown:
        raise InputValidationError(f"expected `model` keys among {known}, got unknown {unknown}")
    return model


def check_experiment(
    task: str,
    controller: str,
    *,
    seed: int = 0,
    task_kwargs: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    controller_kwargs: dict[str, Any] | None = None,
    train: TrainConfig | None = None,
    cache: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything :func:`run_experiment` checks before it trains, without training: the task and
    its options (it is built), the seed, the model's shape, the memory a run needs
    (:func:`run_memory`, against what is available), and the controller's options (it is built
    from its factory, with the options filled in as for the run, then dropped).

    Args:
        cache: a dict kept between calls of one configuration (same task, options and model), so
            that the task and the cost table are built once for many controllers.

    Returns:
        The controller's options, as the run passes them to its factory.

    Raises:
        InputValidationError: (or the task's or factory's error) for the first thing that does
            not fit; nothing was trained.
    """
    _, shape, table = prepare_experiment(task, seed, task_kwargs, model, train, cache)
    kwargs = controller_kwargs_for(controller, shape, table.full, seed, controller_kwargs, table)
    make_controller(controller, **kwargs)
    return kwargs


def prepare_experiment(
    task: str,
    seed: int,
    task_kwargs: dict[str, Any] | None,
    model: dict[str, Any] | None,
    train: TrainConfig | None,
    cache: dict[str, Any] | None,
) -> tuple[Any, dict[str, Any], Any]:
    """``(task data, model shape, cost table)`` of a run, every input checked first (see
    :func:`check_experiment`); ``cache`` (a dict kept between calls of one task, options and
    model) keeps the task (``"data"``), the freshly initialised model (``"net"``) and its cost
    table (``"table"``) between calls."""
    check_registered("task", task)
    check_int("seed", seed, low=0, high=SEED_MAX)
    if task_kwargs is not None and not isinstance(task_kwargs, dict):
        raise InputValidationError(f"expected `task_kwargs` to be a dict, got {task_kwargs!r}")
    if train is not None and not isinstance(train, TrainConfig):
        raise InputValidationError(f"expected `train` to be a TrainConfig, got {type(train).__name__}")
    shape = {**MODEL_DEFAULTS, **_model_keys(model)}
    cache = {} if cache is None else cache
    if "data" not in cache:
        cache["data"] = make_task(task, seed=seed, **(task_kwargs or {}))
    data = cache["data"]
    if "table" not in cache:
        cfg = TransformerConfig.for_task(data, **shape)
        parts = run_memory(cfg, (train or TrainConfig(seed=seed)).batch_size)
        check_memory(f"a run of a {cfg.num_layers}-block, {cfg.d_model}-wide model", sum(parts.values()), parts)
        torch.manual_seed(derive_seed(seed, "init"))
        cache["net"] = DynamicTransformer(cfg)
        cache["table"] = cache["net"].cost_table()
    return data, shape, cache["table"]


def run_experiment(
    task: str,
    controller: str,
    *,
    seed: int = 0,
    task_kwargs: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    controller_kwargs: dict[str, Any] | None = None,
    train: TrainConfig | None = None,
    out: str | os.PathLike[str] | None = None,
    calibrate: list[float] | None = None,
    eval_shapes: bool = False,
    batch1_samples: int = 0,
    curve: bool = False,
) -> dict[str, Any]:
    """Train ``controller`` (a registered name) with a fresh model on ``task`` and evaluate it on
    the test split.

    With ``calibrate`` (FLOP budgets; for a controller with operating points, such as the exit
    controllers), the trained network is also calibrated to each budget on the validation split
    (:func:`~banditformer.training.calibrate_budget`) and evaluated on the test split there:
    ``result["calibrated"]`` holds one entry per budget (its test numbers, the knob value, the
    validation accuracy and FLOP ratio), or ``{"budget", "error"}`` where the budget is
    unreachable.

    With ``eval_shapes``, ``result["shapes"]`` scores the trained network at every uniform shape
    on the test split (:func:`~banditformer.training.score_shapes`); with ``batch1_samples``
    ``n``, ``result["eval_us_per_sample_b1"]`` times inference one sample at a time on the
    first ``n`` test samples (decisions included).

    With ``curve`` (a controller with operating points), ``result["curve"]`` holds the trained
    network's whole operating curve: at every operating point of its knob, the validation and the
    test split's accuracy and mean FLOP ratio (:func:`~banditformer.training.operating_curve`,
    one pass per split for a halting controller), from which the report takes the area under the
    curve calibrated on validation at every budget (:func:`~banditformer.bench.stats.calibrated_area`).

    Returns:
        ``accuracy``, mean forward FLOPs per sample at inference and in training with their savings
        against the full model, training wall time, inference time per test sample
        (``eval_us_per_sample``, decisions included), the distributions of chosen depths and heads, and on
        tasks with known difficulty the Spearman correlation between difficulty and chosen FLOPs.
        Written as JSON to ``out`` when given.

    Everything is checked before training, as :func:`check_experiment` does.
    """
    cache: dict[str, Any] = {}
    data, shape, table = prepare_experiment(task, seed, task_kwargs, model, train, cache)
    net = cache["net"]
    kwargs = controller_kwargs_for(controller, shape, table.full, seed, controller_kwargs, table)
    check_int("batch1_samples", batch1_samples, low=0)
    ctrl = make_controller(controller, **kwargs)
    if calibrate and ctrl.operating_points() is None:
        raise InputValidationError(
            f"expected a controller with operating points to calibrate to budgets {calibrate}, got {controller!r}"
        )
    if not isinstance(curve, bool):
        raise InputValidationError(f"expected `curve` to be a bool, got {curve!r}")
    if curve and ctrl.operating_points() is None:
        raise InputValidationError(f"expected a controller with operating points for `curve`, got {controller!r}")
    config = train or TrainConfig(seed=seed)
    trainer = Trainer(net, ctrl, data, config, on_metrics=get_plugin_manager().notify_metrics)
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    test = trainer.evaluate(data.test)
    result: dict[str, Any] = {
        "task": task,
        "controller": controller,
        "controller_kwargs": {k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool))},
        "seed": seed,
        "model": shape,
        "train": vars(config),
        "accuracy": test["accuracy"],
        "flops_per_sample": test["flops_per_sample"],
        "flop_saving": test["flop_saving"],
        "train_flop_saving": 1.0 - trainer.train_flop_ratio,
        "full_flops_per_sample": table.full,
        "wall_time_s": seconds,
        "eval_us_per_sample": test["seconds"] / max(len(data.test), 1) * 1e6,
        "depth_counts": torch.bincount(test["depth"], minlength=shape["num_layers"] + 1)[1:].tolist(),
        "head_count_mean_per_block": test["head_counts"].double().mean(0).tolist(),
    }
    result["test_depths"] = test["depth"].tolist()  # each test sample's exit, in the split's order

    def batch1_us() -> float:
        n = min(batch1_samples, len(data.test))
        return trainer.evaluate(Split(data.test.x[:n], data.test.y[:n]), batch_size=1)["seconds"] / n * 1e6

    if batch1_samples:
        result["eval_us_per_sample_b1"] = batch1_us()
    if eval_shapes:
        result["shapes"] = score_shapes(trainer.model, data.test)
    _add_spearman(result, data.test.difficulty, test["flops"])
    if calibrate:
        result["calibrated"] = []
        for budget in calibrate:
            try:
                chosen = calibrate_budget(trainer.model, ctrl, data.val, budget)
            except InputValidationError as exc:
                result["calibrated"].append({"budget": budget, "error": str(exc)})
                continue
            at = trainer.evaluate(data.test)
            entry = {
                "budget": budget,
                "value": chosen["value"],
                "val_accuracy": chosen["accuracy"],
                "val_flop_ratio": chosen["flop_ratio"],
                "accuracy": at["accuracy"],
                "flops_per_sample": at["flops_per_sample"],
                "flop_saving": at["flop_saving"],
                "eval_us_per_sample": at["seconds"] / max(len(data.test), 1) * 1e6,
                "test_depths": at["depth"].tolist(),
                **{k: chosen[k] for k in ("high", "weight") if k in chosen},  # a mixed knob's second point
            }
            if batch1_samples:
                entry["eval_us_per_sample_b1"] = batch1_us()  # at this knob
            _add_spearman(entry, data.test.difficulty, at["flops"])
            result["calibrated"].append(entry)
    if curve:  # after the calibrated budgets: it leaves the knob and the controller's state as they were
        val = operating_curve(trainer.model, ctrl, data.val)
        result["curve"] = [
            {"value": v["value"], "val_accuracy": v["accuracy"], "val_flop_ratio": v["flop_ratio"],
             "accuracy": t["accuracy"], "flop_ratio": t["flop_ratio"]}
            for v, t in zip(val, operating_curve(trainer.model, ctrl, data.test), strict=True)
        ]  # fmt: skip
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
    return result
