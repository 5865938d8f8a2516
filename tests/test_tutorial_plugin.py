"""docs/tutorials/policy-plugin.md, block by block, in a fresh folder: its files are written, the
package is pip-installed into a temporary site folder, and every Python and shell block runs
there (printed values checked against the comments beside them); see tests/tutorial_runner.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.tutorial_runner import REPO, plugin_module, run_page

pytestmark = pytest.mark.slow

PAGE = REPO / "docs" / "tutorials" / "policy-plugin.md"


def test_the_plugin_module_is_under_40_lines() -> None:
    assert len(plugin_module(PAGE).strip().splitlines()) <= 40


def check_command(words: list[str], out: str) -> None:
    if words[1] == "plugins":
        assert re.search(r"softmax\s+my_bandits", out), out
    else:
        assert "softmax" in out and "FAILED" not in out, out


def test_every_block_runs_in_order(tmp_path: Path) -> None:
    ran = run_page(PAGE, tmp_path, check_command)
    assert ran == {"files": 2, "python": 4, "commands": 4}, ran
