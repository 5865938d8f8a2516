"""Tasks as plain data (core/task.py) and the model configuration a task fixes."""

from __future__ import annotations

import pytest
import torch

from banditformer import InputValidationError, Split, Task, TransformerConfig


def _task() -> Task:
    split = Split(torch.zeros(5, 4), torch.zeros(5, dtype=torch.long))
    model = {"input": "sequence", "num_classes": 3, "seq_len": 4}
    test = Split(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    return Task("tiny", model, split, split, test, ["a", "b", "c"])


def test_a_split_counts_its_rows_and_a_task_holds_plain_data() -> None:
    task = _task()
    assert (len(task.train), len(task.test)) == (5, 2) and task.train.difficulty is None
    assert task.classes == ["a", "b", "c"] and task.model["num_classes"] == 3


def test_the_model_configuration_of_a_task_takes_its_fields_and_the_overrides() -> None:
    cfg = TransformerConfig.for_task(_task(), d_model=8, num_heads=2, seq_len=99)
    assert (cfg.input, cfg.num_classes, cfg.d_model, cfg.num_heads) == ("sequence", 3, 8, 2)
    assert cfg.seq_len == 99  # an override wins over the task's field
    with pytest.raises(InputValidationError, match="expected a Task, got dict"):
        TransformerConfig.for_task({"input": "sequence"})  # type: ignore[arg-type]
