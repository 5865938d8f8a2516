"""One training run of a controller on a task, with its results as a JSON-ready dict."""

from __future__ import annotations

import inspect
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from banditformer.core.random import derive_seed
from banditformer.harness.trainer import TrainConfig, Trainer

__all__ = ["MODEL_DEFAULTS", "controller_parameters", "run_experiment"]

#: The model shape used unless overridden.
MODEL_DEFAULTS: dict[str, Any] = {"d_model": 64, "num_layers": 4, "num_heads": 4, "pooling": "mean"}


def controller_parameters(name: str) -> set[str]:
    """The keyword parameters a registered controller's factory takes (``context_dim``,
    ``full_flops``, ``seed`` and ``lam`` are filled in or swept when it takes them)."""
    from banditformer.plugins import get_plugin_manager

    entry = get_plugin_manager().registry("controller").get(name)
    if entry is None:
        return set()
    try:
        return set(inspect.signature(entry.factory).parameters)
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return set()


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
) -> dict[str, Any]:
    """Train ``controller`` (a registered name) with a fresh model on ``task`` and evaluate it on
    the test split.

    Returns:
        ``accuracy``, mean forward FLOPs per sample at inference and in training with their savings
        against the full model, training wall time, inference time per test sample
        (``eval_us_per_sample``, decisions included), the distributions of chosen depths and heads, and on
        tasks with known difficulty the Spearman correlation between difficulty and chosen FLOPs.
        Written as JSON to ``out`` when given.
    """
    from banditformer.model import DynamicTransformer
    from banditformer.plugins import make_controller, make_task

    data = make_task(task, seed=seed, **(task_kwargs or {}))
    shape = {**MODEL_DEFAULTS, **(model or {})}
    torch.manual_seed(derive_seed(seed, "init"))
    net = DynamicTransformer(data.config(**shape))
    table = net.cost_table()
    kwargs = {"num_layers": shape["num_layers"], "num_heads": shape["num_heads"], **(controller_kwargs or {})}
    accepts = controller_parameters(controller)
    for name, value in (("context_dim", shape["d_model"]), ("full_flops", table.full)):
        if name in accepts:
            kwargs.setdefault(name, value)
    if "seed" in accepts:
        kwargs.setdefault("seed", derive_seed(seed, "controller"))
    ctrl = make_controller(controller, **kwargs)
    config = train or TrainConfig(seed=seed)
    trainer = Trainer(net, ctrl, data, config)
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
    difficulty = data.test.difficulty
    if difficulty is not None:
        flops = test["flops"]
        constant = bool((flops == flops[0]).all()) or bool((difficulty == difficulty[0]).all())
        rho = None if constant else float(stats.spearmanr(difficulty.numpy(), flops.numpy()).statistic)
        result["spearman_difficulty_flops"] = rho  # None: undefined when either side is constant
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
    return result
