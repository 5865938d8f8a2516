"""Every ```python block in the README and docs/ runs."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    pytest.param(block, id=f"{path.name}:{i}")
    for path in FILES
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S))
]


@pytest.mark.parametrize("source", BLOCKS)
def test_code_block_runs(source: str) -> None:
    exec(compile(source, "<docs>", "exec"), {"__name__": "__docs__"})
