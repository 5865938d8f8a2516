"""Accuracy against FLOP saving: DHT at several lambdas beside the baselines, on one task.

    python benchmarks/dht_pareto.py --task digits --epochs 15 --lams 0.05 0.2 0.5 --budgets 0.5 0.25

Prints one row per run (test accuracy, inference and training FLOP saving, time) and writes all
results as JSON with ``--json``. Baselines: the full model, ``static_small`` and ``random`` at each
FLOP budget, and ``layerdrop`` pruned to the depth of each budget's static model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import torch

from banditformer.controllers import budget_shape
from banditformer.harness.experiment import run_experiment
from banditformer.harness.trainer import TrainConfig
from banditformer.model import DynamicTransformer
from banditformer.plugins import make_task


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="digits")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lams", type=float, nargs="+", default=[0.05, 0.2, 0.5])
    p.add_argument("--budgets", type=float, nargs="+", default=[0.5, 0.25])
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    model = {"d_model": args.width, "num_layers": args.layers, "num_heads": args.heads, "pooling": "cls"}
    train = TrainConfig(epochs=args.epochs, batch_size=32, lr=args.lr, seed=args.seed, progress=False)
    table = DynamicTransformer(make_task(args.task, seed=args.seed).config(**model)).cost_table()
    runs: list[tuple[str, str, dict]] = [("full", "static", {})]
    for b in args.budgets:
        depth, heads = budget_shape(table, b)
        runs.append((f"static_small@{b:g}", "static_small", {"depth": depth, "heads": heads}))
        from banditformer.controllers import RandomController

        rc = RandomController.for_budget(table, b, seed=args.seed)
        runs.append((f"random@{b:g}", "random", {"max_depth": rc.max_depth, "max_heads": rc.max_heads}))
        runs.append((f"layerdrop@{b:g}", "layerdrop", {"drop": 0.2, "inference_depth": depth}))
    runs += [(f"dht lam={lam:g}", "dht", {"lam": lam}) for lam in args.lams]
    head = f"{'run':<22}{'accuracy':>10}{'saving (inference)':>20}{'(training)':>12}{'time':>8}"
    print(
        f"task {args.task}, {args.epochs} epochs, seed {args.seed}, torch {torch.__version__}\n{head}\n"
        + "-" * len(head)
    )
    results = []
    for label, controller, kwargs in runs:
        r = run_experiment(args.task, controller, seed=args.seed, model=model, controller_kwargs=kwargs, train=train)
        r["label"] = label
        results.append(r)
        print(
            f"{label:<22}{r['accuracy']:>10.1%}{r['flop_saving']:>20.1%}{r['train_flop_saving']:>12.1%}"
            f"{r['wall_time_s']:>7.1f}s",
            flush=True,
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
