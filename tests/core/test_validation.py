"""The shared input checks: value checks scoped to a block and a thread, intervals printed as
``[0, 1]``, and the memory check's figures."""

from __future__ import annotations

import threading

import pytest
import torch

import banditformer as bf
from banditformer.core import validation
from banditformer.core.validation import (
    check_float,
    check_int,
    check_memory,
    keep_value_checks,
    set_value_checks,
    value_checks,
    value_checks_enabled,
)


def _nan_update_raises() -> bool:
    p = bf.make_policy("ucb1", num_arms=2)
    try:
        p.update(torch.tensor([0]), torch.tensor([float("nan")]))
    except bf.InputValidationError:
        return True
    return False


def test_a_value_checks_block_turns_checks_off_in_its_own_thread_only() -> None:
    inside, entered, done = {}, threading.Event(), threading.Event()

    def other() -> None:
        entered.wait(5)
        inside["other"] = (value_checks_enabled(), _nan_update_raises())
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with value_checks(False):
        entered.set()
        assert done.wait(5)
        inside["mine"] = (value_checks_enabled(), _nan_update_raises())
    t.join()
    assert inside == {"other": (True, True), "mine": (False, False)}
    assert value_checks_enabled() and _nan_update_raises()


def test_set_value_checks_is_the_process_wide_default_and_blocks_override_it() -> None:
    try:
        set_value_checks(False)
        seen = []
        t = threading.Thread(target=lambda: seen.append(value_checks_enabled()))
        t.start()
        t.join()
        assert seen == [False] and not _nan_update_raises()  # process-wide: every thread
        with value_checks(True):
            assert value_checks_enabled() and _nan_update_raises()
    finally:
        set_value_checks(True)
    with pytest.raises(bf.InputValidationError, match="expected `enabled` to be a bool, got int 0"):
        set_value_checks(0)  # type: ignore[arg-type]
    with pytest.raises(bf.InputValidationError, match="expected `enabled` to be a bool"):
        value_checks("off").__enter__()  # type: ignore[arg-type]
    assert value_checks_enabled()


def test_keep_value_checks_restores_and_says_what_changed() -> None:
    with keep_value_checks() as changes:
        set_value_checks(False)
    assert value_checks_enabled() and changes == ["turned value checks off process-wide (set_value_checks(False))"]
    with keep_value_checks() as changes:
        block = value_checks(False)
        block.__enter__()
    assert value_checks_enabled() and "for the rest of this thread" in changes[0]
    with keep_value_checks() as changes, value_checks(False):
        pass
    assert changes == []


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (lambda: check_float("x", 2.0, low=0.0, high=1.0), "expected `x` in [0, 1], got 2.0"),
        (lambda: check_float("x", 0.0, low=0.0, high=1.0, low_open=True), "expected `x` in (0, 1], got 0.0"),
        (lambda: check_float("x", -1, low=0.0), "expected `x` in [0, inf], got -1.0"),
        (lambda: check_float("x", 0.05, low=0.1, high=2.5), "expected `x` in [0.1, 2.5], got 0.05"),
        (lambda: check_int("n", 0, low=1), "expected `n` in [1, inf], got 0"),
    ],
)
def test_intervals_print_their_bounds_as_written(check, message: str) -> None:
    with pytest.raises(bf.InputValidationError) as info:
        check()
    assert str(info.value) == message


def test_check_memory_gives_both_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "available_memory", lambda: 2 * 10**9)
    check_memory("a run", 1.5e9)
    with pytest.raises(bf.InputValidationError) as info:
        check_memory("a run", 18.8e9, {"regret curves": 18e9, "marks": 0.8e9})
    assert str(info.value) == (
        "expected a run to fit in the 2 GB of memory available, got an estimate of 18.8 GB "
        "(regret curves 18 GB, marks 800 MB)"
    )


def test_available_memory_is_a_positive_byte_count() -> None:
    assert 10**6 < validation.available_memory() < 2**63
