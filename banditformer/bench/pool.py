"""Jobs run in this process or in spawned worker processes, each recorded in a
:class:`~banditformer.bench.runlog.RunLog` as it finishes (:func:`run_jobs`).

A worker runs one job at a time, so the job a dead worker was running is known: it is lost (reported
by its key, :class:`WorkerLostError`), a new worker takes the dead one's place, and the other jobs
go on. Ctrl-C stops the workers at once (they ignore SIGINT, so they print nothing) and raises
:class:`RunInterrupted` with what had finished. Workers are spawned (not forked): they import the
job's function by name and see the plugins installed through entry points, not ones registered at
run time.

Examples:
    >>> import tempfile
    >>> from banditformer.bench.runlog import RunLog
    >>> log = RunLog.create(tempfile.mkdtemp(), "demo", {"n": 3}, "abc", stamp="20250101-000000")
    >>> log.begin(["a", "b"])
    >>> run_jobs(pow, [(2, 3), (3, 2)], keys=["a", "b"], log=log)
    [8, 9]
    >>> sorted(log.recorded().items())
    [('a', 8), ('b', 9)]
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import wait
from typing import Any

import torch

from banditformer.bench.runlog import RunLog
from banditformer.core.errors import BanditformerError, InputValidationError

__all__ = [
    "JobsOutcome",
    "RunInterrupted",
    "WorkerLostError",
    "one_thread",
    "run_bench_jobs",
    "run_jobs",
    "sigint_ignored",
]


class WorkerLostError(BanditformerError):
    """A worker process died (killed, out of memory, ``os._exit``) while it ran a job."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`run_jobs` (a ``KeyboardInterrupt``, so it stops a notebook too).

    Attributes:
        results: one entry per job, its result where ``finished[i]``, else ``None``.
        finished: which jobs had finished (recorded, when there is a log).
        report: set by the bench that ran the jobs: its report of what finished.
    """

    def __init__(self, results: list[Any], finished: list[bool]) -> None:
        super().__init__(f"interrupted after {sum(finished)} of {len(finished)} jobs")
        self.results = results
        self.finished = finished
        self.report: Any = None

    def kept(self, keys: Sequence[str], also: Sequence[str] | set[str] = ()) -> list[Any]:
        """The results to keep, one per job of ``keys``: a finished job's result, or that of a job
        in ``also`` (e.g. one whose worker was lost, already turned into a report of it), else
        ``None``."""
        rows = zip(self.results, self.finished, keys, strict=True)
        return [out if ok or key in also else None for out, ok, key in rows]


def one_thread() -> None:
    """A worker initializer: one intra-op thread (the benches' workers share the CPUs)."""
    torch.set_num_threads(1)


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in the block (main thread only): processes started in it inherit that, so a
    Ctrl-C at the terminal, which reaches the whole process group, does not reach them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes  # here: best effort, on Linux only

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # best effort: without it, an orphan ends at its next job
            pass
    if os.getppid() != parent:
        os._exit(0)


def _worker_main(conn: Any, initializer: Callable[[], None] | None, parent: int) -> None:
    """A worker: run ``(fn, args)`` messages until ``None`` or the parent's end of the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; no traceback per worker
    _die_with_parent(parent)
    if initializer is not None:
        initializer()
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            msg = pickle.loads(data)  # our own process's message on our own pipe, not a file
            if msg is None:
                return
            fn, args = msg
            reply: tuple[str, Any] = ("ok", fn(*args))
        except Exception as exc:
            reply = ("raised", exc)
        try:
            conn.send(reply)
        except (BrokenPipeError, EOFError, ConnectionError):
            return
        except Exception as exc:  # the result or the exception does not pickle
            conn.send(("raised", BanditformerError(f"expected a result that can be sent back, got: {exc}")))


class _Worker:
    def __init__(self, ctx: Any, initializer: Callable[[], None] | None) -> None:
        parent_end, child_end = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child_end, initializer, os.getpid()), daemon=True)
        with sigint_ignored():
            self.process.start()
        child_end.close()
        self.conn = parent_end

    def how_it_died(self) -> str:
        self.process.join(2)
        code = self.process.exitcode
        if code is None:
            return "its pipe closed"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"

    def stop(self, now: bool) -> None:
        with contextlib.suppress(OSError, ValueError):
            if now:
                self.process.terminate()
            else:
                self.conn.send(None)
        self.process.join(0.5 if now else 5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)
        self.conn.close()


def run_jobs(
    fn: Callable[..., Any],
    jobs: Sequence[tuple[Any, ...]],
    *,
    workers: int = 1,
    keys: Sequence[str] | None = None,
    log: RunLog | None = None,
    encode: Callable[[Any], Any] | None = None,
    decode: Callable[[Any], Any] | None = None,
    on_done: Callable[[int], None] | None = None,
    on_error: Callable[[int, Exception], Any] | None = None,
    initializer: Callable[[], None] | None = None,
    in_process: Callable[..., Any] | None = None,
) -> list[Any]:
    """``[fn(*job) for job in jobs]``, skipping the jobs ``log`` has recorded and recording each
    other one as it finishes.

    Args:
        fn: a module-level function (spawned workers import it by name).
        jobs: its argument tuples.
        workers: processes; with 1 (or a single job to run) the jobs run in this process, with
            ``in_process`` (default ``fn``) in its place.
        keys: one distinct name per job (required with ``log``; names lost jobs).
        log: where finished jobs are recorded and found.
        encode, decode: a result to a JSON value and back (default: as is); a fresh result is
            returned as decoded from its record, so a resumed run equals an uninterrupted one.
        on_done: ``on_done(i)`` after job ``i`` ends (recorded or not).
        on_error: ``on_error(i, exception)`` gives the result of a job whose worker died
            (:class:`WorkerLostError`), whose arguments could not be sent, or, in a worker, that
            raised; it is not recorded, so a resume runs it again. Without it the exception
            propagates (after the workers are stopped).
        initializer: called once in each worker before its first job.

    Raises:
        RunInterrupted: on Ctrl-C (SIGINT), within about a second, with the finished results;
            the workers are stopped and what finished is recorded.
    """
    n = len(jobs)
    if keys is not None and (len(keys) != n or len(set(keys)) != n):
        raise InputValidationError(f"expected {n} distinct job keys, got {list(keys)}")
    if log is not None and keys is None:
        raise InputValidationError("expected job keys with a log, got none")
    if not isinstance(workers, int) or workers < 1:
        raise InputValidationError(f"expected `workers` an integer >= 1, got {workers!r}")
    enc = encode or (lambda v: v)
    dec = decode or (lambda v: v)
    results: list[Any] = [None] * n
    finished = [False] * n
    todo: list[int] = []
    recorded = log.recorded() if log is not None else {}
    for i in range(n):
        if keys is not None and keys[i] in recorded:
            try:
                results[i] = dec(recorded[keys[i]])
                finished[i] = True
                continue
            except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as exc:
                warnings.warn(f"job {keys[i]!r}: unusable record ({exc}); it runs again", stacklevel=2)
        todo.append(i)

    def done(i: int, value: Any) -> None:
        if log is not None:
            value = dec(log.record(keys[i], enc(value)))  # type: ignore[index]
        results[i], finished[i] = value, True
        if on_done is not None:
            on_done(i)

    def failed(i: int, exc: Exception) -> None:
        if on_error is None:
            raise exc
        results[i] = on_error(i, exc)
        if on_done is not None:
            on_done(i)

    try:
        if workers <= 1 or len(todo) <= 1:
            local = in_process or fn
            for i in todo:
                done(i, local(*jobs[i]))
        else:
            _pool(fn, jobs, todo, min(workers, len(todo)), keys, initializer, done, failed)
    except KeyboardInterrupt:
        raise RunInterrupted(results, finished) from None
    return results


@dataclass
class JobsOutcome:
    """What became of a bench's jobs (:func:`run_bench_jobs`).

    Attributes:
        results: one per job: its result, or the bench's report of a job that did not finish.
        lost: the keys of jobs whose worker died (or that raised in one): run again on resume.
        missing: the keys of jobs not run because of Ctrl-C.
        failed: the keys of jobs that finished with an error of their own (a result, not run again).
        interrupted: the Ctrl-C, to raise once the report of what finished is made.
    """

    results: list[Any]
    lost: list[str]
    missing: list[str]
    failed: list[str]
    interrupted: RunInterrupted | None

    @property
    def status(self) -> str:
        """``interrupted`` (jobs missing), ``partial`` (jobs lost or failed) or ``complete``."""
        return "interrupted" if self.missing else ("partial" if self.lost or self.failed else "complete")

    def jobs(self) -> dict[str, Any]:
        """The job counts of a report's ``meta["jobs"]``: ``total`` and the keys of each kind."""
        return {"total": len(self.results), "lost": self.lost, "failed": self.failed, "missing": self.missing}

    def finish(self, report: Any, log: RunLog | None) -> Any:
        """``report``, or, after Ctrl-C, :class:`RunInterrupted` raised with it (``log`` marked
        ``interrupted``)."""
        if self.interrupted is None:
            return report
        self.interrupted.report = report
        if log is not None:
            log.set_status("interrupted", lost=self.lost, failed=self.failed, missing=self.missing)
        raise self.interrupted


def run_bench_jobs(
    fn: Callable[..., Any],
    jobs: Sequence[tuple[Any, ...]],
    keys: Sequence[str],
    *,
    unfinished: Callable[[int, str], Any],
    failed: Callable[[Any], bool],
    **options: Any,
) -> JobsOutcome:
    """:func:`run_jobs` for a bench: a job whose worker dies (or that raises in one) becomes
    ``unfinished(i, why)`` and is listed as lost; after Ctrl-C the jobs not run become
    ``unfinished(i, "not run: interrupted")`` and are listed as missing; the other jobs whose result
    is ``failed(result)`` are listed as failed.

    Args:
        fn, jobs, keys: as for :func:`run_jobs`; ``options``: its other keyword arguments but
            ``on_error``.
    """
    lost: list[str] = []

    def on_error(i: int, exc: Exception) -> Any:
        lost.append(keys[i])
        why = f"{type(exc).__name__}: {exc}"
        return unfinished(i, f"worker process lost: {why}" if isinstance(exc, WorkerLostError) else why)

    interrupted: RunInterrupted | None = None
    try:
        results = run_jobs(fn, jobs, keys=keys, on_error=on_error, **options)
    except RunInterrupted as exc:
        interrupted = exc
        results = exc.kept(keys, also=lost)
    missing = [key for key, out in zip(keys, results, strict=True) if out is None]
    results = [out if out is not None else unfinished(i, "not run: interrupted") for i, out in enumerate(results)]
    ended = set(lost) | set(missing)
    bad = [key for key, out in zip(keys, results, strict=True) if key not in ended and failed(out)]
    return JobsOutcome(results, lost, missing, bad, interrupted)


def _pool(
    fn: Callable[..., Any],
    jobs: Sequence[tuple[Any, ...]],
    todo: list[int],
    workers: int,
    keys: Sequence[str] | None,
    initializer: Callable[[], None] | None,
    done: Callable[[int, Any], None],
    failed: Callable[[int, Exception], None],
) -> None:
    """Run ``todo`` on ``workers`` spawned processes, one job at a time each, so that the job a
    dead worker was running is known; a dead worker is replaced while jobs remain."""
    ctx = get_context("spawn")
    pending = deque(todo)
    idle: list[_Worker] = []
    running: dict[_Worker, int] = {}
    everyone: list[_Worker] = []

    def hire() -> _Worker:
        w = _Worker(ctx, initializer)
        everyone.append(w)
        return w

    def name(i: int) -> str:
        return repr(keys[i]) if keys is not None else f"#{i}"

    ok = False
    try:
        idle += [hire() for _ in range(workers)]
        while pending or running:
            while idle and pending:
                w, i = idle.pop(), pending.popleft()
                if not w.process.is_alive():  # died idle: replace it, the job waits
                    pending.appendleft(i)
                    w.stop(now=True)
                    idle.append(hire())
                    continue
                try:
                    w.conn.send((fn, jobs[i]))
                except (BrokenPipeError, ConnectionError):
                    pending.appendleft(i)
                    w.stop(now=True)
                    idle.append(hire())
                    continue
                except Exception as exc:  # the job's arguments do not pickle
                    idle.append(w)
                    failed(i, exc)
                    continue
                running[w] = i
            if not running:
                continue
            ready = set(wait([w.conn for w in running] + [w.process.sentinel for w in running]))
            for w in [w for w in running if w.conn in ready or w.process.sentinel in ready]:
                i = running.pop(w)
                try:
                    msg = w.conn.recv() if w.conn.poll() else None
                except (EOFError, OSError):
                    msg = None
                if msg is None:
                    how = w.how_it_died()
                    w.stop(now=True)
                    if pending:
                        idle.append(hire())
                    lost = WorkerLostError(f"worker process terminated abruptly ({how}) while running job {name(i)}")
                    failed(i, lost)
                    continue
                idle.append(w)
                status, value = msg
                if status == "ok":
                    done(i, value)
                else:
                    failed(i, value)
        ok = True
    finally:
        with sigint_ignored():  # a second Ctrl-C must not cut the clean-up short
            for w in everyone:
                if w.process.exitcode is None or not w.conn.closed:
                    w.stop(now=not ok)
