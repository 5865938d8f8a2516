"""An adapted encoder trained first as a full model, then fine-tuned with halting decisions
(issue 16, point 5), against its full size and the static baselines at matched compute.

Per seed (the seed draws the task's samples and split, and every initialisation):

1. A BERT-style encoder built offline from ``BertConfig`` is trained as a full model: plain
   classification through the library's ``Trainer`` with the ``static`` controller (every block,
   every head; objective ``last``), for ``--full-epochs``. That is the original model.
2. For each halting controller, a copy of that trained original is adapted (``bf.adapt``: an exit
   head at each exit point, a copy of the trained pooler and classifier) and fine-tuned with it for
   ``--finetune-epochs`` (objective ``joint``: every exit a sample passed learns), everything
   trainable. Its threshold or stop bias is then calibrated on the validation split to each of
   ``--budgets`` (``calibrate_budget``), and the test split scored there. The fine-tuned network
   is also scored at the full decision and at each fixed depth with all heads (``score_shapes``).
3. Controls: the original fine-tuned ``--finetune-epochs`` more at the full decision without exits
   (``static``, same schedule: does more training alone explain a change at full size?), and,
   for each budget, a smaller static BERT (the depth whose FLOP ratio is nearest the budget)
   trained from scratch as a full model for ``--full-epochs + --finetune-epochs``.

The task is ``pointer_chasing`` (follow ``h`` pointers, ``h`` in ``1 .. --max-hops`` the known
difficulty; each hop needs about one block). Its inputs are token ids that the adapted BERT takes
as ``input_ids`` as they are (no padding, so the attention mask is all ones). One change to the
model, not the data: the vocabulary gets one more id, unused by the task, as BERT's
``pad_token_id``, because BERT's word embedding keeps the padding id's row at zero and the task
uses id 0 (position 0) as a real token.

Each seed's results go to ``OUT/seed{N}.json``, written atomically when the seed finishes;
``--resume`` skips seeds whose file exists. The summary (mean and Student-t 95% interval over
seeds, differences paired by seed) is printed as markdown and written to ``OUT/summary.json``;
``--report`` prints it from the files alone.

    python benchmarks/adapted_finetune.py --seeds 3 --out results/issue16
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

import banditformer as bf
from banditformer.bench.stats import ci95_halfwidth, paired_difference
from banditformer.core.errors import InputValidationError
from banditformer.core.task import Split
from banditformer.training import TrainConfig, Trainer, calibrate_budget, score_shapes

HALTING = ("entropy_exit", "bandit_halting")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    p.add_argument("--out", default="results/issue16", help="results folder (default results/issue16)")
    p.add_argument("--resume", action="store_true", help="skip the seeds whose result file exists")
    p.add_argument("--report", action="store_true", help="only print the summary of the files in --out")
    p.add_argument("--workers", type=int, default=1, help="seeds run at once, one process each (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--samples", type=int, default=8000, help="pointer_chasing samples, split 70/15/15")
    p.add_argument("--max-hops", type=int, default=3)
    p.add_argument("--length", type=int, default=8, help="pointers per sample")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=128)
    p.add_argument("--full-epochs", type=int, default=15, help="epochs of the full model's training")
    p.add_argument("--finetune-epochs", type=int, default=5, help="epochs of fine-tuning with halting")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate of the training from scratch")
    p.add_argument("--finetune-lr", type=float, default=5e-4, help="learning rate of the fine-tuning")
    p.add_argument("--controllers", nargs="+", default=list(HALTING), choices=HALTING)
    p.add_argument("--budgets", nargs="+", type=float, default=[0.5, 0.75])
    p.add_argument("--lam", type=float, default=0.1, help="bandit_halting's FLOP price")
    p.add_argument(
        "--warmup", type=float, default=0.25, help="bandit_halting: share of fine-tuning steps at full depth"
    )
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------ the run
def make_bert(args: argparse.Namespace, vocab: int, classes: int, layers: int, seed: int) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab + 1, pad_token_id=vocab,  # an id the task never uses (see the module's note)
        hidden_size=args.hidden, num_hidden_layers=layers, num_attention_heads=args.heads,
        intermediate_size=args.intermediate, max_position_embeddings=max(16, args.length + 1), num_labels=classes,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return BertForSequenceClassification(config)


def by_difficulty(split: Split, values: torch.Tensor) -> dict[str, float]:
    """Mean of ``values`` per difficulty (hops) of ``split``."""
    d = split.difficulty.long()
    return {str(int(h)): float(values[d == h].float().mean()) for h in d.unique()}


def train_config(args: argparse.Namespace, epochs: int, lr: float, seed: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=lr, seed=seed, progress=False)


def train_flop_epochs(trainer: Trainer, full_flops: float, rows: int) -> float:
    """The trainer's forward FLOPs in epochs of the full (largest) model."""
    return trainer.train_flops / full_flops / rows


def full_accuracy(model: torch.nn.Module, split: Split) -> tuple[float, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        hit = torch.cat(
            [model(split.x[i : i + 512]).argmax(-1) == split.y[i : i + 512] for i in range(0, len(split), 512)]
        )
    return float(hit.double().mean()), hit


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    task = bf.make_task(
        "pointer_chasing", seed=seed, num_samples=args.samples, length=args.length, max_hops=args.max_hops
    )
    vocab, classes, rows = task.model["vocab_size"], task.model["num_classes"], len(task.train)
    L, H = args.layers, args.heads
    result: dict[str, Any] = {
        "seed": seed,
        "args": vars(args),
        "rows": [len(task.train), len(task.val), len(task.test)],
    }

    # 1. the original, trained as a full model
    original = make_bert(args, vocab, classes, L, seed)
    plain = bf.adapt(original, exits="none")  # no exit heads: the original's own forward pass
    trainer = Trainer(plain, bf.make_controller("static", num_layers=L, num_heads=H), task,
                      train_config(args, args.full_epochs, args.lr, seed))  # fmt: skip
    t0 = time.perf_counter()
    trainer.fit()
    full_flops = plain.cost_table().full
    test = trainer.evaluate(task.test)
    hit = full_accuracy(plain, task.test)[1]
    result["original"] = {
        "accuracy": test["accuracy"], "flop_ratio": 1.0, "train_epochs": args.full_epochs,
        "train_flop_epochs": train_flop_epochs(trainer, full_flops, rows), "seconds": time.perf_counter() - t0,
        "accuracy_by_hops": by_difficulty(task.test, hit),
    }  # fmt: skip
    trained = copy.deepcopy(original.state_dict())
    pretrain_epochs = result["original"]["train_flop_epochs"]

    def fresh_original() -> torch.nn.Module:
        model = make_bert(args, vocab, classes, L, seed)
        model.load_state_dict(trained)
        return model

    # 3a. control: the original trained finetune-epochs more at the full decision, no exits
    control = bf.adapt(fresh_original(), exits="none")
    trainer = Trainer(control, bf.make_controller("static", num_layers=L, num_heads=H), task,
                      train_config(args, args.finetune_epochs, args.finetune_lr, seed))  # fmt: skip
    trainer.fit()
    result["original_more"] = {
        "accuracy": trainer.evaluate(task.test)["accuracy"], "flop_ratio": 1.0,
        "train_epochs": args.full_epochs + args.finetune_epochs,
        "train_flop_epochs": pretrain_epochs + train_flop_epochs(trainer, full_flops, rows),
    }  # fmt: skip

    # 2. adapted, fine-tuned with halting, calibrated
    result["halting"] = {}
    for name in args.controllers:
        t0 = time.perf_counter()
        bert = fresh_original()
        model = bf.adapt(bert)  # exit heads at 1 .. L-1: copies of the trained pooler and classifier
        with torch.no_grad():
            equal = bool(torch.allclose(model(task.test.x[:256]), bert(task.test.x[:256]).logits, atol=1e-5))
        table = model.cost_table()
        steps = TrainConfig(epochs=args.finetune_epochs, batch_size=args.batch_size).total_steps(rows)
        if name == "bandit_halting":
            ctrl = bf.make_controller(name, num_layers=L, num_heads=H, full_flops=table.full, cost_table=table,
                                      lam=args.lam, warmup_steps=int(args.warmup * steps), seed=seed)  # fmt: skip
        else:
            ctrl = bf.make_controller(name, num_layers=L, num_heads=H)
        trainer = Trainer(model, ctrl, task, train_config(args, args.finetune_epochs, args.finetune_lr, seed))
        trainer.fit()
        own = trainer.evaluate(task.test)
        entry: dict[str, Any] = {
            "equal_to_original_before": equal, "objective": trainer.objective,
            "full_accuracy": full_accuracy(model, task.test)[0],
            "train_epochs": args.full_epochs + args.finetune_epochs,
            "train_flop_epochs": pretrain_epochs + train_flop_epochs(trainer, table.full, rows),
            "finetune_flop_ratio": trainer.train_flop_ratio,
            "default": {"accuracy": own["accuracy"], "flop_ratio": 1 - own["flop_saving"]},
            "depths": [
                {k: s[k] for k in ("depth", "accuracy", "flop_ratio")} for s in score_shapes(model, task.test)
                if s["heads"] == H or s["depth"] == 1
            ],
            "budgets": {},
        }  # fmt: skip
        for budget in args.budgets:
            try:
                chosen = calibrate_budget(model, ctrl, task.val, budget)
            except InputValidationError as error:
                entry["budgets"][str(budget)] = {"unreachable": str(error)}
                continue
            test = trainer.evaluate(task.test)
            entry["budgets"][str(budget)] = {
                "value": chosen["value"], "val_flop_ratio": chosen["flop_ratio"], "accuracy": test["accuracy"],
                "flop_ratio": 1 - test["flop_saving"],
                "mean_depth_by_hops": by_difficulty(task.test, test["depth"]),
            }  # fmt: skip
        entry["seconds"] = time.perf_counter() - t0
        result["halting"][name] = entry

    # 3b. static smaller BERTs trained from scratch at the budgets' depths
    result["static"] = {}
    ratios = {d: float(table.sample_flops(bf.Decision.uniform(1, L, H, d, H))[0]) / table.full for d in range(1, L + 1)}
    for depth in sorted({min(ratios, key=lambda d, b=b: abs(ratios[d] - b)) for b in args.budgets}):
        t0 = time.perf_counter()
        small = bf.adapt(make_bert(args, vocab, classes, depth, seed), exits="none")
        trainer = Trainer(small, bf.make_controller("static", num_layers=depth, num_heads=H), task,
                          train_config(args, args.full_epochs + args.finetune_epochs, args.lr, seed))  # fmt: skip
        trainer.fit()
        result["static"][str(depth)] = {
            "accuracy": trainer.evaluate(task.test)["accuracy"], "flop_ratio": small.cost_table().full / full_flops,
            "train_epochs": args.full_epochs + args.finetune_epochs,
            "train_flop_epochs": train_flop_epochs(trainer, full_flops, rows), "seconds": time.perf_counter() - t0,
        }  # fmt: skip
    result["seconds"] = time.perf_counter() - begin
    return result


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def run_and_write(args: argparse.Namespace, seed: int) -> float:
    result = run_seed(args, seed)
    write_atomic(Path(args.out) / f"seed{seed}.json", result)
    return result["seconds"]


# ---------------------------------------------------------------------------------- the report
def interval(values: dict[int, float], scale: float = 100.0) -> str:
    xs = list(values.values())
    mean = sum(xs) / len(xs) * scale
    half = float(ci95_halfwidth(xs)) * scale if len(xs) > 1 else math.nan
    return f"{mean:.1f} ± {half:.1f}" if not math.isnan(half) else f"{mean:.1f}"


def paired(a: dict[int, float], b: dict[int, float] | None) -> str:
    if not b:
        return ""
    got = paired_difference(a, b)
    if got is None:
        return ""
    mean, half, _ = got
    return f"{100 * mean:+.1f} ± {100 * half:.1f}" if not math.isnan(half) else f"{100 * mean:+.1f}"


def mean(values: dict[int, float]) -> float:
    return sum(values.values()) / len(values)


def summarise(results: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The markdown table and its data: one row per configuration, seeds paired."""
    rows: list[dict[str, Any]] = []

    def per_seed(get: Any) -> dict[int, float]:
        out = {}
        for r in results:
            try:
                value = get(r)
            except (KeyError, TypeError):
                continue
            if value is not None:
                out[r["seed"]] = value
        return out

    full = per_seed(lambda r: r["original"]["accuracy"])
    depths = sorted({int(d) for r in results for d in r["static"]})
    static_ratio = {d: mean(per_seed(lambda r, d=d: r["static"][str(d)]["flop_ratio"])) for d in depths}

    def matched(ratio: float) -> int | None:
        """The static depth whose FLOP ratio is nearest ``ratio``."""
        return min(depths, key=lambda d: abs(static_ratio[d] - ratio)) if depths else None

    def add(label: str, acc: dict[int, float], ratio: dict[int, float], train: dict[int, float], epochs: int,
            static: int | None = None) -> None:  # fmt: skip
        if not acc:
            return
        ref = per_seed(lambda r, d=static: r["static"][str(d)]["accuracy"]) if static is not None else None
        rows.append({
            "configuration": label, "seeds": len(acc), "accuracy": interval(acc), "flop_ratio": mean(ratio),
            "vs_full": paired(acc, full) if acc is not full else "",
            "vs_static": f"{paired(acc, ref)} (d={static})" if ref and acc is not ref else "",
            "train_flop_epochs": mean(train), "train_epochs": epochs,
        })  # fmt: skip

    args = results[0]["args"]
    e_full, e_total = args["full_epochs"], args["full_epochs"] + args["finetune_epochs"]
    train = per_seed(lambda r: r["original"]["train_flop_epochs"])
    add(f"original, full ({args['layers']} blocks)", full, {0: 1.0}, train, e_full)
    add("original + fine-tuning without exits", per_seed(lambda r: r["original_more"]["accuracy"]), {0: 1.0},
        per_seed(lambda r: r["original_more"]["train_flop_epochs"]), e_total)  # fmt: skip
    for d in depths:
        add(f"static BERT, {d} blocks, from scratch", per_seed(lambda r, d=d: r["static"][str(d)]["accuracy"]),
            per_seed(lambda r, d=d: r["static"][str(d)]["flop_ratio"]),
            per_seed(lambda r, d=d: r["static"][str(d)]["train_flop_epochs"]), e_total)  # fmt: skip
    versus: list[str] = []
    more = per_seed(lambda r: r["original_more"]["accuracy"])
    for name in args["controllers"]:
        train = per_seed(lambda r, n=name: r["halting"][n]["train_flop_epochs"])
        add(f"`{name}` network, full decision", per_seed(lambda r, n=name: r["halting"][n]["full_accuracy"]),
            {0: 1.0}, train, e_total)  # fmt: skip
        for d in range(1, args["layers"]):
            acc = per_seed(lambda r, n=name, d=d: r["halting"][n]["depths"][d - 1]["accuracy"])
            ratio = per_seed(lambda r, n=name, d=d: r["halting"][n]["depths"][d - 1]["flop_ratio"])
            add(f"`{name}` network, fixed depth {d}", acc, ratio, train, e_total, d if d in depths else None)
        for budget in args["budgets"]:
            acc = per_seed(lambda r, n=name, b=budget: r["halting"][n]["budgets"][str(b)].get("accuracy"))
            ratio = per_seed(lambda r, n=name, b=budget: r["halting"][n]["budgets"][str(b)].get("flop_ratio"))
            if acc:
                add(f"`{name}`@{budget:g} (calibrated)", acc, ratio, train, e_total, matched(mean(ratio)))
                ratios = [mean(per_seed(lambda r, n=name, d=d: r["halting"][n]["depths"][d - 1]["flop_ratio"]))
                          for d in range(1, args["layers"] + 1)]  # fmt: skip
                d = min(range(1, args["layers"] + 1), key=lambda d: abs(ratios[d - 1] - mean(ratio)))
                fixed = per_seed(lambda r, n=name, d=d: r["halting"][n]["depths"][d - 1]["accuracy"])
                versus.append(f"- `{name}`@{budget:g} against its own network at fixed depth {d} (FLOP ratio "
                              f"{ratios[d - 1]:.3f}), paired: {paired(acc, fixed)} points; against the original "
                              f"fine-tuned without exits: {paired(acc, more)} points")  # fmt: skip
            missed = len(results) - len(acc)
            if missed:
                rows.append({"configuration": f"`{name}`@{budget:g}", "seeds": missed, "accuracy": "unreachable",
                             "flop_ratio": math.nan, "vs_full": "", "vs_static": "", "train_flop_epochs": math.nan,
                             "train_epochs": e_total})  # fmt: skip
    lines = [
        "| configuration | seeds | test accuracy | inference FLOP ratio | vs original full (paired) "
        "| vs static at matched depth (paired) | training FLOPs (full-model epochs) | epochs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['configuration']} | {row['seeds']} | {row['accuracy']}{'' if 'un' in row['accuracy'] else '%'} | "
            f"{row['flop_ratio']:.3f} | "
            f"{row['vs_full']} | {row['vs_static']} | {row['train_flop_epochs']:.1f} | {row['train_epochs']} |"
        )
    extra = list(versus)
    for name in args["controllers"]:
        for budget in args["budgets"]:
            by = [r["halting"][name]["budgets"][str(budget)].get("mean_depth_by_hops") for r in results]
            by = [b for b in by if b]
            if by:
                hops = sorted(by[0])
                depth = ", ".join(f"{h} hop(s) {sum(b[h] for b in by) / len(by):.2f}" for h in hops)
                val = mean(
                    per_seed(lambda r, n=name, b=budget: r["halting"][n]["budgets"][str(b)].get("val_flop_ratio"))
                )
                extra.append(f"- `{name}`@{budget:g}: validation FLOP ratio {val:.3f}; mean depth by hops: {depth}")
    equal = all(r["halting"][n]["equal_to_original_before"] for r in results for n in r["halting"])
    extra.append(f"- adapted model equal to the trained original at the full decision before fine-tuning: {equal}")
    seconds = [r["seconds"] for r in results]
    extra.append(f"- seconds per seed: {', '.join(f'{s:.0f}' for s in seconds)}")
    return "\n".join(lines) + "\n\n" + "\n".join(extra), {"rows": rows, "notes": extra}


def report(out: Path) -> int:
    results = [json.loads(p.read_text()) for p in sorted(out.glob("seed*.json"))]
    if not results:
        print(f"no results in {out}", file=sys.stderr)
        return 1
    text, data = summarise(sorted(results, key=lambda r: r["seed"]))
    write_atomic(out / "summary.json", data)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    if args.report:
        return report(out)
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("this benchmark needs transformers: pip install 'banditformer[hf]'", file=sys.stderr)
        return 2
    seeds = [s for s in range(args.seeds) if not (args.resume and (out / f"seed{s}.json").exists())]
    if args.workers > 1 and len(seeds) > 1:
        import multiprocessing

        with ProcessPoolExecutor(min(args.workers, len(seeds)), mp_context=multiprocessing.get_context("spawn")) as ex:
            for seed, seconds in zip(seeds, ex.map(run_and_write, [args] * len(seeds), seeds), strict=True):
                print(f"seed {seed}: {seconds:.0f} s", file=sys.stderr)
    else:
        for seed in seeds:
            print(f"seed {seed}: {run_and_write(args, seed):.0f} s", file=sys.stderr)
    return report(out)


if __name__ == "__main__":
    sys.exit(main())
