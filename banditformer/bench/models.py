"""The model benchmark: what to run (:class:`ModelBenchConfig`), the plan that checks it
(:func:`plan_models`) and the runner (:func:`run_models`): architecture controllers x lambdas (or
FLOP budgets) x seeds on a task, each run a fresh model trained with the same schedule, with
accuracy, FLOP saving and time per sample, and the Pareto front of accuracy against FLOP saving.

How each controller is swept:

- ``static`` (the full model) and controllers with nothing to sweep: one run per seed;
- ``static_grid``: a static model trained at every uniform shape (each depth, each head count;
  ``static_grid d=2 h=3``), the frontier every adaptive controller is compared with;
- the budgeted baselines ``static_small``, ``random`` and ``layerdrop``: one run per FLOP budget in
  ``budgets`` (``static_small`` at the largest shape within the budget, ``random`` matched to its
  mean FLOPs, ``layerdrop`` pruned to the budget's depth at inference);
- every controller whose factory takes ``lam`` (``dht``, ``dht_integrated``, plugins alike): one run
  per value in ``lams``, and one per value in ``dht_budgets`` with ``lam`` adapted to that budget
  when it takes ``flop_budget``; ``warmup`` sets ``warmup_steps`` to that share of the training
  steps when it takes ``warmup_steps``;
- controllers with an inference knob (``operating_points``: the exit controllers
  ``entropy_exit``, ``confidence_exit``, ``margin_exit``, ``patience_exit``, ``threshold_bandit``,
  ``bandit_halting``, ``stepwise_dht``, and ``dht``, whose ``cost_bias`` the bench's cost table
  enables): each run is also calibrated after training to every FLOP budget in ``budgets`` on
  the validation split and scored on the test split there, reported as ``label@budget`` (one
  training serves all budgets; an unreachable budget is that label's failure, with the reason);
  a ``dht_budgets`` run, trained to its budget, is calibrated to that budget.

``controller_kwargs[name]["budgets"]`` gives one controller its own budgets instead of
``budgets`` (for the budgeted baselines and the calibrated controllers).

A configuration checks its values when it is made; :func:`plan_models` builds the task, the model
and its cost table once, settles every run's controller options and builds each configuration's
controller once, so that bad input fails before the first run (``run_models`` plans first).

Every run executes with ``threads`` intra-op threads, in this process or in ``workers`` spawned
ones, so the numbers do not depend on ``workers`` (they do depend on ``threads``: the order of
floating-point sums changes with it). The configuration is defined in
:mod:`banditformer.bench.config`. The report (:class:`~banditformer.bench.results.ModelReport`) is
written by :func:`~banditformer.bench.report.write_model_report` and drawn by
:func:`~banditformer.bench.plots.plot_model_report`; the configuration, the report's type and its
text/file writers are importable from here too.

Examples:
    >>> config = ModelBenchConfig(task="digits", controllers=["static", "static_small"], budgets=[0.25], epochs=1)
    >>> [label for label, _, _ in plan_models(config).runs]
    ['static', 'static_small@0.25']
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from banditformer.bench import experiment
from banditformer.bench.config import ModelBenchConfig
from banditformer.bench.pool import run_bench_jobs
from banditformer.bench.report import format_model_report, write_model_report
from banditformer.bench.results import RUN_NUMBERS, ModelReport, check_run_record
from banditformer.bench.runlog import RunLog, check_log
from banditformer.bench.stats import calibrated_area, ci95_halfwidth, curve_area, paired_difference, pareto_front
from banditformer.controllers import RandomController, budget_shape, uniform_shapes
from banditformer.core.errors import BanditformerError, InputValidationError, PluginError
from banditformer.core.validation import check_float, check_int
from banditformer.plugins import make_controller

__all__ = [
    "BUDGETED",
    "COMBINABLE_FIELDS",
    "ModelBenchConfig",
    "ModelPlan",
    "ModelReport",
    "budget_kwargs",
    "combined_report",
    "format_model_report",
    "plan_models",
    "recorded_report",
    "run_models",
    "write_model_report",
]

#: The baselines swept over FLOP budgets.
BUDGETED = ("static_small", "random", "layerdrop")

#: The key of a run's options that lists the budgets it is calibrated to after training.
CALIBRATE = "calibrate_budgets"

#: The key of a run's options that asks for its network's whole operating curve after training.
CURVE = "operating_curve"


def budget_kwargs(name: str, table: Any, budget: float, *, seed: int = 0, drop: float = 0.2) -> dict[str, Any]:
    """Options that put budgeted baseline ``name`` (one of :data:`BUDGETED`) at a FLOP ``budget``:
    ``static_small`` at the largest shape within it, ``random`` matched to its mean FLOPs,
    ``layerdrop`` (training drop rate ``drop``) pruned at inference to the deepest model that keeps
    every head within it (LayerDrop prunes layers, not heads). ``table`` is the model's
    :class:`~banditformer.core.cost.CostTable`."""
    if name not in BUDGETED:
        raise InputValidationError(f"expected a budgeted baseline in {BUDGETED}, got {name!r}")
    depth, heads = budget_shape(table, budget)
    if name == "static_small":
        return {"depth": depth, "heads": heads}
    if name == "random":
        rc = RandomController.for_budget(table, budget, seed=seed)
        return {"max_depth": rc.max_depth, "max_heads": rc.max_heads}
    return {"drop": drop, "inference_depth": budget_shape(table, budget, all_heads=True)[0]}


# -------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class ModelPlan:
    """What :func:`plan_models` settled for a configuration.

    Attributes:
        config: the configuration.
        runs: ``(label, controller, controller kwargs)`` per configuration of the sweep, in
            order; each runs ``config.seeds`` times.
        steps: training steps of one run.
    """

    config: ModelBenchConfig
    runs: list[tuple[str, str, dict[str, Any]]]
    steps: int


def plan_models(config: ModelBenchConfig) -> ModelPlan:
    """Check everything a run of ``config`` needs before any run: the task is built (its options
    against its factory), the model's shape and the memory a run needs are checked, the model
    and its cost table are built once, every configuration's controller options are settled (see
    the module docstring) and its controller is built once with them.

    Raises:
        InputValidationError: (or the task's or a plugin's error) for the first thing that does
            not fit, naming the configuration where it is one controller's; nothing was trained.
    """
    if not isinstance(config, ModelBenchConfig):
        raise InputValidationError(f"expected a ModelBenchConfig, got {type(config).__name__}")
    cache: dict[str, Any] = {}  # the task, model and cost table, built once for every check
    train = config.train_config(config.seed)
    data, _, table = experiment.prepare_experiment(
        config.task, config.seed, config.task_kwargs, config.model, train, cache
    )
    steps = -(-len(data.train) // config.batch_size) * config.epochs
    runs: list[tuple[str, str, dict[str, Any]]] = []
    shape = {**experiment.MODEL_DEFAULTS, **config.model}
    for name in config.controllers:
        extra = dict(config.controller_kwargs.get(name, {}))
        budgets = _own_budgets(name, extra.pop("budgets", None), config.budgets)
        accepts = experiment.controller_parameters(name)
        probe = experiment.controller_kwargs_for(name, shape, table.full, config.seed, extra, table)
        try:
            knob = make_controller(name, **probe).operating_points() is not None
        except Exception:  # a bad option: check_experiment below names the configuration
            knob = False
        calibrate = {CALIBRATE: list(budgets)} if knob and budgets else {}
        if knob and config.curve:
            calibrate[CURVE] = True
        if calibrate:
            _check_distinct_budgets(name, budgets)
        if name == "static_grid":  # a static model trained at every uniform shape
            for depth, heads in uniform_shapes(shape["num_layers"], shape["num_heads"]):
                runs.append((f"static_grid d={depth} h={heads}", name, {**extra, "depth": depth, "heads": heads}))
        elif name in BUDGETED:
            for b in budgets:
                kw = budget_kwargs(name, table, b, seed=config.seed, drop=config.layerdrop)
                runs.append((f"{name}@{b:g}", name, {**kw, **extra}))
        elif "lam" in accepts:
            if config.warmup and "warmup_steps" in accepts:
                extra.setdefault("warmup_steps", round(config.warmup * steps))
            runs += [(f"{name} lam={lam:g}", name, {**extra, "lam": lam, **calibrate}) for lam in config.lams]
            if "flop_budget" in accepts:  # trained to its budget by dual ascent, calibrated to that budget
                runs += [
                    (f"{name} budget={b:g}", name, {**extra, "flop_budget": b,
                                                     **({**calibrate, CALIBRATE: [b]} if knob else {})})
                    for b in config.dht_budgets
                ]
        else:
            runs.append((name, name, {**extra, **calibrate}))
    labels = [label for label, _, _ in runs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise InputValidationError(f"expected distinct configurations, got {repeated} more than once")
    if not labels:
        raise InputValidationError(
            f"expected at least one run, got none: controllers {config.controllers} with lams {config.lams}, "
            f"budgets {config.budgets} and dht_budgets {config.dht_budgets}"
        )
    for label, controller, kwargs in runs:
        try:
            experiment.check_experiment(
                config.task, controller, seed=config.seed, task_kwargs=config.task_kwargs, model=config.model,
                controller_kwargs=_factory_kwargs(kwargs), train=train, cache=cache,
            )  # fmt: skip
        except PluginError:  # names the plugin already
            raise
        except Exception as exc:  # name the configuration; a plugin factory's own error too
            says = str(exc) if isinstance(exc, BanditformerError) else (
                f"expected controller {controller!r} to build, got {type(exc).__name__}: {exc}"
            )  # fmt: skip
            raise InputValidationError(f"{says} (configuration {label!r})") from exc
    return ModelPlan(config, runs, steps)


def _own_budgets(name: str, own: Any, default: list[float]) -> list[float]:
    """``controller_kwargs[name]["budgets"]``, checked, or ``default`` when not given."""
    if own is None:
        return list(default)
    if isinstance(own, (str, bytes)) or not isinstance(own, (list, tuple)):
        raise InputValidationError(
            f"expected controller_kwargs[{name!r}]['budgets'] to be a list of numbers, got {own!r}"
        )
    for b in own:
        check_float(f"controller_kwargs[{name!r}]['budgets'][i]", b, low=0.0, high=1.0, low_open=True)
    return list(own)


def _check_distinct_budgets(name: str, budgets: list[float]) -> None:
    """Budgets that label the same configuration (``f"{b:g}"``) are one budget given twice."""
    labels = [f"{b:g}" for b in budgets]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise InputValidationError(f"expected distinct budgets for {name!r}, got {twice} more than once")


def _factory_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A run's options without the bench's own (:data:`CALIBRATE`, :data:`CURVE`): what the factory takes."""
    return {k: v for k, v in kwargs.items() if k not in (CALIBRATE, CURVE)}


# -------------------------------------------------------------------------------------- the runs
def _one_run(config: ModelBenchConfig, label: str, controller: str, kwargs: dict[str, Any], seed: int) -> dict:
    """One training run; a failure comes back as ``{"label", "controller", "seed", "error"}``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        result = experiment.run_experiment(
            config.task, controller, seed=seed, task_kwargs=config.task_kwargs, model=config.model,
            controller_kwargs=_factory_kwargs(kwargs), train=config.train_config(seed),
            calibrate=kwargs.get(CALIBRATE), eval_shapes=config.eval_shapes, batch1_samples=config.batch1_samples,
            curve=bool(kwargs.get(CURVE)),
        )  # fmt: skip
    except Exception as exc:  # reported by label; the other runs go on
        return {"label": label, "controller": controller, "seed": seed, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        torch.set_num_threads(threads)
    return {"label": label, **result}


def _summarise(plan: list[tuple[str, str, dict[str, Any]]], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration: its seeds and failures, the mean and 95% interval of each of
    :data:`~banditformer.bench.results.RUN_NUMBERS` over its finished runs, and whether the
    means are on the Pareto front of accuracy against FLOP saving."""
    runs = list(runs)
    labels: list[tuple[str, str]] = []
    for label, controller, kwargs in plan:
        labels.append((label, controller))
        for b in kwargs.get(CALIBRATE, []):  # each calibrated budget of a run is a configuration of its own
            labels.append((f"{label}@{b:g}", controller))
            for r in [r for r in runs if r["label"] == label]:
                runs.append(_calibrated_run(r, b, f"{label}@{b:g}"))
    rows = []
    for label, controller in labels:
        ok = [r for r in runs if r["label"] == label and "error" not in r]
        failed = [r for r in runs if r["label"] == label and "error" in r]
        row: dict[str, Any] = {"label": label, "controller": controller, "seeds": len(ok), "failed": len(failed)}
        if failed:
            row["errors"] = [f"seed {r['seed']}: {r['error']}" for r in failed]
        if ok:
            for key in RUN_NUMBERS + OPTIONAL_NUMBERS:
                if key not in RUN_NUMBERS and not all(isinstance(r.get(key), (int, float)) for r in ok):
                    continue
                values = [float(r[key]) for r in ok]
                row[key] = sum(values) / len(values)
                row[f"{key}_ci95"] = float(ci95_halfwidth(values))
            if all("shapes" in r for r in ok):
                row["shapes"] = _mean_shapes([r["shapes"] for r in ok])
        rows.append(row)
    accuracy = {label: {r["seed"]: float(r["accuracy"]) for r in runs if r["label"] == label and "error" not in r}
                for label, _ in labels}  # fmt: skip
    full = next((label for label, controller in labels if controller == "static"), None)
    done = [r for r in rows if r["seeds"]]
    for r in done:
        paired = None if full is None else paired_difference(accuracy[r["label"]], accuracy[full])
        if paired is not None and r["label"] != full:
            r["accuracy_vs_full"], r["accuracy_vs_full_ci95"], r["paired_seeds"] = paired
    for r, on in zip(done, pareto_front([(r["accuracy"], r["flop_saving"]) for r in done]), strict=True):
        r["pareto"] = on
    areas = _curve_areas(labels, runs, [1.0 - r["flop_saving"] for r in done])
    for r in done:
        r.update(areas.get(r["controller"], {}))
    _against_best_at_budget(done, accuracy)
    return rows


def _against_best_at_budget(rows: list[dict[str, Any]], accuracy: dict[str, dict[int, float]]) -> None:
    """Matched cost: the configurations at one budget (labels ``name@b``: budgeted baselines and
    calibrated controllers alike) against the most accurate of them (highest mean accuracy), paired
    by seed; each row of such a group gets ``best_at_budget`` (that label) and, but for the best
    itself, ``accuracy_vs_best`` with its 95% interval and ``paired_seeds_vs_best``. A group of
    one configuration gets nothing."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if "@" in r["label"]:
            groups.setdefault(r["label"].rsplit("@", 1)[1], []).append(r)
    for group in groups.values():
        if len(group) < 2:
            continue
        best = max(group, key=lambda r: r["accuracy"])
        for r in group:
            r["best_at_budget"] = best["label"]
            paired = None if r is best else paired_difference(accuracy[r["label"]], accuracy[best["label"]])
            if paired is not None:
                r["accuracy_vs_best"], r["accuracy_vs_best_ci95"], r["paired_seeds_vs_best"] = paired


#: Numbers a run has only with some options (batch-1 timing) or tasks (known difficulty).
OPTIONAL_NUMBERS = ("eval_us_per_sample_b1", "spearman_difficulty_flops")


def _mean_shapes(per_run: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The fixed-shape scores of several runs (seeds) of one configuration: mean accuracy and its
    95% interval per shape."""
    out = []
    for i, shape in enumerate(per_run[0]):
        values = [float(run[i]["accuracy"]) for run in per_run]
        out.append({
            "depth": shape["depth"], "heads": shape["heads"], "flop_ratio": shape["flop_ratio"],
            "accuracy": sum(values) / len(values), "accuracy_ci95": float(ci95_halfwidth(values)),
        })  # fmt: skip
    return out


def _curve_areas(
    labels: list[tuple[str, str]], runs: list[dict[str, Any]], ratios: list[float]
) -> dict[str, dict[str, Any]]:
    """Per controller: the area under its accuracy-versus-inference-FLOPs curve (every label of it
    is a point; :func:`~banditformer.bench.stats.curve_area`) over ``[lowest mean FLOP ratio of
    the report, 1]``, per seed, with its mean and 95% interval; and where every run of it recorded
    its network's operating curve (``curve``), the area of that curve calibrated on validation at
    every budget over the same range (:func:`~banditformer.bench.stats.calibrated_area`,
    ``calibrated_area``; a seed's runs pooled: at each budget, the point calibration picks among
    all of them). A controller without curves (a static grid) is paired, by the area of its points,
    against the highest calibrated area (``curve_area_vs_calibrated_best``)."""
    if not ratios or min(ratios) >= 1.0:
        return {}
    low = max(min(ratios), 0.0)
    of = {label: controller for label, controller in labels}
    points: dict[str, dict[int, list[tuple[float, float]]]] = {}
    curves: dict[str, dict[int, set[tuple[float, float, float]] | None]] = {}
    for r in runs:
        if "error" in r or r["label"] not in of:
            continue
        controller = of[r["label"]]
        by_seed = points.setdefault(controller, {})
        by_seed.setdefault(r["seed"], []).append((1.0 - float(r["flop_saving"]), float(r["accuracy"])))
        seeds = curves.setdefault(controller, {})
        if "curve" not in r:
            seeds[r["seed"]] = None  # a run without its curve: no calibrated area for this controller
        elif seeds.setdefault(r["seed"], set()) is not None:  # a calibrated label repeats its run's curve
            seeds[r["seed"]] |= {(p["val_flop_ratio"], p["val_accuracy"], p["accuracy"]) for p in r["curve"]}
    out: dict[str, dict[str, Any]] = {}
    per_seed: dict[str, dict[int, float]] = {}
    grids: dict[str, dict[int, float]] = {}  # controllers without operating curves: their points' areas
    for controller, by_seed in points.items():
        grids[controller] = {s: curve_area(p, low) for s, p in by_seed.items()}
        values = list(grids[controller].values())
        out[controller] = {
            "curve_area": sum(values) / len(values), "curve_area_ci95": float(ci95_halfwidth(values)),
            "curve_low": low,
        }  # fmt: skip
        pooled = curves[controller]
        if all(c is not None for c in pooled.values()):
            per_seed[controller] = {s: calibrated_area(list(c), low) for s, c in pooled.items() if c is not None}
            values = list(per_seed[controller].values())
            out[controller]["calibrated_area"] = sum(values) / len(values)
            out[controller]["calibrated_area_ci95"] = float(ci95_halfwidth(values))
    if not per_seed:
        return out
    best = max(per_seed, key=lambda c: out[c]["calibrated_area"])
    if len(per_seed) > 1:  # each against the highest, paired by seed
        for controller, values in per_seed.items():
            out[controller]["calibrated_area_best"] = best
            paired = None if controller == best else paired_difference(values, per_seed[best])
            if paired is not None:
                keys = ("calibrated_area_vs_best", "calibrated_area_vs_best_ci95", "calibrated_area_paired_seeds")
                out[controller].update(zip(keys, paired, strict=True))
    # a controller without operating curves (a static grid: one network per point, its FLOPs fixed,
    # nothing to calibrate) against the highest calibrated area, by the area of its own points
    for controller, values in grids.items():
        if any(c is not None for c in curves[controller].values()) or out[controller]["curve_area"] == 0:
            continue
        paired = paired_difference(values, per_seed[best])
        if paired is not None:
            keys = ("curve_area_vs_calibrated_best", "curve_area_vs_calibrated_best_ci95", "curve_area_paired_seeds")
            out[controller].update(zip(keys, paired, strict=True), calibrated_area_best=best)
    return out


def _calibrated_run(run: dict[str, Any], budget: float, label: str) -> dict[str, Any]:
    """A run's numbers at one calibrated budget, as a run of ``label`` (its training numbers are
    the run's own)."""
    if "error" in run:
        return {**run, "label": label}
    entry = next((e for e in run.get("calibrated", []) if e["budget"] == budget), None)
    if entry is None or "error" in entry:
        why = "not calibrated" if entry is None else entry["error"]
        return {"label": label, "controller": run["controller"], "seed": run["seed"], "error": why}
    # the same network as the run's: its fixed-shape scores are the run's row's, not repeated here
    # (its batch-1 time, when measured, is the entry's own: timed at the calibrated knob)
    kept = {k: v for k, v in run.items() if k not in ("shapes", "eval_us_per_sample_b1")}
    return {**kept, **entry, "label": label}


def recorded_report(folder: str | Path, *, whole_seeds: bool = True) -> ModelReport:
    """The report of the runs a ``bench model`` results folder has recorded so far, complete or
    not: the folder is only read (a run in progress may go on beside it), its configuration is
    planned again (:func:`plan_models`: the same labels and calibrated budgets as the run's own
    report), and the runs are summarised as :func:`run_models` summarises them.

    Args:
        folder: the results folder (``run.json``, ``jobs/``).
        whole_seeds: keep only the seeds whose every planned run has finished (so that every
            comparison pairs the same seeds); ``False``: every recorded run.

    Returns:
        the report; its ``config.seeds`` is the number of seeds reported, and ``meta`` says
        ``status`` (``complete`` when every planned run is there), ``seeds`` (those reported),
        ``recorded`` and ``planned`` (run counts).

    Raises:
        InputValidationError: ``folder`` is not a model bench's results folder, its configuration
            does not plan (a plugin it names is gone), or its recorded jobs are not this plan's.
    """
    part = _read_folder(folder, whole_seeds)
    shown = replace(part.config, seeds=max(len(part.meta["seeds"]), 1))
    return ModelReport(shown, part.runs, _summarise(part.plan.runs, part.runs), part.meta)


#: The configuration fields in which folders combined in one report may differ
#: (:func:`combined_report`): which configurations and seeds ran, how they were measured, and
#: the training choices (``objective``, ``controller_kwargs``) that a configuration's label then
#: names. Every other field (the task, the model, the schedule) must be the same in every folder,
#: so that the runs of one seed train on the same data from the same start and pair.
COMBINABLE_FIELDS = ("controllers", "lams", "budgets", "dht_budgets", "seeds", "seed", "threads", "eval_shapes",
                     "batch1_samples", "curve", "objective", "controller_kwargs")  # fmt: skip


def combined_report(folders: Sequence[str | Path], *, whole_seeds: bool = True) -> ModelReport:
    """One report over the runs of several ``bench model`` results folders on the same task,
    model and schedule: a new controller, objective or controller option measured in its own
    folder is paired by seed with the baselines another folder trained, without training them
    again (each folder is only read, as :func:`recorded_report` reads it).

    A configuration of a later folder that trains differently from the first folder (another
    ``objective``, other ``controller_kwargs`` for its controller, ``budgets`` aside) carries
    the difference in its label and its controller name, ``"entropy_exit [objective=sandwich]"``,
    ``"threshold_bandit lam=0.1 [reveal=1.0]"`` (its calibrated budgets
    ``"... [reveal=1.0]@0.5"``); one that trains the same keeps its label, and its runs join
    that configuration's (more seeds of it, say). The curve areas and the matched-cost
    comparisons treat each named variant as a controller of its own.

    Args:
        folders: two or more results folders; the first one's configuration is the reference.
        whole_seeds: in each folder, only the seeds whose every planned run has finished;
            ``False``: every recorded run.

    Returns:
        the report; its ``config`` is the first folder's with the controllers, lambdas and
        budgets of all of them and ``seeds`` the number of seeds reported; ``meta`` sums the
        folders' ``recorded`` and ``planned``, unites their ``seeds`` (``status``: ``complete``
        when every folder is), and lists each folder's own ``meta`` under ``folders`` (with the
        ``variants`` it named).

    Raises:
        InputValidationError: fewer than two folders, one that :func:`recorded_report` refuses,
            folders that differ beyond :data:`COMBINABLE_FIELDS` (each difference named), or one
            configuration and seed recorded in two folders.
    """
    if isinstance(folders, (str, Path)) or not isinstance(folders, Sequence) or len(folders) < 2:
        raise InputValidationError(f"expected a list of at least two results folders, got {folders!r}")
    parts = [_read_folder(folder, whole_seeds) for folder in folders]  # each checked, nothing combined yet
    first = parts[0].config
    for part in parts[1:]:
        differ = [
            f"{f.name}: {getattr(part.config, f.name)!r} against {getattr(first, f.name)!r}"
            for f in fields(ModelBenchConfig)
            if f.name not in COMBINABLE_FIELDS and getattr(part.config, f.name) != getattr(first, f.name)
        ]
        if differ:
            raise InputValidationError(
                f"expected folders on the same task, model and schedule, got {part.meta['folder']!r} differing "
                f"from {parts[0].meta['folder']!r} in " + "; ".join(differ)
            )
    plan: dict[str, tuple[str, str, dict[str, Any]]] = {}
    runs: list[dict[str, Any]] = []
    owner: dict[tuple[str, int], str] = {}  # (label, seed) -> the folder that recorded it
    for i, part in enumerate(parts):
        names: dict[str, tuple[str, str]] = {}
        variants = []
        for label, controller, kwargs in part.plan.runs:
            variant = "" if i == 0 else _variant(first, part.config, controller)
            name = (f"{label} [{variant}]", f"{controller} [{variant}]") if variant else (label, controller)
            names[label] = name
            if variant and variant not in variants:
                variants.append(variant)
            if name[0] not in plan:
                plan[name[0]] = (*name, dict(kwargs))
            elif kwargs.get(CALIBRATE):  # one configuration in two folders: the budgets of both
                held = plan[name[0]][2]
                held[CALIBRATE] = list(dict.fromkeys([*held.get(CALIBRATE, []), *kwargs[CALIBRATE]]))
        for run in part.runs:
            label, controller = names[run["label"]]
            key = (label, run["seed"])
            if key in owner:
                raise InputValidationError(
                    f"expected each configuration and seed recorded in one folder, got {label!r} seed {run['seed']} "
                    f"in {owner[key]!r} and {part.meta['folder']!r}"
                )
            owner[key] = part.meta["folder"]
            runs.append({**run, "label": label, "controller": controller})
        part.meta["variants"] = variants
    seeds = sorted({s for part in parts for s in part.meta["seeds"]})
    meta = {
        "status": "complete" if all(p.meta["status"] == "complete" for p in parts) else "partial",
        "seeds": seeds, "recorded": sum(p.meta["recorded"] for p in parts),
        "planned": sum(p.meta["planned"] for p in parts), "folder": parts[0].meta["folder"],
        "folders": [p.meta for p in parts],
    }  # fmt: skip

    def united(name: str) -> list[Any]:
        return list(dict.fromkeys(v for p in parts for v in getattr(p.config, name)))

    shown = replace(first, controllers=united("controllers"), lams=united("lams"), budgets=united("budgets"),
                    dht_budgets=united("dht_budgets"), seeds=max(len(seeds), 1))  # fmt: skip
    return ModelReport(shown, runs, _summarise(list(plan.values()), runs), meta)


def _variant(first: ModelBenchConfig, other: ModelBenchConfig, controller: str) -> str:
    """How ``other`` trains ``controller`` differently from ``first``: ``"objective=sandwich"``,
    ``"reveal=1.0"`` (its options other than ``budgets`` that differ, JSON-written; ``"x unset"``
    for one only ``first`` gives), joined by ``", "``; ``""`` when it trains the same."""
    parts = [f"objective={other.objective}"] if other.objective != first.objective else []
    mine = {k: v for k, v in other.controller_kwargs.get(controller, {}).items() if k != "budgets"}
    theirs = {k: v for k, v in first.controller_kwargs.get(controller, {}).items() if k != "budgets"}
    changed = sorted((k, v) for k, v in mine.items() if k not in theirs or theirs[k] != v)
    parts += [f"{k}={json.dumps(v, sort_keys=True)}" for k, v in changed]
    parts += [f"{k} unset" for k in sorted(theirs) if k not in mine]
    return ", ".join(parts)


@dataclass
class _Folder:
    """One results folder as read: its configuration, its plan, the runs kept, and its meta."""

    config: ModelBenchConfig
    plan: ModelPlan
    runs: list[dict[str, Any]]
    meta: dict[str, Any]


def _read_folder(folder: str | Path, whole_seeds: bool) -> _Folder:
    """Read and check one results folder (see :func:`recorded_report`)."""
    log = RunLog.read(folder, "model")
    try:
        config = ModelBenchConfig(**log.config)
    except TypeError as exc:
        raise InputValidationError(
            f"expected a configuration of this version in {str(log.folder / log.RUN)!r}, got: {exc}"
        ) from None
    plan = plan_models(config)
    seeds = [config.seed + i for i in range(config.seeds)]
    keys = {(label, seed): f"{label}, seed {seed}" for seed in seeds for label, _, _ in plan.runs}
    if log.jobs is not None and sorted(log.jobs) != sorted(keys.values()):
        raise InputValidationError(
            f"expected the jobs recorded in {str(log.folder / log.RUN)!r} to be this configuration's plan, "
            f"got a different list (were plugins added or removed?)"
        )
    recorded = log.recorded()
    runs = [check_run_record(recorded[key]) for key in keys.values() if key in recorded]
    if whole_seeds:
        seeds = [s for s in seeds if all(keys[label, s] in recorded for label, _, _ in plan.runs)]
        runs = [r for r in runs if r["seed"] in seeds]
    else:
        seeds = sorted({r["seed"] for r in runs})
    meta = {
        "status": "complete" if len(recorded.keys() & set(keys.values())) == len(keys) else "partial",
        "seeds": seeds, "recorded": len(recorded.keys() & set(keys.values())), "planned": len(keys),
        "folder": str(log.folder),
    }  # fmt: skip
    return _Folder(config, plan, runs, meta)


def run_models(
    config: ModelBenchConfig,
    progress: bool = False,
    workers: int = 1,
    log: RunLog | None = None,
    plan: ModelPlan | None = None,
) -> ModelReport:
    """Train and evaluate every configuration of ``config`` ``seeds`` times.

    Args:
        config: what to run.
        progress: a progress bar over the runs.
        workers: runs at once, in spawned processes (each with ``config.threads`` threads; they
            see the plugins installed through entry points). The numbers are the same for every
            value. A run whose process dies is reported by label and seed
            (``meta["jobs"]["lost"]``); the other runs go on.
        log: a :class:`~banditformer.bench.runlog.RunLog` of kind ``"model"`` for this
            configuration: each run is recorded in it as it finishes, and runs it has recorded
            are not run again (a resume ends with the same numbers as an uninterrupted run).
        plan: ``plan_models(config)``, when it was made already (the command line makes it before
            it creates the results folder); default: made here, before any run.

    Returns:
        the report; ``meta["status"]`` is ``"complete"``, or ``"partial"`` when a run failed or
        lost its process.

    Raises:
        RunInterrupted: on Ctrl-C, after the workers are stopped; its ``report`` holds what
            finished (``meta["status"] == "interrupted"``), and ``log`` says ``interrupted``.
    """
    if not isinstance(config, ModelBenchConfig):
        raise InputValidationError(f"expected a ModelBenchConfig, got {type(config).__name__}")
    check_int("workers", workers, low=1)
    check_log(log, "model")
    if plan is None:
        plan = plan_models(config)
    elif not isinstance(plan, ModelPlan):
        raise InputValidationError(f"expected a ModelPlan (plan_models(config)) or None, got {type(plan).__name__}")
    elif plan.config != config:
        raise InputValidationError("expected the plan of this configuration (plan_models(config)), got another's")
    # Seed by seed (every configuration of a seed before the next seed): a run cut short holds
    # whole seeds, which pair.
    jobs = [(config, label, ctrl, kw, config.seed + i) for i in range(config.seeds) for label, ctrl, kw in plan.runs]
    keys = [f"{label}, seed {seed}" for _, label, _, _, seed in jobs]
    if log is not None:  # validate, then apply
        log.check_config(config.record(like=log.config))
        log.begin(keys)
    bar = None
    if progress:
        todo = len(keys) - (0 if log is None else len(set(keys) & set(log.recorded())))
        bar = tqdm(total=todo, desc="bench model", unit="run", dynamic_ncols=True, disable=None)
    start = time.perf_counter()

    def unfinished(i: int, why: str) -> dict[str, Any]:
        _, label, controller, _, seed = jobs[i]
        return {"label": label, "controller": controller, "seed": seed, "error": why}

    try:
        outcome = run_bench_jobs(
            _one_run, jobs, keys, unfinished=unfinished, failed=lambda run: "error" in run, workers=workers, log=log,
            decode=check_run_record, on_done=None if bar is None else (lambda _: bar.update(1)),
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    meta = {
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "workers": workers,
        "seconds": time.perf_counter() - start,
        "status": outcome.status,
        "jobs": outcome.jobs(),
    }
    return outcome.finish(ModelReport(config, outcome.results, _summarise(plan.runs, outcome.results), meta), log)
