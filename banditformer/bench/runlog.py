"""A results folder kept like a database's log: each finished job is recorded durably as it
finishes, the folder says whether it is complete, and a run that was killed or interrupted resumes
where it stopped. One mechanism for both benches (``bench bandits``, ``bench model``):

- :func:`create_run_folder`: makes ``<parent>/<stem>`` with ``os.mkdir`` (atomic), adding ``-2``,
  ``-3``, ... when another run took the name in the same second; fails before any work, with
  expected vs got, when the parent cannot hold it.
- :class:`RunLog`: the folder's ``run.json`` (kind, configuration, its hash, the planned job
  keys), ``jobs/`` (one JSON file per finished job) and ``status.json`` (``running``,
  ``complete``, ``partial`` or ``interrupted``).
- :func:`config_digest`: the configuration's hash, which names the folder.

Every file is written through :func:`banditformer.core.files.write_atomic` (a temporary file in
the same folder, ``fsync``, ``os.replace``, ``fsync`` of the folder): a reader sees the old file or
the new one, never half of one; a kill leaves at most a hidden ``.NAME.PID.tmp*`` file, which the
next :meth:`RunLog.resume` of that folder removes. The jobs themselves run through
:func:`banditformer.bench.pool.run_jobs`, which records each in the log as it finishes.

Job records are data: JSON only (Python's ``json``, which writes ``NaN`` and ``Infinity`` as
such, so that a value read back is bit-identical to the one written), never pickle.

Examples:
    >>> import tempfile
    >>> log = RunLog.create(tempfile.mkdtemp(), "demo", {"n": 3}, config_digest({"n": 3}), stamp="20250101-000000")
    >>> log.folder.name
    '20250101-000000-demo-389d42d9a5'
    >>> log.begin(["a", "b"])
    >>> log.record("a", 8)
    8
    >>> log.recorded()
    {'a': 8}
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from banditformer.core.errors import InputValidationError
from banditformer.core.files import TMP_PATTERN, fsync_dir, write_atomic

__all__ = ["STATUSES", "RunLog", "check_log", "config_digest", "create_run_folder"]

#: What ``status.json`` can say: ``running`` (in progress, or killed without a chance to say
#: so: resume it), ``complete`` (every job finished without error), ``partial`` (every job ended,
#: some failed or lost their worker), ``interrupted`` (stopped by Ctrl-C before every job ran).
STATUSES = ("running", "complete", "partial", "interrupted")


def config_digest(config: dict[str, Any]) -> str:
    """A short hash of a configuration (``dataclasses.asdict`` of a bench's config): the first 10
    hex digits of the SHA-256 of its JSON with sorted keys. It names the results folder.

    Examples:
        >>> config_digest({"b": 1, "a": [0.5]}) == config_digest({"a": [0.5], "b": 1})
        True
    """
    if not isinstance(config, dict):
        raise InputValidationError(f"expected the configuration as a dict, got {type(config).__name__}")
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]


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
    def read(cls, folder: str | os.PathLike[str], kind: str) -> RunLog:
        """The log of an existing results folder of ``kind``, read only: no lock is taken and
        nothing is written or removed, so a folder whose run is still in progress can be read
        (:meth:`recorded` then gives the jobs finished so far). Raises
        :class:`~banditformer.core.errors.InputValidationError` when ``folder`` is not such a
        folder."""
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
        return cls(folder, kind, doc["config"], doc["config_hash"], doc.get("jobs"))

    @classmethod
    def resume(cls, folder: str | os.PathLike[str], kind: str) -> RunLog:
        """The log of an existing results folder of ``kind``, to run what it is missing; reads and
        locks, changes nothing until :meth:`begin`. Leftover temporary files of killed writes
        are removed."""
        log = cls.read(folder, kind)
        folder = log.folder
        if not os.access(folder, os.W_OK):
            raise InputValidationError(f"expected a writable results folder {str(folder)!r}, got a read-only one")
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

    def add_to_config(self, **fields: Any) -> None:
        """Add ``fields`` (JSON values) to the recorded configuration, ``run.json`` rewritten
        atomically; a field it records already is refused (a recorded value does not change)."""
        taken = sorted(set(fields) & set(self.config))
        if taken:
            raise InputValidationError(f"expected fields the configuration does not record yet, got {taken}")
        try:
            added = json.loads(json.dumps(fields, allow_nan=True))
        except (TypeError, ValueError) as exc:
            raise InputValidationError(f"expected JSON-serialisable fields, got: {exc}") from None
        self.config = {**self.config, **added}
        self._write_run()

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
                warnings.warn(f"{p}: unreadable job record ({exc}); skipped (a resume runs it again)", stacklevel=2)
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


def check_log(log: object, kind: str) -> None:
    """Fail unless ``log`` is ``None`` or a :class:`RunLog` of ``kind`` (what a bench runner takes)."""
    if log is not None and (not isinstance(log, RunLog) or log.kind != kind):
        raise InputValidationError(f"expected a RunLog of kind {kind!r} or None, got {log!r}")
