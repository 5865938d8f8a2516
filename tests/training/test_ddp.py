"""Data-parallel training under torchrun (gloo, 2 CPU processes): the ranks end with identical
parameters and controller statistics, and a deterministic controller's run equals one process
with the same global batch (up to the order of floating-point sums)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

pytest.importorskip("sklearn")  # the digits task
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"),
]

ROOT = Path(__file__).resolve().parents[2]
# A controller with no random draw: LinUCB picks the depth and one head per block leaves nothing to choose.
# A batch of 63 splits 32 + 31: the ranks' losses are weighted by their shares.
ARGS = ["--controller-kwargs", json.dumps({"depth_policy": "linucb"}), "--heads", "1", "--epochs", "2",
        "--batch-size", "63"]  # fmt: skip


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _run(cmd: list[str], out: Path, args: list[str] = ARGS) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [*cmd, str(ROOT / "examples" / "ddp_train.py"), "--out", str(out), *args],
        capture_output=True, text=True, env=env, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def test_two_ranks_match_each_other_and_one_process(tmp_path: Path) -> None:
    two = _run(TORCHRUN, tmp_path / "ddp")
    one = _run([sys.executable], tmp_path / "one")
    assert two["world"] == 2 and one["world"] == 1 and two["syncs"] > 0 and one["syncs"] == 0
    r0, r1, single = (torch.load(p, weights_only=True) for p in
                      (tmp_path / "ddp/rank0.pt", tmp_path / "ddp/rank1.pt", tmp_path / "one/rank0.pt"))  # fmt: skip
    for part in ("model", "controller"):
        for key, value in r0[part].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, r1[part][key]), f"{part}.{key} differs between ranks"
    for key, value in r0["model"].items():
        torch.testing.assert_close(value, single["model"][key], rtol=1e-3, atol=1e-4, msg=f"model.{key}")
    ctrl, ref = r0["controller"], single["controller"]
    for key in ("depth_policy.arm_counts", "count_policy.counts"):
        assert torch.equal(ctrl[key], ref[key]), key  # the same decisions, every step
    torch.testing.assert_close(ctrl["depth_policy.gram"], ref["depth_policy.gram"], rtol=1e-4, atol=1e-3)
    trials = ctrl["head_policy.successes"] + ctrl["head_policy.failures"]
    assert torch.equal(trials, ref["head_policy.successes"] + ref["head_policy.failures"])
    # metrics reduced over ranks: the test split is evaluated in shards and gathered
    for key in ("accuracy", "flop_saving", "train_flop_saving"):
        assert two[key] == pytest.approx(one[key], abs=1e-6), key


def _ranks_identical(folder: Path) -> None:
    r0, r1 = (torch.load(folder / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for part in ("model", "controller"):
        for key, value in r0[part].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, r1[part][key]), f"{part}.{key} differs between ranks"


def test_the_default_dht_with_a_sync_every_three_steps_ends_identical_on_both_ranks(tmp_path: Path) -> None:
    # bucketed depth (k-means buckets), UCB1 counts, CTS head sets (random draws, forked per rank)
    metrics = _run(TORCHRUN, tmp_path, ["--heads", "2", "--epochs", "1", "--sync-every", "3"])
    assert metrics["world"] == 2 and metrics["syncs"] >= 5
    _ranks_identical(tmp_path)
    ctrl = torch.load(tmp_path / "rank0.pt", weights_only=True)["controller"]
    assert float(ctrl["depth_policy.centroid_counts"].sum()) > 0 and float(ctrl["head_policy.arm_counts"].sum()) > 0
