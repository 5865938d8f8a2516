"""Data-parallel DHT training on the CPU with torch.distributed (gloo), or in one process.

    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py --out results/ddp
    python examples/ddp_train.py --out results/single          # the same run in one process

Every rank trains on every ``world``-th row of each global batch (DistributedDataParallel averages
the gradients) and decides for its own rows; the bandit statistics are merged across ranks every
``--sync-every`` steps. Each rank writes ``rank<r>.pt`` (model and controller state) and rank 0
``metrics.json`` (test accuracy and FLOP saving, reduced over ranks) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from banditformer.bench.experiment import controller_parameters
from banditformer.core.random import derive_seed
from banditformer.model import DynamicTransformer, TransformerConfig
from banditformer.plugins import make_controller, make_task
from banditformer.training import TrainConfig, Trainer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--task", default="digits")
    p.add_argument("--controller", default="dht")
    p.add_argument("--controller-kwargs", default="{}", help="JSON options of the controller")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch, split over the ranks")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--sync-every", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank() if distributed else 0
    try:
        data = make_task(args.task, seed=args.seed)
        torch.manual_seed(derive_seed(args.seed, "init"))
        model = DynamicTransformer(
            TransformerConfig.for_task(
                data, d_model=args.width, num_layers=args.layers, num_heads=args.heads, pooling="cls"
            )
        )
        kwargs = {"num_layers": args.layers, "num_heads": args.heads, **json.loads(args.controller_kwargs)}
        fills = {"context_dim": args.width, "full_flops": model.cost_table().full, "seed": args.seed}
        kwargs.update({k: v for k, v in fills.items() if k in controller_parameters(args.controller)})
        controller = make_controller(args.controller, **kwargs)
        config = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, progress=False, sync_every=args.sync_every
        )
        trainer = Trainer(model, controller, data, config)
        start = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - start
        trainer.sync.sync()  # merge what the last steps added before comparing ranks
        test = trainer.evaluate(data.test)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "controller": controller.state_dict()}, out / f"rank{rank}.pt")
        if rank == 0:
            metrics = {
                "world": trainer.world,
                "accuracy": test["accuracy"],
                "flop_saving": test["flop_saving"],
                "train_flop_saving": 1.0 - trainer.train_flop_ratio,
                "syncs": trainer.sync.syncs,
                "train_seconds": round(seconds, 2),
            }
            (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
            print(json.dumps(metrics))
    finally:
        if distributed:
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
