"""Jobs in this process or in worker processes: each recorded as it finishes and not run again, a
dead worker loses only its own job, Ctrl-C raises RunInterrupted with what finished, and bad
arguments are refused before any job runs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

import banditformer as bf
from banditformer.bench.pool import RunInterrupted, WorkerLostError, one_thread, run_jobs, sigint_ignored
from banditformer.bench.runlog import RunLog


def test_the_log_records_each_job_and_a_second_pass_runs_only_what_is_missing(tmp_path: Path) -> None:
    log = RunLog.create(tmp_path, "demo", {"n": 4}, "abc")
    keys = ["a", "b", "c", "d"]
    log.begin(keys)
    calls: list[int] = []

    def square(x: int) -> int:
        calls.append(x)
        if x == 2:
            raise KeyboardInterrupt  # Ctrl-C during the third job
        return x * x

    with pytest.raises(RunInterrupted) as info:
        run_jobs(square, [(0,), (1,), (2,), (3,)], keys=keys, log=log)
    assert info.value.finished == [True, True, False, False] and info.value.results[:2] == [0, 1]
    assert log.recorded() == {"a": 0, "b": 1}
    log.close()
    again = RunLog.resume(log.folder, "demo")
    calls.clear()
    assert run_jobs(lambda x: x * x, [(0,), (1,), (2,), (3,)], keys=keys, log=again) == [0, 1, 4, 9]
    assert run_jobs(square, [(0,), (1,), (2,), (3,)], keys=keys, log=again) == [0, 1, 4, 9] and calls == []
    # a damaged record (not one our atomic writes leave) runs again, with a warning
    record = next(p for p in (log.folder / "jobs").iterdir() if p.name.startswith("d-"))
    record.write_text('{"key": "d", "val')
    with pytest.warns(UserWarning, match="unreadable job record"):
        assert run_jobs(lambda x: -x, [(0,), (1,), (2,), (3,)], keys=keys, log=again) == [0, 1, 4, -3]


def _square_or_die(x: int) -> int:
    if x == 1:
        os._exit(3)  # a worker that exits under the job
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # the out-of-memory killer, say
    time.sleep(0.05)
    return x * x


@pytest.mark.slow
def test_a_dead_worker_loses_only_its_own_job_and_a_new_one_takes_its_place(tmp_path: Path) -> None:
    log = RunLog.create(tmp_path, "demo", {}, "abc")
    keys = [f"job {x}" for x in range(6)]
    log.begin(keys)
    errors: dict[int, Exception] = {}
    out = run_jobs(_square_or_die, [(x,) for x in range(6)], workers=2, keys=keys, log=log,
                   on_error=lambda i, exc: errors.setdefault(i, exc) and None)  # fmt: skip
    assert [out[x] for x in (0, 2, 4, 5)] == [0, 4, 16, 25]  # every other job finished
    assert set(errors) == {1, 3} and all(isinstance(e, WorkerLostError) for e in errors.values())
    assert "exit status 3" in str(errors[1]) and "'job 1'" in str(errors[1])
    assert "SIGKILL" in str(errors[3]) and "'job 3'" in str(errors[3])
    assert sorted(log.recorded()) == ["job 0", "job 2", "job 4", "job 5"]  # lost jobs run again on resume


def _die_on_one(x: int) -> int:
    if x == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # a worker killed (out of memory, say)
    return x * 10


def test_a_dead_worker_is_its_jobs_error_or_stops_the_run_without_on_error() -> None:
    out = run_jobs(_die_on_one, [(0,), (1,), (2,), (3,)], workers=2, on_error=lambda i, exc: ("lost", i))
    assert out == [0, ("lost", 1), 20, 30]  # only the dead worker's job is lost; a new worker runs the rest
    with pytest.raises(WorkerLostError, match=r"terminated abruptly \(killed by SIGKILL\) while running job #1"):
        run_jobs(_die_on_one, [(0,), (1,)], workers=2)


def test_one_process_runs_in_process_and_a_worker_gets_one_thread() -> None:
    assert run_jobs(pow, [(2, 3), (3, 2)], in_process=lambda a, b: a - b) == [-1, 1]
    assert run_jobs(torch.get_num_threads, [(), ()], workers=2, initializer=one_thread) == [1, 1]
    threads = torch.get_num_threads()
    try:
        one_thread()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_sigint_is_ignored_in_the_block_and_restored_after() -> None:
    before = signal.getsignal(signal.SIGINT)
    with sigint_ignored():
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) == before


def test_an_interruption_keeps_the_finished_and_the_given_jobs() -> None:
    stop = RunInterrupted(["a", None, "c"], [True, False, False])
    assert str(stop) == "interrupted after 1 of 3 jobs" and isinstance(stop, KeyboardInterrupt)
    assert stop.kept(["x", "y", "z"]) == ["a", None, None]
    assert stop.kept(["x", "y", "z"], also={"z"}) == ["a", None, "c"]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"keys": ["a"]}, "expected 2 distinct job keys, got ['a']"),
        ({"keys": ["a", "a"]}, "expected 2 distinct job keys, got ['a', 'a']"),
        ({"workers": 0}, "expected `workers` an integer >= 1, got 0"),
        ({"log": "a log"}, "expected job keys with a log, got none"),
    ],
)
def test_bad_arguments_are_refused_before_any_job(kwargs: dict, says: str) -> None:
    ran: list[int] = []
    with pytest.raises(bf.InputValidationError) as info:
        run_jobs(lambda x: ran.append(x), [(1,), (2,)], **kwargs)
    assert str(info.value) == says and ran == []
