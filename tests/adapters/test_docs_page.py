"""The offline example of docs/adapters.md (its ```py block marked ``# offline``) runs, with
``transformers`` installed, and so does the training loop of your own (marked ``# your loop``)
after it, on the same model: the exit heads, the original's weights and the controller all
learn, and the printed values are the ones the page shows. The page's ```python block runs in
tests/test_docs.py like every page's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tests.test_docs import check_prints

PAGE = Path(__file__).resolve().parents[2] / "docs" / "adapters.md"
FENCE = re.compile(r"^```py\n(?P<body># (?P<mark>offline|your loop)\n.*?)^```", re.S | re.M)


def marked() -> dict[str, str]:
    found = [(m["mark"], m["body"]) for m in FENCE.finditer(PAGE.read_text())]
    assert [mark for mark, _ in found] == ["offline", "your loop"], "one offline block, then the loop"
    return dict(found)


def run(body: str, namespace: dict, capsys: pytest.CaptureFixture[str]) -> str:
    exec(compile(body, str(PAGE), "exec"), namespace)
    out = capsys.readouterr().out
    check_prints(body, out)
    return out


def test_the_pages_offline_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    out = run(marked()["offline"], {"__name__": "__docs__"}, capsys)
    assert "torch.Size([4, 2])" in out


def test_the_pages_own_training_loop_trains_every_part_and_the_controller(capsys) -> None:
    pytest.importorskip("transformers")
    blocks, namespace = marked(), {"__name__": "__docs__"}
    run(blocks["offline"], namespace, capsys)
    model = namespace["model"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loop = blocks["your loop"]
    assert len([line for line in loop.split("for step in range(3):\n", 1)[1].splitlines() if line.strip()]) <= 14
    run(loop, namespace, capsys)
    after, controller = model.state_dict(), namespace["controller"]
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("exit_heads.") for k in moved), "the exit heads did not learn"
    assert any(k.startswith("model.bert.encoder.layer.2.") for k in moved), "the original's weights did not learn"
    assert torch.isfinite(namespace["loss"])
    assert int(controller.feedback_calls) == 3, "the controller got no feedback"
    assert any(bool(v.abs().sum() > 0) for v in controller.policy.state_dict().values() if v.is_floating_point())
