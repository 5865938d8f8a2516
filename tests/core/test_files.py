"""Durable files (core/files.py): a new file appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from banditformer import InputValidationError
from banditformer.core.files import TMP_PATTERN, atomic_file, fsync_dir, write_atomic


def test_the_default_temporary_is_hidden_beside_the_target_and_recognised(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    with atomic_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".results.json.") and tmp.suffix == ".json"
        assert TMP_PATTERN.match(tmp.name)  # what a resume removes when a kill left it
        assert not target.exists()  # nothing at the target until the block ends
        tmp.write_text("new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]
    assert not TMP_PATTERN.match("results.json") and not TMP_PATTERN.match(".results.json")


def test_a_failed_write_keeps_the_old_file_and_removes_its_given_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.ckpt"
    write_atomic(target, "old")
    mine = tmp_path / ".a.ckpt.tmp-mine"
    with pytest.raises(OSError, match="disk full"), atomic_file(target, tmp=mine) as tmp:
        assert tmp == mine
        tmp.write_text("half")
        raise OSError("disk full")
    assert target.read_text() == "old" and not mine.exists()


def test_write_atomic_takes_text_or_bytes_only(tmp_path: Path) -> None:
    assert write_atomic(tmp_path / "t.txt", "é").read_bytes() == "é".encode()
    assert write_atomic(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    with pytest.raises(InputValidationError, match="expected str or bytes to write, got dict"):
        write_atomic(tmp_path / "c.txt", {"a": 1})  # type: ignore[arg-type]
    assert not (tmp_path / "c.txt").exists()


def test_fsync_dir_of_a_missing_folder_is_a_no_op(tmp_path: Path) -> None:
    fsync_dir(tmp_path / "missing")  # nothing to make durable: no error
    fsync_dir(tmp_path)
