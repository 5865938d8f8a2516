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


def test_the_demo_with_a_budget_calibrates_dht_to_it_for_inference(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["demo", "--task", "pointer_chasing", "--epochs", "1", "--width", "16", "--layers", "3", "--heads", "2"]
    assert main([*args, "--budget", "0.6", "--quiet"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("  calibrated on validation"))
    saving = float(line.split()[-1].rstrip("%")) / 100
    assert "DHT (budget 0.6)" in out and 1 - saving <= 0.6 + 0.05  # the test split's ratio near the budget


# ------------------------------------------------------------------ issue 12: classes 4 and 8
@pytest.mark.parametrize(
    ("argv", "usage", "says"),
    [
        (["bench", "bandits", "--horizn", "5"], "usage: banditformer bench bandits", "did you mean --horizon?"),
        (["bench", "model", "--controler", "dht"], "usage: banditformer bench model", "did you mean --controllers?"),
        (["bench", "bandits", "--problem", "bernoulli_eazy"], "usage: banditformer bench bandits",
         "unknown problem 'bernoulli_eazy'; expected one of: bernoulli_close, "),
        (["bench", "model", "--task", "digit"], "usage: banditformer bench model", "did you mean 'digits'?"),
        (["demo", "--task", "imagenet"], "usage: banditformer demo", "unknown task 'imagenet'"),
        (["bench", "modle"], "usage: banditformer bench ", "did you mean model?"),
    ],
)  # fmt: skip
def test_usage_errors_show_the_subcommands_usage_and_the_closest_name(argv, usage, says, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith(usage) and says in err, err
    assert "usage: banditformer [-h]" not in err  # not the top-level usage


def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    from banditformer.bench import experiment

    def refuse(*args, **kwargs):
        raise AssertionError("a run started before the options were checked")

    monkeypatch.setattr(experiment, "run_experiment", refuse)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--lam", "-1"], "expected `--lam` in [0, inf], got -1.0"),
        (["--warmup", "2"], "expected `--warmup` in [0, 1), got 2.0"),
        (["--budget", "0"], "expected `--budget` in (0, 1], got 0.0"),
        (["--budget", "1.5"], "expected `--budget` in (0, 1], got 1.5"),
        (["--epochs", "0"], "expected `--epochs` in [1, inf], got 0"),
        (["--width", "10", "--heads", "3"], "expected `--width` to be a multiple of `--heads` (3), got 10"),
        (["--seed", str(2**64)], "expected `--seed` in [0, 9223372036854775807], got 18446744073709551616"),
        (["--width", str(2**17), "--layers", "512"], "to fit in the"),
    ],
)
def test_the_demo_checks_every_option_before_the_first_run(flags, says, monkeypatch, capsys) -> None:
    _no_training(monkeypatch)
    assert main(["demo", "--task", "pointer_chasing", *flags]) == 2
    assert says in capsys.readouterr().err


def test_bench_model_fails_on_a_bad_controller_option_before_any_run(tmp_path, monkeypatch, capsys) -> None:
    _no_training(monkeypatch)
    argv = ["bench", "model", "--task", "pointer_chasing", "--task-kwargs", '{"num_samples": 60}', "--controllers",
            "static", "dht", "--controller-kwargs", '{"dht": {"head_rewrd": "x"}}', "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "expected arguments matching controller 'dht'" in err and "(configuration 'dht lam=0.05')" in err
    assert list(tmp_path.iterdir()) == []  # no results folder either


def test_missing_matplotlib_is_refused_before_the_run_unless_no_plot(tmp_path, monkeypatch, capsys) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    argv = ["bench", "bandits", "--problem", "bernoulli_two", "--policies", "ucb1", "--horizon", "20", "--seeds", "2",
            "--quiet", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    assert "expected matplotlib for the plots (pip install 'banditformer[bench]'), or --no-plot" in (
        capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []
    assert main([*argv, "--no-plot"]) == 0


def test_more_workers_than_cpus_warns_and_runs(tmp_path, monkeypatch, capsys) -> None:
    from banditformer import cli

    monkeypatch.setattr(cli, "cpu_count", lambda: 1)
    argv = ["bench", "bandits", "--problem", "bernoulli_two", "--policies", "ucb1", "--horizon", "20", "--seeds", "2",
            "--quiet", "--no-plot", "--out", str(tmp_path)]  # fmt: skip
    assert main([*argv, "--workers", "2"]) == 0
    err = capsys.readouterr().err
    assert "banditformer: warning: --workers 2 is more than the 1 CPU(s) this process may use" in err
    assert main([*argv, "--workers", "1"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_toml_file_that_is_not_utf8_or_misspells_a_key_is_a_clear_error(tmp_path, capsys) -> None:
    config = tmp_path / "bench.toml"
    config.write_bytes('problem = "bernoulli_two"\n# r\xe9sum\xe9\n'.encode("latin-1"))
    assert main(["bench", "bandits", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "expected a UTF-8 TOML file at" in err and "got byte b'\\xe9' at offset 29" in err
    assert "Traceback" not in err and "UnicodeDecodeError" not in err
    config.write_text("horizn = 5\n")
    assert main(["bench", "bandits", "--config", str(config)]) == 2
    assert "got unknown ['horizn']; did you mean 'horizon'?" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "banditformer.cli", "plugins"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # like `| head` that has read enough: every write now fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err


def test_bench_workers_zero_is_refused_before_a_results_folder_exists(tmp_path, capsys) -> None:
    argv = ["bench", "bandits", "--policies", "ucb1", "--horizon", "20", "--seeds", "2", "--no-plot", "--quiet"]
    assert main([*argv, "--workers", "0", "--out", str(tmp_path)]) == 2
    assert "expected `workers` in [1, inf], got 0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_results_folder_that_cannot_be_written_any_more_gives_one_line(tmp_path, monkeypatch, capsys) -> None:
    import errno
    import json

    import banditformer.bench.report as bench

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bench, "write_report", full_disk)
    argv = ["bench", "bandits", "--policies", "ucb1", "--horizon", "20", "--seeds", "2", "--no-plot", "--quiet"]
    assert main([*argv, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "got OSError: No space left on device; the jobs that finished are recorded" in err[0]
    (folder,) = tmp_path.iterdir()
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "interrupted" and "No space left" in status["error"]
    assert "--resume" in err[0] and len(list((folder / "jobs").iterdir())) == 1


def test_the_objective_flag_offers_every_training_objective() -> None:
    from banditformer.cli import build_parser
    from banditformer.training import OBJECTIVES

    bench_model = build_parser()._bench_parsers["model"]  # type: ignore[attr-defined]
    (flag,) = [a for a in bench_model._actions if a.dest == "objective"]
    assert tuple(flag.choices) == OBJECTIVES  # the list is spelt out so that the CLI starts without the trainer


# ------------------------------------------------ issue 15.3: logs from the bench, `banditformer ope`
def test_bench_logs_and_ope_estimates_from_them(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    logs = tmp_path / "logs"
    argv = ["bench", "bandits", "--problem", "bernoulli_easy", "--policies", "epsilon_greedy:epsilon=0.5", "--seeds",
            "2", "--horizon", "400", "--quiet", "--no-plot", "--out", str(tmp_path / "runs"),
            "--log-dir", str(logs)]  # fmt: skip
    assert main(argv) == 0
    assert "logs.json" in capsys.readouterr().out
    files = sorted(str(p) for p in logs.glob("*.pt"))
    assert len(files) == 2
    out = tmp_path / "ope" / "estimates.json"
    assert main(["ope", "--log", *files, "--policy", "ucb1", "--policy", "epsilon_greedy:epsilon=0.0", "--no-learn",
                 "--greedy", "--json", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "800 rounds, 5 arms" in text and "ucb1" in text and "dr" in text
    doc = json.loads(out.read_text())
    assert [t["policy"] for t in doc["targets"]] == ["ucb1", "epsilon_greedy:epsilon=0.0"]
    for t in doc["targets"]:  # a fresh greedy target plays arm 0, the best (0.9): the estimators find it
        for name in ("ips", "snips", "dr"):  # (DM's interval counts the rounds' spread, not its model's error)
            assert t["estimates"][name]["low"] <= 0.9 <= t["estimates"][name]["high"], (t["policy"], name, t)
        assert abs(t["estimates"]["dm"]["value"] - 0.9) < 0.05
        assert 0 < t["effective_sample_size"] < 800
    assert main(["ope", "--log", files[0], "--policy", "thompson_beta", "--estimators", "ips", "--batch", "50"]) == 0
    assert "thompson_beta" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--policy", "cts"], "policy 'cts': expected a one-arm Policy to evaluate"),
        (["--policy", "linucb"], "policy 'linucb': expected `context_dim`"),
        (["--policy", "ucb9"], "expected a registered policy, got 'ucb9'"),
        (["--policy", "ucb1:nope=1"], "nope"),
        (["--policy", "ucb1", "--estimators", "ips", "best"], "expected --estimators among"),
        (["--policy", "ucb1", "--batch", "0"], "expected `--batch` in [1, inf], got 0"),
        (["--policy", "ucb1", "--policy", "ucb1"], "expected each policy spec once"),
    ],
)
def test_ope_checks_everything_before_any_estimate(extra, says, tmp_path, capsys) -> None:
    import torch

    from banditformer.ope import BanditLog

    log = BanditLog(torch.tensor([0, 1, 0, 1]), torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.full((4,), 0.5), 2)
    path = log.save(tmp_path / "log.pt")
    out = tmp_path / "out.json"
    assert main(["ope", "--log", str(path), "--json", str(out), *extra]) == 2
    assert says in capsys.readouterr().err
    assert not out.exists()


def test_ope_refuses_a_missing_log_and_an_unwritable_json(tmp_path, capsys) -> None:
    assert main(["ope", "--log", str(tmp_path / "none.pt"), "--policy", "ucb1"]) == 2
    assert "expected a bandit log file at" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["ope", "--log", "x.pt", "--policy", "ucb1", "--json", str(tmp_path / "file" / "o.json")]) == 2
    assert "expected --json in a writable folder" in capsys.readouterr().err


def test_bench_logs_of_a_combinatorial_problem_are_refused_before_a_results_folder(tmp_path, capsys) -> None:
    argv = ["bench", "bandits", "--problem", "topk_semibandit", "--policies", "cts", "--horizon", "5", "--seeds", "1",
            "--quiet", "--no-plot", "--out", str(tmp_path / "runs"), "--log-dir", str(tmp_path / "logs")]  # fmt: skip
    assert main(argv) == 2
    assert "expected a one-arm problem to log" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "logs").exists()


def test_bench_report_prints_a_folder_so_far_and_checks_out_first(tmp_path, capsys) -> None:
    import json

    argv = ["bench", "model", "--task", "pointer_chasing", "--task-kwargs", '{"num_samples": 90}', "--epochs", "1",
            "--width", "8", "--layers", "3", "--heads", "2", "--exit-heads", "--controllers", "static",
            "entropy_exit", "--budgets", "0.7", "--lams", "--seeds", "2", "--batch1-samples", "0", "--no-plot",
            "--quiet", "--out", str(tmp_path / "runs")]  # fmt: skip
    assert main(argv) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    table = capsys.readouterr().out.split("\n\n* on the Pareto front")[0].split("\n\n", 1)[1]
    assert main(["bench", "report", str(folder)]) == 0  # complete: the run's own table
    assert capsys.readouterr().out.split("\n\n", 1)[1].rstrip("\n") == table
    for job in (folder / "jobs").glob("static_seed_1-*.json"):
        job.unlink()
    assert main(["bench", "report", str(folder), "--out", str(tmp_path / "README" / "x"), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert f"{folder}: 3 of 4 runs recorded (partial); reporting seeds [0] (whole seeds only)" in out
    assert sorted(p.name for p in (tmp_path / "README" / "x").iterdir()) == ["results.json", "runs.csv"]
    written = json.loads((tmp_path / "README" / "x" / "results.json").read_text())
    assert {r["seed"] for r in written["runs"]} == {0} and written["status"] == "partial"
    (folder / "jobs" / "static_seed_1-x.json").write_text("{}")  # unreadable: warned, skipped
    with pytest.warns(UserWarning, match="unreadable job record"):
        assert main(["bench", "report", str(folder), "--all-runs"]) == 0
    assert "reporting seeds [0, 1] (every recorded run)" in capsys.readouterr().out
    (folder / "jobs" / "static_seed_1-x.json").unlink()
    # a place that cannot take the files is refused before the folder is read; nothing is made
    (tmp_path / "file").write_text("")
    assert main(["bench", "report", str(folder), "--out", str(tmp_path / "file" / "x")]) == 2
    assert "expected --out to be a writable folder or one that can be made" in capsys.readouterr().err
    assert main(["bench", "report", str(tmp_path)]) == 2
    assert "expected a results folder of `banditformer bench model`" in capsys.readouterr().err
    # the operating curves are on by default; a resume keeps what the folder recorded
    assert "calibrated on validation at every budget" in table
    assert main(["bench", "model", "--resume", str(folder), "--no-curve", "--quiet", "--no-plot"]) == 2
    assert "--curve False (recorded True)" in capsys.readouterr().err
    pytest.importorskip("matplotlib")
    assert main(["bench", "report", str(folder), "--out", str(tmp_path / "plots")]) == 0
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["curves.png", "pareto.png", "results.json",
                                                                       "runs.csv", "time.png"]  # fmt: skip
