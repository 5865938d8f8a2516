"""The halting-rule headroom measurement (benchmarks/exit_rules.py): the dual bound is at least
the best assignment of exits within the budget (brute force), the calibrated threshold keeps the
budget on its own split, and the script runs at tiny settings, writes its summary and reuses a
trained network on ``--resume``."""

from __future__ import annotations

import itertools
import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "exit_rules.py"
NS = runpy.run_path(str(SCRIPT))
TINY = ["--task", "pointer_chasing", "--task-kwargs", '{"max_hops": 2, "num_samples": 400}', "--layers", "3",
        "--heads", "2", "--d-model", "16", "--epochs", "1", "--seeds", "2", "--budgets", "0.6", "0.4"]  # fmt: skip


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", [SCRIPT.name, *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    return exit_info.value.code


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=1, max_size=5),
    st.floats(0.3, 1.0),
)
def test_the_dual_bound_is_at_least_every_assignment_within_the_budget(rows: list[list[bool]], budget: float) -> None:
    correct = torch.tensor(rows)
    costs = torch.tensor([0.3, 0.6, 1.0], dtype=torch.float64)
    best = max(
        float(correct[torch.arange(len(rows)), torch.tensor(a)].double().mean())
        for a in itertools.product(range(3), repeat=len(rows))
        if float(costs[list(a)].mean()) <= budget
    )
    bound = NS["dual_bound"](correct, costs, budget)
    assert bound >= best - 1e-12
    assert bound <= 1.0 + 1e-12


def test_the_bound_is_tight_where_the_cheapest_exit_is_always_right() -> None:
    correct = torch.tensor([[True, True], [True, False], [False, True]])
    costs = torch.tensor([0.5, 1.0], dtype=torch.float64)
    # budget 0.5: everyone at exit 1, 2 of 3 right; budget 2/3: the third sample may run on
    assert NS["dual_bound"](correct, costs, 0.5) == pytest.approx(2 / 3)
    assert NS["dual_bound"](correct, costs, 2 / 3) == pytest.approx(1.0)


def test_calibrate_keeps_the_budget_and_stop_at_stops_at_the_first_sure_exit() -> None:
    score = torch.tensor([[0.9, 0.2, 0.0], [0.1, 0.8, 0.0], [0.1, 0.1, 0.0]], dtype=torch.float64)
    assert NS["stop_at"](score, 0.5).tolist() == [0, 1, 2]
    correct = torch.tensor([[True, True, True], [False, True, True], [False, False, True]])
    costs = torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64)
    t = NS["calibrate"](score, correct, costs, 0.6)
    exits = NS["stop_at"](score, t)
    assert float(costs[exits].mean()) <= 0.6
    assert exits.tolist() == [0, 1, 2]  # 1.7 / 3: the only all-correct choice that fits
    assert NS["calibrate"](score, correct, costs, 1.0) == float("inf")  # the full model fits


def test_the_script_runs_writes_its_summary_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "rules"
    assert run([*TINY, "--out", str(out)], monkeypatch) == 0
    doc = json.loads((out / "summary.json").read_text())
    rules = {(r["budget"], r["rule"]) for r in doc["rows"]}
    assert rules == {(b, r) for b in (0.6, 0.4) for r in NS["RULES"]}
    for r in doc["rows"]:
        if r["rule"] != "bound":
            # calibrated on validation: the test ratio may exceed the budget a little, not much
            assert r["flop_ratio"] <= r["budget"] + 0.1
            for n in doc["networks"]:  # no rule above the bound (up to its test FLOPs above the budget)
                at = n["budgets"][str(r["budget"])]
                assert at[r["rule"]]["accuracy"] <= at["bound"]["accuracy"] + 0.02
    assert set(doc["by_difficulty"]) == {"1", "2"}
    first = (out / "net0.pt").stat().st_mtime_ns
    assert run([*TINY, "--out", str(out), "--resume"], monkeypatch) == 0
    assert (out / "net0.pt").stat().st_mtime_ns == first  # reused, not retrained
    assert json.loads((out / "summary.json").read_text())["rows"] == doc["rows"]


def test_bad_options_fail_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    with pytest.raises(SystemExit):
        NS["parse_args"](["--budgets", "1.5"])
    assert "expected --budgets in (0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        NS["parse_args"](["--controller", "nope"])
    assert "expected --controller among" in capsys.readouterr().err
