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
            ["--batches", "1", "8", "--seconds", "0.01", "--policies", "ucb1", "cts", "--no-mabwiser", "--no-smpy"],
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


def test_dynamic_execution_runs_on_an_adapted_bert(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    pytest.importorskip("transformers")
    args = ["--model", "bert", "--batch", "4", "--seq", "8", "--width", "16", "--layers", "2", "--heads", "2",
            "--repeats", "1", "--ratios", "0.5", "--kinds", "depth", "heads", "halt", "route"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["dynamic_execution.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(BENCH / "dynamic_execution.py"), run_name="__main__")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "model: bert" in out
    # one row per kind and pass: 4 kinds x (forward, fwd+bwd)
    assert sum(line.split()[0] in {"depth", "heads", "halt", "route"} for line in out.splitlines() if line) == 8


def test_policy_throughput_draws_its_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "throughput.png"
    args = ["--batches", "1", "4", "--seconds", "0.01", "--policies", "ucb1", "--no-mabwiser", "--no-smpy",
            "--plot", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["policy_throughput.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(BENCH / "policy_throughput.py"), run_name="__main__")
    assert exit_info.value.code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # batch 1 runs both paths: the batched API with one row and the stepper
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("ucb1 ")][:2] == [
        "batch",
        "stepper",
    ]


def test_policy_throughput_refuses_an_unwritable_plot_path(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    pytest.importorskip("matplotlib")
    args = ["--batches", "1", "--seconds", "0.01", "--policies", "ucb1", "--plot", "/nonexistent/dir/x.png"]
    monkeypatch.setattr(sys, "argv", ["policy_throughput.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(BENCH / "policy_throughput.py"), run_name="__main__")
    assert exit_info.value.code == 2
    assert "expected a writable folder" in capsys.readouterr().err


def test_policy_throughput_times_the_torch_path_with_no_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import json

    from banditformer.bandits import compiled_available, compiled_rounds_enabled

    out = tmp_path / "report.json"
    args = ["--batches", "4", "--seconds", "0.01", "--policies", "ucb1", "--no-mabwiser", "--no-smpy", "--no-stepper",
            "--threads", "1", "--no-compiled", "--json", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["policy_throughput.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(BENCH / "policy_throughput.py"), run_name="__main__")
    assert exit_info.value.code == 0
    report = json.loads(out.read_text())
    assert report["settings"]["compiled_rounds"] is False
    assert any("compiled rounds off" in note for note in report["notes"])
    assert compiled_rounds_enabled() == compiled_available()  # the block ended with the run


def test_policy_throughput_takes_policy_specs(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    args = ["--batches", "4", "--seconds", "0.01", "--policies", "sw_ucb:window=3", "ucb1", "ucb1:c=0.5",
            "--no-smpy", "--no-stepper"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["policy_throughput.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(BENCH / "policy_throughput.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "sw_ucb:window=3" in out and "ucb1:c=0.5" in out
    if "ours/MABWiser" in out:  # MABWiser installed: both UCB1 specs are compared with its UCB1
        compared = [line.split()[0] for line in out.split("banditformer vs the peers")[1].splitlines()[3:] if line]
        assert compared[:2] == ["ucb1", "ucb1:c=0.5"]
    for bad, says in (("nope", "nope"), ("ucb1:c", "expected `key=value` options")):
        monkeypatch.setattr(sys, "argv", ["policy_throughput.py", "--policies", bad, "--seconds", "0.01"])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(BENCH / "policy_throughput.py"), run_name="__main__")
        assert exit_info.value.code == 2 and says in capsys.readouterr().err
