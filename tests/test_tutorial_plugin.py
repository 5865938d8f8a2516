"""docs/tutorials/policy-plugin.md, block by block, in a fresh folder: its files are written, the
package is pip-installed into a temporary site folder, and every Python and shell block runs
there (printed values checked against the comments beside them)."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from banditformer.plugins import AUTOLOAD_ENV
from tests.test_docs import check_prints

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "tutorials" / "policy-plugin.md"
FENCE = re.compile(r"^```(?P<lang>\w+)(?: title=\"(?P<title>[^\"]+)\")?\n(?P<body>.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str | None, str]]:
    return [(m["lang"], m["title"], m["body"]) for m in FENCE.finditer(PAGE.read_text())]


def test_the_plugin_module_is_under_40_lines() -> None:
    (module,) = [body for lang, title, body in blocks() if title and title.endswith(".py")]
    assert len(module.strip().splitlines()) <= 40


def test_every_block_runs_in_order(tmp_path: Path) -> None:
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
    for lang, title, body in blocks():
        if title:  # a file of the package
            path = work / title
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
            ran["files"] += 1
        elif lang == "python":
            check_prints(body, run([sys.executable, "-c", body]))
            ran["python"] += 1
        elif lang == "bash":
            for command in body.replace("\\\n", " ").strip().splitlines():
                words = shlex.split(command)
                if words[:2] == ["pip", "install"]:
                    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
                    run([*pip, "--no-cache-dir", "--disable-pip-version-check", "--target", str(site), *words[2:]])
                elif words[0] == "banditformer":
                    out = run([sys.executable, "-m", "banditformer.cli", *words[1:]])
                    if words[1] == "plugins":
                        assert re.search(r"softmax\s+my_bandits", out), out
                    else:
                        assert "softmax" in out and "FAILED" not in out, out
                elif words[:3] == ["python", "-m", "pytest"]:
                    run([sys.executable, *words[1:], "-p", "no:cacheprovider"], cwd=REPO)
                else:
                    pytest.fail(f"a command the test does not know how to run: {command}")
                ran["commands"] += 1
        else:
            pytest.fail(f"a block the test does not know how to run: {lang}")
    assert ran == {"files": 2, "python": 4, "commands": 4}, ran
