"""A plugin from outside the tree: pip-install the example EXP3 plugin into a temporary folder, then
check, in fresh interpreters with that folder on ``PYTHONPATH``, that banditformer finds it through
its entry point, builds it by name and that it passes the same invariant tests as the built-ins."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from banditformer.plugins import AUTOLOAD_ENV

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PLUGIN_SRC = REPO / "examples" / "plugins" / "banditformer-exp3"
PROPERTY_TESTS = REPO / "tests" / "bandits" / "test_properties.py"


def _env(site: Path) -> dict[str, str]:
    """The current environment with ``site`` first on ``PYTHONPATH`` and entry points enabled."""
    env = os.environ.copy()
    env.pop(AUTOLOAD_ENV, None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _python(code: str, site: Path) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-c", textwrap.dedent(code)], _env(site), timeout=300)


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed example plugin (``banditformer_exp3`` and its dist-info)."""
    for module in ("pip", "setuptools"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"installing the example plugin needs {module!r}, which {sys.executable} lacks")
    if not (PLUGIN_SRC / "pyproject.toml").is_file():
        pytest.fail(f"example plugin not found at {PLUGIN_SRC}")
    root = tmp_path_factory.mktemp("outside_plugin")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    src = root / "src"
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    env = os.environ.copy()
    env.pop("PIP_USER", None)  # --user and --target exclude each other
    proc = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
            "--target",
            str(target),
            str(src),
        ],
        env,
        timeout=300,
    )
    assert proc.returncode == 0, f"pip install of the example plugin failed:\n{_output(proc)}"
    assert (target / "banditformer_exp3" / "__init__.py").is_file(), sorted(p.name for p in target.iterdir())
    return target


def test_entry_point_is_found_and_named_after_the_entry_point(site: Path) -> None:
    proc = _python(
        f"""
        from pathlib import Path

        import banditformer
        import banditformer_exp3

        assert Path(banditformer_exp3.__file__).resolve().is_relative_to(Path({str(site)!r}).resolve()), (
            banditformer_exp3.__file__
        )
        pm = banditformer.get_plugin_manager()
        assert not pm.failures, pm.failures
        assert "exp3" in banditformer.list_policies(), banditformer.list_policies()
        entry = pm.get("policy", "exp3")
        assert entry.plugin == "exp3", entry
        assert entry.factory is banditformer_exp3.EXP3, entry
        assert "exp3" in pm.plugins, pm.plugins
        """,
        site,
    )
    assert proc.returncode == 0, _output(proc)


def test_builds_by_name_and_plays(site: Path) -> None:
    proc = _python(
        """
        import torch

        import banditformer

        p = banditformer.make_policy("exp3", num_arms=4, gamma=0.2, num_groups=2, seed=0)
        assert isinstance(p, banditformer.Policy), type(p)
        assert p.reward_range == (0.0, 1.0)
        assert p.state_reductions["log_weights"] == "sum"
        groups = torch.tensor([0, 1, 1, 0, 1])
        arms = p.select(groups=groups)
        assert arms.shape == (5,) and arms.dtype == torch.int64, arms
        assert bool(((arms >= 0) & (arms < 4)).all()), arms
        p.update(arms, torch.ones(5), groups=groups)
        assert p.arm_counts.sum().item() == 5
        assert p.log_weights.shape == (2, 4) and bool((p.log_weights > 0).any())
        probs = p.probabilities()
        assert torch.allclose(probs.sum(1), torch.ones(2, dtype=torch.float64))
        assert bool((probs >= 0.2 / 4 - 1e-12).all()), probs
        """,
        site,
    )
    assert proc.returncode == 0, _output(proc)


def test_passes_the_builtin_invariant_tests(site: Path) -> None:
    if not PROPERTY_TESTS.is_file():
        pytest.skip(f"{PROPERTY_TESTS} does not exist")
    proc = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PROPERTY_TESTS), "-k", "exp3"],
        _env(site),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, _output(proc)
    assert "no tests ran" not in out, _output(proc)
    passed = re.search(r"(\d+) passed", out)
    assert passed is not None and int(passed.group(1)) > 0, _output(proc)
