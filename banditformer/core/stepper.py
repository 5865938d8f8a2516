"""One decision at a time: :class:`Stepper`, the batch-1 path of a one-arm policy.

A loop that decides one row, waits for its reward and decides the next (an online service, a
simulation of one run) pays the batched API's fixed cost every round: tensors built from scalars,
shape, dtype, device and value checks, and a dozen small tensor operations where numbers would do.
``policy.stepper()`` returns a :class:`Stepper` for such loops: ``select`` returns a Python ``int``
and ``update`` takes an ``int`` arm and a ``float`` reward, checked as scalars.

It is the same policy, not a copy: it reads and writes the policy's own statistics (on the CPU
through NumPy views of the buffers, so nothing is copied), draws from the policy's own generator
in the order the batched path draws, and takes the policy's lock. A stepper's rounds are the
rounds of ``select(n=1)`` / ``update`` with the same arguments, arm for arm and statistic for
statistic (property-tested for every registered policy), so the two can be interleaved, and
``state_dict`` and checkpoints see every stepper round.

Policies with a lean implementation (UCB1, epsilon-greedy, Beta Thompson sampling, LinUCB, ...)
return a subclass of :class:`LeanStepper` from ``Policy._stepper``; every other policy, and every
policy off the CPU, gets the generic :class:`Stepper`, which runs the batched path with one row.
"""

from __future__ import annotations

import math
import numbers
import threading
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError
from banditformer.core.validation import check_context, check_int

__all__ = ["LeanStepper", "SteppedPolicy", "Stepper"]


class SteppedPolicy(Protocol):
    """What a stepper uses of its :class:`~banditformer.core.policy.Policy` (the policy module
    imports this one, so the stepper names the contract rather than the class)."""

    num_arms: int
    num_groups: int
    context_dim: int | None
    is_contextual: bool
    context_bound: float
    reward_range: tuple[float, float]
    _buffers: dict[str, Tensor | None]

    @property
    def device(self) -> torch.device: ...

    @property
    def generator(self) -> torch.Generator: ...

    @property
    def lock(self) -> threading.RLock: ...

    def select(self, context: Tensor | None = None, *, groups: Tensor | None = None) -> Any: ...

    def update(
        self, arms: Tensor, rewards: Tensor, context: Tensor | None = None, *, groups: Tensor | None = None
    ) -> None: ...


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"


class Stepper:
    """One row at a time of one group of a one-arm policy (see the module docstring).

    Args:
        policy: the :class:`~banditformer.core.policy.Policy` it steps (:class:`SteppedPolicy`).
        group: the statistics copy its rows belong to, in ``[0, num_groups)``.

    Examples:
        >>> from banditformer import make_policy
        >>> step = make_policy("ucb1", num_arms=3, seed=0).stepper()
        >>> arm = step.select()          # an int in [0, 3)
        >>> step.update(arm, 1.0)        # its reward, a float in the policy's reward range
    """

    def __init__(self, policy: SteppedPolicy, group: int = 0) -> None:
        self._policy = policy
        self._group = check_int("group", group, low=0, high=policy.num_groups - 1)
        self._groups = torch.full((1,), self._group, dtype=torch.long, device=policy.device)
        self._low, self._high = policy.reward_range
        self._lock = policy.lock

    @property
    def policy(self) -> SteppedPolicy:
        """The policy this stepper decides for."""
        return self._policy

    @property
    def group(self) -> int:
        """The statistics copy of this stepper's rows."""
        return self._group

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self._policy).__name__}, group={self._group})"

    # --------------------------------------------------------------------------- scalar checks
    def _arm(self, arm: object) -> int:
        """``arm`` as an int in ``[0, num_arms)``: a Python or NumPy integer, or a one-element
        integer tensor (what ``select`` of either path returns)."""
        if type(arm) is int:  # the common case first: what select returns
            pass
        elif isinstance(arm, Tensor) and arm.numel() == 1 and not arm.is_floating_point() and arm.dtype != torch.bool:
            arm = int(arm.item())
        elif isinstance(arm, numbers.Integral) and not isinstance(arm, (bool, np.bool_)):
            arm = int(arm)
        else:
            raise InputValidationError(f"expected `arm` to be an int, got {_describe(arm)}")
        if not 0 <= arm < self._policy.num_arms:
            raise InputValidationError(f"expected `arm` in [0, {self._policy.num_arms}), got {arm}")
        return arm

    def _reward(self, reward: object) -> float:
        """``reward`` as a float, finite and in the policy's ``reward_range``."""
        if type(reward) is float:
            value = reward
        elif isinstance(reward, Tensor) and reward.numel() == 1 and reward.dtype != torch.bool:
            value = float(reward.item())
        elif isinstance(reward, numbers.Real) and not isinstance(reward, (bool, np.bool_)):
            value = float(reward)
        else:
            raise InputValidationError(f"expected `reward` to be a float, got {_describe(reward)}")
        if not (self._low <= value <= self._high and math.isfinite(value)):
            raise InputValidationError(f"expected `reward` finite and in [{self._low:g}, {self._high:g}], got {value}")
        return value

    def _context(self, context: object) -> Tensor | None:
        """``context`` as a checked ``(1, context_dim)`` float tensor on the policy's device, or
        ``None``; a ``(context_dim,)`` tensor, array or sequence of numbers is one row."""
        policy = self._policy
        if context is None:
            if policy.is_contextual:
                raise InputValidationError(
                    f"expected a `context` of {policy.context_dim} numbers for contextual policy "
                    f"{type(policy).__name__}, got None"
                )
            return None
        if not isinstance(context, Tensor):
            try:
                context = torch.as_tensor(np.asarray(context, dtype=np.float64))
            except (TypeError, ValueError):
                raise InputValidationError(
                    f"expected `context` to be {policy.context_dim} numbers, got {type(context).__name__}"
                ) from None
        if context.ndim == 1:
            context = context.unsqueeze(0)
        return check_context(
            "context", context.to(policy.device), policy.context_dim, policy.device, n=1, bound=policy.context_bound
        )

    # -------------------------------------------------------------------------------- rounds
    def select(self, context: object = None) -> int:
        """The arm for one row: what ``policy.select(context, groups=[group])`` would return.

        Args:
            context: ``context_dim`` numbers (a 1-dim tensor, array or sequence, or a
                ``(1, context_dim)`` tensor) for a contextual policy; ``None`` otherwise.

        Returns:
            An int in ``[0, num_arms)``.

        Raises:
            InputValidationError: on a bad context; nothing is drawn or changed then.
        """
        ctx = self._context(context)
        return int(self._policy.select(ctx, groups=self._groups).item())

    def update(self, arm: object, reward: object, context: object = None) -> None:
        """Feed back one row: what ``policy.update([arm], [reward], context, groups=[group])`` does.

        Raises:
            InputValidationError: on a bad argument; the state is then unchanged.
        """
        a, r, ctx = self._arm(arm), self._reward(reward), self._context(context)
        device = self._policy.device
        arms = torch.full((1,), a, dtype=torch.long, device=device)
        rewards = torch.full((1,), r, dtype=torch.float64, device=device)
        self._policy.update(arms, rewards, ctx, groups=self._groups)


class LeanStepper(Stepper):
    """A stepper that works on NumPy views of the policy's CPU statistics.

    Subclasses implement :meth:`_bind` (take the views they need, calling ``super()._bind()``),
    :meth:`_lean_select` and :meth:`_lean_update`; arguments reach them checked. The views are
    taken again whenever a buffer they view was replaced or its memory moved (``.to``, ``_apply``,
    an assignment, ``share_memory()``, ``set_``, ``.data =``); off the CPU the stepper runs the
    generic path.
    """

    _bound: Tensor | None = None
    # (name, buffer, address) of every buffer a view was taken of, for _refresh
    _viewed: tuple[tuple[str, Tensor, int], ...] = ()

    def __init__(self, policy: SteppedPolicy, group: int = 0) -> None:
        super().__init__(policy, group)
        self._lean = False
        # One-element draw buffers: ``uniform_`` and ``random_`` into them are ``torch.rand`` and
        # ``torch.randint`` of one element (the same values from the same generator), read back
        # through NumPy views, without a new tensor per draw.
        self._u = torch.empty(1, dtype=torch.float64)
        self._u_np = self._u.numpy()
        self._i = torch.empty(1, dtype=torch.long)
        self._i_np = self._i.numpy()
        self._refresh()

    def _uniform(self) -> float:
        """``torch.rand(1, dtype=float64)`` from the policy's generator, as a float."""
        self._u.uniform_(generator=self._policy.generator)
        return float(self._u_np[0])

    def _counter_seed(self) -> int:
        """:func:`~banditformer.core.random.counter_seed` from the policy's generator, as an int."""
        self._i.random_(generator=self._policy.generator)
        return int(self._i_np[0])

    def _randint(self, high: int) -> int:
        """``torch.randint(0, high, (1,))`` from the policy's generator, as an int."""
        self._i.random_(0, high, generator=self._policy.generator)
        return int(self._i_np[0])

    def _refresh(self) -> None:
        buffers = self._policy._buffers
        anchor = buffers["arm_counts"]
        if anchor is self._bound:
            for name, tensor, address in self._viewed:
                current = buffers[name]
                if current is not tensor or current.data_ptr() != address:
                    break
            else:
                return
        self._bound = anchor
        self._lean = anchor is not None and anchor.device.type == "cpu"
        # the group index follows the policy to its device, whichever path runs
        self._groups = torch.full((1,), self._group, dtype=torch.long, device=self._policy.device)
        self._viewed = ()
        if self._lean:
            self._bind()

    def _bind(self) -> None:
        """Take the NumPy views (of the current buffers) that the lean rounds use, through
        :meth:`_view`, which records them for :meth:`_refresh`."""
        self._arm_counts = self._view("arm_counts")
        self._arm_reward_sums = self._view("arm_reward_sums")

    def _view(self, name: str) -> np.ndarray:
        """The NumPy view of buffer ``name`` (all groups)."""
        return self._buffer(name).detach().numpy()

    def _buffer(self, name: str) -> Tensor:
        """Buffer ``name`` itself, recorded for :meth:`_refresh` as :meth:`_view` records a view
        (for a lean round that reads it through torch ops on a view of it)."""
        tensor = self._policy._buffers[name]
        assert tensor is not None
        self._viewed = (*self._viewed, (name, tensor, tensor.data_ptr()))
        return tensor

    def _lean_context(self, context: object) -> Tensor | None:
        """:meth:`Stepper._context` for the CPU: the checks in NumPy, a float64 ``(1, d)`` tensor
        (the dtype the policies compute in)."""
        policy = self._policy
        if context is None or not policy.is_contextual:
            return self._context(context)  # None, or refused, or checked and then ignored
        try:
            arr = (
                context.detach().to("cpu", torch.float64).numpy()
                if isinstance(context, Tensor) and context.is_floating_point()
                else np.asarray(context, dtype=np.float64)
            )
        except (TypeError, ValueError):
            arr = None
        d = policy.context_dim
        integral = isinstance(context, Tensor) and not context.is_floating_point()
        if arr is None or integral or arr.shape not in ((d,), (1, d)):
            return self._context(context)  # the generic check raises the error that says what is wrong
        bound = min(policy.context_bound, np.finfo(np.float64).max)
        if not bool((np.abs(arr) <= bound).all()):  # False for NaN, inf and beyond the bound
            return self._context(context)
        return torch.from_numpy(arr.reshape(1, d))

    def select(self, context: object = None) -> int:
        with self._lock:
            self._refresh()
            if not self._lean:
                return super().select(context)
            return self._lean_select(self._lean_context(context))

    def update(self, arm: object, reward: object, context: object = None) -> None:
        with self._lock:
            self._refresh()
            if not self._lean:
                super().update(arm, reward, context)
                return
            a, r, ctx = self._arm(arm), self._reward(reward), self._lean_context(context)
            self._arm_counts[a] += 1.0
            self._arm_reward_sums[a] += r
            self._lean_update(a, r, ctx)

    def _lean_select(self, context: Tensor | None) -> int:
        raise NotImplementedError

    def _lean_update(self, arm: int, reward: float, context: Tensor | None) -> None:
        raise NotImplementedError
