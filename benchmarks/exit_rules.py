"""How much better could a halting rule do on a trained multi-exit network? (issue 14, point 7:
the ablation that says why a bandit over exit features ties the confidence-threshold peers)

Per network seed, a multi-exit network (``--layers`` blocks, an exit classifier after each) is
trained once with ``--controller`` (``entropy_exit`` by default: the joint multi-exit loss at full
depth, as the bandit controllers train with ``reveal=1``) and frozen; every exit's logits and the
stem contexts are recorded on the validation and test splits. Then, at each FLOP budget of
``--budgets``, rules that stop a sample at the first exit whose score clears a threshold are
calibrated on the validation split (the threshold with the best validation accuracy whose
validation FLOP ratio is within the budget) and scored on the test split:

- ``max_prob``, ``entropy``, ``margin``: the peers' confidence scores (BranchyNet, DeeBERT);
- ``probe``: per exit, a logistic regression of "this exit is right" on the exit's max
  probability, margin, entropy and its agreement with the previous exit, fitted with the labels
  of the first half of the validation split (full information: more than a bandit is told) and
  calibrated on the second half;
- ``probe+context``: the same with the stem context (the pooled stem output DHT decides from);
- ``bound``: an upper bound on the test accuracy of **any** rule at the budget on this network,
  knowing every test label: the Lagrangian dual ``min_lam lam * B + mean_i max_d (correct_id -
  lam * c_d)`` (weak duality: at least the best per-sample assignment of exits with mean FLOP
  ratio at most ``B``).

Differences against ``entropy`` are paired by network seed (Student-t 95%). The test exit
accuracies by difficulty are printed for tasks that know it. Each network's record goes to
``OUT/net{seed}.pt`` as it finishes (loaded with ``weights_only=True`` on ``--resume``); the
summary is printed as markdown and written atomically to ``OUT/summary.json``.

    python benchmarks/exit_rules.py --out results/issue14/exit_rules
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

import banditformer as bf
from banditformer.bench.experiment import controller_kwargs_for, prepare_experiment
from banditformer.bench.stats import ci95_halfwidth, paired_difference
from banditformer.controllers.threshold_bandit import ThresholdBandit
from banditformer.core.exits import ExitPoint, next_patience
from banditformer.core.files import write_atomic
from banditformer.training import TrainConfig, Trainer, record_exits, save_atomic

RULES = ("max_prob", "entropy", "margin", "probe", "probe+context", "bound")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="results/issue14/exit_rules", help="results folder")
    p.add_argument("--resume", action="store_true", help="reuse the trained networks found in --out")
    p.add_argument("--task", default="listops")
    p.add_argument(
        "--task-kwargs",
        default='{"ops": ["MIN", "MAX"], "max_args": 2, "max_depth": 3, "seq_len": 22, "balanced": true, '
        '"num_samples": 60000}',
        help="JSON options of the task",
    )
    p.add_argument("--controller", default="entropy_exit", help="the controller the network trains with")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--pooling", default="cls", choices=["cls", "mean"])
    p.add_argument("--epochs", type=int, default=15, help="epochs of the network's training")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seeds", type=int, default=3, help="networks trained, seeds 0 .. N-1")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.5, 0.3, 0.26], help="inference FLOP ratios")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    try:
        args.task_kwargs = json.loads(args.task_kwargs)
    except json.JSONDecodeError as exc:
        p.error(f"expected --task-kwargs as a JSON object, got {args.task_kwargs!r} ({exc})")
    for name in ("layers", "heads", "d_model", "epochs", "batch_size", "seeds", "threads"):
        if getattr(args, name) < 1:
            p.error(f"expected --{name.replace('_', '-')} >= 1, got {getattr(args, name)}")
    if any(not 0.0 < b <= 1.0 for b in args.budgets):
        p.error(f"expected --budgets in (0, 1], got {args.budgets}")
    if args.controller not in bf.list_controllers():
        p.error(f"expected --controller among {bf.list_controllers()}, got {args.controller!r}")
    return args


def train_network(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Train (or load) network ``seed``; its recorded exits on the validation and test splits."""
    path = Path(args.out) / f"net{seed}.pt"
    if args.resume and path.exists():
        return torch.load(path, weights_only=True)
    model = {
        "d_model": args.d_model,
        "num_layers": args.layers,
        "num_heads": args.heads,
        "exit_heads": True,
        "pooling": args.pooling,
    }
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed, progress=False)
    cache: dict[str, Any] = {}
    data, shape, table = prepare_experiment(args.task, seed, args.task_kwargs, model, config, cache)
    net = cache["net"]
    ctrl = bf.make_controller(args.controller, **controller_kwargs_for(args.controller, shape, table.full, seed))
    start = time.perf_counter()
    Trainer(net, ctrl, data, config).fit()
    seconds = time.perf_counter() - start
    record: dict[str, Any] = {"train_seconds": torch.tensor(seconds)}
    for name, split in (("val", data.val), ("test", data.test)):
        record[f"{name}_logits"], record[f"{name}_context"] = record_exits(net, split.x, batch_size=512)
        record[f"{name}_y"] = split.y
        if split.difficulty is not None:
            record[f"{name}_difficulty"] = split.difficulty
    record["exit_costs"] = torch.tensor(ThresholdBandit.costs_from_table(table), dtype=torch.float64)
    save_atomic(record, path)
    return record


def confidence(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """``(N, L)`` scores per exit, higher meaning surer, as the exit controllers read them
    (:class:`~banditformer.core.exits.ExitPoint`): max probability, minus the normalised entropy,
    the margin, and agreement with the previous exit's class (PABEE's patience above 1). The last
    column is 0: the last exit always stops, and no rule reads it."""
    n, layers, _ = logits.shape
    out = {k: torch.zeros(n, layers, dtype=torch.float64) for k in ("max_prob", "entropy", "margin", "agree")}
    rows, context = torch.arange(n), torch.zeros(n, 0)
    last = streak = None
    for d in range(layers - 1):
        pred = logits[:, d].argmax(-1)
        streak = next_patience(pred, last, streak)
        point = ExitPoint(d + 1, layers, rows, logits[:, d], context, streak)
        out["max_prob"][:, d], out["margin"][:, d] = point.max_prob.double(), point.margin.double()
        out["entropy"][:, d] = -point.entropy.double()
        out["agree"][:, d] = (streak > 1).double()
        last = pred
    return out


def stop_at(score: torch.Tensor, threshold: float) -> torch.Tensor:
    """``(N,)`` 0-based exit: the first exit before the last whose score is at least ``threshold``."""
    stop = score[:, :-1] >= threshold
    last = torch.full((score.shape[0],), score.shape[1] - 1, dtype=torch.long)
    return torch.where(stop.any(1), stop.to(torch.int8).argmax(1), last)


def calibrate(score: torch.Tensor, correct: torch.Tensor, costs: torch.Tensor, budget: float) -> float:
    """The threshold with the best accuracy among those whose mean FLOP ratio is within
    ``budget`` on ``(score, correct)`` (``inf``, nobody stops early, when the budget allows the
    full model; ``-inf``, everyone stops at the first exit, when nothing else fits)."""
    grid = torch.quantile(score[:, :-1].flatten().float(), torch.linspace(0, 1, 1001)).double().unique()
    best, best_acc = -math.inf, -1.0
    for t in [math.inf, *grid.tolist()]:
        exits = stop_at(score, t)
        if float(costs[exits].mean()) <= budget + 1e-12:
            acc = float(correct.gather(1, exits[:, None]).double().mean())
            if acc > best_acc:
                best, best_acc = t, acc
    return best


def dual_bound(correct: torch.Tensor, costs: torch.Tensor, budget: float) -> float:
    """``min_lam lam * B + mean_i max_d (correct_id - lam * c_d)`` over ``lam >= 0``: at least
    the accuracy of any assignment of exits whose mean FLOP ratio is at most ``B``. The function
    is convex and piecewise linear in ``lam``; its minimum is at a kink, ``lam`` = 0 or a ratio
    ``(correct_d - correct_d') / (c_d - c_d')`` in ``{k / (c_d - c_d')}``, k in -1, 0, 1."""
    c = costs.double()
    gaps = (c[None, :] - c[:, None]).flatten()
    kinks = torch.cat([torch.zeros(1, dtype=torch.float64), (1.0 / gaps[gaps > 0])]).unique()
    val = correct.double()
    best = math.inf
    for lam in kinks.tolist():
        best = min(best, lam * budget + float((val - lam * c[None, :]).amax(1).mean()))
    return best


def _fit_logistic(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(F + 1,)`` weights and bias of an L2-regularised (1e-3) logistic regression of ``y``
    ``(N,)`` on ``z`` ``(N, F)``, by L-BFGS (deterministic: no random draw)."""
    w = torch.zeros(z.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w[:-1] + w[-1], y)
        loss = loss + 1e-3 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def _probe_features(conf: dict[str, torch.Tensor], d: int, context: torch.Tensor | None) -> torch.Tensor:
    cols = [conf["max_prob"][:, d], conf["entropy"][:, d], conf["margin"][:, d], conf["agree"][:, d]]
    x = torch.stack(cols, 1)
    return x if context is None else torch.cat([x, context.double()], 1)


def probe_scores(
    fit: dict[str, torch.Tensor], apply: list[dict[str, torch.Tensor]], use_context: bool
) -> list[torch.Tensor]:
    """Per exit but the last, a logistic regression of "exit ``d`` is right" on ``fit``'s
    features (``logits``, ``context``, ``correct``); the ``(N, L)`` predicted probabilities on
    each split of ``apply`` (the last exit's column is 1: it always stops)."""
    out = [torch.ones(a["correct"].shape, dtype=torch.float64) for a in apply]
    conf_fit = confidence(fit["logits"])
    conf_apply = [confidence(a["logits"]) for a in apply]
    for d in range(fit["correct"].shape[1] - 1):
        x = _probe_features(conf_fit, d, fit["context"] if use_context else None)
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        z = (x - mean) / std
        w = _fit_logistic(z, fit["correct"][:, d].double())
        with torch.no_grad():
            for i, (a, c) in enumerate(zip(apply, conf_apply, strict=True)):
                za = (_probe_features(c, d, a["context"] if use_context else None) - mean) / std
                out[i][:, d] = torch.sigmoid(za @ w[:-1] + w[-1])
    return out


def score_network(net: dict[str, Any], budgets: list[float]) -> dict[str, Any]:
    """Every rule's test accuracy and FLOP ratio at each budget on one recorded network."""
    costs = net["exit_costs"].double()
    splits = {}
    for name in ("val", "test"):
        logits = net[f"{name}_logits"]
        splits[name] = {
            "logits": logits, "context": net[f"{name}_context"],
            "correct": logits.argmax(-1) == net[f"{name}_y"][:, None],
        }  # fmt: skip
    val, test = splits["val"], splits["test"]
    half = val["correct"].shape[0] // 2
    fit = {k: v[:half] for k, v in val.items()}
    held = {k: v[half:] for k, v in val.items()}
    scores: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # rule -> (calibration scores, test scores)
    for rule in ("max_prob", "entropy", "margin"):
        scores[rule] = (confidence(val["logits"])[rule], confidence(test["logits"])[rule])
    for rule, use in (("probe", False), ("probe+context", True)):
        held_s, test_s = probe_scores(fit, [held, test], use)
        scores[rule] = (held_s, test_s)
    out: dict[str, Any] = {"exit_accuracy": test["correct"].double().mean(0).tolist(), "budgets": {}}
    for budget in budgets:
        row = {}
        for rule, (cal, tst) in scores.items():
            cal_correct = held["correct"] if rule.startswith("probe") else val["correct"]
            t = calibrate(cal, cal_correct, costs, budget)
            exits = stop_at(tst, t)
            row[rule] = {
                "accuracy": float(test["correct"].gather(1, exits[:, None]).double().mean()),
                "flop_ratio": float(costs[exits].mean()),
            }
        row["bound"] = {"accuracy": dual_bound(test["correct"], costs, budget), "flop_ratio": budget}
        out["budgets"][str(budget)] = row
    if "test_difficulty" in net:
        diff = net["test_difficulty"]
        out["by_difficulty"] = {
            str(int(k)): {"share": float((diff == k).double().mean()),
                          "exit_accuracy": test["correct"][diff == k].double().mean(0).tolist()}
            for k in diff.unique()
        }  # fmt: skip
    return out


def summarise(per_net: list[dict[str, Any]], budgets: list[float]) -> dict[str, Any]:
    """Means and intervals over the networks; each rule paired against ``entropy``."""
    rows = []
    for budget in budgets:
        key = str(budget)
        base = {i: n["budgets"][key]["entropy"]["accuracy"] for i, n in enumerate(per_net)}
        for rule in RULES:
            acc = [n["budgets"][key][rule]["accuracy"] for n in per_net]
            ratio = [n["budgets"][key][rule]["flop_ratio"] for n in per_net]
            row = {"budget": budget, "rule": rule, "accuracy": sum(acc) / len(acc),
                   "accuracy_ci95": float(ci95_halfwidth(acc)) if len(acc) > 1 else math.nan,
                   "flop_ratio": sum(ratio) / len(ratio)}  # fmt: skip
            if rule != "entropy":
                diff = paired_difference(dict(enumerate(acc)), base)
                row["vs_entropy"], row["vs_entropy_ci95"] = diff[0], diff[1]
            rows.append(row)
    exits = [n["exit_accuracy"] for n in per_net]
    summary: dict[str, Any] = {
        "rows": rows,
        "exit_accuracy": [sum(col) / len(col) for col in zip(*exits, strict=True)],
    }
    if all("by_difficulty" in n for n in per_net):
        keys = sorted(per_net[0]["by_difficulty"], key=int)
        summary["by_difficulty"] = {
            k: [sum(col) / len(col) for col in zip(*(n["by_difficulty"][k]["exit_accuracy"] for n in per_net),
                                                  strict=True)]
            for k in keys
        }  # fmt: skip
    return summary


def markdown(summary: dict[str, Any], seeds: int) -> str:
    def pm(v: float, half: float) -> str:
        return f"{v * 100:.1f}" + (f" ± {half * 100:.1f}" if math.isfinite(half) else "")

    lines = [f"| budget | rule | test accuracy ({seeds} networks) | FLOP ratio | vs entropy (paired) |",
             "|---:|---|---:|---:|---:|"]  # fmt: skip
    for r in summary["rows"]:
        vs = pm(r["vs_entropy"], r["vs_entropy_ci95"]) if "vs_entropy" in r else ""
        lines.append(f"| {r['budget']} | `{r['rule']}` | {pm(r['accuracy'], r['accuracy_ci95'])} "
                     f"| {r['flop_ratio']:.3f} | {vs} |")  # fmt: skip
    lines += ["", "test accuracy of each exit (mean over networks): "
              + ", ".join(f"{a * 100:.1f}" for a in summary["exit_accuracy"])]  # fmt: skip
    for k, accs in summary.get("by_difficulty", {}).items():
        lines.append(f"difficulty {k}: " + ", ".join(f"{a * 100:.1f}" for a in accs))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # before any training: an unwritable folder fails now
    torch.set_num_threads(args.threads)
    per_net = []
    for seed in range(args.seeds):
        per_net.append(score_network(train_network(args, seed), args.budgets))
        print(f"network {seed}: exit accuracies {[round(a, 4) for a in per_net[-1]['exit_accuracy']]}", flush=True)
    summary = summarise(per_net, args.budgets)
    doc = {"args": vars(args), "networks": per_net, **summary}
    write_atomic(out / "summary.json", json.dumps(doc, indent=1))
    print(markdown(summary, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
