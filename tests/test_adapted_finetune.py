"""The adapted-encoder experiment (benchmarks/adapted_finetune.py) still runs, at tiny settings:
every stage, the per-seed files, ``--resume`` and the report (its figures are not checked)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "adapted_finetune.py"
TINY = ["--samples", "200", "--full-epochs", "1", "--finetune-epochs", "1", "--hidden", "16", "--layers", "3",
        "--heads", "2", "--intermediate", "32", "--budgets", "0.5", "--batch-size", "32"]  # fmt: skip


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", [SCRIPT.name, *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    return exit_info.value.code


def test_adapted_finetune_runs_resumes_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    pytest.importorskip("transformers")
    out = tmp_path / "issue16"
    assert run([*TINY, "--seeds", "1", "--out", str(out)], monkeypatch) == 0
    first = json.loads((out / "seed0.json").read_text())
    assert set(first) >= {"original", "original_more", "halting", "static", "seconds"}
    assert set(first["halting"]) == {"entropy_exit", "bandit_halting"}
    assert all(entry["equal_to_original_before"] for entry in first["halting"].values())
    assert [s["depth"] for s in first["halting"]["entropy_exit"]["depths"]] == [1, 2, 3]
    assert first["static"]  # the smaller static model at the budget's depth
    assert "| original, full (3 blocks) |" in capsys.readouterr().out

    # a second seed resumes: seed 0's file is kept as it was, seed 1's is added
    mtime = (out / "seed0.json").stat().st_mtime_ns
    assert run([*TINY, "--seeds", "2", "--out", str(out), "--resume"], monkeypatch) == 0
    assert (out / "seed0.json").stat().st_mtime_ns == mtime
    assert (out / "seed1.json").exists() and not list(out.glob("*.tmp"))
    assert "| 2 |" in capsys.readouterr().out  # rows over both seeds
    assert run(["--report", "--out", str(out)], monkeypatch) == 0
    assert json.loads((out / "summary.json").read_text())["rows"]
