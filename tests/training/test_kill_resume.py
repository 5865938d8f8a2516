"""A training run killed with SIGKILL at a random point resumes from its last checkpoint and ends
exactly where an uninterrupted run ends; damaged checkpoints are refused whole."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import banditformer as bf

pytest.importorskip("sklearn")  # the digits task

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("resumable_run.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _start(checkpoint: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), str(checkpoint), str(out)], env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_at_a_random_point_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    clean = _start(tmp_path / "clean.ckpt", tmp_path / "clean.json")
    assert clean.wait(timeout=600) == 0, clean.stderr.read().decode()[-3000:]
    expected = json.loads((tmp_path / "clean.json").read_text())
    assert expected["resumed_at"] == 0

    checkpoint, out = tmp_path / "run.ckpt", tmp_path / "run.json"
    rng = random.Random(os.getpid())
    target = rng.randrange(6, 100)  # of 120 steps: kill once a checkpoint at or past this step is on disk
    proc = _start(checkpoint, out)
    deadline, seen = time.monotonic() + 300, -1
    while seen < target:
        assert proc.poll() is None and time.monotonic() < deadline, f"the run ended before step {target}"
        if checkpoint.exists():
            with contextlib.suppress(Exception):  # renamed over while we read: read again
                seen = int(torch.load(checkpoint, weights_only=True)["step"])
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.05))  # a random instant, often during the next write
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not out.exists(), "the run finished before the kill"
    saved = torch.load(checkpoint, weights_only=True)  # whatever the kill hit, the file is whole
    assert saved["step"] >= 5

    resumed = _start(checkpoint, out)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()[-3000:]
    got = json.loads(out.read_text())
    assert got["resumed_at"] == saved["step"] > 0
    assert {k: v for k, v in got.items() if k != "resumed_at"} == {
        k: v for k, v in expected.items() if k != "resumed_at"
    }, f"killed after a checkpoint at step {saved['step']} (target {target})"


def _trainer(seed: int = 0):
    from banditformer.model import DynamicTransformer, TransformerConfig
    from banditformer.tasks import digits
    from banditformer.training import TrainConfig, Trainer

    data = digits(seed=0)
    model = DynamicTransformer(TransformerConfig.for_task(data, d_model=16, num_layers=2, num_heads=2))
    ctrl = bf.make_controller("dht", num_layers=2, num_heads=2, context_dim=16, full_flops=1e5, seed=seed)
    return Trainer(model, ctrl, data, TrainConfig(epochs=1, batch_size=256, seed=0, progress=False))


def _snapshot(trainer) -> dict:
    return {k: v.clone() for k, v in [*trainer.model.state_dict().items(), *trainer.controller.state_dict().items()]
            if isinstance(v, torch.Tensor)}  # fmt: skip


def test_truncated_foreign_and_mismatched_checkpoints_change_nothing(tmp_path: Path) -> None:
    trainer = _trainer()
    trainer.train_step(trainer.task.train.x[:64], trainer.task.train.y[:64])
    good = tmp_path / "good.ckpt"
    trainer.save(good)
    fresh = _trainer()
    before = _snapshot(fresh)

    def unchanged() -> None:
        after = _snapshot(fresh)
        assert fresh.step == 0 and all(torch.equal(before[k], after[k]) for k in before)

    data = good.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(bf.InputValidationError, match="unreadable"):
        fresh.load(tmp_path / "cut.ckpt")
    unchanged()
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.ckpt")
    with pytest.raises(bf.InputValidationError, match="banditformer-checkpoint"):
        fresh.load(tmp_path / "foreign.ckpt")
    unchanged()
    state = torch.load(good, weights_only=True)
    del state["optimizer"]
    torch.save(state, tmp_path / "partial.ckpt")
    with pytest.raises(bf.InputValidationError, match="missing"):
        fresh.load(tmp_path / "partial.ckpt")
    unchanged()
    state = torch.load(good, weights_only=True)
    state["controller"]["head_policy.successes"] = torch.zeros(99)  # the model loads, the controller does not
    torch.save(state, tmp_path / "mismatch.ckpt")
    with pytest.raises(bf.InputValidationError, match="nothing was loaded"):
        fresh.load(tmp_path / "mismatch.ckpt")
    unchanged()
    fresh.load(good)
    assert fresh.step == 1
