"""Benchmarks never lose finished work: each finished job is recorded as it finishes, summaries are
written atomically, the folder says complete / partial / interrupted, a killed or interrupted run
resumes to the same numbers as an uninterrupted one, a dead worker loses only its own job, and
Ctrl-C stops within seconds with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest

import banditformer as bf
from banditformer.bench.bandits import BanditBenchConfig, run_bandits
from banditformer.bench.models import ModelBenchConfig
from banditformer.bench.pool import RunInterrupted
from banditformer.bench.report import write_report
from banditformer.bench.runlog import RunLog, config_digest, create_run_folder
from banditformer.core.files import atomic_file, write_atomic

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
#: 6 jobs (3 policies x 2 seed blocks) of about 0.1-0.3 s each on the 2-core CPU
BANDITS = ["--policies", "ucb1", "thompson_beta", "epsilon_greedy", "--horizon", "1500", "--seeds", "4",
           "--seed-block", "2", "--quiet", "--no-plot"]  # fmt: skip
BANDIT_CONFIG = {"problem": "bernoulli_easy", "policies": ["ucb1", "thompson_beta", "epsilon_greedy"],
                 "horizon": 1500, "seeds": 4, "seed_block": 2}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# the pieces: atomic files, folders, the job log


def test_atomic_writes_replace_whole_files_and_a_failed_write_leaves_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    write_atomic(target, '{"old": 1}')
    with pytest.raises(RuntimeError, match="killed"), atomic_file(target) as tmp:
        tmp.write_text('{"new": ')  # half written, then the writer dies
        raise RuntimeError("killed mid-write")
    assert target.read_text() == '{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left
    write_atomic(target, b"bytes too")
    assert target.read_bytes() == b"bytes too"
    with pytest.raises(bf.InputValidationError, match="expected str or bytes"):
        write_atomic(target, 3)  # type: ignore[arg-type]


def test_runs_started_in_the_same_second_get_different_folders(tmp_path: Path) -> None:
    made: list[Path] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        made.append(create_run_folder(tmp_path, "20250101-000000-bandits-abc"))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8 and all(p.is_dir() for p in made)
    assert sorted(p.name for p in made)[:2] == ["20250101-000000-bandits-abc", "20250101-000000-bandits-abc-2"]
    a = RunLog.create(tmp_path / "logs", "bandits", {"x": 1}, "abc", stamp="20250101-000000")
    b = RunLog.create(tmp_path / "logs", "bandits", {"x": 1}, "abc", stamp="20250101-000000")
    assert a.folder != b.folder


def test_an_unwritable_output_folder_fails_before_any_work(tmp_path: Path, capsys) -> None:
    from banditformer.cli import main

    (tmp_path / "a_file").write_text("")
    with pytest.raises(bf.InputValidationError, match=r"expected a results folder that can be created at .*, got: "):
        RunLog.create(tmp_path / "a_file" / "sub", "bandits", {}, "abc")
    start = time.perf_counter()
    assert main(["bench", "bandits", "--horizon", "100000", "--quiet", "--out", str(tmp_path / "a_file")]) == 2
    assert time.perf_counter() - start < 5  # refused before the (long) run, not after it
    err = capsys.readouterr().err
    assert "expected a folder for results at" in err and "got a file" in err


def test_resume_refuses_another_configuration_another_plan_or_a_folder_in_use(tmp_path: Path) -> None:
    log = RunLog.create(tmp_path, "bandits", {"horizon": 50, "policies": ["ucb1"]}, "abc")
    log.begin(["ucb1, seeds 0-1"])
    with pytest.raises(bf.InputValidationError, match="no other process"):
        RunLog.resume(log.folder, "bandits")  # the first one still holds it
    log.close()
    again = RunLog.resume(log.folder, "bandits")
    with pytest.raises(bf.InputValidationError, match=r"horizon: recorded 50, given 60"):
        again.check_config({"horizon": 60, "policies": ["ucb1"]})
    with pytest.raises(bf.InputValidationError, match=r"new: \['kl_ucb, seeds 0-1'\]"):
        again.begin(["ucb1, seeds 0-1", "kl_ucb, seeds 0-1"])
    again.close()
    with pytest.raises(bf.InputValidationError, match="got one of kind 'bandits'"):
        RunLog.resume(log.folder, "model")
    with pytest.raises(bf.InputValidationError, match=r"with run\.json"):
        RunLog.resume(tmp_path, "bandits")


def test_the_configuration_hash_is_the_one_results_folders_are_named_by() -> None:
    import hashlib

    config = {"b": [0.5, 1], "a": "x"}
    assert config_digest(config) == hashlib.sha256(b'{"a": "x", "b": [0.5, 1]}').hexdigest()[:10]
    # the hashes of folders written before: a resume finds their configuration unchanged; the bandit
    # bench's record says its streams since they became per-seed (older folders, 389a4ff98a, hold other numbers)
    bandits = BanditBenchConfig()
    assert bandits.digest() == "3ccf81d794" == config_digest({**asdict(bandits), "streams": "per-seed"})
    assert config_digest(asdict(bandits)) == "389a4ff98a"
    model = ModelBenchConfig(epochs=2, budgets=[0.5], lams=[0.1], dht_budgets=[0.5], seeds=2)
    assert model.digest() == "ec0acb36a8" == config_digest(model.record())
    # fields added since are left out of the record at their defaults, and count once set
    assert set(asdict(model)) - set(model.record()) == {"objective", "eval_shapes", "batch1_samples", "curve"}
    for later in ({"eval_shapes": True}, {"curve": True}):
        assert ModelBenchConfig(epochs=2, budgets=[0.5], lams=[0.1], dht_budgets=[0.5], seeds=2,
                                **later).digest() != "ec0acb36a8"  # fmt: skip
    with pytest.raises(bf.InputValidationError, match="expected the configuration as a dict, got list"):
        config_digest([1])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# the benches: kill, Ctrl-C, a dead worker, then resume


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted `bench bandits` run of BANDITS (in this process)."""
    from banditformer.cli import main

    out = tmp_path_factory.mktemp("uninterrupted")
    assert main(["bench", "bandits", *BANDITS, "--out", str(out)]) == 0
    (folder,) = out.iterdir()
    return folder


def _numbers(folder: Path) -> tuple[list, str]:
    """What must match digit for digit: every result but its timing, and the whole CSV."""
    doc = json.loads((folder / "results.json").read_text())
    timeless = [{k: v for k, v in r.items() if not k.startswith("seconds")} for r in doc["results"]]
    return timeless, (folder / "regret.csv").read_text()


def _default_sigint() -> None:
    # A process started with SIGINT ignored keeps ignoring it (Python then installs no
    # KeyboardInterrupt handler): start the command as a shell would, with the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str]) -> subprocess.Popen:
    # its own process group, as a shell gives a command: a terminal's Ctrl-C signals the whole group
    return subprocess.Popen([sys.executable, "-m", "banditformer.cli", *args], env=ENV, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_default_sigint)  # fmt: skip


def _wait_for_jobs(out: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = [p for p in out.glob("*/jobs/*.json") if not p.name.startswith(".")]
        if len(found) >= n:
            return found[0].parents[1]
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    raise AssertionError(f"no {n} recorded jobs in {timeout} s")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path: Path, uninterrupted: Path) -> None:
    from banditformer.cli import main

    proc = _start(["bench", "bandits", *BANDITS, "--out", str(tmp_path)])
    folder = _wait_for_jobs(tmp_path, 2, proc)
    proc.kill()
    proc.wait()
    recorded = len(list((folder / "jobs").glob("*.json")))
    assert 2 <= recorded < 6, "the kill came too late to test a resume"
    assert json.loads((folder / "status.json").read_text())["status"] == "running"  # what a kill leaves
    assert not (folder / "results.json").exists()
    assert main(["bench", "bandits", "--resume", str(folder), "--quiet", "--no-plot"]) == 0
    assert json.loads((folder / "status.json").read_text())["status"] == "complete"
    assert json.loads((folder / "results.json").read_text())["status"] == "complete"
    assert _numbers(folder) == _numbers(uninterrupted)
    # a resume of a complete folder runs nothing and rewrites the same numbers
    assert main(["bench", "bandits", "--resume", str(folder), "--quiet", "--no-plot", "--seeds", "4"]) == 0
    assert _numbers(folder) == _numbers(uninterrupted)


def test_resume_refuses_flags_that_differ_from_the_recorded_configuration(uninterrupted: Path, capsys) -> None:
    from banditformer.cli import main

    assert main(["bench", "bandits", "--resume", str(uninterrupted), "--horizon", "2000", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "expected the configuration recorded in" in err and "--horizon 2000 (recorded 1500)" in err
    assert json.loads((uninterrupted / "status.json").read_text())["status"] == "complete"  # unchanged


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
@pytest.mark.slow
def test_ctrl_c_stops_within_seconds_with_one_line_and_the_folder_says_interrupted(
    tmp_path: Path, uninterrupted: Path
) -> None:
    from banditformer.cli import main

    proc = _start(["bench", "bandits", *BANDITS, "--workers", "2", "--out", str(tmp_path)])
    folder = _wait_for_jobs(tmp_path, 1, proc)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the main process and its workers get it
    _, err = proc.communicate(timeout=30)
    stopped = time.monotonic() - sent
    assert proc.returncode == 130, (err.decode(), f"SIGINT here: {signal.getsignal(signal.SIGINT)}")
    assert stopped < 10, f"took {stopped:.1f} s to stop"
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("banditformer: interrupted: ") and "--resume" in lines[0], lines
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "interrupted" and status["missing"]
    doc = json.loads((folder / "results.json").read_text())  # what had finished, summarised
    assert doc["status"] == "interrupted" and any(r["error"] == "not run: interrupted" for r in doc["results"])
    assert main(["bench", "bandits", "--resume", str(folder), "--quiet", "--no-plot"]) == 0
    assert _numbers(folder) == _numbers(uninterrupted)


@pytest.mark.slow
def test_a_killed_bench_worker_loses_one_job_by_name_and_the_rest_finish(tmp_path: Path, uninterrupted: Path) -> None:
    import multiprocessing

    config = BanditBenchConfig(**BANDIT_CONFIG)
    log = RunLog.create(tmp_path, "bandits", asdict(config), config.digest())
    killed: list[int] = []

    def kill_one_worker() -> None:  # once a job is recorded, as the out-of-memory killer would
        end = time.monotonic() + 60
        while time.monotonic() < end and not list((log.folder / "jobs").glob("*.json")):
            time.sleep(0.01)
        workers = multiprocessing.active_children()
        if workers:
            os.kill(workers[0].pid, signal.SIGKILL)
            killed.append(workers[0].pid)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    report = run_bandits(config, workers=2, log=log)
    killer.join()
    assert killed
    lost = report.meta["jobs"]["lost"]
    assert report.meta["status"] == "partial" and len(lost) == 1, report.meta
    policy = lost[0].split(",")[0]
    (failed,) = [r for r in report.results if r.error is not None]
    assert failed.policy == policy and "worker process lost" in failed.error and lost[0] in failed.error
    assert sum(r.error is None for r in report.results) == 2  # the other policies finished
    assert len(list((log.folder / "jobs").glob("*.json"))) == 5
    log.close()
    resumed = run_bandits(config, log=RunLog.resume(log.folder, "bandits"))  # runs the lost job only
    assert resumed.meta["status"] == "complete"
    write_report(resumed, tmp_path / "summary")
    assert _numbers(tmp_path / "summary")[1] == _numbers(uninterrupted)[1]


# ---------------------------------------------------------------------------------------------
# bench model


TINY = ["--task", "digits", "--epochs", "1", "--batch-size", "128", "--width", "16", "--layers", "2", "--heads", "2",
        "--controllers", "static", "dht", "--lams", "0.2", "--seeds", "2", "--quiet", "--no-plot"]  # fmt: skip
TIMING = ("wall_time_s", "eval_us_per_sample", "eval_us_per_sample_b1", "train")


def _runs(folder: Path) -> list[dict]:
    doc = json.loads((folder / "results.json").read_text())
    return [{k: v for k, v in r.items() if k not in TIMING} for r in doc["runs"]]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.slow
def test_bench_model_killed_then_resumed_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")  # the digits task
    from banditformer.cli import main

    proc = _start(["bench", "model", *TINY, "--out", str(tmp_path / "killed")])
    folder = _wait_for_jobs(tmp_path / "killed", 1, proc)
    proc.kill()
    proc.wait()
    assert 1 <= len(list((folder / "jobs").glob("*.json"))) < 4, "the kill came too late to test a resume"
    assert main(["bench", "model", "--resume", str(folder), "--quiet", "--no-plot"]) == 0
    assert json.loads((folder / "status.json").read_text())["status"] == "complete"
    assert main(["bench", "model", *TINY, "--out", str(tmp_path / "clean")]) == 0
    (clean,) = (tmp_path / "clean").iterdir()
    assert _runs(folder) == _runs(clean) and len(_runs(folder)) == 4
    assert main(["bench", "model", "--resume", str(folder), "--epochs", "2"]) == 2
    # a flag at the default of a field the folder does not record (added since) is its value
    assert main(["bench", "model", "--resume", str(folder), "--objective", "auto", "--quiet", "--no-plot"]) == 0


def test_bench_model_interrupted_keeps_the_finished_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn")  # the digits task
    from banditformer.bench import models as bench_model
    from banditformer.bench.models import run_models

    config = ModelBenchConfig(task="digits", epochs=1, batch_size=128, d_model=16, num_layers=2, num_heads=2,
                              controllers=["static", "dht"], lams=[0.2], seeds=2)  # fmt: skip
    log = RunLog.create(tmp_path, "model", asdict(config), config.digest())
    real = bench_model._one_run

    def third_is_interrupted(config, label, controller, kwargs, seed):  # runs go seed by seed
        if (label, seed) == ("static", 1):
            raise KeyboardInterrupt
        return real(config, label, controller, kwargs, seed)

    monkeypatch.setattr(bench_model, "_one_run", third_is_interrupted)
    with pytest.raises(RunInterrupted) as info:
        run_models(config, log=log)
    report = info.value.report
    assert report.meta["status"] == "interrupted" and report.meta["jobs"]["missing"] == [
        "static, seed 1",
        "dht lam=0.2, seed 1",
    ]  # the finished runs are the whole of seed 0
    assert [r.get("error") for r in report.runs] == [None, None, "not run: interrupted", "not run: interrupted"]
    assert json.loads((log.folder / "status.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(bench_model, "_one_run", real)
    log.close()
    done = run_models(config, log=RunLog.resume(log.folder, "model"))
    assert done.meta["status"] == "complete" and [r["accuracy"] for r in done.runs[:2]] == [
        r["accuracy"] for r in report.runs[:2]
    ]


def test_a_stop_while_the_summaries_are_written_never_leaves_a_complete_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    pytest.importorskip("matplotlib")
    from banditformer.bench import plots as bench
    from banditformer.cli import main

    def interrupted_plot(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C (or a kill) after results.json, before regret.png

    monkeypatch.setattr(bench, "plot_regret", interrupted_plot)
    args = ["bench", "bandits", "--policies", "ucb1", "--horizon", "30", "--seeds", "2", "--quiet"]
    assert main([*args, "--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == "banditformer: interrupted"
    (folder,) = tmp_path.iterdir()
    assert json.loads((folder / "status.json").read_text())["status"] == "running"  # not complete: resume it
    assert not (folder / "regret.png").exists() and not list(folder.glob(".*"))  # no half-written plot
    monkeypatch.undo()
    assert main(["bench", "bandits", "--resume", str(folder), "--quiet"]) == 0
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "complete" and status["files"] == ["results.json", "regret.csv", "regret.png"]


class _FakeMAB:
    """Just enough of MABWiser's ``MAB`` for the bench's reference runs: UCB1's index."""

    def __init__(self, arms, learning_policy, seed):
        self.n = [0.0] * len(arms)
        self.s = [0.0] * len(arms)

    def fit(self, arms, rewards):
        self.partial_fit(arms, rewards)

    def partial_fit(self, arms, rewards):
        for a, r in zip(arms, rewards, strict=True):
            self.n[a] += 1
            self.s[a] += r

    def predict(self):
        import math

        t = sum(self.n)
        return max(range(len(self.n)), key=lambda a: self.s[a] / self.n[a] + math.sqrt(2 * math.log(t) / self.n[a]))


def test_mabwiser_reference_seeds_are_recorded_jobs_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    fake = types.ModuleType("mabwiser.mab")
    fake.MAB = _FakeMAB
    fake.LearningPolicy = types.SimpleNamespace(UCB1=lambda **kw: "ucb1", ThompsonSampling=lambda **kw: "ts")
    monkeypatch.setitem(sys.modules, "mabwiser", types.ModuleType("mabwiser"))
    monkeypatch.setitem(sys.modules, "mabwiser.mab", fake)
    config = BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=40, seeds=3, mabwiser=True)
    log = RunLog.create(tmp_path, "bandits", asdict(config), config.digest())
    first = run_bandits(config, log=log)
    assert [r.policy for r in first.results] == ["ucb1", "mabwiser:UCB1"] and first.meta["status"] == "complete"
    assert json.loads((log.folder / "run.json").read_text())["jobs"] == [
        "ucb1, seeds 0-2", "mabwiser:UCB1, seed 0", "mabwiser:UCB1, seed 1", "mabwiser:UCB1, seed 2",
    ]  # fmt: skip
    next(p for p in (log.folder / "jobs").iterdir() if p.name.startswith("mabwiser_UCB1_seed_1")).unlink()
    log.close()
    again = run_bandits(config, log=RunLog.resume(log.folder, "bandits"))  # runs the one missing seed
    assert all(a.regret.equal(b.regret) for a, b in zip(first.results, again.results, strict=True))


def test_a_field_is_added_to_the_recorded_configuration_once(tmp_path: Path) -> None:
    log = RunLog.create(tmp_path, "demo", {"n": 3}, config_digest({"n": 3}), stamp="20250101-000000")
    log.add_to_config(streams="per-seed")
    log.close()
    again = RunLog.resume(log.folder, "demo")
    assert again.config == {"n": 3, "streams": "per-seed"}
    with pytest.raises(
        bf.InputValidationError, match=r"expected fields the configuration does not record yet, got \[.n.\]"
    ):
        again.add_to_config(n=4)
    with pytest.raises(bf.InputValidationError, match="JSON-serialisable"):
        again.add_to_config(other=object())
    assert json.loads((log.folder / "run.json").read_text())["config"] == {"n": 3, "streams": "per-seed"}
    again.close()
