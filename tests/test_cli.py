import subprocess
import sys

import pytest

from banditformer.cli import main


def test_plugins_lists_every_kind_with_its_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "plugins loaded: builtin" in out
    for line in ("ucb1", "cts", "static", "cpu", "bernoulli_easy"):
        assert any(row.split()[:2] == [line, "builtin"] for row in out.splitlines() if row.strip()), line


def test_bandits_prints_a_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bandits", "--horizon", "50", "--seeds", "3", "--policies", "ucb1", "thompson_beta"]) == 0
    out = capsys.readouterr().out
    assert "regret (mean ± 95% CI)" in out and "ucb1" in out and "thompson_beta" in out


def test_bad_input_fails_before_work(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bandits", "--problem", "nope"])
    assert "unknown problem 'nope'; expected one of" in capsys.readouterr().err
    assert main(["bandits", "--horizon", "0"]) == 2
    assert "expected `horizon` in [1, inf], got 0" in capsys.readouterr().err
    assert main(["bandits", "--policies", "ucb9", "--horizon", "5"]) == 2
    assert "expected a registered policy, got 'ucb9'; available:" in capsys.readouterr().err


def test_console_script_entry_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "banditformer.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("banditformer ")


def test_bandits_on_a_gaussian_problem_picks_the_policies_that_fit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bandits", "--problem", "gaussian", "--horizon", "20", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "thompson_gaussian" in out and "ucb1" not in out  # UCB1 needs rewards in [0, 1]
    assert main(["bandits", "--policies", "cts", "--horizon", "5"]) == 2
    assert "expected a context-free, one-arm policy" in capsys.readouterr().err


def test_demo_trains_dht_and_the_full_model(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["demo", "--task", "pointer_chasing", "--epochs", "1", "--width", "16", "--layers", "2", "--heads", "2"]
    assert main([*args, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "full model" in out and "DHT (lambda=0.1)" in out and "FLOP saving (inference)" in out
    with pytest.raises(SystemExit):
        main(["demo", "--task", "imagenet"])
    assert "unknown task 'imagenet'" in capsys.readouterr().err
