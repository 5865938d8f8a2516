"""Accuracy against FLOP saving: DHT beside the baselines, on one task.

    python benchmarks/dht_pareto.py --task digits --epochs 100 --layers 8 --budgets 0.5 0.25 \\
        --lams 0.05 0.2 --workers 2 --json results/digits.json

Runs the full model; ``static_small``, ``random`` and ``layerdrop`` at each FLOP budget (``random``
matched to the budget's mean FLOPs, ``layerdrop`` pruned to the depth of the budget's static
model); DHT at each ``--lams`` value, and DHT with ``lam`` adapted to each budget (``flop_budget``).
Every run trains a fresh model with the same schedule and seed. Prints one row per run (test
accuracy, inference and training FLOP saving, wall time) and the accuracy-FLOPs frontier of the
baselines, and writes every result as JSON with ``--json``. ``--workers`` runs that many trainings
at once, one thread each.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

import torch

from banditformer.bench.experiment import run_experiment
from banditformer.bench.models import budget_kwargs, pareto_front
from banditformer.model import DynamicTransformer, TransformerConfig
from banditformer.plugins import make_task
from banditformer.training import TrainConfig

BASELINES = ("full", "static_small", "random", "layerdrop")


def plan(args: argparse.Namespace, table: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """The runs: (label, controller name, controller kwargs)."""
    extra = json.loads(args.dht_kwargs)
    runs: list[tuple[str, str, dict[str, Any]]] = [("full", "static", {})]
    for b in args.budgets:
        runs += [
            (f"{name}@{b:g}", name, budget_kwargs(name, table, b, seed=args.seed, drop=args.layerdrop))
            for name in ("static_small", "random", "layerdrop")
        ]
    runs += [(f"dht lam={lam:g}", "dht", {"lam": lam, **extra}) for lam in args.lams]
    runs += [(f"dht budget={b:g}", "dht", {"flop_budget": b, "lam": 0.1, **extra}) for b in args.dht_budgets]
    return runs


def _run(task: str, controller: str, seed: int, model: dict, kwargs: dict, train: TrainConfig, task_kwargs: dict):
    torch.set_num_threads(1)
    return run_experiment(
        task, controller, seed=seed, model=model, controller_kwargs=kwargs, train=train, task_kwargs=task_kwargs
    )


def frontier(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The baseline runs no other baseline run beats in both accuracy and inference FLOP saving."""
    base = [r for r in results if r["label"].split("@")[0] in BASELINES]
    on = pareto_front([(r["accuracy"], r["flop_saving"]) for r in base])
    return [r for r, keep in zip(base, on, strict=True) if keep]


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
    p.add_argument("--greedy-tail", type=float, default=0.0, help="DHT runs train greedily for this last share")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--pooling", default="cls")
    p.add_argument("--exit-heads", action="store_true", help="a norm and classifier per exit depth")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="*", default=None, help="run only the labels starting with these")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    model = {"d_model": args.width, "num_layers": args.layers, "num_heads": args.heads, "pooling": args.pooling}
    if args.exit_heads:
        model["exit_heads"] = True
    task_kwargs = json.loads(args.task_kwargs)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, progress=False)
    dht_train = dataclasses.replace(train, greedy_tail=args.greedy_tail)

    def config(controller: str) -> TrainConfig:
        return dht_train if controller.startswith("dht") else train

    task = make_task(args.task, seed=args.seed, **task_kwargs)
    table = DynamicTransformer(TransformerConfig.for_task(task, **model)).cost_table()
    runs = plan(args, table)
    if args.only:
        runs = [r for r in runs if r[0].startswith(tuple(args.only))]
    head = f"{'run':<24}{'accuracy':>10}{'saving (inference)':>20}{'(training)':>12}{'time':>8}"
    print(
        f"task {args.task}, model {model}, {args.epochs} epochs, lr {args.lr:g}, seed {args.seed}, "
        f"torch {torch.__version__}\n{head}\n" + "-" * len(head),
        flush=True,
    )

    def row(r: dict[str, Any]) -> str:
        line = (
            f"{r['label']:<24}{r['accuracy']:>10.1%}{r['flop_saving']:>20.1%}{r['train_flop_saving']:>12.1%}"
            f"{r['wall_time_s']:>7.0f}s"
        )
        rho = r.get("spearman_difficulty_flops")
        return line + (f"   spearman {rho:+.2f}" if rho is not None else "")

    results: list[dict[str, Any]] = []

    def done(label: str, r: dict[str, Any]) -> None:
        r["label"] = label
        results.append(r)
        print(row(r), flush=True)

    if args.workers == 1:
        for label, ctrl, kw in runs:
            done(label, run_experiment(args.task, ctrl, seed=args.seed, model=model, controller_kwargs=kw,
                                       train=config(ctrl), task_kwargs=task_kwargs))  # fmt: skip
    else:
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            futures = {
                pool.submit(_run, args.task, ctrl, args.seed, model, kw, config(ctrl), task_kwargs): label
                for label, ctrl, kw in runs
            }
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
    order = [label for label, _, _ in runs]
    results.sort(key=lambda r: order.index(r["label"]))
    front = frontier(results)
    if front:
        print("\nbaseline frontier: " + ", ".join(f"{r['label']} {r['accuracy']:.1%}" for r in front))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
