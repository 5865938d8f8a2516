"""Every row of the bad-input table in docs/troubleshooting.md: the input fails with the error the
table shows (or, for plugins, is reported by name while the rest load), and nothing it touched
changed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import banditformer as bf
from banditformer.core.errors import PluginWarning
from banditformer.plugins import PluginManager, set_plugin_manager
from tests.bad_inputs import CASES

DOC = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"
ROW = re.compile(r'^\| `(?P<case>[a-z0-9_]+)` \| (?P<what>.+?) \| (?P<error>\w+): "(?P<says>[^"]+)"')


def _says(pattern: str, message: str) -> bool:
    """Whether ``message`` reads as the table says (``<path>`` stands for any file path)."""
    return re.search(re.escape(pattern).replace(re.escape("<path>"), ".+?"), message) is not None


def _table() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            rows[m["case"]] = (m["error"], m["says"].replace("\\|", "|"))
    return rows


TABLE = _table()


def test_the_table_lists_every_case_and_at_least_25() -> None:
    assert sorted(TABLE) == sorted(CASES) and len(CASES) >= 25


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in module.state_dict().items():
        if isinstance(value, torch.Tensor):
            out[key] = value.clone()
        elif isinstance(value, dict) and isinstance(value.get("rng_state"), torch.Tensor):
            out[key] = value["rng_state"].clone()  # the generator counts as state
    return out


@pytest.fixture(autouse=True)
def _fresh_registry():
    yield
    set_plugin_manager(None)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, tmp_path: Path) -> None:
    error, says = TABLE[name]
    try:
        subjects, action = CASES[name](tmp_path)
    except RuntimeError as exc:
        if str(exc).startswith("skip:"):
            pytest.skip(str(exc)[5:])
        raise
    if isinstance(subjects, PluginManager):  # reported by name; the others still load
        before = set(PluginManager(autoload=False).names("policy"))  # the built-ins
        with pytest.warns(PluginWarning) as caught:
            action()
        message = " ".join(str(w.message) for w in caught)
        assert type(subjects.failures[-1]).__name__ == error and _says(says, message), message
        assert {"ucb1", "cts", "linucb"} <= set(subjects.names("policy")) and before <= set(subjects.names("policy"))
        return
    before = [_state(m) for m in subjects]
    with pytest.raises(bf.BanditformerError) as info:
        action()
    assert type(info.value).__name__ == error and _says(says, str(info.value)), str(info.value)
    for module, state in zip(subjects, before, strict=True):
        after = _state(module)
        assert after.keys() == state.keys() and all(torch.equal(after[k], state[k]) for k in state), name
