"""Vectorised pieces the policies share: count and sum statistics with their discount (and
:class:`CountState`, the one-arm policies built on them), untried-arm dealing, empirical means."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from banditformer.bandits._compiled import NO_GROUPS, buffer_views, builtin, cpu_rows, kernels, raise_first, written
from banditformer.core.errors import InputValidationError
from banditformer.core.policy import PolicyBase
from banditformer.core.stepper import LeanStepper
from banditformer.core.validation import value_checks_enabled

# A score above any finite index, used to put untried arms first.
_UNTRIED = 1e300

_COUNT_VIEWS = ("counts", "sums", "arm_counts", "arm_reward_sums")  # what count_update writes


def add_discount(policy: PolicyBase, discount: float) -> float:
    """Register the discount factor gamma in (0, 1] as a configuration hyperparameter ``discount``,
    which :func:`observe` then applies once per round (each row of a group is one round). Its value
    is also kept on the host, as ``policy.discount_factor`` (configuration: a load cannot change
    it), so that gamma = 1 skips the decay without reading the buffer back from a device."""
    value = policy.add_hyperparameter("discount", discount, low=0.0, high=1.0, low_open=True)
    policy.discount_factor = value
    return value


DRAWS = ("row", "group")


def check_draws(draws: str) -> str:
    """Thompson-sampling draw sharing: ``"row"`` or ``"group"``."""
    if draws not in DRAWS:
        raise InputValidationError(f"expected `draws` in {DRAWS}, got {draws!r}")
    return draws


def add_count_state(policy: PolicyBase, discount: float | None = None) -> None:
    """Register the per-group, per-arm statistics ``counts`` (``>= 0``) and ``sums``, both
    ``(G, K)`` float64 and summed across ranks, and, unless ``discount`` is ``None``, the discount
    (:func:`add_discount`). :meth:`CountState._update` feeds them back one arm per row; a
    combinatorial policy feeds them with :func:`observe`."""
    shape = (policy.num_groups, policy.num_arms)
    if discount is not None:
        add_discount(policy, discount)
    policy.add_state("counts", torch.zeros(shape, dtype=torch.float64), low=0.0)
    policy.add_state("sums", torch.zeros(shape, dtype=torch.float64))


def observe(policy: PolicyBase, groups: Tensor, arms: Tensor | None = None, **increments: Tensor) -> None:
    """One update call's step on summed statistics: each row is one round of its group, so with
    the policy's discount gamma (if it registered one, :func:`add_discount`) a group's statistics
    decay by ``gamma ** n_g`` for its ``n_g`` rows and row ``i``'s increment is weighted by
    ``gamma ** (rows of its group after it)``; then the increments are added.

    This is exactly the same rows fed one at a time, in order, each decaying only its own group
    (Garivier and Moulines 2008, one round per row): forgetting does not depend on the batch size.
    Without a discount, or at gamma 1 (told by the host copy ``discount_factor``, so no host
    sync), the increments are added as they are.

    Args:
        policy: the policy whose statistics (buffers named by the keywords) change in place.
        groups: ``(n,)`` int64 group of each row.
        arms: ``(n,)`` int64 arm of each row: ``stat[groups[i], arms[i]] += increment[i]``, with
            ``(n,)`` or ``(n, ...)`` increments of ``(G, K)`` or ``(G, K, ...)`` statistics. ``None``:
            ``stat[groups[i]] += increment[i]``, with ``(n, K)`` increments of ``(G, K)`` statistics
            (a combinatorial row) or ``(n,)`` increments of ``(G,)`` statistics.
        increments: statistic name -> increments, in the order they are added.
    """
    discount = getattr(policy, "discount", None)
    if isinstance(discount, Tensor) and groups.numel() and getattr(policy, "discount_factor", None) != 1.0:
        gamma = discount.to(torch.float64)
        per_group = torch.bincount(groups, minlength=policy.num_groups).to(torch.float64)  # (G,) rounds
        later = per_group[groups] - 1.0 - rank_within_group(groups).to(torch.float64)  # (n,) rounds after row i
        decay, weight = gamma.pow(per_group), gamma.pow(later)
        weighted = {}
        for name, values in increments.items():
            table = getattr(policy, name)
            table.mul_(decay.view(-1, *([1] * (table.dim() - 1))).to(table.dtype))
            w = weight.view(-1, *([1] * (values.dim() - 1))).to(values.dtype)
            weighted[name] = values * w
        increments = weighted
    for name, values in increments.items():
        table = getattr(policy, name)
        if arms is None:
            table.index_add_(0, groups, values)
        else:
            add_at(table, groups, arms, values)


def update_kernels(
    policy: Any, arms: object, rewards: object, context: object, groups: object, buffer: str
) -> ModuleType | None:
    """The kernels for a compiled ``update`` call of ``policy`` (whose statistics include the
    buffer ``buffer``), or ``None`` for the torch path: a context, a discount, a subclass (which
    may override ``_update``), another device, dtype or form, or compiled rounds off."""
    if context is not None or not builtin(policy) or getattr(policy, "discount_factor", 1.0) != 1.0:
        return None
    if not cpu_rows(arms, rewards, groups) or not policy._buffers[buffer].is_cpu:
        return None
    return kernels()


class CountState:
    """A one-arm :class:`~banditformer.core.policy.Policy` whose statistics are the counts and sums
    of :func:`add_count_state`: their registration (:meth:`_init_count_state`, for the constructor),
    the greedy mode on the empirical means, and the update. Put it before ``Policy`` in the bases
    (``class UCB1(CountState, Policy)``), which then adds ``_select``; a policy with another
    estimate of the means (a posterior mean) overrides ``_means``."""

    counts: Tensor
    sums: Tensor

    def _init_count_state(self, discount: float | None = None) -> None:
        """Register ``counts``, ``sums`` and, unless ``None``, the discount (:func:`add_count_state`)."""
        policy: Any = self  # a PolicyBase, by the class this mixin is combined with
        add_count_state(policy, discount)

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        return empirical_means(self.sums, self.counts, groups)

    def _update(self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        # one play and the float64 reward at (groups[i], arms[i]), after the discount
        policy: Any = self
        observe(policy, groups, arms, counts=torch.ones_like(rewards), sums=rewards)

    def _compiled_update(self, arms: object, rewards: object, context: object, groups: object) -> bool:
        # One kernel call (banditformer.bandits._compiled) for the undiscounted statistics of a
        # built-in class on the CPU; a context, a discount, a subclass (which may override
        # _update), another device or dtype take the torch path.
        policy: Any = self
        kern = update_kernels(policy, arms, rewards, context, groups, "counts")
        if kern is None:
            return False
        low, high = policy.reward_range
        counts, sums, arm_counts, arm_sums = buffer_views(policy, _COUNT_VIEWS)
        group_rows = NO_GROUPS if groups is None else groups.numpy()
        bad = kern.count_update(
            arms.numpy(), rewards.numpy(), group_rows, policy.num_groups, value_checks_enabled(), low, high,
            counts, sums, arm_counts, arm_sums,
        )  # fmt: skip
        if bad:  # nothing was written
            raise_first(policy, kern, bad, arms, rewards, None, groups)
        written(policy, _COUNT_VIEWS)
        return True


class CountStepper(LeanStepper):
    """The lean stepper of a :class:`CountState` policy: its group's ``counts`` and ``sums`` as
    ``(K,)`` NumPy views, the discount applied as :func:`observe` applies it to one row (the
    group's statistics times gamma, then the row added), and the untried-arm rule of
    :func:`argmax_untried_first` for one row (the first untried arm). Subclasses add
    ``_lean_select``."""

    def _bind(self) -> None:
        super()._bind()
        self._counts = self._view("counts")[self._group]
        self._sums = self._view("sums")[self._group]
        self._discount = self._view("discount") if hasattr(self._policy, "discount") else None

    def _untried(self) -> int:
        """The row's first untried arm, or -1 when every arm of its group has an observation."""
        counts = self._counts  # >= 0 (a load checks it): untried means 0
        return -1 if np.count_nonzero(counts) == counts.shape[0] else int((counts == 0).argmax())

    def _lean_update(self, arm: int, reward: float, context: Tensor | None) -> None:
        if self._discount is not None:
            gamma = float(self._discount)
            if gamma != 1.0:
                self._counts *= gamma
                self._sums *= gamma
        self._counts[arm] += 1.0
        self._sums[arm] += reward


def explore_mixture(arms: Tensor, rate: Tensor | float, num_arms: int) -> Tensor:
    """``(n, K)`` float64 probabilities of a rule that plays ``arms`` ``(n,)`` except with
    probability ``rate`` (a float, or ``(n,)`` per row), when it plays a uniform arm:
    ``(1 - rate)`` on the row's arm plus ``rate / K`` on every arm (epsilon-greedy, M-UCB's
    forced exploration)."""
    rate = torch.as_tensor(rate, dtype=torch.float64, device=arms.device)
    rate = rate.unsqueeze(1) if rate.ndim else rate
    return (1.0 - rate) * torch.nn.functional.one_hot(arms, num_arms).to(torch.float64) + rate / num_arms


def rank_within_group(groups: Tensor) -> Tensor:
    """For each row, how many earlier rows share its group: ``(n,)`` int64."""
    n = groups.shape[0]
    order = torch.sort(groups, stable=True).indices
    sorted_groups = groups[order]
    first = torch.searchsorted(sorted_groups, sorted_groups, right=False)
    rank = torch.empty_like(groups)
    rank[order] = torch.arange(n, device=groups.device) - first
    return rank


def add_at(table: Tensor, groups: Tensor, arms: Tensor, values: Tensor) -> None:
    """``table[groups[i], arms[i]] += values[i]`` for every row, duplicates accumulating.

    Args:
        table: ``(G, K)`` or ``(G, K, ...)`` statistics, updated in place.
        groups, arms: ``(n,)`` int64 indices.
        values: ``(n,)`` or ``(n, ...)`` increments.
    """
    if table.shape[0] == 1:  # one group: the arms index it directly
        table[0].index_add_(0, arms, values)
        return
    flat = table.view(-1, *table.shape[2:])
    flat.index_add_(0, groups * table.shape[1] + arms, values)


def argmax_untried_first(table: Tensor, counts: Tensor, groups: Tensor) -> Tensor:
    """Each row plays its group's highest-scoring arm, except that untried arms go first.

    The untried-arm rule: while a row's group has arms with no (discounted) observation, the row
    plays one of them; the rows of a group in one batch are dealt the untried arms in index order,
    round-robin, so a batch of ``n >= K`` rows of one group tries every arm at once, and one row at
    a time plays arms ``0, 1, ..., K-1`` before any repeat. Ties go to the lower arm index.

    Rows of a group share their statistics, so the argmax is taken once per group ``(G, K)`` and
    gathered; the per-row dealing runs only while some group has an untried arm.

    Args:
        table: ``(G, K)`` float index of each arm in each group.
        counts: ``(G, K)`` observation counts.
        groups: ``(n,)`` group of each row.

    Returns:
        ``(n,)`` int64 arms.
    """
    arms = table.argmax(1)[groups]
    untried_table = counts <= 0
    if not bool(untried_table.any()):  # the common case once every arm has been played
        return arms
    untried = untried_table[groups]  # (n, K)
    n_untried = untried.sum(1)
    position = rank_within_group(groups) % n_untried.clamp(min=1)
    slot = untried.long().cumsum(1) - 1  # index of each untried arm among its row's untried arms
    dealt = (untried & (slot == position.unsqueeze(1))).long().argmax(1)
    return torch.where(n_untried > 0, dealt, arms)


def empirical_means(sums: Tensor, counts: Tensor, groups: Tensor) -> Tensor:
    """``(n, K)`` mean reward of each arm in each row's group; ``-inf`` for arms never observed."""
    c = counts[groups]
    return torch.where(c > 0, sums[groups] / c.clamp(min=1e-12), torch.full_like(c, float("-inf")))


def untried_first_scores(scores: Tensor, counts: Tensor, generator: torch.Generator) -> Tensor:
    """Scores with every untried base arm lifted above every tried one, in a random order per row
    (for combinatorial policies, where a row takes several arms at once)."""
    noise = torch.rand(scores.shape, generator=generator, device=scores.device, dtype=scores.dtype)
    return torch.where(counts <= 0, _UNTRIED * (1 + noise), scores)
