"""The bandit-policy contracts: :class:`Policy` (one arm per row) and :class:`CombinatorialPolicy`
(k of N base arms per row, semi-bandit feedback).

Both are ``nn.Module``\\ s whose statistics are tensors registered with :meth:`PolicyBase.add_state`,
each with its distributed reduction, so ``.to(device)``, ``state_dict()`` and data-parallel sync come
for free. Every random draw comes from the policy's own ``torch.Generator``, seeded at construction,
and the generator's state is part of ``state_dict()``.

Subclasses implement two methods, ``_select`` and ``_update``; the public ``select`` and ``update``
validate every input first (raising :class:`InputValidationError` with the state untouched) and keep
the lifetime statistics ``arm_counts`` and ``arm_reward_sums``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError, PolicyContractError
from banditformer.core.random import make_generator
from banditformer.core.state import CheckedModule, locked, restored_on_error, trusted
from banditformer.core.stepper import Stepper
from banditformer.core.validation import (
    check_arms,
    check_context,
    check_int,
    check_rewards,
    check_tensor,
    index_ok,
    range_ok,
    value_checks_enabled,
    values_ok,
)

__all__ = ["REDUCTIONS", "CombinatorialPolicy", "Policy", "PolicyBase", "top_k_mask"]

#: How a state tensor combines across data-parallel ranks ("sum": add the increments).
REDUCTIONS = ("sum", "mean", "max", "min", None)


def top_k_mask(scores: Tensor, k: Tensor) -> Tensor:
    """A ``(n, N)`` bool mask of the ``k[i]`` highest scores of each row (ties to the lower index)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    keep = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0) < k.unsqueeze(1)
    return torch.zeros_like(keep).scatter(1, order, keep)


class PolicyBase(CheckedModule, ABC):
    """What :class:`Policy` and :class:`CombinatorialPolicy` share: arms, groups, state, RNG.

    Args:
        num_arms: the number of arms (base arms, for a combinatorial policy).
        context_dim: the length of a context vector; required by contextual policies, optional
            for context-free ones, which then check contexts against it and otherwise ignore them.
        num_groups: independent copies of the statistics; a row's ``groups`` entry picks its copy
            (one per context bucket, or one per simulated run).
        seed: seeds the policy's ``torch.Generator``.
    """

    #: True when the policy uses the context vector to decide.
    is_contextual: ClassVar[bool] = False
    #: The closed interval rewards must lie in.
    reward_range: ClassVar[tuple[float, float]] = (float("-inf"), float("inf"))
    #: Contexts must be finite with every entry in ``[-context_bound, context_bound]``.
    context_bound: ClassVar[float] = float("inf")
    #: False when updating with a batch may differ from the same rows one at a time
    #: (randomised updates, or statistics that change the grouping of later rows).
    exact_batch_update: ClassVar[bool] = True
    #: False when ``num_groups`` must be 1 (the policy uses groups internally, e.g. as context
    #: buckets); runners then keep one instance per independent run instead of one group each.
    supports_groups: ClassVar[bool] = True
    #: True when ``select`` draws nothing: the arm is a function of the statistics and the batch
    #: (index policies), so each row's propensity is 1.
    deterministic: ClassVar[bool] = False
    #: Draws of the Monte-Carlo propensity estimate (``select(..., propensity=True)``) of a
    #: randomised policy without a closed form.
    propensity_samples: ClassVar[int] = 256
    #: True when each row's ``_select`` draws are its own and nothing couples the rows of a call
    #: (no dealing of untried arms, no draw shared by a group): the Monte-Carlo estimate then
    #: selects the rows repeated ``propensity_samples`` times in a few calls instead of one call
    #: per sample.
    rows_independent: ClassVar[bool] = False
    #: Option sets (keyword arguments) that the registry-wide property tests run besides the
    #: defaults, e.g. a small window so that short tests reach its wrap-around; a plugin policy
    #: declares its own the same way.
    option_sets: ClassVar[tuple[dict[str, Any], ...]] = ()

    def __init__(
        self,
        num_arms: int,
        *,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_arms = self.add_config("num_arms", check_int("num_arms", num_arms, low=1))
        if context_dim is not None:
            check_int("context_dim", context_dim, low=1)
        elif self.is_contextual:
            raise InputValidationError(
                f"expected `context_dim` (an int >= 1) for contextual policy {type(self).__name__}, got None"
            )
        self.add_config("context_dim", context_dim)
        self.add_config("num_groups", check_int("num_groups", num_groups, low=1))
        self.seed = check_int("seed", seed, low=0, high=2**63 - 1)
        self._reductions: dict[str, str | None] = {}
        self._defaults: dict[str, Tensor] = {}
        # A zero-size buffer that tells which device the policy lives on.
        self.register_buffer("_anchor", torch.empty(0), persistent=False)
        self._generator = make_generator(seed, self._anchor.device)  # honours torch.set_default_device
        self.add_state("arm_counts", torch.zeros(num_arms, dtype=torch.float64), low=0.0)
        self.add_state("arm_reward_sums", torch.zeros(num_arms, dtype=torch.float64))

    # ----------------------------------------------------------------------------------- state
    def add_state(self, name: str, default: Tensor, reduce: str | None = "sum", *, low: float | None = None) -> None:
        """Register a statistic as a buffer, with its data-parallel reduction.

        Args:
            name: the attribute name.
            default: the initial value; :meth:`reset` restores it.
            reduce: ``"sum"`` (counts and sums: ranks add their increments), ``"mean"`` (ranks
                average their increments), ``"max"``, ``"min"``, or ``None`` (identical on every
                rank, e.g. a hyperparameter); see :mod:`banditformer.training.distributed`.
            low: a load requires every entry to be at least this (e.g. 0 for counts); every
                statistic must be finite.
        """
        if reduce not in REDUCTIONS:
            raise InputValidationError(f"expected `reduce` in {REDUCTIONS}, got {reduce!r}")
        self.add_statistic(name, default, low=low)
        self._reductions[name] = reduce
        self._defaults[name] = default.clone()

    @property
    def state_reductions(self) -> dict[str, str | None]:
        """Name -> reduction of every registered statistic."""
        return dict(self._reductions)

    @locked
    def reset(self) -> None:
        """Restore every statistic, and those of wrapped policies, to its initial value (the
        generators keep their state)."""
        for name, default in self._defaults.items():
            getattr(self, name).copy_(default)
        for child in self.children():
            if isinstance(child, PolicyBase):
                child.reset()

    @property
    def device(self) -> torch.device:
        """The device of the policy's statistics."""
        return self._anchor.device

    @property
    def generator(self) -> torch.Generator:
        """The policy's random source, on :attr:`device`."""
        return self._generator

    def _apply(self, fn: Any, recurse: bool = True) -> PolicyBase:
        # Statistics keep their dtype and value: `model.half()` or `model.to(torch.bfloat16)` on a
        # model that holds a policy moves the policy with it but must not round its counts. A buffer
        # that `fn` would cast (told by `fn` on an empty tensor of its dtype) only moves to `fn`'s
        # device, and is kept out of `nn.Module._apply`, which would cast it; the others take `fn`.
        targets = {}
        for name, buf in self._buffers.items():
            if buf is not None:
                probe = fn(torch.empty(0, dtype=buf.dtype, device=buf.device))
                if probe.dtype != buf.dtype:
                    targets[name] = probe.device
        kept = {name: self._buffers[name] for name in targets}
        for name in kept:
            self._buffers[name] = None
        try:
            out = super()._apply(fn, recurse)
        finally:
            for name, buf in kept.items():
                self._buffers[name] = buf
        for name, buf in kept.items():
            self._buffers[name] = buf.to(targets[name])
        if self._generator.device.type != self.device.type or (
            self.device.type == "cuda" and self._generator.device != self.device
        ):
            # A moved policy draws from a generator on its new device, seeded from the old one,
            # so the sequence stays a deterministic function of the seed and the history.
            sub = int(torch.randint(0, 2**62, (1,), generator=self._generator).item())
            self._generator = make_generator(sub, self.device)
        return out

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "rng_state": self._generator.get_state(),
            "rng_device": self._generator.device.type,
            "policy": type(self).__qualname__,
            "config": self.config,
        }

    def check_extra_state(self, key: str, state: Any) -> None:
        """Also check the generator state: a byte tensor this policy's generator accepts."""
        if not isinstance(state, Mapping) or not isinstance(state.get("rng_state"), Tensor):
            raise InputValidationError(
                f"expected `{key}` to be {{'rng_state': ByteTensor, 'rng_device': str, ...}}, got "
                f"{type(state).__name__}{' without a tensor rng_state' if isinstance(state, Mapping) else ''}"
            )
        super().check_extra_state(key, state)
        rng, device = state["rng_state"], state.get("rng_device")
        if rng.dtype != torch.uint8 or rng.ndim != 1:
            raise InputValidationError(
                f"expected `{key}`['rng_state'] to be a 1-dim uint8 tensor, got shape {tuple(rng.shape)} and "
                f"dtype {rng.dtype}"
            )
        try:
            if not isinstance(device, str) or torch.device(device).type != device:
                raise ValueError
        except (RuntimeError, ValueError):
            raise InputValidationError(
                f"expected `{key}`['rng_device'] to be a device type (cpu, cuda, ...), got {device!r}"
            ) from None
        if device == self._generator.device.type:
            try:  # a scratch generator of the same kind tells whether the state is one
                torch.Generator(device=self._generator.device).set_state(rng.cpu())
            except (RuntimeError, TypeError, ValueError) as exc:
                raise InputValidationError(
                    f"expected `{key}`['rng_state'] to be the state of a {device} generator, got one it refuses "
                    f"({str(exc).splitlines()[0]})"
                ) from None

    def set_extra_state(self, state: dict[str, Any]) -> None:
        rng = state["rng_state"].cpu()  # a load with map_location="cuda" may have moved it
        if state.get("rng_device") == self._generator.device.type:
            self._generator.set_state(rng)
        else:
            # Saved on another device type: continue from a seed derived from the saved state.
            digest = hashlib.blake2b(bytes(rng.cpu().numpy().tobytes()), digest_size=8).digest()
            self._generator = make_generator(int.from_bytes(digest, "little") >> 1, self.device)

    # ----------------------------------------------------------------------------- checking
    def _rows(
        self, context: Tensor | None, n: int | None, groups: Tensor | None, checks: list
    ) -> tuple[int, Tensor | None, Tensor]:
        """Resolve the batch size and check shapes, dtypes and devices (no host sync); append the
        value checks of ``context`` and ``groups`` to ``checks``. Returns ``(n, context, groups)``
        with ``groups`` defaulting to zeros."""
        sizes = []
        if n is not None:
            sizes.append(("n", check_int("n", n, low=0)))
        if context is not None:
            check_tensor("context", context, shape=(None, self.context_dim), kind="float", device=self.device)
            sizes.append(("context.shape[0]", context.shape[0]))
            # A bound beyond the dtype's range would round to inf in the comparison (1e100 in
            # float32) and let inf through: then every finite entry is within it, and finite is the test.
            bound = self.context_bound if self.context_bound < torch.finfo(context.dtype).max else math.inf
            checks.append(
                (
                    lambda: range_ok(context, -bound, bound),
                    lambda: check_context("context", context, self.context_dim, self.device, bound=self.context_bound),
                )
            )
        if groups is not None:
            check_tensor("groups", groups, ndim=1, kind="int", device=self.device)
            sizes.append(("groups.shape[0]", groups.shape[0]))
            checks.append(
                (
                    lambda: index_ok(groups, self.num_groups),
                    lambda: check_arms("groups", groups, self.num_groups, self.device),
                )
            )
        if self.is_contextual and context is None:
            raise InputValidationError(
                f"expected a `context` tensor of shape (n, {self.context_dim}) for contextual policy "
                f"{type(self).__name__}, got None"
            )
        if not sizes:
            raise InputValidationError("expected `n`, `context` or `groups` to give the batch size, got none")
        if len({s for _, s in sizes}) > 1:
            got = ", ".join(f"{k}={v}" for k, v in sizes)
            raise InputValidationError(f"expected one batch size from the arguments, got {got}")
        rows = sizes[0][1]
        if groups is None:
            groups = torch.zeros(rows, dtype=torch.long, device=self.device)
        return rows, context, groups.long()

    @locked
    def expected_rewards(
        self, context: Tensor | None = None, *, n: int | None = None, groups: Tensor | None = None
    ) -> Tensor:
        """The policy's current estimate of each arm's mean reward for each row: ``(n, K)`` float64
        (``-inf`` for arms it has no estimate of). ``select(..., explore=False)`` maximises it.

        Args:
            context: a ``(n, context_dim)`` float tensor, or ``None`` for context-free use.
            n: the number of rows, when neither ``context`` nor ``groups`` gives it (keyword-only).
            groups: a ``(n,)`` int tensor of statistics copies.
        """
        checks: list = []
        n, context, groups = self._rows(context, n, groups, checks)
        values_ok(checks)
        return self._means(context, groups)

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        """``(n, K)`` estimated mean rewards for checked rows; policies override this to offer a
        greedy (``explore=False``) mode."""
        raise NotImplementedError(
            f"{type(self).__name__} has no greedy mode (explore=False): it does not implement `_means`"
        )

    def _add_lifetime(self, arms: Tensor, rewards: Tensor) -> None:
        """Add ``(n,)`` plays and float64 rewards of base arms to ``arm_counts`` / ``arm_reward_sums``."""
        self.arm_counts.index_add_(0, arms, torch.ones_like(rewards))
        self.arm_reward_sums.index_add_(0, arms, rewards)

    @contextlib.contextmanager
    def _applying(self) -> Iterator[None]:
        """Apply checked feedback. Built-in policies cannot fail here; for any other class the
        state is restored if ``_update`` raises, and the error names the implementation
        (:class:`PolicyContractError`), so that a failed update has changed nothing."""
        if trusted(self):
            yield
            return
        try:
            with restored_on_error(self):
                yield
        except (PolicyContractError, KeyboardInterrupt):
            raise
        except Exception as exc:
            plugin, name = getattr(self, "_bf_origin", (type(self).__module__, None))
            who = f"policy {name!r} ({type(self).__qualname__})" if name else type(self).__qualname__
            raise PolicyContractError(
                f"{who}._update raised {type(exc).__name__}: {exc}; the policy's state was restored",
                plugin=plugin,
            ) from exc

    def _check_output(self, out: object, shape: tuple[int, ...], kind: str, ok: Any, what: str) -> None:
        """Check what ``_select`` returned: a tensor of ``shape``, dtype ``kind``, on the
        policy's device; and, unless the policy's classes are all banditformer's own (tested by the
        property tests, however they were built: :func:`~banditformer.core.state.trusted`) or value
        checks are off, ``ok(out)`` (a 0-dim bool tensor: the values keep the contract).

        Raises:
            PolicyContractError: naming the policy, its plugin and its class.
        """
        plugin, name = getattr(self, "_bf_origin", (type(self).__module__, None))
        if not isinstance(out, Tensor):
            got = type(out).__name__
        elif (
            tuple(out.shape) != shape
            or (kind == "bool") != (out.dtype == torch.bool)
            or (kind == "int" and (out.is_floating_point() or out.is_complex()))
        ):
            got = f"shape {tuple(out.shape)} and dtype {out.dtype}"
        elif out.device.type != self.device.type:
            got = f"a tensor on {out.device}"
        elif not trusted(self) and value_checks_enabled() and out.numel() and not bool(ok(out)):
            got = f"values that break it: {what}"
        else:
            return
        dtype = "torch.bool" if kind == "bool" else "an integer dtype"
        who = f"policy {name!r} ({type(self).__qualname__})" if name else type(self).__qualname__
        raise PolicyContractError(
            f"{who}._select broke the policy contract: expected a tensor of shape {shape} and {dtype} on "
            f"{self.device}, got {got}",
            plugin=plugin,
        )

    def extra_repr(self) -> str:
        parts = [f"num_arms={self.num_arms}"]
        if self.context_dim is not None:
            parts.append(f"context_dim={self.context_dim}")
        if self.num_groups != 1:
            parts.append(f"num_groups={self.num_groups}")
        parts.append(f"seed={self.seed}")
        return ", ".join(parts)


class Policy(PolicyBase):
    """A batched bandit policy: one arm per row.

    Subclasses implement ``_select(context, groups) -> LongTensor[n]`` and
    ``_update(arms, rewards, context, groups)``; inputs reach them already checked.

    Examples:
        >>> from banditformer import make_policy
        >>> policy = make_policy("ucb1", num_arms=3, seed=0)
        >>> arms = policy.select(n=4)             # (4,) int64 in [0, 3)
        >>> policy.update(arms, torch.rand(4))    # rewards in [0, 1]
    """

    @locked
    def select(
        self,
        context: Tensor | None = None,
        *,
        n: int | None = None,
        k: Tensor | int | None = None,
        groups: Tensor | None = None,
        explore: bool = True,
        propensity: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Choose one arm for each of ``n`` rows.

        The signature is :class:`CombinatorialPolicy`'s: everything after ``context`` is
        keyword-only, so ``select(x, 5)`` is a ``TypeError`` for both kinds rather than ``n=5``
        for one and ``k=5`` for the other.

        Args:
            context: a ``(n, context_dim)`` float tensor, or ``None`` for context-free use.
            n: the number of rows, when neither ``context`` nor ``groups`` gives it.
            k: must be ``None``: a one-arm policy plays one arm per row (it is here so that one
                call fits both kinds; a ``k`` is refused rather than ignored).
            groups: a ``(n,)`` int tensor; row ``i`` uses statistics copy ``groups[i]``.
            explore: True: the policy's own rule (optimism, sampling, ...). False: greedy on
                :meth:`expected_rewards`, deterministic and drawing nothing (for inference).
            propensity: also return each row's probability of the arm it got, for off-policy
                evaluation (:mod:`banditformer.ope`): exact where the policy has a closed form
                (epsilon-greedy, EXP3-IX: ``_propensities``), 1 for a :attr:`deterministic`
                policy and at ``explore=False``, otherwise a Monte-Carlo estimate: the fraction of
                :attr:`propensity_samples` further selections of the same rows, from the same
                statistics, that give the row the same arm, counting the draw itself so that it
                is never 0 (standard error at most ``0.5 / sqrt(samples)``, bias at most
                ``1 / (samples + 1)``). The estimate's draws are undone afterwards, so the
                policy's random stream is the one it would be without ``propensity``.

        Returns:
            A ``(n,)`` int64 tensor of arms in ``[0, num_arms)`` on :attr:`device`; with
            ``propensity``, the arms and a ``(n,)`` float64 tensor of propensities in ``(0, 1]``.

        Raises:
            InputValidationError: on a bad argument; nothing is drawn or changed then.
        """
        if k is not None:
            got = f"a tensor of shape {tuple(k.shape)}" if isinstance(k, Tensor) else repr(k)
            raise InputValidationError(
                f"expected `k` = None for one-arm policy {type(self).__name__} (it plays one arm per row; "
                f"`k` is for a CombinatorialPolicy), got {got}"
            )
        if explore and not propensity:
            compiled = self._compiled_select(context, n, groups)
            if compiled is not None:
                return compiled
        checks: list = []
        n, context, groups = self._rows(context, n, groups, checks)
        values_ok(checks)
        if n == 0:
            arms = torch.zeros(0, dtype=torch.long, device=self.device)
            return (arms, torch.ones(0, dtype=torch.float64, device=self.device)) if propensity else arms
        if not explore:
            arms = self._means(context, groups).argmax(1)
            return (arms, torch.ones(n, dtype=torch.float64, device=self.device)) if propensity else arms
        arms = self._select(context, groups)
        self._check_output(
            arms, (n,), "int", lambda a: index_ok(a, self.num_arms), f"arms outside [0, {self.num_arms})"
        )
        if not propensity:
            return arms
        return arms, self._propensity_of(arms, context, groups)

    def stepper(self, group: int = 0) -> Stepper:
        """A :class:`~banditformer.core.stepper.Stepper` for loops of one row at a time: ``int``
        arms from ``select`` and scalar feedback to ``update``, the same rounds as ``select(n=1)``
        / ``update`` on this policy's own state, without the batched path's fixed cost (a lean
        path on the CPU for the policies that have one, ``_stepper``).

        Args:
            group: the statistics copy the stepper's rows belong to.

        Examples:
            >>> from banditformer import make_policy
            >>> policy = make_policy("epsilon_greedy", num_arms=2, epsilon=0.0, seed=0)
            >>> step = policy.stepper()
            >>> [step.select() for _ in range(2)]   # untried arms first
            [0, 0]
        """
        check_int("group", group, low=0, high=self.num_groups - 1)
        lean = self._stepper(group) if self.device.type == "cpu" else None
        return Stepper(self, group) if lean is None else lean

    def _stepper(self, group: int) -> Stepper | None:
        """The policy's lean :class:`~banditformer.core.stepper.LeanStepper` for ``group``, or
        ``None`` (default): the generic stepper, which runs the batched path with one row."""
        return None

    def _propensity_of(self, arms: Tensor, context: Tensor | None, groups: Tensor) -> Tensor:
        """``(n,)`` float64: each row's probability of ``arms`` under ``_select`` from this state."""
        return self._arm_distribution(context, groups, arms).gather(1, arms.unsqueeze(1)).squeeze(1)

    def _arm_distribution(self, context: Tensor | None, groups: Tensor, drawn: Tensor | None = None) -> Tensor:
        """``(n, K)`` float64 probabilities of each arm under ``_select``: the closed form, one-hot
        for a :attr:`deterministic` policy, else Monte-Carlo frequencies, counting the arms
        ``drawn`` (when given) as one draw each of their own distributions (never 0 there)."""
        exact = self._action_probabilities(context, groups)
        if exact is not None:
            return exact.to(torch.float64)
        if self.deterministic:
            arms = self._select(context, groups) if drawn is None else drawn
            return torch.nn.functional.one_hot(arms, self.num_arms).to(torch.float64)
        counts = self._sampled(context, groups)
        if drawn is None:
            return counts / self.propensity_samples
        counts[torch.arange(drawn.shape[0], device=drawn.device), drawn] += 1.0
        return counts / (self.propensity_samples + 1)

    def _sampled(self, context: Tensor | None, groups: Tensor) -> Tensor:
        """``(n, K)`` float64 counts of each arm over :attr:`propensity_samples` selections of the
        rows, every generator of the policy (and of the policies it wraps) put back where it was."""
        policies = [m for m in self.modules() if isinstance(m, PolicyBase)]
        states = [p.generator.get_state() for p in policies]
        n = groups.shape[0]
        counts = torch.zeros(n, self.num_arms, dtype=torch.float64, device=self.device)
        rows = torch.arange(n, device=self.device)
        try:
            if self.rows_independent:  # the samples as repeated rows, at most 65,536 rows a call
                per_call = max(1, min(self.propensity_samples, 65536 // max(n, 1)))
                left = self.propensity_samples
                while left:
                    s = min(per_call, left)
                    ctx = None if context is None else context.repeat(s, 1)
                    arms = self._select(ctx, groups.repeat(s))  # (s * n,), sample-major
                    counts.index_put_((rows.repeat(s), arms), torch.ones_like(arms, dtype=counts.dtype),
                                      accumulate=True)  # fmt: skip
                    left -= s
            else:
                for _ in range(self.propensity_samples):
                    counts.index_put_((rows, self._select(context, groups)), torch.ones_like(rows, dtype=counts.dtype),
                                      accumulate=True)  # fmt: skip
        finally:
            for p, state in zip(policies, states, strict=True):
                p.generator.set_state(state)
        return counts

    @locked
    def action_probabilities(
        self,
        context: Tensor | None = None,
        *,
        n: int | None = None,
        groups: Tensor | None = None,
        explore: bool = True,
    ) -> Tensor:
        """Each row's probability of every arm under :meth:`select` from the current state: the
        target policy's action distribution that off-policy estimators (:mod:`banditformer.ope`)
        weigh a log with. Exact where the policy has a closed form (``_action_probabilities``:
        epsilon-greedy, EXP3-IX), one-hot for a :attr:`deterministic` policy and at
        ``explore=False``, otherwise the frequencies of :attr:`propensity_samples` selections
        (a Monte-Carlo estimate). Draws nothing from the policy's stream (it is put back).

        Returns:
            ``(n, K)`` float64, rows summing to 1.
        """
        checks: list = []
        n, context, groups = self._rows(context, n, groups, checks)
        values_ok(checks)
        if n == 0:
            return torch.zeros(0, self.num_arms, dtype=torch.float64, device=self.device)
        if not explore:
            greedy = self._means(context, groups).argmax(1)
            return torch.nn.functional.one_hot(greedy, self.num_arms).to(torch.float64)
        return self._arm_distribution(context, groups)

    def _action_probabilities(self, context: Tensor | None, groups: Tensor) -> Tensor | None:
        """``(n, K)`` exact probabilities of each arm under ``_select`` from this state, or
        ``None`` (default): no closed form (see ``select``'s ``propensity``)."""
        return None

    @locked
    def update(
        self,
        arms: Tensor,
        rewards: Tensor,
        context: Tensor | None = None,
        *,
        groups: Tensor | None = None,
    ) -> None:
        """Feed back the rewards of the chosen arms.

        Args:
            arms: a ``(n,)`` int tensor of played arms.
            rewards: a ``(n,)`` float tensor, finite and within :attr:`reward_range`.
            context: the ``(n, context_dim)`` contexts the arms were chosen for.
            groups: the ``(n,)`` statistics copies the rows belong to.

        Raises:
            InputValidationError: on a bad argument; the state is then unchanged.
        """
        if self._compiled_update(arms, rewards, context, groups):
            return
        arms, r, context, groups = self._checked_update(arms, rewards, context, groups)
        if arms.shape[0] == 0:
            return
        with self._applying():
            self._add_lifetime(arms, r)
            self._update(arms, r, context, groups)

    def check_update(
        self, arms: Tensor, rewards: Tensor, context: Tensor | None = None, *, groups: Tensor | None = None
    ) -> None:
        """Raise the :class:`InputValidationError` that :meth:`update` would raise, changing
        nothing: a caller that updates several policies checks them all first."""
        self._checked_update(arms, rewards, context, groups)

    def _checked_update(
        self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        arms = check_tensor("arms", arms, ndim=1, kind="int", device=self.device)
        n = arms.shape[0]
        low, high = self.reward_range
        rewards = check_tensor("rewards", rewards, shape=(n,), kind="float", device=self.device)
        checks: list = [
            (lambda: index_ok(arms, self.num_arms), lambda: check_arms("arms", arms, self.num_arms, self.device)),
            (
                lambda: range_ok(rewards, low, high),
                lambda: check_rewards("rewards", rewards, (n,), self.device, low, high),
            ),
        ]
        _, context, groups = self._rows(context, n, groups, checks)
        values_ok(checks)
        return arms.long(), rewards.to(torch.float64), context, groups

    def _compiled_select(self, context: object, n: object, groups: object) -> Tensor | None:
        """An exploring ``select`` call (no propensities) in one compiled step, or ``None``
        (default) for the torch path. A policy that has one (UCB1, epsilon-greedy and LinUCB on
        the CPU, :mod:`banditformer.bandits._compiled`) returns the torch path's arms, drawing
        what it draws, for the calls whose arguments it can check itself, and ``None``, having
        drawn nothing, for every other call (the torch path then checks and reports it)."""
        return None

    def _compiled_update(self, arms: object, rewards: object, context: object, groups: object) -> bool:
        """An ``update`` call in one compiled step, or ``False`` (default) for the torch path. A
        policy that has one (the count policies and the linear ones on the CPU,
        :mod:`banditformer.bandits._compiled`) checks and applies everything ``update`` would,
        lifetime statistics included, with the same errors and nothing changed when it raises,
        and returns ``True``; it returns ``False``, having changed nothing, for any call it does
        not take (another device, dtype or form, which the torch path then checks)."""
        return False

    @abstractmethod
    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        """Return a ``(n,)`` int64 tensor of arms for ``n >= 1`` checked rows."""

    @abstractmethod
    def _update(self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        """Fold in ``n >= 1`` checked rows (rewards as float64)."""


class CombinatorialPolicy(PolicyBase):
    """A batched combinatorial semi-bandit: each row picks exactly ``k[i]`` of ``num_arms`` base arms
    and observes a reward for each chosen base arm.

    Subclasses implement ``_select(context, k, groups) -> BoolTensor[n, N]`` and
    ``_update(chosen, rewards, context, groups)``.

    Examples:
        >>> from banditformer import make_policy
        >>> cts = make_policy("cts", num_arms=8, seed=0)
        >>> chosen = cts.select(k=torch.tensor([2, 3, 8]))   # (3, 8) bool, rows sum to 2, 3, 8
        >>> cts.update(chosen, torch.rand(3, 8))             # rewards of unchosen arms are ignored
    """

    @locked
    def select(
        self,
        context: Tensor | None = None,
        *,
        n: int | None = None,
        k: Tensor | int | None = None,
        groups: Tensor | None = None,
        explore: bool = True,
    ) -> Tensor:
        """Choose ``k[i]`` distinct base arms for each row ``i``.

        The signature is :class:`Policy`'s: everything after ``context`` is keyword-only.

        Args:
            context: a ``(n, context_dim)`` float tensor or ``None``.
            n: the number of rows when ``k`` is an int and nothing else gives it.
            k: a ``(n,)`` int tensor with entries in ``[0, num_arms]``, or one int for every row
                (required).
            groups: a ``(n,)`` int tensor of statistics copies.
            explore: False: the ``k[i]`` base arms of highest :meth:`expected_rewards`.

        Returns:
            A ``(n, num_arms)`` bool tensor with exactly ``k[i]`` True entries in row ``i``.

        Raises:
            InputValidationError: on a bad argument; nothing is drawn or changed then.
        """
        if k is None:
            raise InputValidationError("expected `k` (an int or a (n,) int tensor), got None")
        checks: list = []
        if isinstance(k, Tensor):
            check_tensor("k", k, ndim=1, kind="int", device=self.device)
            n, context, groups = self._rows(context, k.shape[0] if n is None else n, groups, checks)
            if k.shape[0] != n:
                raise InputValidationError(f"expected `k` of shape ({n},), got shape {tuple(k.shape)}")
            kk = k
            checks.append(
                (lambda: index_ok(kk, self.num_arms + 1), lambda: check_arms("k", kk, self.num_arms + 1, self.device))
            )
        else:
            check_int("k", k, low=0, high=self.num_arms)
            n, context, groups = self._rows(context, n, groups, checks)
            k = torch.full((n,), k, dtype=torch.long, device=self.device)
        values_ok(checks)
        if n == 0:
            return torch.zeros(0, self.num_arms, dtype=torch.bool, device=self.device)
        if not explore:
            return top_k_mask(self._means(context, groups), k.long())
        kk = k.long()
        chosen = self._select(context, kk, groups)
        self._check_output(
            chosen, (n, self.num_arms), "bool", lambda c: (c.sum(1) == kk).all(), "rows without exactly k[i] base arms"
        )
        return chosen

    @locked
    def update(
        self,
        chosen: Tensor,
        rewards: Tensor,
        context: Tensor | None = None,
        *,
        groups: Tensor | None = None,
    ) -> None:
        """Feed back one reward per chosen base arm (semi-bandit feedback).

        Args:
            chosen: a ``(n, num_arms)`` bool tensor, as returned by :meth:`select`.
            rewards: a ``(n, num_arms)`` float tensor; entries where ``chosen`` is False are ignored
                (they may be anything, NaN included).
            context: the ``(n, context_dim)`` contexts.
            groups: the ``(n,)`` statistics copies.
        """
        chosen, rewards, context, groups = self._checked_update(chosen, rewards, context, groups)
        if chosen.shape[0] == 0:
            return
        r = torch.where(chosen, rewards.to(torch.float64), 0.0)
        with self._applying():
            self.arm_counts.add_(chosen.sum(0))
            self.arm_reward_sums.add_(r.sum(0))
            self._update(chosen, r, context, groups)

    def check_update(
        self, chosen: Tensor, rewards: Tensor, context: Tensor | None = None, *, groups: Tensor | None = None
    ) -> None:
        """Raise the :class:`InputValidationError` that :meth:`update` would raise, changing
        nothing: a caller that updates several policies checks them all first."""
        self._checked_update(chosen, rewards, context, groups)

    def _checked_update(
        self, chosen: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        chosen = check_tensor("chosen", chosen, shape=(None, self.num_arms), kind="bool", device=self.device)
        n = chosen.shape[0]
        low, high = self.reward_range
        rewards = check_tensor("rewards", rewards, shape=(n, self.num_arms), kind="float", device=self.device)
        fill = low if math.isfinite(low) else 0.0
        checks: list = [
            (
                lambda: range_ok(torch.where(chosen, rewards, fill), low, high),
                lambda: check_rewards("rewards", rewards, (n, self.num_arms), self.device, low, high, mask=chosen),
            )
        ]
        _, context, groups = self._rows(context, n, groups, checks)
        values_ok(checks)
        return chosen, rewards, context, groups

    @abstractmethod
    def _select(self, context: Tensor | None, k: Tensor, groups: Tensor) -> Tensor:
        """Return a ``(n, N)`` bool tensor with ``k[i]`` True entries per row, ``n >= 1``."""

    @abstractmethod
    def _update(self, chosen: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        """Fold in ``n >= 1`` checked rows; ``rewards`` is float64 with zeros where not chosen."""
