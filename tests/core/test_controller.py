"""The controller contract (core/controller.py): decide and feedback check their input and the
subclass's output, a failed feedback changes nothing, and the state travels with the module."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from banditformer import Controller, Decision, InputValidationError

L, H = 3, 2


class Counting(Controller):
    """A plugin-style controller (defined outside the package, so untrusted): full decisions,
    feedback adds the qualities to a buffer, then optionally fails halfway."""

    def __init__(self, fail: bool = False, depth: int = L, importance: bool = False) -> None:
        super().__init__(L, H)
        self.register_buffer("total", torch.zeros((), dtype=torch.float64))
        self.fail, self.depth, self.importance = fail, depth, importance

    @property
    def wants_head_importance(self) -> bool:
        return self.importance

    def _decide(self, context: Tensor, explore: bool) -> Decision:
        d = Decision.full(context.shape[0], L, H, device=context.device)
        d.depth.fill_(self.depth)
        return d

    def _feedback(self, decision: Decision, quality: Tensor, flops: Tensor, **extra: Tensor) -> None:
        self.total += quality.double().sum()
        if self.fail:
            raise RuntimeError("halfway")


def test_decide_checks_the_context_and_validates_the_subclass_decision() -> None:
    c = Counting()
    assert c.decide(torch.zeros(4, 5)).depth.tolist() == [L] * 4
    with pytest.raises(InputValidationError, match="to be finite"):
        c.decide(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(InputValidationError, match=r"expected `context` of shape \(\*, \*\)"):
        c.decide(torch.zeros(4))
    with pytest.raises(InputValidationError, match=r"expected `decision.depth` in \[1, 3\], got values \[0, 0\]"):
        Counting(depth=0).decide(torch.zeros(2, 5))


def test_feedback_checks_every_input_before_the_subclass_sees_it() -> None:
    c = Counting()
    d = c.decide(torch.zeros(3, 5))
    with pytest.raises(InputValidationError, match="expected `decision` to be a Decision, got dict"):
        c.feedback({}, torch.rand(3), torch.ones(3))
    with pytest.raises(InputValidationError, match=r"expected `quality` in \[0, 1\], got values \[2.0\]"):
        c.feedback(d, torch.tensor([0.5, 2.0, 0.5]), torch.ones(3))
    with pytest.raises(InputValidationError, match=r"expected `flops` in \[0, inf\], got values \[-1.0\]"):
        c.feedback(d, torch.rand(3), torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(InputValidationError, match=r"expected `quality` of shape \(3,\)"):
        c.feedback(d, torch.rand(2), torch.ones(3))
    assert float(c.total) == 0.0  # nothing reached _feedback
    c.feedback(d, torch.full((3,), 0.5), torch.ones(3))
    assert float(c.total) == 1.5


def test_head_importance_is_required_only_by_controllers_that_want_it() -> None:
    wants = Counting(importance=True)
    d = wants.decide(torch.zeros(2, 5))
    with pytest.raises(InputValidationError, match=r"expected `head_importance` of shape \(2, 3, 2\) .* got None"):
        wants.feedback(d, torch.rand(2), torch.ones(2))
    with pytest.raises(InputValidationError, match=r"expected `head_importance` in \[0, inf\]"):
        wants.feedback(d, torch.rand(2), torch.ones(2), head_importance=-torch.ones(2, L, H))
    wants.feedback(d, torch.rand(2), torch.ones(2), head_importance=torch.ones(2, L, H))
    Counting().feedback(d, torch.rand(2), torch.ones(2), head_importance=-torch.ones(2, L, H))  # ignored


def test_a_plugin_controller_whose_feedback_raises_is_restored() -> None:
    c = Counting(fail=True)
    d = c.decide(torch.zeros(2, 5))
    with pytest.raises(RuntimeError, match="halfway"):
        c.feedback(d, torch.full((2,), 0.5), torch.ones(2))
    assert float(c.total) == 0.0  # the half-applied update was rolled back


def test_the_configuration_travels_in_the_state_and_is_checked_on_load() -> None:
    c = Counting()
    state = c.state_dict()
    assert state["_extra_state"]["config"] == {"num_layers": L, "num_heads": H}
    other = Counting()
    other.load_state_dict(state)
    state["_extra_state"]["config"]["num_heads"] = 4
    with pytest.raises(InputValidationError, match=r"`num_heads` = 2 .* got 4"):
        other.load_state_dict(state)


def test_the_controller_device_follows_its_buffers() -> None:
    c = Counting()
    assert c.device == torch.device("cpu")
    with pytest.raises(InputValidationError, match="on device cpu"):
        c.decide(torch.zeros(2, 5, device="meta"))
