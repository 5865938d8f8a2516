"""Durable files: a new file appears whole or not at all (temporary file, ``fsync``, rename,
``fsync`` of the folder). Checkpoints and results folders write through :func:`atomic_file`."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from banditformer.core.errors import InputValidationError

__all__ = ["TMP_PATTERN", "atomic_file", "fsync_dir", "write_atomic"]


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_name(path: Path) -> Path:
    # hidden, same folder (so os.replace is atomic), same suffix (writers such as matplotlib pick
    # the format from it), and recognisable by _TMP so that the next resume removes leftovers
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")


#: Names of the temporaries :func:`atomic_file` writes by default (a resume removes leftovers).
TMP_PATTERN = re.compile(r"^\..+\.\d+\.tmp(\.\w+)?$")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], tmp: Path | None = None) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; when the block ends without an
    exception it is synced and renamed over ``path`` (and the folder synced), else removed.

    Args:
        tmp: the temporary's path, in ``path``'s folder (default: a hidden name of this process's).

    Examples:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_file(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    path = Path(path)
    tmp = _tmp_name(path) if tmp is None else tmp
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)  # the writer closed it: sync what it wrote
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically (see :func:`atomic_file`); returns the path."""
    if not isinstance(data, (str, bytes)):
        raise InputValidationError(f"expected str or bytes to write, got {type(data).__name__}")
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return Path(path)
