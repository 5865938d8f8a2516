"""Issue 14's analysis of a ``banditformer bench model`` results folder: adaptive controllers
against the static grid and the early-exit peers, paired by seed.

    python benchmarks/exit_report.py results/20261201-140334-model-18479b7b0d \\
        --bandits threshold_bandit bandit_halting dht

Prints, from the folder's ``results.json`` (run it with ``--eval-shapes`` and ``static_grid``):

1. **Weights.** Each trained network scored at every uniform shape (``--eval-shapes``), against
   the static model trained at that shape (``static_grid d=.. h=..``): the paired difference in
   test accuracy with its 95% interval, and how many shapes are within it.
2. **Matched compute.** Each bandit configuration against every baseline configuration whose
   mean inference FLOP ratio is at least its own: the paired difference in accuracy.
3. **Savings.** Configurations that save at least 74% of the inference FLOPs, with their
   accuracy against the full model.
4. **Difficulty.** The mean Spearman correlation of each sample's known difficulty and its FLOPs.
5. **Curves.** Each controller's curve area, as the report gives it.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from banditformer.bench.stats import paired_difference

BASELINES = ("static", "static_small", "static_grid", "random", "layerdrop", "entropy_exit", "confidence_exit",
             "margin_exit", "patience_exit")  # fmt: skip


#: The controllers trained at one shape: their networks at other shapes are no comparison.
STATIC = ("static", "static_small", "static_grid", "random", "layerdrop")


def load(folder: Path) -> tuple[dict[str, dict[int, dict[str, Any]]], list[dict[str, Any]]]:
    """Every finished run by label and seed (calibrated budgets as ``label@budget``), and the summary."""
    doc = json.loads((folder / "results.json").read_text())
    by: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in doc["runs"]:
        if "error" in r:
            continue
        by[r["label"]][r["seed"]] = r
        for e in r.get("calibrated", []):
            if "error" not in e:
                by[f"{r['label']}@{e['budget']:g}"][r["seed"]] = {**r, **e}
    return by, doc["summary"]


def _fmt(p: tuple[float, float, int] | None) -> str:
    if p is None:
        return "n/a"
    mean, half, n = p
    return f"{mean * 100:+.1f} ± {half * 100:.1f} ({n})" if _finite(half) else f"{mean * 100:+.1f} ({n})"


def _finite(x: object) -> bool:
    """A number that is not NaN or infinite (results.json writes those as null)."""
    return isinstance(x, (int, float)) and math.isfinite(x)


def _acc(runs: dict[int, dict[str, Any]]) -> dict[int, float]:
    return {s: float(r["accuracy"]) for s, r in runs.items()}


def _ratio(runs: dict[int, dict[str, Any]]) -> float:
    return sum(1 - float(r["flop_saving"]) for r in runs.values()) / len(runs)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path, help="a bench model results folder")
    p.add_argument("--bandits", nargs="+", default=["threshold_bandit", "bandit_halting", "dht", "dht_integrated"],
                   help="the controllers counted as bandit controllers")  # fmt: skip
    a = p.parse_args(argv)
    by, summary = load(a.folder)
    controller = {r["label"]: r["controller"] for r in summary}
    for label in list(by):
        controller.setdefault(label, controller.get(label.split("@")[0], label))

    print("1. fixed shapes: each network against the static model trained at that shape (points, paired)")
    for label, runs in by.items():
        if "@" in label or "shapes" not in next(iter(runs.values())) or controller.get(label) in STATIC:
            continue
        within, cells = 0, []
        for i, shape in enumerate(next(iter(runs.values()))["shapes"]):
            static = by.get(f"static_grid d={shape['depth']} h={shape['heads']}")
            if static is None:
                continue
            pair = paired_difference({s: r["shapes"][i]["accuracy"] for s, r in runs.items()}, _acc(static))
            if pair is not None and _finite(pair[1]):
                within += abs(pair[0]) <= pair[1]
            cells.append(f"d{shape['depth']}h{shape['heads']} {_fmt(pair)}")
        if cells:
            print(f"  {label:<30} {within} of {len(cells)} within the interval: " + "; ".join(cells))

    print("\n2. matched compute: bandit configurations against baselines at equal or higher FLOPs (points, paired)")
    for label, runs in sorted(by.items(), key=lambda kv: _ratio(kv[1])):
        if controller.get(label) not in a.bandits:
            continue
        mine = _ratio(runs)
        rivals = [
            (other, r)
            for other, r in by.items()
            if controller.get(other) in BASELINES and controller.get(other) != controller[label] and _ratio(r) >= mine
        ]
        worse = [f"{o} {_fmt(paired_difference(_acc(runs), _acc(r)))}" for o, r in rivals]
        print(f"  {label:<30} FLOP ratio {mine:.3f}: " + ("; ".join(worse) if worse else "no baseline at or above"))

    print("\n3. savings of at least 74% (accuracy against the full model, points, paired)")
    full = by.get("static")
    for label, runs in by.items():
        if _ratio(runs) <= 0.26 and full is not None:
            print(f"  {label:<30} saving {1 - _ratio(runs):.1%}: {_fmt(paired_difference(_acc(runs), _acc(full)))}")

    print("\n4. Spearman(difficulty, FLOPs), mean over seeds")
    for label, runs in by.items():
        rho = [r.get("spearman_difficulty_flops") for r in runs.values()]
        if any(v is not None for v in rho):
            vals = [v for v in rho if v is not None]
            print(f"  {label:<30} {sum(vals) / len(vals):+.3f} ({len(vals)} of {len(rho)} seeds defined)")

    print("\n5. curve areas")
    seen = set()
    for r in sorted(summary, key=lambda r: -r.get("curve_area", -1)):
        if "curve_area" in r and r["controller"] not in seen:
            seen.add(r["controller"])
            half = r.get("curve_area_ci95")
            print(f"  {r['controller']:<30} {r['curve_area']:.4f}" + (f" ± {half:.4f}" if _finite(half) else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
