"""Tasks: fixed splits by seed, shapes the model takes, known difficulty, plugin tasks."""

from __future__ import annotations

import pytest
import torch

import banditformer as bf
from banditformer.core.task import Split, Task
from banditformer.model import DynamicTransformer, TransformerConfig
from banditformer.plugins import PluginManager, hookimpl, set_plugin_manager
from banditformer.tasks import pointer_chasing, split_indices

SIZES = {"pointer_chasing": 20000, "digits": 1797, "mnist1d": 5000, "bbc_news": 2225, "listops": 20000}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_task_split_is_fixed_by_seed_and_fits_the_model(name: str) -> None:
    task = bf.make_task(name, seed=3)
    assert isinstance(task, Task)
    assert len(task.train) + len(task.val) + len(task.test) == SIZES[name]
    again = bf.make_task(name, seed=3)
    assert torch.equal(task.test.x, again.test.x) and torch.equal(task.test.y, again.test.y)
    other = bf.make_task(name, seed=4)
    assert not torch.equal(task.test.y, other.test.y) or not torch.equal(task.test.x, other.test.x)
    cfg = TransformerConfig.for_task(task, d_model=16, num_layers=2, num_heads=2)
    model = DynamicTransformer(cfg)
    logits = model(task.val.x[:4])
    assert logits.shape == (4, len(task.classes)) and int(task.train.y.max()) < len(task.classes)


def test_splits_partition_the_samples() -> None:
    train, val, test = split_indices(100, seed=0)
    assert sorted(torch.cat([train, val, test]).tolist()) == list(range(100))
    assert (len(train), len(val), len(test)) == (70, 15, 15)


def test_pointer_chasing_labels_follow_the_hops() -> None:
    task = pointer_chasing(seed=1, num_samples=50, length=8, max_hops=3)
    for split in (task.train, task.val, task.test):
        for x, y, h in zip(split.x.tolist(), split.y.tolist(), split.difficulty.tolist(), strict=True):
            hops, pointers = x[0] - 8 + 1, x[1:]
            assert hops == h and sorted(pointers) == list(range(8))
            pos = 0
            for _ in range(hops):
                pos = pointers[pos]
            assert pos == y


def test_bbc_news_classes_are_sorted_names() -> None:
    task = bf.make_task("bbc_news", seed=0, seq_len=32, vocab_size=100)
    assert task.classes == sorted(task.classes) and len(task.classes) == 5
    assert int(task.train.x.max()) < 100 and task.train.x.shape[1] == 32


def test_a_user_registers_a_task_from_outside() -> None:
    def tiny(seed: int = 0) -> Task:
        x = torch.randn(10, 4, generator=torch.Generator().manual_seed(seed))
        split = Split(x, torch.zeros(10, dtype=torch.long))
        return Task("tiny", {"input": "sequence", "seq_len": 4, "num_classes": 2}, split, split, split)

    class Mine:
        @hookimpl
        def banditformer_add_tasks(self):
            return {"tiny": tiny}

    pm = PluginManager(autoload=False)
    pm.register(Mine(), name="mine")
    set_plugin_manager(pm)
    try:
        assert "tiny" in bf.list_tasks()
        assert TransformerConfig.for_task(bf.make_task("tiny", seed=1), d_model=8, num_heads=2).seq_len == 4
    finally:
        set_plugin_manager(None)


def test_mnist1d_patches_regroup_the_same_values() -> None:
    plain, patched = bf.make_task("mnist1d", seed=0), bf.make_task("mnist1d", seed=0, patch=4)
    assert patched.model["seq_len"] == 10 and patched.model["features"] == 4
    assert torch.equal(patched.test.x.reshape(len(patched.test), 40), plain.test.x.reshape(len(plain.test), 40))
    model = DynamicTransformer(TransformerConfig.for_task(patched, d_model=16, num_layers=2, num_heads=2))
    assert model(patched.val.x[:3]).shape == (3, 10)
    with pytest.raises(bf.InputValidationError, match="divide"):
        bf.make_task("mnist1d", patch=3)
