"""A bandit over exit thresholds (``threshold_bandit``; after CeeBERT, Bajpai and Hanawal 2024):
each sample's exit threshold is an arm of a context-free policy (UCB1 by default), rewarded by
quality minus ``lam`` times cost, learned during training from the labels, with no router.

Feedback design. A sample that halts at exit ``d`` has shown the confidence and quality of
exits ``1 .. d``, not what continuing would have given. Two sources add to its own arm's reward:

- **Lower thresholds, for free** (``lower_arms=True``, the default). An arm whose threshold is at most the
  chosen one passes no later than the chosen arm does, so its exit is among those the sample
  has shown, whatever the sample: every such arm is updated with the reward it would have
  earned. The arm was drawn independently of the sample, so these updates are unbiased.
  (``lower_arms=False``: the chosen arm only.)
- **Revealed samples** (``reveal``). A share of the training samples runs to full depth whatever
  its arm and evaluates every exit; for such a sample the exit every arm would have taken (the
  first exit whose confidence passes the arm's threshold) and its quality are known, and **every
  arm** is updated with the reward it would have earned (full-information feedback), at the
  price of the full depth. The revealed samples are drawn at random, so these updates are
  unbiased for every arm.

``benchmarks/threshold_feedback.py`` measures both on a frozen trained network (docs/benchmarks.md).

Reward of exiting at depth ``d``: ``(q_d - lam * c_d + lam) / (1 + lam)`` with ``q_d`` the true
class probability at exit ``d`` and ``c_d`` the FLOP ratio of running to exit ``d`` (all heads,
every exit evaluated on the way). Under a ``flop_budget``, ``lam`` adapts by dual ascent as in
DHT. At inference every sample uses the policy's greedy arm, or the threshold a calibration to a
FLOP budget set (:func:`~banditformer.training.calibrate_budget`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from banditformer.controllers.dht import check_slot, dht_reward, dual_ascent
from banditformer.controllers.early_exit import METRICS, THRESHOLD_POINTS, check_threshold, exit_score
from banditformer.core.controller import Controller
from banditformer.core.decision import Decision, DecisionRecord
from banditformer.core.errors import InputValidationError
from banditformer.core.exits import ExitPoint
from banditformer.core.policy import Policy
from banditformer.core.random import make_generator
from banditformer.core.validation import check_float, check_int

__all__ = ["ThresholdBandit", "ThresholdRecord", "check_exit_costs"]


def check_exit_costs(exit_costs: object, num_layers: int) -> tuple[float, ...]:
    """``exit_costs`` as a tuple: ``L`` FLOP ratios in ``[0, 2]`` (the last a little above 1:
    every exit's classifier is paid on the way), increasing with depth."""
    costs = tuple(float(c) for c in exit_costs) if isinstance(exit_costs, Sequence) else None
    if costs is None or len(costs) != num_layers or any(not 0.0 <= c <= 2.0 for c in costs):
        raise InputValidationError(f"expected `exit_costs`: {num_layers} FLOP ratios in [0, 2], got {exit_costs!r}")
    if any(b < a for a, b in itertools.pairwise(costs)):
        raise InputValidationError(f"expected `exit_costs` increasing with depth, got {costs}")
    return costs


@dataclass(frozen=True)
class ThresholdRecord(DecisionRecord):
    """What :class:`ThresholdBandit` chose for a batch of ``B`` samples.

    Attributes:
        arm: ``(B,)`` int64, each sample's threshold arm.
        reveal: ``(B,)`` bool, the samples that run to full depth whatever their arm.
        scores: ``(B, L)`` float32, each exit's confidence, filled in by ``halt`` as the samples go
            (NaN where not evaluated).
    """

    arm: Tensor
    reveal: Tensor
    scores: Tensor


class ThresholdBandit(Controller):
    """Learn the exit threshold by a bandit over ``thresholds`` (see the module docstring).

    Args:
        num_layers, num_heads: the model's shape.
        full_flops: FLOPs of one sample through the full model (``model.cost_table().full``).
        exit_costs: ``L`` FLOP ratios, ``exit_costs[d - 1]`` the cost of running to exit ``d``
            (see :meth:`costs_from_table`), increasing; the last is a little above 1 (every exit's
            classifier is evaluated on the way).
        policy: a context-free :class:`~banditformer.core.Policy` over ``len(thresholds)`` arms.
        thresholds: the arms, confidences in ``[0, 1]``.
        metric: one of :data:`~banditformer.controllers.early_exit.METRICS` (``entropy`` uses
            ``1 - entropy`` as the confidence).
        lam: the FLOP penalty (the start under ``flop_budget``).
        flop_budget: a target mean FLOP ratio in training; ``lam`` adapts by dual ascent.
        lam_lr: its step.
        reveal: the share of training samples run to full depth (full-information feedback).
        lower_arms: a sample also updates every arm of a threshold at most its own arm's, whose
            exit it has shown (default); False: only its own arm (see the module docstring).
        seed: seeds the reveal draws.

    Examples:
        >>> from banditformer.bandits import UCB1
        >>> c = ThresholdBandit(3, 2, 1e6, (0.4, 0.7, 1.0), policy=UCB1(3), thresholds=(0.5, 0.8, 0.95))
        >>> d = c.decide(torch.zeros(4, 8))
        >>> d.record.arm.shape, d.depth.tolist()
        (torch.Size([4]), [3, 3, 3, 3])
    """

    def __init__(
        self,
        num_layers: int,
        num_heads: int,
        full_flops: float,
        exit_costs: Sequence[float],
        *,
        policy: Policy,
        thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0),
        metric: str = "max_prob",
        lam: float = 0.5,
        flop_budget: float | None = None,
        lam_lr: float = 0.05,
        reveal: float = 0.1,
        lower_arms: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(num_layers, num_heads)
        costs = check_exit_costs(exit_costs, num_layers)
        self.add_config("exit_costs", costs)
        self.add_config("full_flops", check_float("full_flops", full_flops, low=0.0, low_open=True))
        arms = tuple(float(t) for t in thresholds) if isinstance(thresholds, Sequence) else ()
        if not arms or any(not 0.0 <= t <= 1.0 for t in arms):
            raise InputValidationError(f"expected `thresholds`: one or more values in [0, 1], got {thresholds!r}")
        self.add_config("thresholds", arms)
        if metric not in METRICS:
            raise InputValidationError(f"expected `metric` in {METRICS}, got {metric!r}")
        self.add_config("metric", metric)
        if flop_budget is not None:
            flop_budget = check_float("flop_budget", flop_budget, low=0.0, high=1.0, low_open=True)
        self.add_config("flop_budget", flop_budget)
        self.add_config("lam_lr", check_float("lam_lr", lam_lr, low=0.0))
        self.add_config("reveal", check_float("reveal", reveal, low=0.0, high=1.0))
        if not isinstance(lower_arms, bool):
            raise InputValidationError(f"expected `lower_arms` to be a bool, got {lower_arms!r}")
        self.add_config("lower_arms", lower_arms)
        self.add_hyperparameter("lam", lam, low=0.0, adaptive=flop_budget is not None)
        # the inference threshold a calibration set; -1: none (the policy's greedy arm)
        self.add_hyperparameter("calibrated", -1.0, low=-1.0, high=1.0, adaptive=True)
        check_slot("policy", policy, Policy, num_arms=len(arms), contextual=False, num_groups=1)
        self.add_config("policy_class", type(policy).__name__)
        self.policy = policy
        self.generator = make_generator(check_int("seed", seed, low=0))
        self.register_buffer("_arms", torch.tensor(arms, dtype=torch.float32), persistent=False)
        self.register_buffer("_costs", torch.tensor(costs, dtype=torch.float64), persistent=False)

    @staticmethod
    def costs_from_table(table: object) -> tuple[float, ...]:
        """``exit_costs`` from a :class:`~banditformer.core.cost.CostTable`: the FLOP ratio of a
        sample that runs blocks ``0 .. d - 1`` with every head and evaluates exits ``1 .. d``."""
        from banditformer.controllers.static import check_cost_table

        t = check_cost_table(table)
        blocks = t.layers[1:, -1].cumsum(0).tolist()
        return tuple(
            (t.stem + (blocks[d - 2] if d > 1 else 0.0) + d * t.classifier) / t.full for d in range(1, t.num_layers + 1)
        )

    @property
    def halts(self) -> bool:
        return True

    @property
    def state_reductions(self) -> dict[str, str | None]:
        return {"lam": "mean", "calibrated": None}

    def _decide(self, context: Tensor, explore: bool) -> Decision:
        b, dev = context.shape[0], context.device
        d = Decision.full(b, self.num_layers, self.num_heads, device=dev)
        if b == 0:
            arm = torch.zeros(0, dtype=torch.long, device=dev)
        else:
            arm = self.policy.select(n=b, explore=explore).to(dev)
        if explore and self.reveal > 0:
            reveal = (torch.rand(b, generator=self.generator) < self.reveal).to(dev)
        else:
            reveal = torch.zeros(b, dtype=torch.bool, device=dev)
        scores = torch.full((b, self.num_layers), float("nan"), device=dev)
        d.record = ThresholdRecord(arm, reveal, scores)
        return d

    def threshold_of(self, arm: Tensor, explore: bool) -> Tensor:
        """``(n,)`` the thresholds samples of ``arm`` use (the calibrated one at inference)."""
        if not explore and float(self.calibrated) >= 0.0:
            return torch.full(arm.shape, float(self.calibrated), device=arm.device)
        return self._arms.to(arm.device)[arm]

    def _halt(self, point: ExitPoint, decision: Decision, explore: bool) -> Tensor:
        record = self._check_record(decision)
        score = exit_score(point, self.metric)
        record.scores[point.rows, point.depth - 1] = score.to(record.scores.dtype)  # for the feedback
        stop = score >= self.threshold_of(record.arm[point.rows], explore)
        return stop & ~record.reveal[point.rows]

    def _check_record(self, decision: Decision) -> ThresholdRecord:
        record, b = decision.record, decision.batch_size
        if not isinstance(record, ThresholdRecord):
            raise InputValidationError(
                f"expected a Decision made by this controller's decide(), with a ThresholdRecord, got a record of "
                f"type {type(record).__name__}"
            )
        if record.arm.shape != (b,) or record.reveal.shape != (b,) or record.scores.shape != (b, self.num_layers):
            raise InputValidationError(
                f"expected a record for {b} samples, got arms {tuple(record.arm.shape)}, reveal "
                f"{tuple(record.reveal.shape)} and scores {tuple(record.scores.shape)}"
            )
        return record

    def exits_of(self, scores: Tensor) -> Tensor:
        """``(n, K)`` int64: the exit (depth) each threshold arm takes for samples whose every
        exit's confidence is known (``scores`` ``(n, L)``): the first ``d < L`` whose confidence
        passes the threshold, else ``L``."""
        passes = scores[:, : self.num_layers - 1].unsqueeze(1) >= self._arms.to(scores.device).view(1, -1, 1)
        first = passes.float().argmax(-1) + 1  # the first exit that passes (argmax takes the first maximum)
        return torch.where(passes.any(-1), first, torch.full_like(first, self.num_layers))

    def _feedback(self, decision: Decision, quality: Tensor, flops: Tensor, **extra: Tensor) -> None:
        record = self._check_record(decision)
        exit_quality = extra["exit_quality"].to(torch.float64)  # (B, L), checked by feedback
        lam = float(self.lam)
        costs = self._costs.to(quality.device)
        own = ~record.reveal
        ratio = (flops.to(torch.float64) / self.full_flops).clamp(0, 2)
        arms = [record.arm[own]]
        rewards = [dht_reward(quality.to(torch.float64)[own], ratio[own], lam)]
        # Counterfactual updates, one (B, K) mask over the exits every arm would have taken: all
        # arms of a revealed sample that ran to full depth; with `lower_arms`, every other arm of a
        # threshold at most the chosen one's, whose exit is among those the sample has shown (the
        # depth check guards a record whose scores were never filled; unshown scores are NaN).
        k, dev = len(self.thresholds), quality.device
        every = torch.arange(k, device=dev).expand(record.arm.shape[0], k)
        exits = self.exits_of(record.scores.float())  # (B, K), exact wherever `known`
        known = (record.reveal & (decision.depth == self.num_layers)).unsqueeze(1).expand(-1, k)
        if self.lower_arms:
            thresholds = self._arms.to(dev)
            lower = (thresholds.view(1, -1) <= thresholds[record.arm].view(-1, 1)) & (every != record.arm.view(-1, 1))
            known = known | (lower & own.unsqueeze(1) & (exits <= decision.depth.unsqueeze(1)))
        q = exit_quality.gather(1, exits - 1)
        rewards.append(dht_reward(q, costs[exits - 1], lam)[known])
        arms.append(every[known])
        arm, reward = torch.cat(arms), torch.cat(rewards).clamp(0.0, 1.0)
        if arm.numel():
            self.policy.check_update(arm, reward)
        if self.flop_budget is not None:
            mean = float(ratio.mean()) if ratio.numel() else self.flop_budget
            dual_ascent(self.lam, self.lam_lr, mean, self.flop_budget)
        if arm.numel():
            self.policy.update(arm, reward)

    def operating_points(self) -> list[float]:
        """:data:`~banditformer.controllers.early_exit.THRESHOLD_POINTS`."""
        return list(THRESHOLD_POINTS)

    def set_operating_point(self, value: float) -> None:
        self.calibrated.fill_(check_threshold(value))
