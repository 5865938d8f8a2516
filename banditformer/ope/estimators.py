"""Off-policy evaluation: the value of a target policy estimated from a log another policy wrote.

A :class:`BanditLog` holds, per logged round, the context, the action the logging policy took,
the reward it got and the probability it had of taking that action (its propensity,
``Policy.select(..., propensity=True)``). Given the target policy's probability of every action in
every logged context (``target``, ``(n, K)``, e.g. ``Policy.action_probabilities``), the
estimators below give the target's expected reward per round with a 95% interval:

- :func:`ips`: inverse propensity scoring, ``mean(w_i r_i)`` with ``w_i = target[i, a_i] / p_i``;
  unbiased when every action the target takes has a positive logging propensity;
- :func:`snips`: self-normalised IPS, ``sum(w_i r_i) / sum(w_i)``: biased (slightly) but of lower
  variance; its interval is the delta method's;
- :func:`direct_method`: ``mean(sum_a target[i, a] q(x_i, a))`` from a reward model ``q``
  (:func:`fit_reward_model`: ridge regression per action, cross-fitted); its interval counts the
  rounds' spread, not the model's error;
- :func:`doubly_robust`: the direct method plus the IPS correction of the model's residual on the
  logged action, ``q_i + w_i (r_i - q(x_i, a_i))`` per round: unbiased if either the propensities
  or the model are right (Dudik, Langford and Li 2011).

Intervals are normal ones, ``estimate +- 1.96 * standard error``, from the per-round terms (the
rounds are taken as independent draws: a log of a policy that learnt as it went is not quite
that, and the intervals then understate the uncertainty). Logs are files of tensors, read with
``torch.load(weights_only=True)``: loading one runs no code; ``banditformer bench bandits
--log-dir DIR`` writes one per policy and seed.

The target's ``(n, K)`` probabilities can come from any rule; :func:`target_probabilities` takes
them from a :class:`~banditformer.core.policy.Policy` walking the log in order: each round's
probabilities from the policy's state before the round, which then learns from the logged
action and reward (progressive validation, as Vowpal Wabbit reports it), or does not
(``learn=False``: a fixed policy). :func:`effective_sample_size` says how many rounds the
importance weights leave.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError
from banditformer.core.files import atomic_file
from banditformer.core.policy import CombinatorialPolicy, Policy
from banditformer.core.validation import check_float, check_int, check_tensor

__all__ = [
    "ESTIMATORS",
    "BanditLog",
    "Estimate",
    "check_policy_fits",
    "direct_method",
    "doubly_robust",
    "effective_sample_size",
    "estimate_all",
    "fit_reward_model",
    "ips",
    "snips",
    "target_probabilities",
]

#: The normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A target policy's estimated value per round, with its 95% interval.

    Attributes:
        value: the estimate; stderr: its standard error; low, high: ``value -+ 1.96 stderr``.
    """

    value: float
    stderr: float

    @property
    def low(self) -> float:
        return self.value - Z95 * self.stderr

    @property
    def high(self) -> float:
        return self.value + Z95 * self.stderr

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies in the 95% interval."""
        return self.low <= value <= self.high


@dataclass(frozen=True)
class BanditLog:
    """Logged rounds of a bandit policy.

    Attributes:
        action: ``(n,)`` int64 actions taken, in ``[0, num_arms)``.
        reward: ``(n,)`` float64 rewards observed.
        propensity: ``(n,)`` float64 probabilities in ``(0, 1]`` the logging policy had of taking them.
        num_arms: K.
        context: ``(n, d)`` float64 contexts, or ``None`` (context-free rounds).

    Raises:
        InputValidationError: mismatched lengths, an action outside ``[0, K)``, a propensity
            outside ``(0, 1]``, or non-finite rewards or contexts.

    Examples:
        >>> log = BanditLog(torch.tensor([0, 1]), torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]), 2)
        >>> ips(log, torch.tensor([[1.0, 0.0], [1.0, 0.0]])).value   # always action 0: 1/0.5 * 1, then 0
        1.0
    """

    action: Tensor
    reward: Tensor
    propensity: Tensor
    num_arms: int
    context: Tensor | None = None

    def __post_init__(self) -> None:
        k = check_int("num_arms", self.num_arms, low=1)
        action = check_tensor("action", self.action, ndim=1, kind="int")
        n = action.shape[0]
        reward = check_tensor("reward", self.reward, shape=(n,), kind="float")
        propensity = check_tensor("propensity", self.propensity, shape=(n,), kind="float")
        if n and bool(((action < 0) | (action >= k)).any()):
            raise InputValidationError(f"expected actions in [0, {k}), got {int(action.min())}..{int(action.max())}")
        if not bool(torch.isfinite(reward).all()):
            raise InputValidationError("expected finite rewards, got NaN or inf")
        if n and bool(((propensity <= 0) | (propensity > 1) | ~torch.isfinite(propensity)).any()):
            raise InputValidationError(
                f"expected propensities in (0, 1], got {float(propensity.min()):g}..{float(propensity.max()):g}"
            )
        object.__setattr__(self, "action", action.long())
        object.__setattr__(self, "reward", reward.to(torch.float64))
        object.__setattr__(self, "propensity", propensity.to(torch.float64))
        if self.context is not None:
            context = check_tensor("context", self.context, ndim=2, kind="float")
            if context.shape[0] != n or not bool(torch.isfinite(context).all()):
                raise InputValidationError(
                    f"expected finite contexts of shape ({n}, d), got shape {tuple(context.shape)}"
                    + ("" if context.shape[0] != n else " with NaN or inf")
                )
            object.__setattr__(self, "context", context.to(torch.float64))

    def __len__(self) -> int:
        return int(self.action.shape[0])

    @property
    def context_dim(self) -> int | None:
        """``d``, or ``None`` for a context-free log."""
        return None if self.context is None else int(self.context.shape[1])

    @classmethod
    def cat(cls, logs: Sequence[BanditLog]) -> BanditLog:
        """The rounds of several logs, one after the other (the logs of several seeds, pooled).

        Raises:
            InputValidationError: no logs, or logs of different ``num_arms`` or context sizes.
        """
        logs = list(logs)
        if not logs or not all(isinstance(log, BanditLog) for log in logs):
            raise InputValidationError(f"expected one or more BanditLogs, got {[type(x).__name__ for x in logs]}")
        shapes = sorted({(log.num_arms, log.context_dim) for log in logs}, key=str)
        if len(shapes) > 1:
            raise InputValidationError(
                f"expected logs of one problem (the same num_arms and context size), got (num_arms, context_dim) "
                f"{shapes}"
            )
        context = None if logs[0].context is None else torch.cat([log.context for log in logs])  # type: ignore[misc]
        return cls(
            torch.cat([log.action for log in logs]), torch.cat([log.reward for log in logs]),
            torch.cat([log.propensity for log in logs]), logs[0].num_arms, context,
        )  # fmt: skip

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the log to ``path`` atomically (a ``torch.save`` of its tensors); returns the path."""
        data = {"action": self.action, "reward": self.reward, "propensity": self.propensity,
                "num_arms": torch.tensor(self.num_arms)}  # fmt: skip
        if self.context is not None:
            data["context"] = self.context
        with atomic_file(path) as tmp:
            torch.save(data, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BanditLog:
        """Read a log :meth:`save` wrote (``weights_only=True``: no code runs), checked."""
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError, pickle.UnpicklingError, EOFError) as exc:
            raise InputValidationError(f"expected a bandit log file at {str(path)!r}, got one that does not load "
                                       f"({str(exc).splitlines()[0]})") from None  # fmt: skip
        keys = {"action", "reward", "propensity", "num_arms"}
        if not isinstance(data, dict) or not keys <= set(data):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise InputValidationError(f"expected a bandit log with {sorted(keys)}, got {got}")
        k = data["num_arms"]
        if isinstance(k, Tensor) and k.ndim == 0 and not k.is_floating_point() and k.dtype != torch.bool:
            k = int(k)
        if not isinstance(k, int) or isinstance(k, bool):
            raise InputValidationError(f"expected the log's `num_arms` to be an integer, got {data['num_arms']!r}")
        return cls(data["action"], data["reward"], data["propensity"], k, data.get("context"))


def _check_target(log: BanditLog, target: object) -> Tensor:
    t = check_tensor("target", target, shape=(len(log), log.num_arms), kind="float").to(torch.float64)
    if len(log) == 0:
        raise InputValidationError("expected a log with at least one round, got an empty one")
    if bool((t < 0).any()) or not torch.allclose(t.sum(1), torch.ones(len(log), dtype=torch.float64), atol=1e-6):
        raise InputValidationError("expected `target` rows of action probabilities (>= 0, summing to 1), got others")
    return t


def _mean(terms: Tensor) -> Estimate:
    n = terms.shape[0]
    se = float(terms.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("nan")
    return Estimate(float(terms.mean()), se)


def _weights(log: BanditLog, target: Tensor) -> Tensor:
    return target.gather(1, log.action.unsqueeze(1)).squeeze(1) / log.propensity


def ips(log: BanditLog, target: Tensor) -> Estimate:
    """Inverse propensity scoring (see the module docstring); ``target`` ``(n, K)``."""
    t = _check_target(log, target)
    return _mean(_weights(log, t) * log.reward)


def snips(log: BanditLog, target: Tensor) -> Estimate:
    """Self-normalised IPS, with the delta method's standard error."""
    t = _check_target(log, target)
    w = _weights(log, t)
    if float(w.sum()) <= 0:
        raise InputValidationError("expected the target to take some logged action, got zero weight on every round")
    value = float((w * log.reward).sum() / w.sum())
    # linearised: the mean of w (r - value) / mean(w)
    resid = _mean(w * (log.reward - value) / w.mean())
    return Estimate(value, resid.stderr)


def fit_reward_model(log: BanditLog, *, ridge: float = 1.0, folds: int = 2, seed: int = 0) -> Tensor:
    """``(n, K)`` predicted rewards of every action in every logged context: ridge regression of
    the reward on ``[1, context]`` per action, the intercept unpenalised (the mean reward per
    action without contexts), cross-fitted over ``folds`` random folds (each round predicted by a
    model fitted on the others; an action no round of the other folds took is predicted as the
    mean reward of those folds)."""
    ridge = check_float("ridge", ridge, low=0.0, low_open=True)
    folds = check_int("folds", folds, low=2)
    n, k = len(log), log.num_arms
    if n < folds:
        raise InputValidationError(f"expected at least {folds} rounds to cross-fit, got {n}")
    ones = torch.ones(n, 1, dtype=torch.float64)
    x = ones if log.context is None else torch.cat([ones, log.context], 1)
    gen = torch.Generator().manual_seed(check_int("seed", seed, low=0))
    fold = torch.randperm(n, generator=gen) % folds
    out = torch.zeros(n, k, dtype=torch.float64)
    eye = torch.eye(x.shape[1], dtype=torch.float64) * ridge
    eye[0, 0] = 1e-9 * ridge  # the intercept is not shrunk (a context-free model is the per-action mean)
    for f in range(folds):
        train, test = fold != f, fold == f
        for a in range(k):
            rows = train & (log.action == a)
            if not bool(rows.any()):
                out[test, a] = log.reward[train].mean()
                continue
            xa, ra = x[rows], log.reward[rows]
            theta = torch.linalg.solve(xa.T @ xa + eye, xa.T @ ra)
            out[test, a] = x[test] @ theta
    return out


def direct_method(log: BanditLog, target: Tensor, model: Tensor | None = None) -> Estimate:
    """The direct method with reward predictions ``model`` ``(n, K)`` (default: :func:`fit_reward_model`)."""
    t = _check_target(log, target)
    q = _check_model(log, model)
    return _mean((t * q).sum(1))


def doubly_robust(log: BanditLog, target: Tensor, model: Tensor | None = None) -> Estimate:
    """Doubly robust: the direct method plus the IPS-weighted residual on the logged action."""
    t = _check_target(log, target)
    q = _check_model(log, model)
    logged = q.gather(1, log.action.unsqueeze(1)).squeeze(1)
    return _mean((t * q).sum(1) + _weights(log, t) * (log.reward - logged))


def _check_model(log: BanditLog, model: Tensor | None) -> Tensor:
    if model is None:
        return fit_reward_model(log)
    q = check_tensor("model", model, shape=(len(log), log.num_arms), kind="float").to(torch.float64)
    if not bool(torch.isfinite(q).all()):
        raise InputValidationError("expected finite reward predictions in `model`, got NaN or inf")
    return q


#: Estimator name -> function, as the command line names them.
ESTIMATORS = {"ips": ips, "snips": snips, "dm": direct_method, "dr": doubly_robust}


def estimate_all(log: BanditLog, target: Tensor, model: Tensor | None = None) -> dict[str, Estimate]:
    """Every estimator of :data:`ESTIMATORS` on one log (one reward model for DM and DR)."""
    q = _check_model(log, model)
    return {name: (fn(log, target, q) if name in ("dm", "dr") else fn(log, target)) for name, fn in ESTIMATORS.items()}


def effective_sample_size(log: BanditLog, target: Tensor) -> float:
    """Kish's effective sample size of the importance weights, ``(sum w)^2 / sum w^2``: about how
    many of the log's rounds the estimate rests on (``len(log)`` when the target is the logger;
    0 when it takes no logged action)."""
    w = _weights(log, _check_target(log, target))
    total = float((w * w).sum())
    return float(w.sum()) ** 2 / total if total > 0 else 0.0


def target_probabilities(
    log: BanditLog, policy: Policy, *, batch: int = 1, learn: bool = True, explore: bool = True
) -> Tensor:
    """A policy's ``(n, K)`` action probabilities along a log, the ``target`` of the estimators.

    The policy walks the log in order, ``batch`` rounds at a time: their probabilities come from
    ``policy.action_probabilities`` on the state before them (their contexts, when the log has
    them), and then, with ``learn``, the policy updates on the logged actions and rewards (it
    learns from the logging policy's choices, as a policy trained offline on the log would; the
    estimate is then the progressive value of that learning policy). With ``learn=False`` the
    policy stays as it is: a fixed target. ``explore=False`` takes its greedy choice.

    Args:
        log: the logged rounds.
        policy: a one-arm :class:`~banditformer.core.policy.Policy` of ``log.num_arms`` arms; a
            contextual one needs a log with contexts of its ``context_dim``. It learns in place.
        batch: rounds per step (1: exact progressive validation; more: fewer, cheaper steps,
            which helps Monte-Carlo probabilities, e.g. Thompson sampling's).

    Returns:
        ``(n, K)`` float64, rows summing to 1.

    Raises:
        InputValidationError: a policy that does not fit the log, or (with ``learn``) rewards
            outside its reward range; checked before the policy changes.

    Examples:
        >>> from banditformer.bandits import EpsilonGreedy
        >>> log = BanditLog(torch.tensor([0, 1]), torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]), 2)
        >>> target_probabilities(log, EpsilonGreedy(2, epsilon=0.0), learn=False).shape
        torch.Size([2, 2])
    """
    check_policy_fits(log, policy, learn=learn)
    batch = check_int("batch", batch, low=1)
    if not isinstance(explore, bool):
        raise InputValidationError(f"expected `explore` to be a bool, got {explore!r}")
    n = len(log)
    out = torch.zeros(n, log.num_arms, dtype=torch.float64)
    context = None
    if log.context is not None and policy.context_dim is not None:
        context = log.context.to(policy.device)
    for start in range(0, n, batch):
        rows = slice(start, min(start + batch, n))
        ctx = None if context is None else context[rows]
        out[rows] = policy.action_probabilities(ctx, n=rows.stop - rows.start, explore=explore).cpu()
        if learn:
            policy.update(log.action[rows].to(policy.device), log.reward[rows].to(policy.device), ctx)
    return out


def check_policy_fits(log: BanditLog, policy: object, *, learn: bool = True) -> None:
    """Fail unless ``policy`` can give (and, with ``learn``, learn from) ``log``'s rounds: a
    one-arm policy of ``log.num_arms`` arms, contexts of its size when it is contextual, and
    rewards in its reward range."""
    if not isinstance(log, BanditLog):
        raise InputValidationError(f"expected a BanditLog, got {type(log).__name__}")
    if isinstance(policy, CombinatorialPolicy) or not isinstance(policy, Policy):
        raise InputValidationError(
            f"expected a one-arm Policy to evaluate (a log holds one action per round), got {type(policy).__name__}"
        )
    if policy.num_arms != log.num_arms:
        raise InputValidationError(f"expected a policy of the log's {log.num_arms} arms, got {policy.num_arms}")
    if policy.is_contextual and log.context is None:
        raise InputValidationError(
            f"expected a log with contexts for contextual policy {type(policy).__name__}, got a context-free one"
        )
    if policy.context_dim is not None and log.context is not None and policy.context_dim != log.context_dim:
        raise InputValidationError(
            f"expected a policy of the log's context size {log.context_dim}, got context_dim {policy.context_dim}"
        )
    if not isinstance(learn, bool):
        raise InputValidationError(f"expected `learn` to be a bool, got {learn!r}")
    low, high = policy.reward_range
    if learn and len(log) and (float(log.reward.min()) < low or float(log.reward.max()) > high):
        raise InputValidationError(
            f"expected the log's rewards in {type(policy).__name__}'s reward range [{low:g}, {high:g}] to learn from "
            f"them, got rewards in [{float(log.reward.min()):g}, {float(log.reward.max()):g}]"
        )
