"""A contextual stop-or-continue bandit at every exit point (``bandit_halting``), rewarded by
quality minus ``lam`` times cost, with no learned router.

At exit point ``d = 1 .. L - 1`` a contextual two-arm policy (arm 0: continue, arm 1: stop; one
statistics group per exit point) decides for each sample still running from the exit's
:func:`~banditformer.core.exits.exit_features` (max probability, margin, normalised entropy,
depth over ``L``, patience over ``L``). The policy is an injected object (LinUCB by default, from
the registry's ``bandit_halting`` factory); ``explore=True`` follows its own rule, ``explore=False``
is greedy on its estimates.

Rewards. With ``q_d`` the true class's probability at exit ``d`` (the trainer's ``exit_quality``)
and ``c_d`` the FLOP ratio of running to exit ``d`` (every exit on the way evaluated), exit ``d``
is worth ``r_d = (q_d - lam * c_d + lam) / (1 + lam)`` (``r_L``: running the full model).

- **stop** at exit ``d``: ``r_d``. It is known at every exit a sample evaluated, whatever the
  policy chose there, so the stop arm of every exit ``d <= D`` (``D`` the depth the sample
  reached) is updated.
- **continue** at exit ``d``: ``max_{d < d' <= D} r_d'``, the best stop reward among the exits
  after ``d`` that the sample evaluated. It is known wherever the sample went on past ``d``
  (``d < D``), so the continue arm of exits ``1 .. D - 1`` is updated. A share ``reveal`` of the
  training samples (default 0.1, drawn from a seeded generator) runs to full depth whatever the
  policy says, so for them every later exit is known and every (exit, arm) row is updated.

Why this continue reward, and its bias. The value of continuing is the value of stopping well
later. The best later stop reward is the target that needs no model of the policy's own future
decisions (an on-policy return would change whenever the policy does) and that is known from
what the sample evaluated. It is optimistic: it is what a prophet who saw the later exits'
qualities would earn, at least what any stopping rule earns (noise in ``q`` across exits also
pushes the maximum up), so continue is over-valued and the policy spends more compute than
``lam`` alone asks. For a sample that the policy stopped at ``D < L`` the maximum is truncated
at ``D``: below the prophet's value, which offsets part of the optimism, by an amount that
depends on the policy. The revealed samples, drawn independently of the sample, give the
untruncated value. A ``flop_budget`` (``lam`` by dual ascent, as in DHT) or a calibration of the
inference knob corrects the compute the optimism costs.

Inference knob: ``stop_bias``, added to the stop arm's greedy margin: at inference a sample stops
at exit ``d`` when ``mean_stop - mean_continue + stop_bias > 0`` (0: plain greedy, ties
continue). :meth:`BanditHalting.operating_points` gives the values
:func:`~banditformer.training.calibrate_budget` tries to meet a FLOP budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from banditformer.controllers.dht import check_slot, dht_reward, dual_ascent
from banditformer.controllers.threshold_bandit import check_exit_costs
from banditformer.core.controller import Controller
from banditformer.core.decision import Decision, DecisionRecord
from banditformer.core.errors import InputValidationError
from banditformer.core.exits import ExitPoint, exit_features
from banditformer.core.policy import Policy
from banditformer.core.random import make_generator
from banditformer.core.validation import check_float, check_int

__all__ = ["CONTINUE", "EXIT_FEATURES", "STOP", "BanditHalting", "HaltingRecord"]

#: The policy's arms at each exit point.
CONTINUE, STOP = 0, 1
#: The width of :func:`~banditformer.core.exits.exit_features`, the policy's context.
EXIT_FEATURES = 5


@dataclass(frozen=True)
class HaltingRecord(DecisionRecord):
    """What :class:`BanditHalting` chose for a batch of ``B`` samples.

    Attributes:
        reveal: ``(B,)`` bool, the samples that run to full depth whatever the policy says.
        features: ``(B, L - 1, 5)`` float32, each exit point's features, filled in by ``halt`` as
            the samples go (NaN where not evaluated).
        warmup: the batch ran the full model during warm-up (the policy learns nothing from it).
    """

    reveal: Tensor
    features: Tensor
    warmup: bool = False


class BanditHalting(Controller):
    """Stop or continue at every exit point by a contextual bandit (see the module docstring).

    Args:
        num_layers: L >= 2 (exit points ``1 .. L - 1``).
        num_heads: H.
        full_flops: FLOPs of one sample through the full model (``model.cost_table().full``).
        exit_costs: ``L`` FLOP ratios, ``exit_costs[d - 1]`` the cost of running to exit ``d``
            (:meth:`~banditformer.controllers.ThresholdBandit.costs_from_table`), increasing.
        policy: a contextual :class:`~banditformer.core.Policy` over 2 arms (0 continue, 1 stop)
            with ``context_dim=5`` and ``num_groups=L - 1`` (one per exit point).
        lam: the FLOP penalty (the start under ``flop_budget``).
        flop_budget: a target mean FLOP ratio in training; ``lam`` adapts by dual ascent,
            ``lam <- max(0, lam + lam_lr * (mean FLOP ratio - flop_budget))``.
        lam_lr: its step.
        reveal: the share of training samples run to full depth (every exit's rewards known).
        warmup_steps: for this many feedback calls (training batches) nobody halts and the
            policy learns nothing, so that every block trains before the bandit judges depth.
        seed: seeds the reveal draws.

    Examples:
        >>> from banditformer.bandits import LinUCB
        >>> c = BanditHalting(3, 2, 1e6, (0.4, 0.7, 1.0), policy=LinUCB(2, context_dim=5, num_groups=2))
        >>> d = c.decide(torch.zeros(4, 8))
        >>> d.record.features.shape, d.depth.tolist()
        (torch.Size([4, 2, 5]), [3, 3, 3, 3])
    """

    def __init__(
        self,
        num_layers: int,
        num_heads: int,
        full_flops: float,
        exit_costs: Sequence[float],
        *,
        policy: Policy,
        lam: float = 0.5,
        flop_budget: float | None = None,
        lam_lr: float = 0.05,
        reveal: float = 0.1,
        warmup_steps: int = 0,
        seed: int = 0,
    ) -> None:
        check_int("num_layers", num_layers, low=2)
        super().__init__(num_layers, num_heads)
        costs = check_exit_costs(exit_costs, num_layers)
        self.add_config("exit_costs", costs)
        self.add_config("full_flops", check_float("full_flops", full_flops, low=0.0, low_open=True))
        if flop_budget is not None:
            flop_budget = check_float("flop_budget", flop_budget, low=0.0, high=1.0, low_open=True)
        self.add_config("flop_budget", flop_budget)
        self.add_config("lam_lr", check_float("lam_lr", lam_lr, low=0.0))
        self.add_config("reveal", check_float("reveal", reveal, low=0.0, high=1.0))
        self.add_config("warmup_steps", check_int("warmup_steps", warmup_steps, low=0))
        self.add_hyperparameter("lam", lam, low=0.0, adaptive=flop_budget is not None)
        # the inference knob: added to the stop arm's greedy margin (0: plain greedy)
        self.add_hyperparameter("stop_bias", 0.0, low=-1.0, high=1.0, adaptive=True)
        self.add_statistic("feedback_calls", torch.zeros((), dtype=torch.int64), low=0)
        check_slot("policy", policy, Policy, num_arms=2, contextual=True, context_dim=EXIT_FEATURES,
                   num_groups=num_layers - 1)  # fmt: skip
        self.add_config("policy_class", type(policy).__name__)
        self.policy = policy
        self.generator = make_generator(check_int("seed", seed, low=0))
        self.register_buffer("_costs", torch.tensor(costs, dtype=torch.float64), persistent=False)
        # A host mirror of the counter, so that decide() reads it without a device sync per batch.
        self._calls = 0
        self.register_load_state_dict_post_hook(lambda module, _: setattr(module, "_calls", int(module.feedback_calls)))

    @property
    def halts(self) -> bool:
        return True

    @property
    def state_reductions(self) -> dict[str, str | None]:
        return {"lam": "mean", "stop_bias": None, "feedback_calls": None}

    def _decide(self, context: Tensor, explore: bool) -> Decision:
        b, dev = context.shape[0], context.device
        d = Decision.full(b, self.num_layers, self.num_heads, device=dev)
        warmup = explore and self._calls < self.warmup_steps
        if explore and not warmup and self.reveal > 0:
            reveal = (torch.rand(b, generator=self.generator) < self.reveal).to(dev)
        else:
            reveal = torch.zeros(b, dtype=torch.bool, device=dev)
        features = torch.full((b, self.num_layers - 1, EXIT_FEATURES), float("nan"), device=dev)
        d.record = HaltingRecord(reveal, features, warmup)
        return d

    def stop_margin(self, features: Tensor, exit_point: int) -> Tensor:
        """``(n,)`` float64: the policy's estimated stop reward minus its continue reward at exit
        point ``exit_point`` for ``(n, 5)`` features, plus :attr:`stop_bias` (the greedy rule
        stops where it is positive)."""
        groups = torch.full((features.shape[0],), exit_point - 1, dtype=torch.long, device=self.policy.device)
        means = self.policy.expected_rewards(features.to(self.policy.device), groups=groups)  # (n, 2)
        return means[:, STOP] - means[:, CONTINUE] + float(self.stop_bias)

    def _halt(self, point: ExitPoint, decision: Decision, explore: bool) -> Tensor:
        record = self._check_record(decision)
        dev = point.logits.device
        x = exit_features(point)  # (n, 5)
        record.features[point.rows, point.depth - 1] = x.to(record.features.device)  # for the feedback
        if record.warmup or point.size == 0:
            return torch.zeros(point.size, dtype=torch.bool, device=dev)
        if explore:
            groups = torch.full((point.size,), point.depth - 1, dtype=torch.long, device=self.policy.device)
            stop = self.policy.select(x.to(self.policy.device), groups=groups, explore=True) == STOP
        else:
            stop = self.stop_margin(x, point.depth) > 0
        return stop.to(dev) & ~record.reveal[point.rows].to(dev)

    def _check_record(self, decision: Decision) -> HaltingRecord:
        record, b = decision.record, decision.batch_size
        if not isinstance(record, HaltingRecord):
            raise InputValidationError(
                f"expected a Decision made by this controller's decide(), with a HaltingRecord, got a record of "
                f"type {type(record).__name__}"
            )
        want = (b, self.num_layers - 1, EXIT_FEATURES)
        if tuple(record.reveal.shape) != (b,) or tuple(record.features.shape) != want:
            raise InputValidationError(
                f"expected a record for {b} samples, reveal ({b},) and features {want}, got reveal "
                f"{tuple(record.reveal.shape)} and features {tuple(record.features.shape)}"
            )
        return record

    def exit_rewards(self, exit_quality: Tensor, depth: Tensor, costs: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Each arm's reward at every exit point (see the module docstring).

        Args:
            exit_quality: ``(B, L)`` the true class's probability at each exit (read up to the depth).
            depth: ``(B,)`` int64 depths reached, ``1 .. L``.
            costs: ``(B, L)`` each sample's FLOP ratio of running to each exit, or ``None``: the
                configured ``exit_costs`` (every head in every block) for all.

        Returns:
            ``stop`` and ``go`` (continue), two ``(B, L - 1)`` float64 tensors: ``stop[i, d - 1]``
            is ``r_d`` and ``go[i, d - 1]`` is ``max_{d < d' <= depth[i]} r_d'``; NaN where
            unknown (``d > depth[i]`` for stop, ``d >= depth[i]`` for continue).

        Examples:
            >>> from banditformer.bandits import LinUCB
            >>> c = BanditHalting(3, 2, 1.0, (0.5, 0.5, 0.5), policy=LinUCB(2, context_dim=5, num_groups=2), lam=0.0)
            >>> stop, go = c.exit_rewards(torch.tensor([[0.25, 0.75, 0.5], [0.5, 0.0, 0.0]]), torch.tensor([3, 1]))
            >>> stop.tolist(), go.tolist()
            ([[0.25, 0.75], [0.5, nan]], [[0.75, 0.5], [nan, nan]])
        """
        layers = self.num_layers
        reached = torch.arange(1, layers + 1, device=depth.device).unsqueeze(0) <= depth.unsqueeze(1)  # (B, L)
        c = self._costs.to(exit_quality.device) if costs is None else costs.to(exit_quality.device, torch.float64)
        r = dht_reward(exit_quality.to(torch.float64), c, float(self.lam))
        r = torch.where(reached, r, torch.full_like(r, float("-inf")))
        # later[:, j] = max over exits j + 2 .. L (columns j + 1 .. L - 1) of the reached rewards
        later = r.flip(1).cummax(1).values.flip(1)[:, 1:]  # (B, L - 1)
        nan = torch.full_like(later, float("nan"))
        stop = torch.where(reached[:, :-1], r[:, :-1], nan)
        go = torch.where(reached[:, 1:], later, nan)
        return stop, go

    def _feedback(self, decision: Decision, quality: Tensor, flops: Tensor, **extra: Tensor) -> None:
        # Validate everything, then apply: every policy update is checked before lam moves.
        record = self._check_record(decision)
        if record.warmup:
            self._count_feedback()
            return  # warm-up decisions teach the policies nothing
        updates = self._feedback_updates(decision, record, quality, flops, extra)
        for policy, args, kwargs in updates:
            policy.check_update(*args, **kwargs)
        if self.flop_budget is not None:
            ratio = (flops.to(torch.float64) / self.full_flops).clamp(0, 2)
            mean = float(ratio.mean()) if ratio.numel() else self.flop_budget
            dual_ascent(self.lam, self.lam_lr, mean, self.flop_budget)
        for policy, args, kwargs in updates:
            policy.update(*args, **kwargs)
        self._count_feedback()

    def _exit_costs(self, decision: Decision) -> Tensor | None:
        """``(B, L)`` each sample's FLOP ratio up to each exit, or ``None``: the configured ones."""
        return None

    def _feedback_updates(
        self, decision: Decision, record: HaltingRecord, quality: Tensor, flops: Tensor, extra: dict[str, Tensor]
    ) -> list[tuple[Any, tuple, dict]]:
        """The stop-or-continue policy's update, as ``(policy, args, kwargs)`` (none when empty)."""
        stop, go = self.exit_rewards(extra["exit_quality"], decision.depth, self._exit_costs(decision))
        feats = record.features.to(quality.device)
        rows = [torch.isfinite(stop), torch.isfinite(go)]
        if not bool(torch.isfinite(feats[rows[0]]).all()):
            raise InputValidationError(
                "expected every exit point up to each sample's depth to have been evaluated by halt() (the decision "
                "as run, its depth the depth reached), got exits without features"
            )
        exits = torch.arange(self.num_layers - 1, device=quality.device).expand_as(stop)
        arm = torch.cat([torch.full_like(exits[rows[0]], STOP), torch.full_like(exits[rows[1]], CONTINUE)])
        if not arm.numel():
            return []
        reward = torch.cat([stop[rows[0]], go[rows[1]]]).clamp(0.0, 1.0)
        context = torch.cat([feats[rows[0]], feats[rows[1]]])
        groups = torch.cat([exits[rows[0]], exits[rows[1]]])
        dev = self.policy.device
        return [(self.policy, (arm.to(dev), reward.to(dev), context.to(dev)), {"groups": groups.to(dev)})]

    def _count_feedback(self) -> None:
        self.feedback_calls += 1
        self._calls += 1

    def operating_points(self) -> list[float]:
        """401 stop biases from -1 to 1 in steps of 0.005 (the estimates are of rewards in [0, 1],
        so -1 all but never stops and 1 all but always stops at the first exit)."""
        return [i / 200 - 1.0 for i in range(401)]

    def set_operating_point(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1.0 <= float(value) <= 1.0:
            raise InputValidationError(f"expected a stop bias in [-1, 1], got {value!r}")
        self.stop_bias.fill_(float(value))
