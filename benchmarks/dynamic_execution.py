"""How much of the FLOP saving of per-sample depth and heads becomes time saving.

For depth only, heads only and both, at several FLOP ratios, forward and forward+backward, it
prints the time of the full model, of the masked path (``path="reference"``: everything runs,
skipped work is zeroed) and of the fast path, the FLOP ratio (from the fvcore cost table) and the
efficiency ``FLOP ratio / (fast time / full time)`` (1.0 is the limit).

Run:

    python benchmarks/dynamic_execution.py                       # CPU, float32
    python benchmarks/dynamic_execution.py --device cuda --dtype bfloat16 --batch 64 --seq 256 --width 1024
    python benchmarks/dynamic_execution.py --device cuda ... --kernel triton     # the gather-GEMM kernels
    python benchmarks/dynamic_execution.py --model bert                         # an adapted BERT (needs [hf])

Head sets are drawn per sample (``per-sample``) or from a few shared sets (``shared``: what a
controller sharing one Thompson draw per context bucket produces).

Kind ``halt``: halting at exit points (``model.run_exits`` with a ``halt`` callback, every exit a
sample passes evaluated): each sample gets a halting depth drawn as the ``depth`` kind draws its
depth, and the callback stops it at that exit point, deterministically. The fast path drops halted
samples from the active set; the masked path is ``run_exits(path="reference")``; the full model is
the plain full-depth forward, and the FLOP ratio counts every exit classifier evaluated.

``--model bert`` times a Hugging Face ``BertForSequenceClassification`` (built offline from its
``BertConfig`` with the same width, depth and heads, feed-forward 4x the width, dropout 0, random
token ids) made adaptive by ``banditformer.adapt``: the full model is the adapted model's full
decision, whose logits are the original's.

Kind ``route``: head sets chosen as the sample goes (``run_exits`` with a ``route`` callback): each
sample's head sets are drawn as the ``heads`` kind draws them, and the callback hands block ``d``'s
to the model at exit point ``d`` (one host copy per exit point, every exit evaluated). The masked
path is ``run_exits(path="reference")`` with the same callback.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable, Sequence

import torch

from banditformer import Decision, make_backend
from banditformer.core.exits import ExitPoint
from banditformer.model import DynamicTransformer, TransformerConfig

HaltFn = Callable[[ExitPoint], torch.Tensor]
Step = Callable[[], None]


def spread(gen: torch.Generator, n: int, top: int, ratio: float) -> torch.Tensor:
    """``n`` random integers in ``[1, top]`` with mean about ``ratio * top``."""
    mean = ratio * top
    low, high = (max(1.0, 2 * mean - top), top) if ratio >= 0.5 else (1.0, max(1.0, 2 * mean - 1))
    return torch.randint(round(low), round(high) + 1, (n,), generator=gen)


def make_decision(kind: str, ratio: float, b: int, layers: int, heads: int, gen: torch.Generator) -> Decision:
    depth = torch.full((b,), layers, dtype=torch.long)
    mask = torch.ones(b, layers, heads, dtype=torch.bool)
    if kind in ("depth", "both") and layers > 1:
        # The stem block always runs: aim the other blocks' share at the requested overall ratio.
        r = ratio if kind == "depth" else ratio**0.5
        share = min(1.0, max(0.0, (r * layers - 1) / (layers - 1)))
        depth = (1 + spread(gen, b, layers - 1, share)).clamp(max=layers) if share > 0 else torch.ones_like(depth)
    if kind.startswith("heads") or kind == "both":
        r = ratio if kind.startswith("heads") else ratio**0.5
        shared = kind.endswith("shared")
        rows = 4 if shared else b
        k = spread(gen, rows * layers, heads, r).view(rows, layers)
        scores = torch.rand(rows, layers, heads, generator=gen)
        rank = scores.argsort(-1).argsort(-1)
        sets = rank < k.unsqueeze(-1)
        mask = sets[torch.randint(0, rows, (b,), generator=gen)] if shared else sets
        mask[:, 0] = True
    return Decision(depth, mask)


def halting_depths(ratio: float, b: int, layers: int, gen: torch.Generator) -> torch.Tensor:
    """``(b,)`` int64 depths in ``[1, layers]``, the ``depth`` kind's mix at ``ratio``: where each
    sample halts (``layers``: it never halts)."""
    return make_decision("depth", ratio, b, layers, 1, gen).depth


def halt_at(depths: torch.Tensor) -> HaltFn:
    """A halt callback that stops each sample at the exit point of its depth in ``depths``."""

    def halt(point: ExitPoint) -> torch.Tensor:
        return depths[point.rows] <= point.depth

    return halt


def route_by(heads: torch.Tensor) -> HaltFn:
    """A route callback that gives each sample of an exit point its head set in ``heads`` ``(B, L, H)``."""

    def route(point: ExitPoint) -> torch.Tensor:
        return heads[point.rows, point.depth]

    return route


def time_all(fns: Sequence[Callable[[], None]], backend, repeats: int) -> list[float]:
    """Best-of-``repeats`` seconds of each function, timed in interleaved rounds so that slow
    drift of a shared machine hits every function alike (noise only ever adds time)."""
    for fn in fns:
        fn()  # warm-up
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            with backend.timer() as t:
                fn()
            best[i] = min(best[i], t.seconds)
    return best


def adapted_bert(args: argparse.Namespace, backend, gen: torch.Generator) -> tuple[torch.nn.Module, dict, int]:
    """A ``BertForSequenceClassification`` of the benchmark's shape, adapted; its inputs (random
    token ids, no padding) and its tokens per sample."""
    from transformers import BertConfig, BertForSequenceClassification

    from banditformer import adapt

    config = BertConfig(
        vocab_size=1000, hidden_size=args.width, num_hidden_layers=args.layers, num_attention_heads=args.heads,
        intermediate_size=4 * args.width, max_position_embeddings=args.seq, num_labels=10,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    model = adapt(BertForSequenceClassification(config), seq_len=args.seq, backend=backend)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=gen)
    x = {"input_ids": ids.to(backend.device), "attention_mask": torch.ones_like(ids).to(backend.device)}
    return model, x, args.seq


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--ratios", type=float, nargs="+", default=[0.75, 0.5, 0.25])
    p.add_argument("--kinds", nargs="+", default=["depth", "heads", "heads-shared", "both", "halt", "route"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the rows as JSON")
    p.add_argument(
        "--kernel", default="torch", choices=["torch", "triton", "auto"], help="CUDA routed-attention kernel"
    )
    p.add_argument(
        "--model", default="own", choices=["own", "bert"], help="the library's model, or an adapted Hugging Face BERT"
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = make_backend(args.device, **({"kernel": args.kernel} if args.device == "cuda" else {}))
    dtype = getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    if args.model == "bert":
        try:
            model, x, tokens = adapted_bert(args, backend, gen)
        except ImportError:
            print("--model bert needs transformers: pip install -e .[hf]", file=sys.stderr)
            return 2
    else:
        cfg = TransformerConfig(
            input="sequence",
            num_classes=10,
            seq_len=args.seq - 1,
            d_model=args.width,
            num_layers=args.layers,
            num_heads=args.heads,
            pooling="cls",
        )
        model, tokens = DynamicTransformer(cfg, backend=backend), cfg.tokens_per_sample
        x = torch.randn(args.batch, cfg.seq_len, 1, generator=gen).to(backend.device)
    layers, heads = model.cfg.num_layers, model.cfg.num_heads
    table = model.cost_table()
    model = model.to(backend.device)
    name = torch.cuda.get_device_name(backend.device) if args.device == "cuda" else platform.processor() or "cpu"
    threads = torch.get_num_threads()
    print(f"device: {args.device} ({name}), dtype {args.dtype}, torch {torch.__version__}, threads {threads}")
    print(
        f"model: {args.model}, B={args.batch} T={tokens} D={args.width} L={layers} H={heads}; "
        f"full forward {table.full / 1e9:.3f} GFLOP/sample (multiply-add = 1)"
    )
    head = (
        f"{'kind':<13}{'ratio':>6}{'pass':>9}{'full ms':>10}{'masked ms':>11}{'fast ms':>10}"
        f"{'FLOP ratio':>12}{'time ratio':>12}{'efficiency':>12}"
    )
    print(head + "\n" + "-" * len(head))
    rows = []
    full_decision = Decision.full(args.batch, layers, heads, device=backend.device)
    for kind in args.kinds:
        for ratio in args.ratios:
            halt = route = None
            if kind == "route":  # the full model planned, each block's heads handed over at its exit point
                m = make_decision("heads", ratio, args.batch, layers, heads, gen)
                depth = torch.full((args.batch,), layers)
                flop_ratio = float(table.sample_flops(Decision(depth, m.heads, None, depth)).mean()) / table.full
                d, route = full_decision, route_by(m.heads.to(backend.device))
            elif kind == "halt":  # the full model planned, each sample halting at its exit point
                depths = halting_depths(ratio, args.batch, layers, gen)
                full_heads = torch.ones(args.batch, layers, heads, dtype=torch.bool)
                flop_ratio = float(table.sample_flops(Decision(depths, full_heads, None, depths)).mean()) / table.full
                d, halt = full_decision, halt_at(depths.to(backend.device))
            else:
                d = make_decision(kind, ratio, args.batch, layers, heads, gen)
                flop_ratio = float(table.sample_flops(d).mean()) / table.full
                d = Decision(d.depth.to(backend.device), d.heads.to(backend.device))
            for mode in ("forward", "fwd+bwd"):

                def run(
                    decision: Decision, path: str, mode: str = mode, halt: HaltFn | None = None,
                    route: HaltFn | None = None,
                ) -> Step:  # fmt: skip
                    def logits() -> torch.Tensor:
                        if halt is None and route is None:
                            return model(x, decision, path=path)
                        h, _ = model.stem(x)
                        return model.run_exits(h, decision, halt=halt, route=route, path=path).logits

                    def step() -> None:
                        with backend.autocast(enabled=dtype != torch.float32, dtype=dtype):
                            if mode == "forward":
                                with torch.no_grad():
                                    logits()
                            else:
                                logits().float().sum().backward()

                    return step

                full, masked, fast = time_all(
                    [
                        run(full_decision, "fast"),
                        run(d, "reference", halt=halt, route=route),
                        run(d, "fast", halt=halt, route=route),
                    ],
                    backend,
                    args.repeats,
                )
                time_ratio = fast / full
                row = dict(
                    kind=kind,
                    target=ratio,
                    mode=mode,
                    full_ms=full * 1e3,
                    masked_ms=masked * 1e3,
                    fast_ms=fast * 1e3,
                    flop_ratio=flop_ratio,
                    time_ratio=time_ratio,
                    efficiency=flop_ratio / time_ratio,
                )
                rows.append(row)
                print(
                    f"{kind:<13}{ratio:>6.2f}{mode:>9}{full * 1e3:>10.1f}{masked * 1e3:>11.1f}{fast * 1e3:>10.1f}"
                    f"{flop_ratio:>12.3f}{time_ratio:>12.3f}{flop_ratio / time_ratio:>12.2f}",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"device": name, "args": vars(args), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
