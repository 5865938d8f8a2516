"""Soak: many steps of random decisions and random rewards, valid and invalid, through a
controller; memory must stay flat and no statistic may become NaN or inf.

    python benchmarks/soak.py --steps 20000 --controller dht --batch 32

Each step: random contexts -> ``decide`` (explore) -> ``feedback`` with random quality and the
decision's FLOPs; one step in ``--bad-every`` instead feeds back something invalid (NaN, inf,
negative or above-one quality, negative or NaN FLOPs, a decision of the wrong batch size), which
must be refused with ``InputValidationError`` and leave every statistic as it was. Exits 1 when
an invalid input is accepted, a refusal changes a statistic, or a statistic is not finite. Prints resident
memory at checkpoints and its growth after warm-up, the counts of refused inputs, and whether
every statistic stayed finite.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence

import torch

import banditformer as bf
from banditformer.training.distributed import reduced_states


def rss_mib() -> float:
    """Current resident set size (Linux /proc; the peak from getrusage elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--controller", default="dht", help="dht or dht_integrated (or any taking context_dim)")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--context-dim", type=int, default=64)
    p.add_argument("--bad-every", type=int, default=10)
    p.add_argument("--report-every", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    full = 1e6
    ctrl = bf.make_controller(
        args.controller, num_layers=args.layers, num_heads=args.heads, context_dim=args.context_dim,
        full_flops=full, flop_budget=0.5, seed=args.seed,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(args.seed)
    bad_kinds = ["quality nan", "quality inf", "quality < 0", "quality > 1", "flops < 0", "flops nan", "batch size"]
    refused = dict.fromkeys(bad_kinds, 0)
    accepted_bad: list[str] = []
    changed = 0  # refused inputs that changed a statistic
    marks: list[tuple[int, float]] = [(0, rss_mib())]
    start = time.perf_counter()
    print(f"{args.controller}: {args.layers} blocks x {args.heads} heads, batch {args.batch}, {args.steps} steps")
    for step in range(1, args.steps + 1):
        b = args.batch
        context = torch.randn(b, args.context_dim, generator=gen) * float(torch.rand((), generator=gen) * 10)
        decision = ctrl.decide(context, explore=True)
        quality = torch.rand(b, generator=gen)
        flops = decision.depth.double() / args.layers * full
        if step % args.bad_every == 0:
            kind = bad_kinds[(step // args.bad_every) % len(bad_kinds)]
            q, f, d = quality.clone(), flops.clone(), decision
            i = int(torch.randint(b, (1,), generator=gen))
            if kind == "quality nan":
                q[i] = math.nan
            elif kind == "quality inf":
                q[i] = math.inf
            elif kind == "quality < 0":
                q[i] = -0.5
            elif kind == "quality > 1":
                q[i] = 1.5
            elif kind == "flops < 0":
                f[i] = -1.0
            elif kind == "flops nan":
                f[i] = math.nan
            else:
                q, f = q[:-1], f[:-1]
            before = [buf.clone() for _, buf, _ in reduced_states(ctrl)]
            try:
                ctrl.feedback(d, q, f)
                accepted_bad.append(kind)
            except bf.InputValidationError:
                refused[kind] += 1
            after = [buf for _, buf, _ in reduced_states(ctrl)]
            changed += any(not torch.equal(x, y) for x, y in zip(before, after, strict=True))
        else:
            ctrl.feedback(decision, quality, flops)
        if step % args.report_every == 0:
            marks.append((step, rss_mib()))
            print(f"  step {step:>7}: rss {marks[-1][1]:8.1f} MiB", flush=True)
    seconds = time.perf_counter() - start
    bad_states = [
        name for name, buf, _ in reduced_states(ctrl) if buf.is_floating_point() and not bool(torch.isfinite(buf).all())
    ]
    warm = marks[min(1, len(marks) - 1)][1]
    result = {
        "controller": args.controller,
        "steps": args.steps,
        "batch": args.batch,
        "steps_per_s": args.steps / seconds,
        "rss_mib_start": marks[0][1],
        "rss_mib_after_first_report": warm,
        "rss_mib_end": marks[-1][1],
        "rss_growth_after_warmup_mib": marks[-1][1] - warm,
        "refused": refused,
        "accepted_invalid": accepted_bad,
        "refusals_that_changed_state": changed,
        "non_finite_statistics": bad_states,
        "lam": float(ctrl.lam) if hasattr(ctrl, "lam") else None,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 1 if (accepted_bad or bad_states or changed) else 0


if __name__ == "__main__":
    sys.exit(main())
