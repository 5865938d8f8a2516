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


def _state(subject: object) -> dict[str, object]:
    """Every leaf of ``subject.state_dict()`` (a module's, or a trainer's: model, optimizer,
    controller, counters, history, RNG states), tensors cloned, generators included."""
    out: dict[str, object] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, torch.Tensor):
            out[prefix] = value.clone()
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        else:
            out[prefix] = value

    walk("", subject.state_dict())  # type: ignore[attr-defined]
    return out


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return a == b


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
    counters = (subjects[0].step, subjects[0].train_samples, subjects[0].train_flops) if hasattr(
        subjects[0] if subjects else None, "train_samples") else None  # fmt: skip
    with pytest.raises(bf.BanditformerError) as info:
        action()
    assert type(info.value).__name__ == error and _says(says, str(info.value)), str(info.value)
    for subject, state in zip(subjects, before, strict=True):
        after = _state(subject)
        assert after.keys() == state.keys(), name
        changed = [k for k in state if not _same(after[k], state[k])]
        assert not changed, f"{name} changed {changed[:5]}"
    if hasattr(subjects[0] if subjects else None, "train_samples"):  # a trainer: its counters too
        trainer = subjects[0]
        assert (trainer.step, trainer.train_samples, trainer.train_flops) == counters, name
