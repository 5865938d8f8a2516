"""The feedback design of ``threshold_bandit``, measured (issue 14, point 1): does running a share
of the training samples to full depth (``reveal``, full-information feedback for every threshold
arm) make the bandit learn the right exit threshold, and at what training compute?

A halting sample reveals only its own arm's reward: where it stopped, not what continuing would
have given. A revealed sample runs to full depth whatever its arm, so the exit every arm would
have taken is known and every arm is updated with the reward it would have earned. This script
isolates that choice from the network's training noise:

1. Per network seed, a multi-exit network (``--layers`` blocks, an exit classifier after each)
   is trained once on ``--task`` with ``entropy_exit`` (the joint multi-exit loss, no bandit),
   then frozen. The logits of every exit are recorded for the training and test splits.
2. On those recorded logits, a fresh ``threshold_bandit`` learns online for ``--epochs`` passes
   over the training split in batches of ``--batch-size`` (``replay_exits`` shows it the exit
   points exactly as a multi-exit forward pass does), once per feedback design and bandit seed
   ``0 .. --bandit-seeds - 1``: the same rows in the same order for every design, paired by
   seed. A design is a ``reveal`` share from ``--reveals`` with or without the free updates of
   the lower thresholds' arms (``lower_arms``, ``--feedbacks own lower``).
3. Every arm's true mean reward (quality minus ``lam`` times cost, the bandit's own reward) is
   known from the full-depth logits. Reported per reveal: the **simple regret** of the arm the
   bandit would deploy (its greedy arm) on the test split, its cumulative regret per training
   sample over the run, how often it deploys the best arm, and the mean training FLOP ratio of
   the decisions (revealed samples pay full depth). Differences are paired against the design
   with neither source (``own``, reveal 0): bandit feedback alone.

The network's result (weights and recorded logits) goes to ``OUT/net{seed}.pt`` as it finishes,
loaded with ``weights_only=True`` on ``--resume``; the summary (mean, Student-t 95% interval over
the bandit seeds of all networks, differences against ``reveal = 0`` paired) is printed as
markdown and written atomically to ``OUT/summary.json``.

    python benchmarks/threshold_feedback.py --out results/issue14/feedback
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

import banditformer as bf
from banditformer.bench.experiment import controller_kwargs_for, prepare_experiment
from banditformer.bench.stats import ci95_halfwidth, paired_difference
from banditformer.controllers.dht import dht_reward
from banditformer.controllers.threshold_bandit import ThresholdBandit
from banditformer.core.exits import replay_exits
from banditformer.core.files import write_atomic
from banditformer.training import TrainConfig, Trainer, record_exits, save_atomic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="results/issue14/feedback", help="results folder")
    p.add_argument("--resume", action="store_true", help="reuse the trained networks found in --out")
    p.add_argument("--task", default="pointer_chasing")
    p.add_argument("--task-kwargs", default='{"max_hops": 4}', help="JSON options of the task")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--train-epochs", type=int, default=20, help="epochs of the network's training")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--net-seeds", type=int, default=2, help="networks trained, seeds 0 .. N-1")
    p.add_argument("--bandit-seeds", type=int, default=20, help="bandit runs per network and reveal")
    p.add_argument("--reveals", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1, 0.25])
    p.add_argument(
        "--feedbacks",
        nargs="+",
        default=["own", "lower"],
        choices=["own", "lower"],
        help="own: a sample updates its arm only; lower: also every lower threshold's arm",
    )
    p.add_argument("--epochs", type=int, default=1, help="passes of the bandit over the training split")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lam", type=float, default=0.1, help="the FLOP penalty of the reward")
    p.add_argument("--policy", default="ucb1", help="the bandit over thresholds (a registered policy)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    args.task_kwargs = json.loads(args.task_kwargs)
    if any(not 0.0 <= r <= 1.0 for r in args.reveals):
        p.error(f"expected --reveals in [0, 1], got {args.reveals}")
    if 0.0 not in args.reveals or "own" not in args.feedbacks:
        p.error("expected 0 among --reveals and own among --feedbacks (the paired baseline)")
    for name in ("layers", "heads", "train_epochs", "net_seeds", "bandit_seeds", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"expected --{name.replace('_', '-')} >= 1, got {getattr(args, name)}")
    if args.lam < 0:
        p.error(f"expected --lam >= 0, got {args.lam}")
    if args.policy not in bf.list_policies():
        p.error(f"expected --policy among {bf.list_policies()}, got {args.policy!r}")
    return args


def train_network(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Train (or load) network ``seed`` and return its recorded exits on the train and test splits."""
    path = Path(args.out) / f"net{seed}.pt"
    if args.resume and path.exists():
        return torch.load(path, weights_only=True)
    model = {"d_model": args.d_model, "num_layers": args.layers, "num_heads": args.heads, "exit_heads": True}
    config = TrainConfig(epochs=args.train_epochs, batch_size=32, lr=args.lr, seed=seed, progress=False)
    cache: dict[str, Any] = {}
    data, shape, table = prepare_experiment(args.task, seed, args.task_kwargs, model, config, cache)
    net = cache["net"]
    ctrl = bf.make_controller("entropy_exit", **controller_kwargs_for("entropy_exit", shape, table.full, seed))
    start = time.perf_counter()
    Trainer(net, ctrl, data, config).fit()
    seconds = time.perf_counter() - start
    train_logits, train_context = record_exits(net, data.train.x)
    test_logits, _ = record_exits(net, data.test.x)
    record = {
        "train_logits": train_logits, "train_context": train_context, "train_y": data.train.y,
        "test_logits": test_logits, "test_y": data.test.y,
        "exit_costs": torch.tensor(ThresholdBandit.costs_from_table(table), dtype=torch.float64),
        "full_flops": torch.tensor(float(table.full), dtype=torch.float64),
        "train_seconds": torch.tensor(seconds), "state": net.state_dict(),
    }  # fmt: skip
    save_atomic(record, path)
    return record


def arm_means(ctrl: ThresholdBandit, logits: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """``(K,)`` every threshold arm's mean reward on ``(logits, y)`` (all exits known)."""
    return arm_stats(ctrl, logits, y, lam)[0]


def arm_stats(
    ctrl: ThresholdBandit, logits: torch.Tensor, y: torch.Tensor, lam: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(K,)`` each threshold arm's mean reward, accuracy and FLOP ratio on ``(logits, y)``
    (``(N, L, C)`` logits of every exit)."""
    if ctrl.metric != "max_prob":
        raise ValueError(f"expected the metric max_prob, got {ctrl.metric!r}")
    probs = logits.softmax(-1)
    exits = ctrl.exits_of(probs.amax(-1))  # (N, K)
    quality = probs.gather(2, y.view(-1, 1, 1).expand(-1, logits.shape[1], 1)).squeeze(2).double()  # (N, L)
    q = quality.gather(1, exits - 1)
    costs = ctrl._costs.to(q.dtype)[exits - 1]
    correct = logits.argmax(-1).gather(1, exits - 1) == y.view(-1, 1)  # (N, K)
    return dht_reward(q, costs, lam).mean(0), correct.double().mean(0), costs.mean(0)


def run_bandit(
    args: argparse.Namespace, net: dict[str, Any], feedback: str, reveal: float, seed: int
) -> dict[str, float]:
    """One online run of ``threshold_bandit`` on network ``net``'s recorded training exits."""
    layers = net["train_logits"].shape[1]
    policy = bf.make_policy(args.policy, num_arms=9, seed=seed)
    ctrl = ThresholdBandit(
        layers, args.heads, float(net["full_flops"]), tuple(net["exit_costs"].tolist()), policy=policy,
        lam=args.lam, reveal=reveal, lower_arms=feedback == "lower", seed=seed,
    )  # fmt: skip
    train_means = arm_means(ctrl, net["train_logits"], net["train_y"], args.lam)
    test_means, test_accuracy, test_flops = arm_stats(ctrl, net["test_logits"], net["test_y"], args.lam)
    logits, context, y = net["train_logits"], net["train_context"], net["train_y"]
    n = y.shape[0]
    order_gen = torch.Generator().manual_seed(seed)  # the same rows in the same order for every reveal
    costs = net["exit_costs"]
    regret = flops = 0.0
    rows = 0
    for _ in range(args.epochs):
        perm = torch.randperm(n, generator=order_gen)
        for i in range(0, n, args.batch_size):
            idx = perm[i : i + args.batch_size]
            b_logits, b_context, b_y = logits[idx], context[idx], y[idx]
            decision = ctrl.decide(b_context, explore=True)
            depth = replay_exits(
                lambda p, d=decision: ctrl.halt(p, d, explore=True), b_logits, decision.depth, b_context
            )
            ran = bf.Decision(depth, decision.heads, record=decision.record, exits=decision.exits)
            probs = b_logits.softmax(-1)
            exit_quality = probs.gather(2, b_y.view(-1, 1, 1).expand(-1, layers, 1)).squeeze(2)
            quality = exit_quality.gather(1, (depth - 1).unsqueeze(1)).squeeze(1)
            ratio = costs[depth - 1]
            ctrl.feedback(ran, quality, ratio * float(net["full_flops"]), exit_quality=exit_quality)
            regret += float((train_means.max() - train_means[decision.record.arm]).sum())
            flops += float(ratio.sum())
            rows += idx.numel()
    greedy = int(policy.select(n=1, explore=False)[0])
    best = int(test_means.argmax())
    return {
        "simple_regret": float(test_means[best] - test_means[greedy]),
        "best_arm": float(greedy == best),
        "accuracy": float(test_accuracy[greedy]),
        "flop_ratio": float(test_flops[greedy]),
        "best_accuracy": float(test_accuracy[best]),
        "best_flop_ratio": float(test_flops[best]),
        "regret_per_sample": regret / rows,
        "train_flop_ratio": flops / rows,
        "greedy_threshold": ctrl.thresholds[greedy],
    }


def summarise(runs: dict[str, list[dict[str, float]]]) -> list[dict[str, Any]]:
    base = runs[label("own", 0.0)]
    rows = []
    for name, values in runs.items():
        feedback, reveal = name.split(" reveal ")
        row: dict[str, Any] = {"feedback": feedback, "reveal": float(reveal), "runs": len(values)}
        for key in ("simple_regret", "best_arm", "regret_per_sample", "train_flop_ratio", "accuracy", "flop_ratio",
                    "best_accuracy", "best_flop_ratio"):  # fmt: skip
            xs = [v[key] for v in values]
            row[key] = (sum(xs) / len(xs), float(ci95_halfwidth(xs)))
        if values is not base:
            a = {i: v["simple_regret"] for i, v in enumerate(values)}  # paired: the same network, seed and rows
            b = {i: v["simple_regret"] for i, v in enumerate(base)}
            row["simple_regret_vs_0"] = paired_difference(a, b)
        rows.append(row)
    return rows


def label(feedback: str, reveal: float) -> str:
    return f"{feedback} reveal {reveal:g}"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| feedback | reveal | runs | simple regret (test) | vs own, reveal 0 (paired) | deploys the best arm "
        "| regret per sample | training FLOP ratio | deployed: test accuracy | its FLOP ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        diff = r.get("simple_regret_vs_0")
        vs = "" if diff is None else f"{diff[0]:+.4f} ± {diff[1]:.4f}"
        lines.append(
            f"| {r['feedback']} | {r['reveal']:g} | {r['runs']} "
            f"| {r['simple_regret'][0]:.4f} ± {r['simple_regret'][1]:.4f} | {vs} "
            f"| {100 * r['best_arm'][0]:.0f}% | {r['regret_per_sample'][0]:.4f} ± {r['regret_per_sample'][1]:.4f} "
            f"| {r['train_flop_ratio'][0]:.3f} | {100 * r['accuracy'][0]:.1f} ± {100 * r['accuracy'][1]:.1f}% "
            f"| {r['flop_ratio'][0]:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    probe = out / ".writable"
    probe.write_text("")  # fail before training if the folder is not writable
    probe.unlink()
    runs: dict[str, list[dict[str, float]]] = {label(f, r): [] for f in args.feedbacks for r in args.reveals}
    nets = []
    for net_seed in range(args.net_seeds):
        net = train_network(args, net_seed)
        nets.append({"seed": net_seed, "train_seconds": float(net["train_seconds"])})
        for feedback in args.feedbacks:
            for reveal in args.reveals:
                for seed in range(args.bandit_seeds):
                    runs[label(feedback, reveal)].append(
                        run_bandit(args, net, feedback, reveal, 1000 * net_seed + seed)
                    )
        print(f"network {net_seed}: trained in {float(net['train_seconds']):.0f} s; bandits done", file=sys.stderr)
    rows = summarise(runs)
    summary = {"args": vars(args), "networks": nets, "rows": rows, "runs": runs}
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    print(markdown(rows))
    best = rows[0]
    print(
        f"\nthe best arm on the test split (the same for every design): {100 * best['best_accuracy'][0]:.1f}% "
        f"at a FLOP ratio of {best['best_flop_ratio'][0]:.3f} (mean over the networks' runs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
