"""Accuracy against FLOP saving: DHT beside the baselines, on one task.

    python benchmarks/dht_pareto.py --task digits --epochs 100 --layers 8 --budgets 0.5 0.25 \\
        --lams 0.05 0.2 --workers 2 --json results/digits.json

A thin layer over ``banditformer bench model`` (:func:`banditformer.bench.models.run_models`), one
seed: the full model (``static``); ``static_small``, ``random`` and ``layerdrop`` at each FLOP
budget (none with a bare ``--budgets``); DHT at each ``--lams`` value, and DHT with ``lam`` adapted
to each ``--dht-budgets`` value (starting from ``lam = 0.1``). Every run trains a fresh model with
the same schedule and seed, one thread each, ``--workers`` at once. Prints one row per run (test
accuracy, inference and training FLOP saving, wall time, the Spearman correlation of known
difficulty and FLOPs where the task has one), the baselines' accuracy-FLOPs frontier, and writes
every run's result as JSON with ``--json``. ``banditformer bench model`` runs the same sweep over
several seeds into a results folder that resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import torch

from banditformer.bench.models import BUDGETED, ModelBenchConfig, plan_models, run_models
from banditformer.bench.stats import pareto_front


def frontier(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The baseline runs (the full model and the budgeted baselines) no other baseline run beats in
    both accuracy and inference FLOP saving."""
    base = [r for r in runs if "error" not in r and r["controller"] in ("static", *BUDGETED)]
    on = pareto_front([(r["accuracy"], r["flop_saving"]) for r in base])
    return [r for r, keep in zip(base, on, strict=True) if keep]


def _row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['label']:<24}FAILED: {r['error']}"
    line = (
        f"{r['label']:<24}{r['accuracy']:>10.1%}{r['flop_saving']:>20.1%}{r['train_flop_saving']:>12.1%}"
        f"{r['wall_time_s']:>7.0f}s"
    )
    rho = r.get("spearman_difficulty_flops")
    return line + (f"   spearman {rho:+.2f}" if rho is not None else "")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="digits")
    p.add_argument("--task-kwargs", default="{}", help="JSON options of the task")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lams", type=float, nargs="*", default=[0.05, 0.2, 0.5])
    p.add_argument("--budgets", type=float, nargs="*", default=[0.5, 0.25])
    p.add_argument("--dht-budgets", type=float, nargs="*", default=[], help="DHT runs with lam adapted to these")
    p.add_argument("--dht-kwargs", default="{}", help="JSON options for every DHT run (mode, head_reward, ...)")
    p.add_argument("--layerdrop", type=float, default=0.2, help="LayerDrop's training drop rate")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--pooling", default="cls")
    p.add_argument("--exit-heads", action="store_true", help="a norm and classifier per exit depth")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    config = ModelBenchConfig(
        task=args.task, task_kwargs=json.loads(args.task_kwargs), controllers=["static", *BUDGETED, "dht"],
        lams=args.lams, budgets=args.budgets, dht_budgets=args.dht_budgets, seed=args.seed, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, d_model=args.width, num_layers=args.layers, num_heads=args.heads,
        pooling=args.pooling, exit_heads=args.exit_heads, layerdrop=args.layerdrop,
        controller_kwargs={"dht": {"lam": 0.1, **json.loads(args.dht_kwargs)}},  # the budget runs' starting lam
    )  # fmt: skip
    plan = plan_models(config)  # every run's options checked before the first one trains
    head = f"{'run':<24}{'accuracy':>10}{'saving (inference)':>20}{'(training)':>12}{'time':>8}"
    print(
        f"task {args.task}, model {config.model}, {args.epochs} epochs, lr {args.lr:g}, seed {args.seed}, "
        f"torch {torch.__version__}\n{head}\n" + "-" * len(head),
        flush=True,
    )
    report = run_models(config, workers=args.workers, plan=plan)
    print("\n".join(_row(r) for r in report.runs))
    front = frontier(report.runs)
    if front:
        print("\nbaseline frontier: " + ", ".join(f"{r['label']} {r['accuracy']:.1%}" for r in front))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.runs, f, indent=1)
    return 1 if any("error" in r for r in report.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
