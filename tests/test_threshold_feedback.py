"""The feedback-design measurement of threshold_bandit (benchmarks/threshold_feedback.py): every
arm's true mean reward is the bandit's own reward on known exits (a hand-computed case), and the
script runs at tiny settings, writes its summary and reuses a trained network on ``--resume``."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

from banditformer.bandits import UCB1
from banditformer.controllers.threshold_bandit import ThresholdBandit

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "threshold_feedback.py"
TINY = ["--task-kwargs", '{"max_hops": 2, "num_samples": 300}', "--layers", "2", "--heads", "2", "--d-model", "16",
        "--train-epochs", "1", "--net-seeds", "1", "--bandit-seeds", "2", "--reveals", "0", "1",
        "--feedbacks", "own", "lower"]  # fmt: skip


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", [SCRIPT.name, *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    return exit_info.value.code


def test_arm_means_are_the_bandits_reward_on_known_exits() -> None:
    arm_means = runpy.run_path(str(SCRIPT))["arm_means"]
    ctrl = ThresholdBandit(2, 2, 1e6, (0.5, 1.0), policy=UCB1(2), thresholds=(0.5, 0.95), lam=0.1)
    probs = torch.tensor([[[0.9, 0.1], [0.99, 0.01]], [[0.6, 0.4], [0.2, 0.8]]])  # (N=2, L=2, C=2)
    means = arm_means(ctrl, probs.log(), torch.tensor([0, 1]), 0.1)
    # threshold 0.5: both exit at 1 (cost 0.5), qualities 0.9 and 0.4; 0.95: both run on (cost 1), 0.99 and 0.8
    want = [((0.9 + 0.05) + (0.4 + 0.05)) / 2 / 1.1, (0.99 + 0.8) / 2 / 1.1]
    torch.testing.assert_close(means, torch.tensor(want, dtype=torch.float64))


def test_the_script_runs_writes_its_summary_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    out = tmp_path / "feedback"
    assert run([*TINY, "--out", str(out)], monkeypatch) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["feedback"], r["reveal"]) for r in summary["rows"]] == [("own", 0.0), ("own", 1.0), ("lower", 0.0),
                                                                        ("lower", 1.0)]  # fmt: skip
    assert all(r["runs"] == 2 for r in summary["rows"])
    assert "| feedback | reveal |" in capsys.readouterr().out
    network = out / "net0.pt"
    state = torch.load(network, weights_only=True)
    assert state["train_logits"].shape[1] == 2
    # reveal 1: every training sample runs to full depth, and pays the last exit's cost
    assert summary["rows"][1]["train_flop_ratio"][0] == pytest.approx(float(state["exit_costs"][-1]))
    assert summary["rows"][0]["train_flop_ratio"][0] <= summary["rows"][1]["train_flop_ratio"][0]
    mtime = network.stat().st_mtime_ns
    assert run([*TINY, "--out", str(out), "--resume"], monkeypatch) == 0
    assert network.stat().st_mtime_ns == mtime and not list(out.glob("*.tmp"))
    assert json.loads((out / "summary.json").read_text())["rows"] == summary["rows"]  # the same runs again
