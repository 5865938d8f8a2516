"""The offline example of docs/adapters.md (its ```py block marked ``# offline``) runs, with
``transformers`` installed; its ```python block runs in tests/test_docs.py like every page's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "adapters.md"
FENCE = re.compile(r"^```py\n(?P<body># offline\n.*?)^```", re.S | re.M)


def test_the_pages_offline_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    blocks = [m["body"] for m in FENCE.finditer(PAGE.read_text())]
    assert len(blocks) == 1
    exec(compile(blocks[0], str(PAGE), "exec"), {"__name__": "__docs__"})
    assert "torch.Size([4, 2])" in capsys.readouterr().out
