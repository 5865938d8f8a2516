"""The model benchmark's protocol (banditformer/bench/models.py, report.py, stats.py): exit
controllers calibrated to every budget after one training, per-controller budgets, scores at
fixed shapes, batch-1 timing, accuracy paired by seed against the full model, and the area under
each controller's accuracy-versus-FLOPs curve."""

from __future__ import annotations

import math

import pytest

from banditformer.bench.models import CALIBRATE, ModelBenchConfig, plan_models, run_models
from banditformer.bench.report import format_model_report
from banditformer.bench.stats import curve_area, paired_difference
from banditformer.core.errors import InputValidationError

POINTER = {"task": "pointer_chasing", "task_kwargs": {"num_samples": 90}, "epochs": 1, "batch_size": 32,
           "d_model": 8, "num_layers": 3, "num_heads": 2, "exit_heads": True}  # fmt: skip


def test_exit_controllers_are_calibrated_to_their_own_budgets() -> None:
    config = ModelBenchConfig(
        **POINTER, controllers=["static", "static_small", "entropy_exit", "patience_exit"], budgets=[0.6],
        lams=[], controller_kwargs={"entropy_exit": {"budgets": [0.9, 0.7]}},
    )  # fmt: skip
    runs = plan_models(config).runs
    assert [(label, kw.get(CALIBRATE)) for label, _, kw in runs] == [
        ("static", None), ("static_small@0.6", None), ("entropy_exit", [0.9, 0.7]), ("patience_exit", [0.6]),
    ]  # fmt: skip
    with pytest.raises(InputValidationError, match=r"distinct budgets for 'entropy_exit', got \['0.5'\]"):
        plan_models(ModelBenchConfig(**POINTER, controllers=["entropy_exit"], budgets=[0.5, 0.5]))
    with pytest.raises(InputValidationError, match=r"\['budgets'\]\[i\]"):
        plan_models(ModelBenchConfig(**POINTER, controllers=["entropy_exit"], controller_kwargs={
            "entropy_exit": {"budgets": [1.5]}}))  # fmt: skip


def test_the_static_grid_trains_a_static_model_at_every_uniform_shape() -> None:
    config = ModelBenchConfig(**POINTER, controllers=["static_grid"], lams=[])
    runs = plan_models(config).runs
    assert [(label, kw) for label, _, kw in runs] == [
        (f"static_grid d={d} h={h}", {"depth": d, "heads": h}) for d, h in [(1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
    ]


def test_a_report_has_calibrated_rows_shapes_pairs_and_curve_areas() -> None:
    config = ModelBenchConfig(
        **POINTER, controllers=["static", "static_small", "entropy_exit"], budgets=[0.7, 0.01], lams=[], seeds=2,
        eval_shapes=True, batch1_samples=4,
    )  # fmt: skip
    report = run_models(config)
    rows = {r["label"]: r for r in report.summary}
    assert list(rows) == ["static", "static_small@0.7", "static_small@0.01", "entropy_exit", "entropy_exit@0.7",
                          "entropy_exit@0.01"]  # fmt: skip
    calibrated = rows["entropy_exit@0.7"]
    assert calibrated["seeds"] == 2 and 1 - calibrated["flop_saving"] <= 0.7 + 0.05
    assert rows["entropy_exit@0.01"]["seeds"] == 0 and rows["entropy_exit@0.01"]["failed"] == 2  # unreachable
    errors = [r.get("error") for r in report.runs if r["label"] == "entropy_exit"]
    assert errors == [None, None]  # the runs finished; only their unreachable budget failed
    # paired by seed against the full model
    acc = {lab: {r["seed"]: r["accuracy"] for r in report.runs if r["label"] == lab} for lab in ("static",)}
    own = {r["seed"]: r["calibrated"][0]["accuracy"] for r in report.runs if r["label"] == "entropy_exit"}
    mean, half, n = paired_difference(own, acc["static"])
    assert calibrated["accuracy_vs_full"] == pytest.approx(mean) and n == 2 and math.isfinite(half)
    assert "accuracy_vs_full" not in rows["static"]
    # every network at every uniform shape: the stem, then depths 2..3 with 1..2 heads
    shapes = [(s["depth"], s["heads"]) for s in rows["entropy_exit"]["shapes"]]
    assert shapes == [(1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
    assert rows["static"]["shapes"][-1]["accuracy"] == pytest.approx(rows["static"]["accuracy"])
    assert rows["static"]["eval_us_per_sample_b1"] > 0
    for r in report.runs:  # a calibrated budget is timed at batch 1 at its own knob
        for e in r.get("calibrated", []):
            assert "error" in e or e["eval_us_per_sample_b1"] > 0
    # the curve area of each controller, over the report's FLOP range
    low = rows["static"]["curve_low"]
    per_seed = []
    for seed in (0, 1):
        points = [(1 - r["flop_saving"], r["accuracy"]) for r in report.runs if r["label"] == "entropy_exit"
                  and r["seed"] == seed]  # fmt: skip
        points += [(1 - e["flop_saving"], e["accuracy"]) for r in report.runs if r["label"] == "entropy_exit"
                   and r["seed"] == seed for e in r["calibrated"] if "error" not in e]  # fmt: skip
        per_seed.append(curve_area(points, low))
    assert rows["entropy_exit"]["curve_area"] == pytest.approx(sum(per_seed) / 2)
    # matched cost: at each budget, every configuration against the most accurate there, by seed
    at = {lab: rows[lab] for lab in ("static_small@0.7", "entropy_exit@0.7")}
    best = max(at, key=lambda lab: at[lab]["accuracy"])
    other = next(lab for lab in at if lab != best)
    assert at[best]["best_at_budget"] == at[other]["best_at_budget"] == best and "accuracy_vs_best" not in at[best]
    by_seed = {lab: {r["seed"]: r["accuracy"] for r in _label_runs(report, lab)} for lab in at}
    mean, half, n = paired_difference(by_seed[other], by_seed[best])
    assert at[other]["accuracy_vs_best"] == pytest.approx(mean) and at[other]["paired_seeds_vs_best"] == n == 2
    assert at[other]["accuracy_vs_best_ci95"] == pytest.approx(half)
    assert "best_at_budget" not in rows["entropy_exit@0.01"] and "best_at_budget" not in rows["static"]
    text = format_model_report(report)
    assert "area under accuracy vs inference FLOP ratio" in text and "d3h2" in text and "vs full" in text
    paired_line = f"{mean * 100:+.1f} ± {half * 100:.1f}  at {1 - at[other]['flop_saving']:.3f}"
    assert f"  {best}: " in text and paired_line in text
    assert "entropy_exit@0.01 (seed 1): FAILED: expected a FLOP budget" in text


def _label_runs(report, label: str) -> list[dict]:
    """The runs of ``label``, a calibrated label's (``name@b``) read from its run's ``calibrated``."""
    if any(r["label"] == label for r in report.runs):
        return [r for r in report.runs if r["label"] == label]
    name, budget = label.rsplit("@", 1)
    return [{"seed": r["seed"], **e} for r in report.runs if r["label"] == name for e in r["calibrated"]
            if f"{e['budget']:g}" == budget]  # fmt: skip


def test_curve_area_is_the_mean_best_accuracy_within_each_budget() -> None:
    assert curve_area([(1.0, 0.9)], low=0.5) == 0.0  # only the full model: nothing below it
    assert curve_area([(0.5, 0.6), (0.75, 0.5), (1.0, 0.9)], low=0.5) == pytest.approx(0.6 * 0.5 / 0.5)
    with pytest.raises(ValueError, match="high > low"):
        curve_area([(0.5, 0.5)], low=1.0)
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


def test_the_exit_report_pairs_each_network_with_the_static_grid(tmp_path, capsys) -> None:
    import runpy
    import sys
    from pathlib import Path

    from banditformer.bench.report import write_model_report

    config = ModelBenchConfig(
        **POINTER, controllers=["static", "static_grid", "entropy_exit", "threshold_bandit"], budgets=[0.8],
        lams=[0.1], seeds=2, eval_shapes=True,
    )  # fmt: skip
    report = run_models(config)
    write_model_report(report, tmp_path)
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "exit_report.py"
    sys_argv = sys.argv
    sys.argv = [str(script), str(tmp_path)]
    try:
        with pytest.raises(SystemExit) as info:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = sys_argv
    assert info.value.code == 0
    out = capsys.readouterr().out
    # section 1: entropy_exit's network at d2h1 against static_grid d=2 h=1, paired over both seeds
    ee = {r["seed"]: r for r in report.runs if r["label"] == "entropy_exit"}
    grid = {r["seed"]: r["accuracy"] for r in report.runs if r["label"] == "static_grid d=2 h=1"}
    mean, half, n = paired_difference({s: r["shapes"][1]["accuracy"] for s, r in ee.items()}, grid)
    assert n == 2
    assert f"d2h1 {mean * 100:+.1f} ± {half * 100:.1f} (2)" in out.split("2. matched")[0]
    assert "threshold_bandit lam=0.1" in out.split("2. matched")[1].split("3. savings")[0]
    assert "5. curve areas" in out


def test_a_recorded_folder_reports_as_its_run_did_and_keeps_whole_seeds(tmp_path) -> None:
    from banditformer.bench.models import recorded_report
    from banditformer.bench.runlog import RunLog

    config = ModelBenchConfig(**POINTER, controllers=["static", "entropy_exit"], budgets=[0.7], lams=[], seeds=2,
                              batch1_samples=0)  # fmt: skip
    with RunLog.create(tmp_path, "model", config.record(), config.digest()) as log:
        report = run_models(config, log=log)
        again = recorded_report(log.folder)  # read beside the lock the run holds
    assert again.summary == report.summary and again.meta["status"] == "complete" and again.meta["seeds"] == [0, 1]
    # seed 1 loses a run: only seed 0 is whole; every recorded run on request
    (job,) = [p for p in (log.folder / "jobs").iterdir() if p.name.startswith("entropy_exit_seed_1")]
    job.unlink()
    whole = recorded_report(log.folder)
    assert whole.meta == {"status": "partial", "seeds": [0], "recorded": 3, "planned": 4, "folder": str(log.folder)}
    assert {r["seed"] for r in whole.runs} == {0} and whole.config.seeds == 1
    rows = {r["label"]: r for r in whole.summary}
    assert rows["static"]["seeds"] == rows["entropy_exit@0.7"]["seeds"] == 1
    every = recorded_report(log.folder, whole_seeds=False)
    rows = {r["label"]: r for r in every.summary}
    assert every.meta["seeds"] == [0, 1] and rows["static"]["seeds"] == 2 and rows["entropy_exit"]["seeds"] == 1
    with pytest.raises(InputValidationError, match="expected a results folder of `banditformer bench model`"):
        recorded_report(tmp_path)


def _recorded(tmp_path, name: str, **kwargs):
    """Run a tiny configuration into its own results folder; returns (folder, report)."""
    from banditformer.bench.runlog import RunLog

    config = ModelBenchConfig(**{**POINTER, "budgets": [0.7], "lams": [], **kwargs})
    with RunLog.create(tmp_path / name, "model", config.record(), config.digest()) as log:
        return log.folder, run_models(config, log=log)


def test_folders_combine_into_one_report_paired_by_seed_with_variants_named(tmp_path, capsys) -> None:
    from banditformer.bench.models import combined_report, recorded_report
    from banditformer.cli import main

    base, _ = _recorded(tmp_path, "base", controllers=["static", "static_small", "entropy_exit"], seeds=2)
    new, other = _recorded(tmp_path, "new", controllers=["entropy_exit"], seeds=2, objective="sandwich")
    more, _ = _recorded(tmp_path, "more", controllers=["static"], seed=2)  # a third seed of the full model
    report = combined_report([base, new, more])
    rows = {r["label"]: r for r in report.summary}
    variant = "entropy_exit [objective=sandwich]"
    assert list(rows) == ["static", "static_small@0.7", "entropy_exit", "entropy_exit@0.7", variant, f"{variant}@0.7"]
    assert rows["static"]["seeds"] == 3 and rows[variant]["seeds"] == 2 and rows[variant]["controller"] == variant
    # the new folder's runs, paired by seed with the first folder's full model
    full = {r["seed"]: r["accuracy"] for r in report.runs if r["label"] == "static"}
    mine = {r["seed"]: r["accuracy"] for r in other.runs}
    mean, _, n = paired_difference(mine, full)
    assert rows[variant]["accuracy_vs_full"] == pytest.approx(mean) and rows[variant]["paired_seeds"] == n == 2
    # the first folder's own numbers are its report's (the third seed only adds to the full model)
    alone = {r["label"]: r for r in recorded_report(base).summary}
    assert rows["entropy_exit@0.7"]["accuracy"] == alone["entropy_exit@0.7"]["accuracy"]
    assert rows[f"{variant}@0.7"]["accuracy"] == {r["label"]: r for r in other.summary}["entropy_exit@0.7"]["accuracy"]
    # matched cost and the curve areas see the variant as a configuration of its own
    assert rows[f"{variant}@0.7"]["best_at_budget"] == rows["static_small@0.7"]["best_at_budget"]
    low, per_seed = rows["static"]["curve_low"], []
    for seed in (0, 1):  # the variant's own points only: its runs and their calibrated budgets
        run = next(r for r in other.runs if r["seed"] == seed)
        points = [(1 - run["flop_saving"], run["accuracy"])]
        points += [(1 - e["flop_saving"], e["accuracy"]) for e in run["calibrated"] if "error" not in e]
        per_seed.append(curve_area(points, low))
    assert rows[variant]["curve_area"] == pytest.approx(sum(per_seed) / 2)
    assert report.meta["seeds"] == [0, 1, 2] and report.meta["planned"] == 9 and report.meta["status"] == "complete"
    assert [m["variants"] for m in report.meta["folders"]] == [[], ["objective=sandwich"], []]
    assert report.config.seeds == 3 and report.config.controllers == ["static", "static_small", "entropy_exit"]
    # refused, naming why: a different schedule, a run in two folders, a single folder
    other_schedule, _ = _recorded(tmp_path, "longer", controllers=["static"], seed=5, epochs=2)
    with pytest.raises(InputValidationError, match=r"differing from .* in epochs: 2 against 1"):
        combined_report([base, other_schedule])
    with pytest.raises(InputValidationError, match=r"'static' seed 0 in .* and "):
        combined_report([base, base])
    with pytest.raises(InputValidationError, match="at least two results folders"):
        combined_report([base])
    # the command line: several folders, one report
    assert main(["bench", "report", str(base), str(new)]) == 0
    out = capsys.readouterr().out
    assert f"{new}: 2 of 2 runs recorded (complete); reporting seeds [0, 1] (whole seeds only); its configurations " \
        "named [objective=sandwich]" in out
    assert f"  {variant}@0.7" in out  # in the matched-cost section, paired with the first folder's baselines


def test_a_network_operating_curve_gives_the_area_calibrated_on_validation() -> None:
    from banditformer.bench.stats import calibrated_area, curve_area
    from banditformer.controllers.early_exit import THRESHOLD_POINTS

    config = ModelBenchConfig(**POINTER, controllers=["static", "static_small", "entropy_exit", "patience_exit"],
                              budgets=[0.7], lams=[], seeds=2, curve=True)  # fmt: skip
    report = run_models(config)
    runs = {(r["label"], r["seed"]): r for r in report.runs}
    assert "curve" not in runs[("static", 0)]  # no knob, no curve
    run = runs[("entropy_exit", 1)]
    assert [p["value"] for p in run["curve"]] == THRESHOLD_POINTS
    # the curve is the test split as inference scores it: the calibrated budget's point is on it
    entry = run["calibrated"][0]
    point = next(p for p in run["curve"] if p["value"] == entry["value"])
    assert point["accuracy"] == pytest.approx(entry["accuracy"])
    assert point["flop_ratio"] == pytest.approx(1 - entry["flop_saving"])
    assert (point["val_accuracy"], point["val_flop_ratio"]) == pytest.approx((entry["val_accuracy"],
                                                                               entry["val_flop_ratio"]))
    rows = {r["label"]: r for r in report.summary}
    low = rows["static"]["curve_low"]
    per_seed = {}
    assert rows["entropy_exit@0.7"]["seeds"] == 2
    for name in ("entropy_exit", "patience_exit"):
        per_seed[name] = {s: calibrated_area([(p["val_flop_ratio"], p["val_accuracy"], p["accuracy"])
                                              for p in runs[(name, s)]["curve"]], low) for s in (0, 1)}  # fmt: skip
        assert rows[name]["calibrated_area"] == pytest.approx(sum(per_seed[name].values()) / 2)
        if rows[f"{name}@0.7"]["seeds"]:  # a calibrated row carries its controller's area
            assert rows[f"{name}@0.7"]["calibrated_area"] == rows[name]["calibrated_area"]
    assert "calibrated_area" not in rows["static"]
    best = max(per_seed, key=lambda n: rows[n]["calibrated_area"])
    other = next(n for n in per_seed if n != best)
    mean, half, n = paired_difference(per_seed[other], per_seed[best])
    assert rows[other]["calibrated_area_vs_best"] == pytest.approx(mean) and n == 2
    assert rows[other]["calibrated_area_best"] == best and "calibrated_area_vs_best" not in rows[best]
    text = format_model_report(report)
    assert "calibrated on validation at every budget" in text and f"{mean:+.4f} ± {half:.4f} (2 seeds)" in text
    # a static grid (no curves) against the highest calibrated area, by the area of its own points
    small_runs = {s: runs[("static_small@0.7", s)] for s in (0, 1)}
    grid = {s: curve_area([(1 - r["flop_saving"], r["accuracy"])], low) for s, r in small_runs.items()}
    mean, half, n = paired_difference(grid, per_seed[best])
    small = rows["static_small@0.7"]
    assert small["curve_area_vs_calibrated_best"] == pytest.approx(mean) and small["calibrated_area_best"] == best
    assert "curve_area_vs_calibrated_best" not in rows["static"]  # no point below the full cost
    assert "static grids" in text and f"{mean:+.4f} ± {half:.4f} (2 seeds)" in text


def test_calibrated_area_takes_what_validation_picks_at_each_budget() -> None:
    from banditformer.bench.stats import calibrated_area

    # validation's 0.6 point is its most accurate at 0.6, but test is scored wherever validation points
    curve = [(0.4, 0.5, 0.6), (0.6, 0.7, 0.65), (0.6, 0.6, 0.99), (0.8, 0.9, 0.5)]
    expected = (0.6 * 0.2 + 0.65 * 0.2 + 0.5 * 0.2) / 0.8  # 0 below 0.4; a worse test point at 0.8 still taken
    assert calibrated_area(curve, low=0.2) == pytest.approx(expected)
    assert calibrated_area(curve, low=0.2) < curve_area([(r, t) for r, _, t in curve], low=0.2)
    with pytest.raises(ValueError, match="high > low"):
        calibrated_area(curve, low=1.0)
    # the area is the mean of the calibrated accuracy over the budgets (the plotted curve)
    from banditformer.bench.stats import calibrated_accuracy

    grid = [0.2 + 0.8 * (i + 0.5) / 8000 for i in range(8000)]
    assert sum(calibrated_accuracy(curve, b) for b in grid) / len(grid) == pytest.approx(expected, abs=1e-3)
    assert calibrated_accuracy(curve, 0.39) == 0.0 and calibrated_accuracy(curve, 0.7) == 0.65


def test_a_curve_needs_a_knob_and_a_bool() -> None:
    from banditformer.bench.experiment import run_experiment

    with pytest.raises(InputValidationError, match="`curve` to be a bool"):
        ModelBenchConfig(**POINTER, controllers=["static"], curve="yes")
    with pytest.raises(InputValidationError, match="operating points for `curve`, got 'static'"):
        run_experiment("pointer_chasing", "static", task_kwargs={"num_samples": 90}, curve=True)
    plan = plan_models(ModelBenchConfig(**POINTER, controllers=["static", "entropy_exit"], lams=[], curve=True))
    assert [(label, "operating_curve" in kw) for label, _, kw in plan.runs] == [("static", False),
                                                                                ("entropy_exit", True)]
