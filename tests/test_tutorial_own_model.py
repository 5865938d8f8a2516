"""docs/tutorials/own-model.md, block by block: every Python block but the first (the one that
downloads a model from the hub, and says so) runs in order in one fresh interpreter, the blocks
sharing their names as a reader's session would, and each block's printed values are checked
against the comments beside them (:func:`tests.test_docs.check_prints`): the adapted tiny BERT
equals the original, the trainer fine-tunes it within a calibrated FLOP budget, its checkpoint
loads with weights_only=True and restores it, and the user's own loop feeds its controller."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.test_docs import check_prints
from tests.tutorial_runner import PYTHON, REPO, blocks, checked_prints

pytestmark = pytest.mark.slow

PAGE = REPO / "docs" / "tutorials" / "own-model.md"
HUB = "from_pretrained"
#: Runs the blocks read from stdin (a JSON list) in one namespace, a marker line after each.
DRIVER = """
import json, sys
namespace = {"__name__": "__tutorial__"}
for i, body in enumerate(json.load(sys.stdin)):
    exec(compile(body, f"<own-model.md block {i}>", "exec"), namespace)
    print(f"\\n--- block {i} done ---", flush=True)
"""


def page_blocks() -> tuple[str, list[str]]:
    """The hub block and the blocks that run, in order."""
    found = [(lang, body) for lang, _, body in blocks(PAGE)]
    assert all(lang in PYTHON for lang, _ in found), [lang for lang, _ in found]
    hub = [body for _, body in found if HUB in body]
    assert len(hub) == 1 and found[0][1] == hub[0], "exactly one hub block, the first"
    assert hub[0].startswith("# needs the Hugging Face hub")
    return hub[0], [body for _, body in found[1:]]


def test_the_hub_block_is_the_only_one_that_downloads_and_shows_the_same_check() -> None:
    hub, runs = page_blocks()
    assert not any(HUB in body for body in runs)
    assert "bf.adapt(" in hub and "torch.allclose(" in hub


def test_every_block_but_the_hub_runs_in_order_and_prints_what_the_page_says() -> None:
    pytest.importorskip("transformers")
    _, runs = page_blocks()
    assert checked_prints(PAGE) == 11  # one in the hub block, which does not run; the others are checked below
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}  # 2 shared cores: no oversubscription
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER], input=json.dumps(runs), cwd=REPO, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"a block failed:\n{proc.stdout}\n{proc.stderr}"
    outputs = proc.stdout.split("\n--- block ")
    assert len(outputs) == len(runs) + 1, proc.stdout
    for i, body in enumerate(runs):
        out = outputs[i] if i == 0 else outputs[i].split(" done ---\n", 1)[1]
        check_prints(body, out)
