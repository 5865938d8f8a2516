"""Epsilon-greedy with a fixed or a decaying exploration rate."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from banditformer.bandits._common import CountState, CountStepper, argmax_untried_first, explore_mixture
from banditformer.bandits._compiled import buffer_views, builtin, draw_seed, groups_in_range, kernels, select_rows
from banditformer.core.errors import InputValidationError
from banditformer.core.policy import Policy
from banditformer.core.random import counter_seed, counter_uniform, counter_uniforms

__all__ = ["SCHEDULES", "EpsilonGreedy", "EpsilonGreedyStepper", "epsilon_schedule"]

SCHEDULES = ("fixed", "inverse_time", "exponential")

_VIEWS = ("sums", "counts", "epsilon", "min_epsilon")  # the buffers the compiled select reads
_NO_RATES = np.zeros(0)  # the compiled select's "one rate for every group"


def epsilon_schedule(
    epsilon: float | Tensor, schedule: str, rate: float | Tensor, t: Tensor, min_epsilon: float | Tensor = 0.0
) -> Tensor:
    """The exploration rate after ``t`` observations.

    - ``fixed``: ``epsilon``;
    - ``inverse_time``: ``epsilon / (1 + rate * t)`` (the 1/t decay of Auer et al. 2002's
      epsilon_n-greedy, which keeps regret logarithmic);
    - ``exponential``: ``epsilon * exp(-rate * t)``;

    each floored at ``min_epsilon``.
    """
    if schedule == "fixed":
        eps = torch.zeros_like(t) + epsilon
    elif schedule == "inverse_time":
        eps = epsilon / (1.0 + rate * t)
    elif schedule == "exponential":
        eps = epsilon * torch.exp(-rate * t)
    else:
        raise InputValidationError(f"expected `schedule` in {SCHEDULES}, got {schedule!r}")
    return torch.maximum(eps, torch.as_tensor(min_epsilon, dtype=eps.dtype, device=eps.device))


class EpsilonGreedy(CountState, Policy):
    """Play the arm of highest mean reward; with probability epsilon play a uniform random arm.

    Arms never observed in a row's group are played first (the untried-arm rule of
    :func:`~banditformer.bandits._common.argmax_untried_first`); with ``epsilon = 0`` the policy is
    then purely greedy on the empirical means. ``t`` in the schedule counts the observations of the
    row's group. Each ``select`` call draws one seed from the policy's generator, and row ``i``
    takes uniform ``u`` number ``i`` of its stream
    (:func:`~banditformer.core.random.counter_uniforms`): below epsilon the row explores, playing
    arm ``floor(u / epsilon * K)`` (there ``u / epsilon`` is uniform on ``[0, 1)``, up to the
    float grid), otherwise the greedy arm.

    Args:
        num_arms: K.
        epsilon: the (initial) exploration rate in [0, 1].
        schedule: ``"fixed"``, ``"inverse_time"`` or ``"exponential"``.
        rate: the decay rate of the decaying schedules.
        min_epsilon: a floor for the decaying schedules.

    Examples:
        >>> p = EpsilonGreedy(num_arms=2, epsilon=0.0)
        >>> p.update(torch.tensor([0, 1]), torch.tensor([0.2, 0.9]))
        >>> p.select(n=3).tolist()
        [1, 1, 1]
    """

    def __init__(
        self,
        num_arms: int,
        *,
        epsilon: float = 0.1,
        schedule: str = "fixed",
        rate: float = 0.01,
        min_epsilon: float = 0.0,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        if schedule not in SCHEDULES:
            raise InputValidationError(f"expected `schedule` in {SCHEDULES}, got {schedule!r}")
        self.add_config("schedule", schedule)
        self.add_hyperparameter("epsilon", epsilon, low=0.0, high=1.0, dtype=None)
        self.add_hyperparameter("rate", rate, low=0.0, dtype=None)
        self.add_hyperparameter("min_epsilon", min_epsilon, low=0.0, high=1.0, dtype=None)
        self._init_count_state()  # no discount

    def current_epsilon(self, groups: Tensor | None = None) -> Tensor:
        """The exploration rate of each group, ``(G,)``, or of each row for ``groups`` ``(n,)``."""
        eps = epsilon_schedule(self.epsilon, self.schedule, self.rate, self.counts.sum(1), self.min_epsilon)
        return eps if groups is None else eps[groups]

    def _greedy(self, groups: Tensor) -> Tensor:
        means = self.sums / self.counts.clamp(min=1e-12)  # (G, K)
        return argmax_untried_first(means, self.counts, groups)

    def _action_probabilities(self, context: Tensor | None, groups: Tensor) -> Tensor:
        # exact: the greedy arm (deterministic for the batch) mixed with uniform exploration
        return explore_mixture(self._greedy(groups), self.current_epsilon(groups), self.num_arms)

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        n = groups.shape[0]
        greedy = self._greedy(groups)
        u = counter_uniforms(counter_seed(self.generator), n)
        eps = self.current_epsilon(groups)
        explore = u < eps
        # one uniform per row: below epsilon, u / epsilon is uniform in [0, 1) and picks the arm
        random_arm = (u / torch.where(explore, eps, 1.0) * self.num_arms).long().clamp(max=self.num_arms - 1)
        return torch.where(explore, random_arm, greedy)

    def _compiled_select(self, context: object, n: object, groups: object) -> Tensor | None:
        kern = kernels() if context is None and builtin(self) and self._buffers["counts"].is_cpu else None
        rows = select_rows(n, groups) if kern is not None else None
        if rows is None:
            return None
        size, group_rows = rows
        if not groups_in_range(kern, self, group_rows):
            return None  # before any draw: the torch path reports it
        sums, counts, epsilon, min_epsilon = buffer_views(self, _VIEWS)
        seed = draw_seed(self)  # the torch path's one draw; its uniforms come in the kernel
        if self.schedule == "fixed":  # epsilon_schedule's "fixed": max(epsilon, min_epsilon), in float64
            rate, rates = max(float(epsilon[0]), float(min_epsilon[0])), _NO_RATES
        else:
            rate, rates = 0.0, self.current_epsilon().to(torch.float64).numpy()
        out = torch.empty(size, dtype=torch.long)
        kern.epsilon_greedy_select(sums, counts, group_rows, seed, rate, rates, out.numpy())
        return out

    def _stepper(self, group: int) -> EpsilonGreedyStepper:
        return EpsilonGreedyStepper(self, group)


class EpsilonGreedyStepper(CountStepper):
    """Epsilon-greedy's lean stepper: the greedy arm of one group in NumPy, then the batched
    path's draw (one seed from the policy's generator, and the first uniform of its stream).
    The fixed schedule's rate is read as a float; a decaying one is :meth:`EpsilonGreedy.current_epsilon`."""

    def _bind(self) -> None:
        super()._bind()
        p: EpsilonGreedy = self._policy  # type: ignore[assignment]
        self._fixed = p.schedule == "fixed"
        self._epsilon = self._view("epsilon")
        self._min_epsilon = self._view("min_epsilon")

    def _lean_select(self, context: Tensor | None) -> int:
        greedy = self._untried()
        if greedy < 0:
            greedy = int((self._sums / np.maximum(self._counts, 1e-12)).argmax())
        if self._fixed:  # epsilon_schedule's "fixed": max(epsilon, min_epsilon), in float64
            eps = max(float(self._epsilon), float(self._min_epsilon))
        else:
            eps = float(self._policy.current_epsilon(self._groups))  # type: ignore[attr-defined]
        u = counter_uniform(self._counter_seed(), 0)  # the batched path's draw, and its arithmetic
        if u < eps:
            k = self._policy.num_arms
            return min(int(u / eps * k), k - 1)
        return greedy
