"""The reports as text and files: strict JSON with NaN as null, one CSV row per policy, seed and
checkpoint (or per configuration and seed), and anything but a report refused."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

import banditformer as bf
from banditformer.bench.bandits import BanditBenchConfig, run_bandits
from banditformer.bench.report import format_model_report, format_report, json_safe, write_model_report, write_report
from banditformer.bench.results import BanditReport, PolicyRun


def test_write_report_gives_json_and_one_csv_row_per_policy_seed_and_checkpoint(tmp_path: Path) -> None:
    config = BanditBenchConfig(problem="bernoulli_two", policies=["ucb1", "epsilon_greedy"], horizon=30, seeds=3)
    report = run_bandits(config)
    folder = write_report(report, tmp_path / "run")
    doc = json.loads((folder / "results.json").read_text())
    assert doc["config"]["horizon"] == 30 and doc["config_hash"] == config.digest()
    assert [r["policy"] for r in doc["results"]] == ["ucb1", "epsilon_greedy"]
    with open(folder / "regret.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 * len(report.rounds)
    assert float(rows[-1]["cumulative_regret"]) == pytest.approx(float(report.results[1].regret[2, -1]), rel=1e-5)


def test_json_safe_turns_undefined_numbers_into_null() -> None:
    doc = {"a": [1.0, math.nan, (math.inf, -math.inf)], "b": {"c": 2, "d": "x"}}
    assert json_safe(doc) == {"a": [1.0, None, [None, None]], "b": {"c": 2, "d": "x"}}
    json.dumps(json_safe(doc), allow_nan=False)  # strict JSON


def test_a_failed_policy_is_listed_last_and_a_single_seed_has_no_interval(tmp_path: Path) -> None:
    config = BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=10, seeds=2)
    ok = PolicyRun("ucb1", torch.tensor([[1.0, 2.0]], dtype=torch.float64), 0.5, 10)
    report = BanditReport(config, [5, 10], [PolicyRun.unfinished("broken", 1, "RuntimeError: boom"), ok])
    lines = format_report(report).splitlines()
    assert lines[2].startswith("ucb1") and "nan" in lines[2] and lines[-1].endswith("FAILED: RuntimeError: boom")
    doc = json.loads((write_report(report, tmp_path) / "results.json").read_text())
    assert [r["regret_ci95"] for r in doc["results"]] == [None, None] and doc["results"][1]["regret_mean"] == 2.0
    with open(tmp_path / "regret.csv", encoding="utf-8") as f:
        assert [r["cumulative_regret"] for r in csv.DictReader(f)] == ["1", "2"]


@pytest.mark.parametrize("fn", [format_report, format_model_report])
def test_anything_but_a_report_is_refused(fn, tmp_path: Path) -> None:
    with pytest.raises(bf.InputValidationError, match=r"expected a (Bandit|Model)Report, got dict"):
        fn({})
    for write in (write_report, write_model_report):
        with pytest.raises(bf.InputValidationError, match="got list"):
            write([], tmp_path / "never")
    assert not (tmp_path / "never").exists()
