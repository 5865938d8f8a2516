"""The plots: PNG files of both reports (needs matplotlib), and a clear error without it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import banditformer as bf
from banditformer.bench.bandits import BanditBenchConfig, run_bandits
from banditformer.bench.models import ModelBenchConfig, run_models
from banditformer.bench.plots import plot_model_report, plot_regret, pyplot

TINY = {"task": "digits", "epochs": 1, "batch_size": 128, "d_model": 16, "num_layers": 2, "num_heads": 2}


@pytest.mark.parametrize("log_x", [False, True])
def test_plot_regret_writes_a_png(tmp_path: Path, log_x: bool) -> None:
    pytest.importorskip("matplotlib")
    report = run_bandits(BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=30, seeds=3))
    path = plot_regret(report, tmp_path / "sub" / "regret.png", log_x=log_x)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_plots_are_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = run_models(ModelBenchConfig(controllers=["static", "static_small"], budgets=[0.5], **TINY))
    paths = plot_model_report(report, tmp_path)
    assert [p.name for p in paths] == ["pareto.png", "time.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_operating_curves_add_a_calibrated_curve_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    pointer = {"task": "pointer_chasing", "task_kwargs": {"num_samples": 90}, "epochs": 1, "d_model": 8,
               "num_layers": 3, "num_heads": 2, "exit_heads": True}  # fmt: skip
    config = ModelBenchConfig(controllers=["static", "entropy_exit"], budgets=[0.7], lams=[], curve=True, **pointer)
    paths = plot_model_report(run_models(config), tmp_path)
    assert [p.name for p in paths] == ["pareto.png", "time.png", "curves.png"]
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[2].stat().st_size > 5000


def test_without_matplotlib_a_plot_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(bf.BanditformerError, match=r"expected matplotlib for plots \(pip install 'banditformer"):
        pyplot()
    with pytest.raises(bf.InputValidationError, match="expected a BanditReport, got str"):
        plot_regret("report", tmp_path / "x.png")  # type: ignore[arg-type]
