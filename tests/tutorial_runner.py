"""Running a plugin tutorial page block by block, in a fresh folder: its titled blocks are written as
files, the package is pip-installed (no index) into a temporary site folder, and every Python and
shell block runs there in order, each Python block in a fresh interpreter (printed values checked
against the comments beside them, as :func:`tests.test_docs.check_prints` does). Used by
tests/test_tutorial_plugin.py and tests/test_tutorial_controller.py."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from banditformer.plugins import AUTOLOAD_ENV
from tests.test_docs import check_prints

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(?P<lang>\w+)(?: title=\"(?P<title>[^\"]+)\")?\n(?P<body>.*?)^```", re.S | re.M)
#: The fence languages run as Python (``py`` keeps a page's blocks out of test_docs.py's in-process run).
PYTHON = ("python", "py")
#: Called with a ``banditformer`` command's words and its standard output; asserts what it must show.
CommandCheck = Callable[[list[str], str], None]


def blocks(page: Path) -> list[tuple[str, str | None, str]]:
    """``(language, title or None, body)`` of every fenced block of ``page``, in order."""
    return [(m["lang"], m["title"], m["body"]) for m in FENCE.finditer(page.read_text())]


def plugin_module(page: Path) -> str:
    """The body of the page's one titled ``.py`` block (the plugin's module)."""
    (module,) = [body for _, title, body in blocks(page) if title and title.endswith(".py")]
    return module


def checked_prints(page: Path) -> int:
    """How many ``print(...)  # value`` lines the page's Python blocks hold."""
    line = re.compile(r"\s*print\(.*\)\s+#\s*.+$")
    return sum(
        bool(line.match(text))
        for lang, title, body in blocks(page)
        if lang in PYTHON and not title
        for text in body.splitlines()
    )


def run_page(page: Path, tmp_path: Path, check_command: CommandCheck) -> dict[str, int]:
    """Run every block of ``page`` in order under ``tmp_path``; returns how many files were
    written, Python blocks run and commands run. ``check_command`` judges each ``banditformer``
    command's output; ``python -m pytest`` commands run in the repository root."""
    for module in ("pip", "setuptools"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"installing the tutorial's package needs {module!r}")
    work, site = tmp_path / "work", tmp_path / "site"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    env.pop(AUTOLOAD_ENV, None)
    env.pop("PIP_USER", None)

    def run(args: list[str], cwd: Path = work) -> str:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    ran = {"files": 0, "python": 0, "commands": 0}
    for lang, title, body in blocks(page):
        if title:  # a file of the package
            path = work / title
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
            ran["files"] += 1
        elif lang in PYTHON:
            check_prints(body, run([sys.executable, "-c", body]))
            ran["python"] += 1
        elif lang == "bash":
            for command in body.replace("\\\n", " ").strip().splitlines():
                words = shlex.split(command)
                if words[:2] == ["pip", "install"]:
                    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
                    run([*pip, "--no-cache-dir", "--disable-pip-version-check", "--target", str(site), *words[2:]])
                elif words[0] == "banditformer":
                    check_command(words, run([sys.executable, "-m", "banditformer.cli", *words[1:]]))
                elif words[:3] == ["python", "-m", "pytest"]:
                    run([sys.executable, *words[1:], "-p", "no:cacheprovider"], cwd=REPO)
                else:
                    pytest.fail(f"a command the test does not know how to run: {command}")
                ran["commands"] += 1
        else:
            pytest.fail(f"a block the test does not know how to run: {lang}")
    return ran
