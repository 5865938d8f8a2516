"""ListOps: known answers, labels that are the expressions' values, nesting depth as difficulty."""

from __future__ import annotations

import pytest
import torch

import banditformer as bf
from banditformer.tasks import listops
from banditformer.tasks.listops import CLOSE, PAD, balanced_length, decode, evaluate

WORDS = {"[MIN": 11, "[MAX": 12, "[MED": 13, "[SM": 14, "]": CLOSE, **{str(d): d + 1 for d in range(10)}}


def tokens(text: str) -> list[int]:
    return [WORDS[w] for w in text.split()]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("7", 7),
        ("[MAX 3 [MIN 4 1 ] ]", 3),
        ("[SM 7 8 ]", 5),
        ("[MED 5 1 9 2 ]", 2),  # the lower median of 1 2 5 9
        ("[MED 5 1 9 ]", 5),
        ("[SM [MAX 9 2 ] [MIN 8 [SM 5 5 ] ] 3 ]", 2),  # 9 + 0 + 3 = 12 -> 2
    ],
)
def test_known_answers(text: str, value: int) -> None:
    assert evaluate(tokens(text)) == value
    assert decode(tokens(text)) == text


@pytest.mark.parametrize("text", ["", "[MAX 3", "[MAX ]", "3 4", "[SM 1 2 ] ]", "]"])
def test_malformed_expressions_are_refused(text: str) -> None:
    with pytest.raises(bf.InputValidationError, match="expected"):
        evaluate(tokens(text))


def _depth(row: torch.Tensor) -> int:
    level = best = 0
    for t in row.tolist():
        if 11 <= t <= 14:
            level += 1
            best = max(best, level)
        elif t == CLOSE:
            level -= 1
    return best


def test_labels_are_the_values_and_difficulty_is_the_nesting_depth() -> None:
    task = listops(seed=2, num_samples=600, max_depth=4, seq_len=96)
    for part in (task.train, task.val, task.test):
        for x, y, d in zip(part.x, part.y, part.difficulty, strict=True):
            assert evaluate(x) == int(y) and _depth(x) == int(d)
            assert bool((x[(x != PAD).sum() :] == PAD).all())  # padded on the right only
    depths = torch.cat([task.train.difficulty, task.val.difficulty, task.test.difficulty])
    assert torch.bincount(depths, minlength=5)[1:].min() > 100  # every depth 1..4 is common
    assert (task.train.x != PAD).sum(1).max() <= 96


def test_the_same_seed_gives_the_same_task_and_the_registry_has_it() -> None:
    a, b = listops(seed=5, num_samples=50), bf.make_task("listops", seed=5, num_samples=50)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, listops(seed=6, num_samples=50).train.x)
    cfg = bf.TransformerConfig.for_task(a, d_model=16, num_layers=3, num_heads=2)
    assert bf.DynamicTransformer(cfg)(a.val.x[:3]).shape == (3, 10)


def test_bad_arguments() -> None:
    with pytest.raises(bf.InputValidationError, match=r"`seq_len` of at least 13 for max_depth=4"):
        listops(max_depth=4, seq_len=12)
    with pytest.raises(bf.InputValidationError, match="max_args"):
        listops(max_args=1)


def test_ops_draws_only_the_chosen_operations_and_labels_stay_the_values() -> None:
    task = listops(seed=1, num_samples=400, max_depth=3, max_args=3, seq_len=32, ops=["MIN", "MAX"])
    for part in (task.train, task.val, task.test):
        for x, y, d in zip(part.x, part.y, part.difficulty, strict=True):
            assert evaluate(x) == int(y) and _depth(x) == int(d)
            assert not bool(((x == WORDS["[MED"]) | (x == WORDS["[SM"])).any())
    used = set(torch.cat([task.train.x, task.val.x, task.test.x]).flatten().tolist())
    assert {WORDS["[MIN"], WORDS["[MAX"]} <= used
    assert task.model["vocab_size"] == 16  # the token ids of all four operations are kept


def test_ops_defaults_to_all_four() -> None:
    a, b = listops(seed=4, num_samples=60), listops(seed=4, num_samples=60, ops=("MIN", "MAX", "MED", "SM"))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)


@pytest.mark.parametrize(
    ("ops", "says"),
    [([], "non-empty list"), ("MIN", "non-empty list"), (["MIN", "AVG"], "unknown names"), (["MIN", "MIN"], "twice")],
)
def test_bad_ops(ops: object, says: str) -> None:
    with pytest.raises(bf.InputValidationError, match=says):
        listops(num_samples=10, ops=ops)  # type: ignore[arg-type]


def _leaf_levels(row: torch.Tensor) -> set[int]:
    """The nesting level of every digit of ``row``."""
    level, levels = 0, set()
    for t in row.tolist():
        if 11 <= t <= 14:
            level += 1
        elif t == CLOSE:
            level -= 1
        elif t != PAD:
            levels.add(level)
    return levels


@pytest.mark.parametrize(("arity", "max_depth"), [(2, 4), (3, 3)])
def test_balanced_expressions_are_complete_trees_with_their_values(arity: int, max_depth: int) -> None:
    length = balanced_length(max_depth, arity)
    task = listops(seed=3, num_samples=300, max_depth=max_depth, max_args=arity, seq_len=length, balanced=True)
    layouts: dict[int, torch.Tensor] = {}
    for part in (task.train, task.val, task.test):
        for x, y, d in zip(part.x, part.y, part.difficulty, strict=True):
            depth = int(d)
            assert evaluate(x) == int(y) and _depth(x) == depth
            assert _leaf_levels(x) == {depth}  # every digit at the full depth
            assert int((x != PAD).sum()) == balanced_length(depth, arity)
            kind = (x >= 11) * 2 + (x == CLOSE)  # op, close or digit/pad: one layout per depth
            assert torch.equal(layouts.setdefault(depth, kind), kind)
            assert all(len(args) == arity for args in _lists(x))
    assert sorted(layouts) == list(range(1, max_depth + 1))


def _lists(row: torch.Tensor) -> list[list[int]]:
    """The argument count of every list of ``row``, as lists of placeholders."""
    stack: list[list[int]] = []
    done: list[list[int]] = []
    for t in row.tolist():
        if 11 <= t <= 14:
            stack.append([])
        elif t == CLOSE:
            done.append(stack.pop())
            if stack:
                stack[-1].append(0)
        elif t != PAD:
            stack[-1].append(0)
    return done


def test_balanced_values_follow_each_operation() -> None:
    task = listops(seed=0, num_samples=400, max_depth=1, max_args=3, seq_len=5, balanced=True)
    x, y = task.train.x, task.train.y
    digits = x[:, 1:4] - 1
    want = {11: digits.min(1).values, 12: digits.max(1).values, 13: digits.median(1).values, 14: digits.sum(1) % 10}
    for op, value in want.items():
        rows = x[:, 0] == op
        assert bool(rows.any()) and torch.equal(y[rows], value[rows])


def test_balanced_is_seeded_and_checks_its_length() -> None:
    a = listops(seed=7, num_samples=80, max_depth=3, max_args=2, seq_len=22, balanced=True)
    b = listops(seed=7, num_samples=80, max_depth=3, max_args=2, seq_len=22, balanced=True)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    c = listops(seed=8, num_samples=80, max_depth=3, max_args=2, seq_len=22, balanced=True)
    assert not torch.equal(a.train.x, c.train.x)
    with pytest.raises(bf.InputValidationError, match=r"at least 22 for a balanced expression of depth 3 with 2"):
        listops(max_depth=3, max_args=2, seq_len=21, balanced=True)
    with pytest.raises(bf.InputValidationError, match="`balanced` to be a bool"):
        listops(num_samples=10, balanced=1)  # type: ignore[arg-type]
