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


def test_a_block_left_open_and_collected_later_does_not_undo_the_current_block() -> None:
    import gc

    with keep_value_checks():
        left = value_checks(True)
        left.__enter__()  # never exited (as a careless plugin might); keep_value_checks restores
    with value_checks(False):
        del left
        gc.collect()  # the abandoned block is collected here: it must not reset this block's setting
        assert not value_checks_enabled()
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


# ------------------------------------------------------------------------ the argument checks
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, r"expected `n` to be an int, got bool True"),
        (2.0, r"expected `n` to be an int, got float 2.0"),
        (0, r"expected `n` in \[1, 3\], got 0"),
        (4, r"expected `n` in \[1, 3\], got 4"),
    ],
)
def test_check_int_refuses_bools_floats_and_values_out_of_range(value: object, message: str) -> None:
    with pytest.raises(bf.InputValidationError, match=message):
        check_int("n", value, low=1, high=3)


def test_check_int_and_check_float_return_what_they_accept() -> None:
    assert check_int("n", 3, low=1, high=3) == 3 and type(check_int("n", 3)) is int
    assert check_float("x", 1, low=0.0) == 1.0 and type(check_float("x", 1)) is float
    assert check_float("x", 0.0, low=0.0, high=1.0) == 0.0  # closed ends admit their bound


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (float("nan"), {}, r"expected `x` to be finite, got nan"),
        (float("inf"), {}, r"expected `x` to be finite, got inf"),
        ("1", {}, r"expected `x` to be a number, got str '1'"),
        (0.0, {"low": 0.0, "low_open": True}, r"expected `x` in \(0, inf\], got 0.0"),
        (1.0, {"high": 1.0, "high_open": True}, r"expected `x` in \[-inf, 1\), got 1.0"),
    ],
)
def test_check_float_refuses_non_finite_and_open_ends(value: object, kwargs: dict, message: str) -> None:
    with pytest.raises(bf.InputValidationError, match=message):
        check_float("x", value, **kwargs)


@pytest.mark.parametrize(
    ("x", "kwargs", "message"),
    [
        ([1, 2], {}, r"expected `t` to be a torch.Tensor, got list \[1, 2\]"),
        (torch.zeros(2, 3), {"ndim": 1}, r"to have 1 dimension\(s\), got Tensor\(shape=\(2, 3\)"),
        (torch.zeros(2, 3), {"shape": (None, 4)}, r"expected `t` of shape \(\*, 4\), got Tensor\(shape=\(2, 3\)"),
        (torch.zeros(2), {"shape": (3,)}, r"expected `t` of shape \(3,\)"),
        (torch.zeros(2, dtype=torch.long), {"kind": "float"}, r"to have a floating dtype"),
        (torch.zeros(2), {"kind": "int"}, r"to have an integer dtype"),
        (torch.zeros(2, dtype=torch.bool), {"kind": "int"}, r"to have an integer dtype"),
        (torch.zeros(2), {"kind": "bool"}, r"to have dtype torch.bool"),
        (torch.zeros(2, device="meta"), {"device": torch.device("cpu")}, r"expected `t` on device cpu, got .*meta"),
    ],
)
def test_check_tensor_names_what_was_expected_and_what_was_got(x: object, kwargs: dict, message: str) -> None:
    with pytest.raises(bf.InputValidationError, match=message):
        validation.check_tensor("t", x, **kwargs)


def test_check_tensor_passes_matching_tensors_through_unchanged() -> None:
    x = torch.zeros(2, 3)
    assert validation.check_tensor("t", x, ndim=2, shape=(None, 3), kind="float", device=torch.device("cpu")) is x


def test_check_arms_rewards_and_context_report_the_bad_values() -> None:
    cpu = torch.device("cpu")
    with pytest.raises(bf.InputValidationError, match=r"expected `arms` in \[0, 3\), got values \[3, -1\]"):
        validation.check_arms("arms", torch.tensor([0, 3, -1]), 3, cpu)
    assert validation.check_arms("arms", torch.tensor([2, 0], dtype=torch.int32), 3, cpu).dtype == torch.int64
    with pytest.raises(bf.InputValidationError, match=r"expected `r` to be finite, got values \[nan\]"):
        validation.check_rewards("r", torch.tensor([0.5, float("nan")]), (2,), cpu, 0.0, 1.0)
    with pytest.raises(bf.InputValidationError, match=r"expected `r` in \[0, 1\], got values \[1.5\]"):
        validation.check_rewards("r", torch.tensor([0.5, 1.5]), (2,), cpu, 0.0, 1.0)
    masked = torch.tensor([0.5, 1.5])  # the out-of-range entry is not chosen: not checked
    assert validation.check_rewards("r", masked, (2,), cpu, 0.0, 1.0, mask=torch.tensor([True, False])) is masked
    with pytest.raises(bf.InputValidationError, match=r"expected `c` to be finite, got NaN or inf entries"):
        validation.check_context("c", torch.tensor([[0.0, float("inf")]]), 2, cpu)
    with pytest.raises(bf.InputValidationError, match=r"expected `c` entries in \[-2, 2\], got max \|x\| = 3"):
        validation.check_context("c", torch.tensor([[0.0, -3.0]]), 2, cpu, bound=2.0)


def test_check_device_refuses_what_torch_cannot_use() -> None:
    assert validation.check_device("d", "cpu") == torch.device("cpu")
    with pytest.raises(bf.InputValidationError, match=r"expected `d` to be a torch device, got 'gpu0'"):
        validation.check_device("d", "gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(bf.InputValidationError, match=r"a device of this machine, got cuda without a CUDA GPU"):
            validation.check_device("d", "cuda")


def test_values_ok_runs_no_check_when_checks_are_off_and_names_the_first_failure() -> None:
    ran: list[str] = []

    def flag(value: bool, name: str):
        def ok() -> torch.Tensor:
            ran.append(name)
            return torch.tensor(value)

        return ok

    def explain(name: str):
        def fail() -> None:
            raise bf.InputValidationError(f"bad {name}")

        return fail

    checks = [(flag(True, "a"), explain("a")), (flag(False, "b"), explain("b")), (flag(False, "c"), explain("c"))]
    with pytest.raises(bf.InputValidationError, match="bad b"):
        validation.values_ok(checks)
    assert ran == ["a", "b", "c"]  # every flag is computed before the one host sync
    ran.clear()
    with value_checks(False):
        validation.values_ok(checks)
    assert ran == []
