"""Every code block in the README and docs/ is run by a test: the ```python blocks here (those of
the plugin tutorial, which need its package installed, in test_tutorial_plugin.py); the
``banditformer`` command lines of shell blocks are parsed by the CLI's own parser (long
benchmark runs are not run in CI), and the scripts and files they name must exist with the flags
they pass."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorials" / "policy-plugin.md"
FILES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if p != TUTORIAL)]
FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```", re.S | re.M)


def _blocks(lang: str) -> list:
    return [
        pytest.param(m["body"], id=f"{path.relative_to(ROOT)}:{i}")
        for path in FILES
        for i, m in enumerate(FENCE.finditer(path.read_text()))
        if m["lang"] == lang
    ]


def check_prints(source: str, out: str) -> None:
    """Every ``print(...)  # value`` line's value appears in the output ``out``."""
    for line in source.splitlines():
        m = re.match(r"\s*print\(.*\)\s+#\s*(?P<value>.+)$", line)
        if m:
            assert m["value"].strip() in out, f"expected {m['value'].strip()!r} in the output:\n{out}"


@pytest.fixture(autouse=True)
def _fresh_registry():
    """A block may register plugins (the custom-task tutorial does): forget them afterwards."""
    from banditformer.plugins import set_plugin_manager

    yield
    set_plugin_manager(None)


@pytest.mark.parametrize("source", _blocks("python"))
def test_code_block_runs(source: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(source, "<docs>", "exec"), {"__name__": "__docs__"})
    check_prints(source, capsys.readouterr().out)


def _commands(body: str) -> list[list[str]]:
    lines = body.replace("\\\n", " ").splitlines()
    out = []
    for line in lines:
        line = line.strip().removeprefix("$ ")
        if not line or line.startswith("#") or not re.match(r"(banditformer|python|torchrun|pip|make)\b", line):
            continue  # output lines of a console block
        out.append(shlex.split(line.split(" #")[0]))
    return out


@pytest.mark.parametrize("body", _blocks("bash") + _blocks("console") + _blocks(""))
def test_command_lines_are_valid(body: str) -> None:
    from banditformer.cli import build_parser

    for words in _commands(body):
        if words[0] == "banditformer":
            try:
                build_parser().parse_args(words[1:])
            except SystemExit as exc:  # argparse's way to refuse
                pytest.fail(f"`{' '.join(words)}` does not parse (exit {exc.code})")
        elif words[0] in ("python", "torchrun"):
            script = next((w for w in words[1:] if w.endswith(".py")), None)
            if script is None:
                continue  # python -m ...
            source = (ROOT / script).read_text()
            for flag in (w.split("=")[0] for w in words[words.index(script) + 1 :] if w.startswith("--")):
                assert f'"{flag}"' in source, f"{script} has no flag {flag}"
        elif words[0] == "pip" and len(words) > 2 and words[2].startswith(("./", "examples/")):
            assert (ROOT / words[2]).exists() or words[2] == "./my-bandits", words[2]
        elif words[0] == "make":
            makefile = (ROOT / "Makefile").read_text()
            assert all(re.search(rf"^{re.escape(t)}:", makefile, re.M) for t in words[1:]), words


CONFIG = ROOT / "docs" / "configuration.md"
CLI_BLOCK = re.compile(r"<!-- cli: (?P<cmd>[a-z ]+) -->\n```text\n(?P<body>.*?)```", re.S)


def _help(cmd: str) -> str:
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-m", "banditformer.cli", *cmd.split(), "--help"], capture_output=True,
                          text=True, env=env, check=True, cwd=ROOT)  # fmt: skip
    return proc.stdout.replace("python -m banditformer.cli", "banditformer")


def test_the_configuration_page_shows_the_cli_help_as_it_is() -> None:
    import os

    text = CONFIG.read_text()
    commands = [m["cmd"] for m in CLI_BLOCK.finditer(text)]
    assert {"demo", "bench bandits", "bench model"} <= set(commands)
    if os.environ.get("UPDATE_DOCS"):
        text = CLI_BLOCK.sub(lambda m: f"<!-- cli: {m['cmd']} -->\n```text\n{_help(m['cmd'])}```", text)
        CONFIG.write_text(text)
    for m in CLI_BLOCK.finditer(text):
        assert m["body"] == _help(m["cmd"]), f"`banditformer {m['cmd']} --help` changed: run UPDATE_DOCS=1 pytest"


@pytest.mark.parametrize("body", _blocks("toml"))
def test_toml_blocks_are_valid_and_bench_configs_load(body: str, tmp_path: Path) -> None:
    import sys

    from banditformer.cli import build_parser, load_toml_defaults

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    values = tomllib.loads(body)
    if "problem" in values or "task" in values:  # a bench configuration: checked as the CLI checks it
        path = tmp_path / "bench.toml"
        path.write_text(body)
        sub = build_parser()._bench_parsers["bandits" if "problem" in values else "model"]
        assert load_toml_defaults(sub, str(path)) == {k: v for k, v in values.items()} | {
            k: [float(x) for x in v] for k, v in values.items() if k in ("lams", "budgets", "dht_budgets")
        } | ({"lr": float(values["lr"])} if "lr" in values else {})


def test_every_public_module_has_a_reference_entry() -> None:
    """docs/reference/ follows the package layout: each public module of a subpackage (and the
    built-ins' plugin module) is rendered by a ``::: banditformer.<module>`` line, and each such
    line names a module that exists."""
    package = ROOT / "banditformer"
    modules = {"banditformer.builtin"} | {
        "banditformer." + ".".join(p.relative_to(package).with_suffix("").parts)
        for p in package.glob("*/*.py")
        if not p.name.startswith("_")
    }
    entries = {
        m
        for page in (ROOT / "docs" / "reference").glob("*.md")
        for m in re.findall(r"^::: (banditformer(?:\.\w+)*)\s*$", page.read_text(), re.M)
    }
    assert modules - entries == set(), "modules missing from docs/reference/"
    existing = modules | {"banditformer." + p.parent.name for p in package.glob("*/__init__.py")}
    assert {m for m in entries if m not in existing} == set(), "docs/reference/ names modules that do not exist"
