"""The benchmark scripts still run (tiny settings; their figures are not checked here)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    ("script", "args"),
    [
        (
            "policy_throughput.py",
            ["--batches", "1", "8", "--seconds", "0.01", "--policies", "ucb1", "cts", "--no-mabwiser"],
        ),
        (
            "dynamic_execution.py",
            [
                "--batch",
                "4",
                "--seq",
                "8",
                "--width",
                "16",
                "--layers",
                "2",
                "--heads",
                "2",
                "--repeats",
                "1",
                "--ratios",
                "0.5",
                "--kinds",
                "depth",
                "heads",
                "halt",
                "route",
            ],
        ),
        (
            "dht_pareto.py",
            [
                "--task",
                "pointer_chasing",
                "--task-kwargs",
                '{"num_samples": 300}',
                "--epochs",
                "1",
                "--width",
                "16",
                "--layers",
                "2",
                "--heads",
                "2",
                "--lams",
                "0.5",
                "--budgets",
                "0.5",
            ],
        ),
        ("soak.py", ["--steps", "300", "--report-every", "100", "--layers", "3", "--heads", "2"]),
    ],
    ids=["policy_throughput", "dynamic_execution", "dht_pareto", "soak"],
)
def test_benchmark_script_runs(script: str, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", [script, *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(BENCH / script), run_name="__main__")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip()
