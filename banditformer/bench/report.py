"""The benches' reports as text (a table for the terminal) and as files: ``results.json``
(everything, strict JSON) with ``regret.csv`` (bandits) or ``runs.csv`` (models), each written
atomically (a reader or a kill never sees half a file)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from banditformer.bench.config import MABWISER_REFERENCES
from banditformer.bench.results import BanditReport, ModelReport
from banditformer.bench.stats import agreement
from banditformer.core.errors import InputValidationError
from banditformer.core.files import atomic_file, write_atomic

__all__ = ["format_model_report", "format_report", "json_safe", "write_model_report", "write_report"]


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by ``None`` (strict JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _write_results(folder: Path, doc: dict[str, Any]) -> None:
    write_atomic(folder / "results.json", json.dumps(json_safe(doc), indent=1, allow_nan=False))


def _check(report: object, kind: type) -> None:
    if not isinstance(report, kind):
        raise InputValidationError(f"expected a {kind.__name__}, got {type(report).__name__}")


def _folder(folder: str | os.PathLike[str]) -> Path:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------------------------- bench bandits
def format_report(report: BanditReport) -> str:
    """A plain-text table, lowest final regret first; failed policies last, with their error."""
    _check(report, BanditReport)
    head = f"{'policy':<26}{'final regret (mean ± 95% CI)':>32}{'µs / decision':>16}  seeds played"
    lines = [head, "-" * len(head)]
    ok = sorted((r for r in report.results if r.error is None), key=lambda r: r.regret_mean)
    for r in ok:
        regret = f"{r.regret_mean:10.1f} ± {r.regret_ci95:6.1f}"
        lines.append(f"{r.policy:<26}{regret:>32}{r.seconds_per_decision * 1e6:>16.2f}  {r.played}".rstrip())
    if report.lower_bound is not None:
        lines.append(f"{'(Lai-Robbins lower bound)':<26}{report.lower_bound[-1]:>23.1f}")
    by_name = {r.policy: r for r in ok}
    for ours, (label, _, _) in MABWISER_REFERENCES.items():
        if ours in by_name and label in by_name:
            a, b = by_name[ours], by_name[label]
            verdict = "agree" if agreement(a, b) else "DIFFER"
            lines.append(
                f"{ours} vs {label}: {verdict} within 95% CI ({a.regret_mean:.1f} vs {b.regret_mean:.1f}); "
                f"decisions/s {1 / a.seconds_per_decision:,.0f} ({a.played or 'ours'}) vs "
                f"{1 / b.seconds_per_decision:,.0f} ({b.played or 'theirs'})"
                + ("" if a.played == b.played else " (not like with like: the seeds played differently)")
            )
    lines += [f"{r.policy:<26}  FAILED: {r.error}" for r in report.results if r.error is not None]
    return "\n".join(lines)


def write_report(report: BanditReport, folder: str | os.PathLike[str]) -> Path:
    """Write ``results.json`` (everything, with ``status`` from ``report.meta``; strict JSON,
    undefined values as ``null``) and ``regret.csv`` (one row per policy, seed and checkpoint)
    into ``folder``, each atomically; returns the folder."""
    _check(report, BanditReport)
    out = _folder(folder)
    _write_results(out, {
        "status": report.meta.get("status", "complete"),
        "config": report.config.record(),
        "config_hash": report.config.digest(),
        "rounds": report.rounds,
        "lai_robbins_bound": report.lower_bound,
        "meta": report.meta,
        "results": [
            {
                "policy": r.policy,
                "error": r.error,
                "regret_mean": r.regret_mean,
                "regret_ci95": r.regret_ci95,
                "seconds": r.seconds,
                "seconds_per_decision": r.seconds_per_decision,
                "played": r.played,
                "regret": r.regret.tolist(),
            }
            for r in report.results
        ],
    })  # fmt: skip
    with atomic_file(out / "regret.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["policy", "seed", "round", "cumulative_regret"])
        for r in report.results:
            for s in range(r.regret.shape[0]):
                for c, t in enumerate(report.rounds[: r.regret.shape[1]]):
                    w.writerow([r.policy, s, t, f"{float(r.regret[s, c]):.6g}"])
    return out


# ----------------------------------------------------------------------------------- bench model
def format_model_report(report: ModelReport) -> str:
    """A plain-text table, one row per configuration (means over seeds, ± the 95% interval when
    there are several), with the accuracy difference to the full model paired by seed where the
    report has ``static``; ``*`` marks the Pareto front. Then each controller's curve area, the
    fixed-shape scores when measured, and failed runs last, with their error."""
    _check(report, ModelReport)
    many = report.config.seeds > 1
    b1 = any("eval_us_per_sample_b1" in r for r in report.summary)
    w = _label_width(report.summary)
    head = (
        f"{'configuration':<{w}}{'accuracy':>16}{'vs full (paired)':>18}{'FLOP saving':>13}{'(training)':>12}"
        f"{'µs/sample':>11}{'(batch 1)' if b1 else '':>11}{'train time':>12}  front"
    )
    lines = [head, "-" * len(head)]
    for r in report.summary:
        if not r["seeds"]:
            continue
        acc = f"{r['accuracy']:.1%}" + (f" ± {r['accuracy_ci95'] * 100:.1f}" if many else "")
        vs = ""
        if "accuracy_vs_full" in r:
            half = r["accuracy_vs_full_ci95"]
            vs = f"{r['accuracy_vs_full'] * 100:+.1f}" + (f" ± {half * 100:.1f}" if math.isfinite(half) else "")
        one = f"{r['eval_us_per_sample_b1']:.1f}" if "eval_us_per_sample_b1" in r else ""
        lines.append(
            f"{r['label']:<{w}}{acc:>16}{vs:>18}{r['flop_saving']:>13.1%}{r['train_flop_saving']:>12.1%}"
            f"{r['eval_us_per_sample']:>11.1f}{one:>11}{r['wall_time_s']:>11.1f}s  {'*' if r.get('pareto') else ''}"
        )
    areas = {r["controller"]: r for r in report.summary if "curve_area" in r}
    if areas:
        low = next(iter(areas.values()))["curve_low"]
        lines += ["", f"area under accuracy vs inference FLOP ratio, over [{low:.3f}, 1] (per seed, mean ± 95%):"]
        for controller, r in sorted(areas.items(), key=lambda kv: -kv[1]["curve_area"]):
            half = r["curve_area_ci95"]
            note = "  (no configuration below the full cost)" if r["curve_area"] == 0 else ""
            lines.append(
                f"  {controller:<{w - 2}}{r['curve_area']:.4f}" + (f" ± {half:.4f}" if math.isfinite(half) else "")
                + note
            )
    lines += _calibrated_area_lines(report.summary)
    lines += _best_at_budget_lines(report.summary)
    shaped = [r for r in report.summary if r.get("shapes")]
    if shaped:
        names = [f"d{s['depth']}h{s['heads']}" for s in shaped[0]["shapes"]]
        lines += ["", "test accuracy of each trained network at fixed shapes (FLOP ratio under the shape):"]
        lines.append(f"  {'':<{w - 2}}" + "".join(f"{n:>7}" for n in names))
        lines.append(f"  {'(FLOP ratio)':<{w - 2}}" + "".join(f"{s['flop_ratio']:>7.2f}" for s in shaped[0]["shapes"]))
        lines += [f"  {r['label']:<{w - 2}}" + "".join(f"{s['accuracy'] * 100:>7.1f}" for s in r["shapes"])
                  for r in shaped]
    # failures by configuration, calibrated budgets' included (an unreachable budget, with its reason)
    lines += [f"{r['label']} ({e.split(': ', 1)[0]}): FAILED: {e.split(': ', 1)[1]}" for r in report.summary
              for e in r.get("errors", [])]  # fmt: skip
    return "\n".join(lines)


def _label_width(summary: list[dict[str, Any]]) -> int:
    """The label column's width: 30 characters, or the longest label (a combined report's
    variants are long) and two spaces."""
    return max([30] + [len(r["label"]) + 2 for r in summary])


def _calibrated_area_lines(summary: list[dict[str, Any]]) -> list[str]:
    """The areas under the networks' operating curves calibrated on validation at every budget,
    each paired by seed against the highest."""
    areas = {r["controller"]: r for r in summary if "calibrated_area" in r}
    if not areas:
        return []
    w = _label_width(summary)
    low = next(iter(areas.values()))["curve_low"]
    lines = [
        "",
        f"area under each network's operating curve, calibrated on validation at every budget in [{low:.3f}, 1]",
        "(test accuracy at the calibrated point, per seed, mean ± 95%; paired against the highest):",
    ]
    for controller, r in sorted(areas.items(), key=lambda kv: -kv[1]["calibrated_area"]):
        half = r["calibrated_area_ci95"]
        line = f"  {controller:<{w - 2}}{r['calibrated_area']:.4f}" + (f" ± {half:.4f}" if math.isfinite(half) else "")
        if "calibrated_area_vs_best" in r:
            diff, half = r["calibrated_area_vs_best"], r["calibrated_area_vs_best_ci95"]
            line += f"  {diff:+.4f}" + (f" ± {half:.4f}" if math.isfinite(half) else "")
            line += f" ({r['calibrated_area_paired_seeds']} seeds)"
        lines.append(line)
    grids = list({r["controller"]: r for r in summary if "curve_area_vs_calibrated_best" in r}.values())
    if grids:
        lines.append("  static grids (one network per point, nothing to calibrate; the area of their points):")
    for r in grids:
        half, diff = r["curve_area_ci95"], r["curve_area_vs_calibrated_best"]
        dhalf = r["curve_area_vs_calibrated_best_ci95"]
        lines.append(
            f"  {r['controller']:<{w - 2}}{r['curve_area']:.4f}" + (f" ± {half:.4f}" if math.isfinite(half) else "")
            + f"  {diff:+.4f}" + (f" ± {dhalf:.4f}" if math.isfinite(dhalf) else "")
            + f" ({r['curve_area_paired_seeds']} seeds)"
        )
    return lines


def _best_at_budget_lines(summary: list[dict[str, Any]]) -> list[str]:
    """The matched-cost section: per budget, each configuration's accuracy minus the best's there,
    paired by seed, with its mean FLOP ratio (is it at equal or higher cost?)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in summary:
        if "best_at_budget" in r:
            groups.setdefault(r["best_at_budget"], []).append(r)
    if not groups:
        return []
    w = _label_width(summary)
    lines = ["", "at each budget, against its most accurate configuration (paired by seed, mean ± 95%):"]
    for best_label, group in groups.items():
        best = next(r for r in group if r["label"] == best_label)
        lines.append(
            f"  {best_label}: {best['accuracy']:.1%} at {1 - best['flop_saving']:.3f} of the full FLOPs "
            f"({best['seeds']} seeds)"
        )
        for r in sorted((r for r in group if r is not best), key=lambda r: -r["accuracy"]):
            vs = "(no common seed)"
            if "accuracy_vs_best" in r:
                half = r["accuracy_vs_best_ci95"]
                vs = f"{r['accuracy_vs_best'] * 100:+.1f}" + (f" ± {half * 100:.1f}" if math.isfinite(half) else "")
            lines.append(f"    {r['label']:<{w + 4}}{vs:>14}  at {1 - r['flop_saving']:.3f}")
    return lines


#: The columns of ``runs.csv``, one row per configuration and seed.
_CSV_FIELDS = ("label", "controller", "seed", "accuracy", "flop_saving", "train_flop_saving", "flops_per_sample",
               "full_flops_per_sample", "eval_us_per_sample", "wall_time_s", "error")  # fmt: skip


def write_model_report(report: ModelReport, folder: str | os.PathLike[str]) -> Path:
    """Write ``results.json`` (``status`` from ``report.meta``, config, every run, the summary)
    and ``runs.csv`` (one row per configuration and seed) into ``folder``, each atomically;
    returns the folder."""
    _check(report, ModelReport)
    out = _folder(folder)
    _write_results(out, {
        "status": report.meta.get("status", "complete"),
        "config": report.config.record(),
        "config_hash": report.config.digest(),
        "meta": report.meta,
        "summary": report.summary,
        "runs": report.runs,
    })  # fmt: skip
    with atomic_file(out / "runs.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=_CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in report.runs:
            w.writerow({k: r.get(k, "") for k in _CSV_FIELDS})
    return out
