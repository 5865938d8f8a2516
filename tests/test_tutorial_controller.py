"""docs/tutorials/controller-plugin.md, block by block, in a fresh folder: its files are written, the
package is pip-installed into a temporary site folder, and every Python and shell block runs there
(printed values checked against the comments beside them: the controller's halting on a known exit
point, the joint objective, the calibrated run within its FLOP budget); see tests/tutorial_runner.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.tutorial_runner import REPO, checked_prints, plugin_module, run_page

pytestmark = pytest.mark.slow

PAGE = REPO / "docs" / "tutorials" / "controller-plugin.md"


def test_the_plugin_module_is_under_40_lines_and_halts_at_exit_points() -> None:
    module = plugin_module(PAGE)
    assert len(module.strip().splitlines()) <= 40
    for part in ("def halts", "def _halt", "def operating_points", "def set_operating_point",
                 "def banditformer_add_controllers"):  # fmt: skip
        assert part in module, part


def check_command(words: list[str], out: str) -> None:
    assert words[1] == "plugins", f"a banditformer command the test does not check: {words}"
    assert "\ncontroller (" in out, out
    section = out.split("\ncontroller (", 1)[1].split("\n\n", 1)[0]  # the controllers' listing only
    assert re.search(r"^\s+margin_patience\s+my_exits$", section, re.M), out
    assert "failed plugins" not in out, out


def test_every_block_runs_in_order(tmp_path: Path) -> None:
    assert checked_prints(PAGE) == 8  # every one of them is checked below
    ran = run_page(PAGE, tmp_path, check_command)
    assert ran == {"files": 2, "python": 2, "commands": 2}, ran
