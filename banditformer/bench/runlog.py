"""A results folder kept like a database's log: each finished job is recorded durably as it
finishes, summaries are written atomically, the folder says whether it is complete, and a run
that was killed or interrupted resumes where it stopped.

One mechanism for both benches (``bench bandits``, ``bench model``):

- :func:`write_atomic` / :func:`atomic_file`: a temporary file in the same folder, ``fsync``,
  ``os.replace``, ``fsync`` of the folder. A reader sees the old file or the new one, never half
  of one; a kill leaves at most a hidden ``.NAME.PID.tmp*`` file, which the next
  :meth:`RunLog.resume` of that folder removes.
- :func:`create_run_folder`: makes ``<parent>/<stem>`` with ``os.mkdir`` (atomic), adding ``-2``,
  ``-3``, ... when another run took the name in the same second; fails before any work, with
  expected vs got, when the parent cannot hold it.
- :class:`RunLog`: the folder's ``run.json`` (kind, configuration, its hash, the planned job
  keys), ``jobs/`` (one JSON file per finished job) and ``status.json`` (``running``,
  ``complete``, ``partial`` or ``interrupted``).
- :func:`run_jobs`: runs the jobs not yet recorded, in this process or in spawned worker
  processes, recording each as it finishes. A worker that dies loses only the job it was
  running (reported by its key); a new worker takes its place and the other jobs go on. Ctrl-C
  stops the workers at once (they ignore SIGINT, so they print nothing) and raises
  :class:`RunInterrupted` with what had finished.

Job records are data: JSON only (Python's ``json``, which writes ``NaN`` and ``Infinity`` as
such, so that a value read back is bit-identical to the one written), never pickle.

Examples:
    >>> import tempfile
    >>> log = RunLog.create(tempfile.mkdtemp(), "demo", {"n": 3}, "abc", stamp="20250101-000000")
    >>> log.begin(["a", "b"])
    >>> run_jobs(pow, [(2, 3), (3, 2)], keys=["a", "b"], log=log)
    [8, 9]
    >>> sorted(log.recorded().items())
    [('a', 8), ('b', 9)]
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import pickle
import re
import signal
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from banditformer.core.errors import BanditformerError, InputValidationError
from banditformer.core.files import TMP_PATTERN, atomic_file, fsync_dir, write_atomic

__all__ = [
    "STATUSES",
    "RunInterrupted",
    "RunLog",
    "WorkerLostError",
    "atomic_file",
    "create_run_folder",
    "run_jobs",
    "write_atomic",
]

#: What ``status.json`` can say: ``running`` (in progress, or killed without a chance to say
#: so: resume it), ``complete`` (every job finished without error), ``partial`` (every job ended,
#: some failed or lost their worker), ``interrupted`` (stopped by Ctrl-C before every job ran).
STATUSES = ("running", "complete", "partial", "interrupted")


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


def create_run_folder(parent: str | os.PathLike[str], stem: str) -> Path:
    """Make and return a new folder ``parent/stem`` (``stem-2``, ``stem-3``, ... if taken: two runs
    started in the same second get different folders, without a check-then-create race).

    Raises:
        InputValidationError: ``parent`` cannot be created or written (a path under a file, no
            permission, a read-only disk), before any work.
    """
    if not isinstance(stem, str) or not stem or "/" in stem or stem.startswith("."):
        raise InputValidationError(f"expected a plain folder name, got {stem!r}")
    parent = Path(parent)
    if parent.exists() and not parent.is_dir():
        raise InputValidationError(f"expected a folder for results at {str(parent)!r}, got a file")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputValidationError(
            f"expected a results folder that can be created at {str(parent)!r}, got: {exc.strerror or exc}"
        ) from None
    for n in itertools.count(1):
        folder = parent / (stem if n == 1 else f"{stem}-{n}")
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputValidationError(
                f"expected a writable results folder {str(parent)!r}, got: {exc.strerror or exc}"
            ) from None
        fsync_dir(parent)
        return folder
    raise AssertionError("unreachable")  # pragma: no cover


def _job_file(key: str) -> str:
    safe = re.sub(r"[^\w.=@+-]+", "_", key).strip("._")[:60]
    return f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:8]}.json"


def _differences(recorded: Any, given: Any, where: str = "") -> list[str]:
    """Where two JSON values differ, as ``field: recorded ..., given ...`` lines."""
    if isinstance(recorded, dict) and isinstance(given, dict):
        out = []
        for k in sorted(set(recorded) | set(given)):
            name = f"{where}.{k}" if where else str(k)
            if k not in recorded or k not in given:
                out.append(f"{name}: recorded {recorded.get(k, '(none)')!r}, given {given.get(k, '(none)')!r}")
            else:
                out += _differences(recorded[k], given[k], name)
        return out
    return [] if recorded == given else [f"{where}: recorded {recorded!r}, given {given!r}"]


class RunLog:
    """A results folder that records each finished job (see the module docstring).

    Layout: ``run.json`` (``kind``, ``config``, ``config_hash``, ``jobs``: the planned job keys,
    ``created``), ``jobs/*.json`` (``{"key": ..., "value": ...}``, one per finished job),
    ``status.json`` (``status`` in :data:`STATUSES` and counts), beside the bench's summaries.
    While a process uses it, it holds an exclusive lock on the folder (Linux, macOS), so that two
    processes cannot resume one folder at once.

    Make one with :meth:`create` (a new folder) or :meth:`resume` (an existing one); pass it to
    ``run_bandits`` / ``run_models`` as ``log=``.
    """

    RUN = "run.json"
    STATUS = "status.json"
    JOBS = "jobs"

    def __init__(self, folder: Path, kind: str, config: dict[str, Any], digest: str, jobs: list[str] | None) -> None:
        self.folder = folder
        self.kind = kind
        self.config = config
        self.digest = digest
        self.jobs = jobs
        self.resumed = False
        self._lock_fd: int | None = None

    @classmethod
    def create(
        cls, parent: str | os.PathLike[str], kind: str, config: dict[str, Any], digest: str, *, stamp: str | None = None
    ) -> RunLog:
        """A new folder ``<parent>/<stamp>-<kind>-<digest>`` (``stamp``: the local time,
        ``%Y%m%d-%H%M%S``), with ``run.json`` written and synced, so that an unwritable place
        fails here, before any work."""
        if not isinstance(kind, str) or not re.fullmatch(r"[a-z][a-z_]*", kind):
            raise InputValidationError(f"expected a lower-case kind name, got {kind!r}")
        if not isinstance(digest, str) or not re.fullmatch(r"\w+", digest):
            raise InputValidationError(f"expected a configuration hash of letters and digits, got {digest!r}")
        try:
            config = json.loads(json.dumps(config, allow_nan=True))
        except (TypeError, ValueError) as exc:
            raise InputValidationError(f"expected a JSON-serialisable configuration, got: {exc}") from None
        if not isinstance(config, dict):
            raise InputValidationError(f"expected the configuration as a dict, got {type(config).__name__}")
        folder = create_run_folder(parent, f"{stamp or time.strftime('%Y%m%d-%H%M%S')}-{kind}-{digest}")
        log = cls(folder, kind, config, digest, None)
        try:
            (folder / cls.JOBS).mkdir()
            log._write_run()
            log.set_status("running")
        except OSError as exc:
            raise InputValidationError(
                f"expected a writable results folder {str(folder)!r}, got: {exc.strerror or exc}"
            ) from None
        log._lock()
        return log

    @classmethod
    def resume(cls, folder: str | os.PathLike[str], kind: str) -> RunLog:
        """The log of an existing results folder of ``kind``, to run what it is missing; reads and
        locks, changes nothing until :meth:`begin`. Leftover temporary files of killed writes
        are removed."""
        folder = Path(folder)
        what = f"a results folder of `banditformer bench {kind.replace('_', ' ')}` (with {cls.RUN})"
        try:
            doc = json.loads((folder / cls.RUN).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputValidationError(f"expected {what} at {str(folder)!r}, got: {exc}") from None
        jobs = doc.get("jobs") if isinstance(doc, dict) else None
        ok = (
            isinstance(doc, dict)
            and isinstance(doc.get("config"), dict)
            and isinstance(doc.get("config_hash"), str)
            and (jobs is None or (isinstance(jobs, list) and all(isinstance(k, str) for k in jobs)))
        )
        if not ok:
            raise InputValidationError(f"expected {what} at {str(folder)!r}, got a {cls.RUN} without its fields")
        if doc.get("kind") != kind:
            raise InputValidationError(f"expected {what} at {str(folder)!r}, got one of kind {doc.get('kind')!r}")
        if not os.access(folder, os.W_OK):
            raise InputValidationError(f"expected a writable results folder {str(folder)!r}, got a read-only one")
        log = cls(folder, kind, doc["config"], doc["config_hash"], doc.get("jobs"))
        log.resumed = True
        log._lock()
        (folder / cls.JOBS).mkdir(exist_ok=True)
        for sub in (folder, folder / cls.JOBS):
            for p in sub.iterdir():
                if TMP_PATTERN.match(p.name):
                    p.unlink(missing_ok=True)
        return log

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise InputValidationError(
                f"expected no other process using {str(self.folder)!r}, got one holding its lock (a run in progress)"
            ) from None
        self._lock_fd = fd

    def close(self) -> None:
        """Release the folder's lock (also released when the process ends)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write_run(self) -> None:
        doc = {
            "kind": self.kind,
            "config": self.config,
            "config_hash": self.digest,
            "jobs": self.jobs,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        write_atomic(self.folder / self.RUN, json.dumps(doc, indent=1, allow_nan=True))

    def check_config(self, config: dict[str, Any]) -> None:
        """Fail unless ``config`` is the recorded configuration, naming each field that differs
        with both values."""
        given = json.loads(json.dumps(config, allow_nan=True))
        diff = _differences(self.config, given)
        if diff:
            raise InputValidationError(
                f"expected the configuration recorded in {str(self.folder / self.RUN)!r}, got a different one: "
                + "; ".join(diff)
            )

    def begin(self, keys: Sequence[str]) -> None:
        """Check (or, the first time, record) the planned job keys, then mark the folder running."""
        keys = list(keys)
        if len(set(keys)) != len(keys) or not all(isinstance(k, str) for k in keys):
            raise InputValidationError(f"expected distinct job keys, got {keys}")
        if self.jobs is not None and self.jobs != keys:
            new, gone = sorted(set(keys) - set(self.jobs)), sorted(set(self.jobs) - set(keys))
            raise InputValidationError(
                f"expected the jobs recorded in {str(self.folder / self.RUN)!r}, got a different plan "
                f"(new: {new}, no longer planned: {gone}; were plugins added or removed?)"
            )
        if self.jobs is None:
            self.jobs = keys
            self._write_run()
        self.set_status("running")

    def recorded(self) -> dict[str, Any]:
        """``key -> value`` of every job recorded so far (an unreadable record is skipped, with
        a warning, and so runs again)."""
        out: dict[str, Any] = {}
        jobs = self.folder / self.JOBS
        if not jobs.is_dir():
            return out
        for p in sorted(jobs.glob("*.json")):
            if p.name.startswith("."):
                continue
            try:
                doc = json.loads(p.read_text(encoding="utf-8"))
                key, value = doc["key"], doc["value"]
                if not isinstance(key, str) or p.name != _job_file(key):
                    raise ValueError("its key does not match its name")
            except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
                warnings.warn(f"{p}: unreadable job record ({exc}); the job runs again", stacklevel=2)
                continue
            out[key] = value
        return out

    def record(self, key: str, value: Any) -> Any:
        """Write job ``key``'s ``value`` (JSON) durably; returns the value as read back."""
        text = json.dumps({"key": key, "value": value}, allow_nan=True)
        write_atomic(self.folder / self.JOBS / _job_file(key), text)
        return json.loads(text)["value"]

    def set_status(self, status: str, **info: Any) -> None:
        """Write ``status.json`` atomically: ``status`` (one of :data:`STATUSES`), the job counts
        and ``info`` (e.g. ``lost``, ``failed``, ``missing`` job keys, ``files``)."""
        if status not in STATUSES:
            raise InputValidationError(f"expected a status in {STATUSES}, got {status!r}")
        doc = {
            "status": status,
            "kind": self.kind,
            "jobs": len(self.jobs) if self.jobs is not None else None,
            "recorded": sum(not p.name.startswith(".") for p in (self.folder / self.JOBS).glob("*.json")),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "pid": os.getpid(),
            **info,
        }
        write_atomic(self.folder / self.STATUS, json.dumps(doc, indent=1, allow_nan=True))


# ---------------------------------------------------------------------------------------------
# Running jobs


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
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
            import ctypes

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
        with _sigint_ignored():
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
    from multiprocessing import get_context
    from multiprocessing.connection import wait

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
        with _sigint_ignored():  # a second Ctrl-C must not cut the clean-up short
            for w in everyone:
                if w.process.exitcode is None or not w.conn.closed:
                    w.stop(now=not ok)
