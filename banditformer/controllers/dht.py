"""The DHT controller: contextual bandits choose each sample's depth, heads per block and which
heads, with no learned router (Dynamic Hierarchical Transformer, arXiv 2312.03038).

Modes:

- ``tree``: a contextual policy picks the depth; for each block ``1 .. L-1`` a policy picks the
  number of heads and a combinatorial policy picks which heads given that number (one statistics
  group per block, so each block learns its own head count and head set; all blocks are decided
  in one batched call per policy);
- ``integrated``: the depth as in ``tree``, then **one** head count and **one** head set per sample,
  shared by all its blocks: three decisions per sample instead of ``1 + 2 (L - 1)``.

The controller receives its three policies as objects (any implementation of the slot's contract,
plugin policies included); the registry's ``dht`` factory builds them from registered names
(``make_controller("dht", depth_policy="bucketed", ...)``). Block 0 (the stem) always runs in full.

Reward of a sample: ``r = (quality - lam * flops / full_flops + lam) / (1 + lam)``, in [0, 1] for
quality in [0, 1]: ``lam`` trades accuracy for compute. Every decision of the sample (its depth, and
the head count and head set of each block it ran) is rewarded with ``r``. The semi-bandit reward of
each chosen head (``head_reward``) is either

- ``"sample"``: ``r``, the reward of the sample it served (every chosen head alike), or
- ``"importance"``: ``r * I_h / max_{h' chosen} I_h'``, where ``I_h = |dL/d g_h|`` is the head's
  importance score for the sample (Michel et al., 2019, "Are Sixteen Heads Really Better than
  One?"): the gradient of the sample's loss with respect to a gate ``g_h = 1`` on the head's
  output, measured in the training backward pass (see ``DynamicTransformer.run(head_gate=...)``).
  The most important head of each block gets ``r``, the others proportionally less, so the CTS
  learns which heads matter and not only which sets did well. In ``integrated`` mode the scores
  are summed over the blocks the sample ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from banditformer.controllers.static import check_cost_table
from banditformer.core.controller import Controller
from banditformer.core.decision import Decision, DecisionRecord
from banditformer.core.errors import InputValidationError
from banditformer.core.policy import CombinatorialPolicy, Policy, PolicyBase
from banditformer.core.random import make_generator
from banditformer.core.validation import check_float, check_int

__all__ = [
    "COST_BIASES", "HEAD_REWARDS", "MODES", "DHTController", "DHTRecord", "block_updates", "dht_reward",
    "dual_ascent", "importance_rewards",
]  # fmt: skip

MODES = ("tree", "integrated")
HEAD_REWARDS = ("sample", "importance")
#: The inference knob's values that a calibration tries (:meth:`DHTController.operating_points`):
#: 0, then +- 0.001 .. 0.009, 0.01 .. 0.3 and 0.35 .. 1 (rewards and cost ratios are in [0, 1];
#: the estimates' differences are small, so the grid is finest near 0). 107 values.
COST_BIASES = tuple(
    sorted({0.0} | {s * v for s in (-1, 1) for v in (
        [i / 1000 for i in range(1, 10)] + [i / 100 for i in range(1, 31)] + [i / 100 for i in range(35, 101, 5)]
    )})
)  # fmt: skip


def dht_reward(quality: Tensor, flop_ratio: Tensor, lam: float | Tensor) -> Tensor:
    """``(quality - lam * flop_ratio + lam) / (1 + lam)``: in [0, 1] for both inputs in [0, 1]."""
    return ((quality - lam * flop_ratio + lam) / (1.0 + lam)).clamp(0.0, 1.0)


def dual_ascent(lam: Tensor, lam_lr: float, ratio: float, budget: float) -> None:
    """One dual-ascent step of the FLOP penalty on a budget, in place:
    ``lam <- max(0, lam + lam_lr * (ratio - budget))`` (``ratio``: the batch's mean FLOP ratio)."""
    lam.copy_((lam + lam_lr * (ratio - budget)).clamp(min=0.0))


def importance_rewards(reward: Tensor, importance: Tensor, chosen: Tensor) -> Tensor:
    """Per-head rewards ``reward * I_h / max_{h' chosen} I_h'`` (a row whose chosen heads all
    score 0 gives each of them ``reward``).

    Args:
        reward: ``(n,)`` rewards in [0, 1]; importance: ``(n, H)`` non-negative scores;
        chosen: ``(n, H)`` bool.

    Returns:
        ``(n, H)`` rewards in [0, 1] (0 for unchosen heads).

    Examples:
        >>> chosen = torch.tensor([[True, True, False]])
        >>> importance_rewards(torch.tensor([0.8]), torch.tensor([[2.0, 1.0, 9.0]]), chosen)
        tensor([[0.8000, 0.4000, 0.0000]])
    """
    imp = importance.to(reward.dtype) * chosen
    top = imp.amax(1, keepdim=True)
    share = torch.where(top > 0, imp / top.clamp_min(torch.finfo(imp.dtype).tiny), chosen.to(imp.dtype))
    return reward.unsqueeze(1) * share


@dataclass(frozen=True)
class DHTRecord(DecisionRecord):
    """What :class:`DHTController` chose for a batch of ``B`` samples, read back by its feedback.

    Attributes:
        context: ``(B, d)`` float32, the contexts it decided from.
        depth_arm: ``(B,)`` int64 depth arms (depth - 1); ``None`` in warm-up.
        count_arm: ``(B, L-1)`` int64 head-count arms (heads - 1) of each block; ``None`` in
            warm-up or for a one-block model.
        warmup: the batch ran the full model during warm-up (the policies learn nothing from it).
    """

    context: Tensor
    depth_arm: Tensor | None = None
    count_arm: Tensor | None = None
    warmup: bool = False


class DHTController(Controller):
    """Bandit policies decide each sample's architecture, in training (explore) and inference
    (greedy on the learned estimates).

    Args:
        num_layers: L (block 0 is the always-run stem).
        num_heads: H.
        context_dim: the width of the context vectors (the model's ``d_model``).
        full_flops: FLOPs of one sample through the full model (``model.cost_table().full``).
        mode: ``"tree"`` or ``"integrated"``.
        lam: the FLOP penalty of the reward (the starting value when ``flop_budget`` is set).
        flop_budget: a target mean FLOP ratio in (0, 1]: ``lam`` then adapts by dual ascent after
            every feedback, ``lam <- max(0, lam + lam_lr * (mean FLOP ratio - flop_budget))``,
            rising while samples cost more than the budget and falling while they cost less.
        lam_lr: the step size of that adaptation.
        warmup_steps: for this many feedback calls (training batches) the controller explores
            nothing: every sample runs the full model and the policies learn nothing, so that every
            block is trained before the bandits judge depths and heads by the model's quality
            (a bandit started on an untrained model learns that depth does not help, stays
            shallow, and the deep blocks never learn). Inference (``explore=False``) is greedy
            throughout.
        head_reward: ``"sample"`` or ``"importance"``, the semi-bandit reward of each chosen head
            (see the module docstring); ``"importance"`` needs ``head_importance`` in
            :meth:`feedback`, which :class:`~banditformer.training.Trainer` measures.
        depth_policy: a contextual :class:`~banditformer.core.Policy` over ``L`` arms (depth - 1)
            with ``context_dim`` features.
        count_policy: a context-free :class:`~banditformer.core.Policy` over ``H`` arms (heads - 1),
            with one statistics group per block (``L - 1``) in ``tree`` mode, one in ``integrated``.
        head_policy: a context-free :class:`~banditformer.core.CombinatorialPolicy` over ``H``
            heads, with as many groups as ``count_policy``.
        cost_table: the model's :class:`~banditformer.core.cost.CostTable`, or ``None``. With it
            the controller has an inference knob, ``cost_bias`` ``b`` in ``[-1, 1]`` (0 by
            default: plain greedy): at inference (``explore=False``) the depth is
            ``argmax_a (estimate_a - b * cost_a)``, ``cost_a`` the FLOP ratio of depth ``a + 1``
            with every head, and each block's head count likewise with that block's cost per
            head count, so that :func:`~banditformer.training.calibrate_budget` can meet a FLOP
            budget on the validation split after training (b > 0 buys compute back, b < 0
            spends more). Between two biases the knob can also mix them per sample
            (:meth:`set_operating_mix`: each sample takes the second with a probability, drawn
            from the controller's generator), so that a calibrated mean FLOP ratio is not held to
            the steps the grid of biases gives (many samples share their estimates, and a bias
            moves them together).
        seed: seeds the controller's generator (the per-sample draws of a mixed knob).

    Examples:
        >>> from banditformer.bandits import CTS, UCB1, LinUCB
        >>> c = DHTController(4, 4, 8, 1e6, depth_policy=LinUCB(4, context_dim=8),
        ...                   count_policy=UCB1(4, num_groups=3), head_policy=CTS(4, num_groups=3))
        >>> d = c.decide(torch.randn(5, 8))
        >>> d.depth.shape, d.heads.shape
        (torch.Size([5]), torch.Size([5, 4, 4]))
        >>> c.feedback(d, quality=torch.rand(5), flops=torch.full((5,), 5e5))
    """

    def __init__(
        self,
        num_layers: int,
        num_heads: int,
        context_dim: int,
        full_flops: float,
        *,
        mode: str = "tree",
        lam: float = 0.5,
        flop_budget: float | None = None,
        lam_lr: float = 0.05,
        warmup_steps: int = 0,
        head_reward: str = "sample",
        depth_policy: Policy,
        count_policy: Policy,
        head_policy: CombinatorialPolicy,
        cost_table: Any = None,
        seed: int = 0,
    ) -> None:
        super().__init__(num_layers, num_heads)
        check_int("seed", seed, low=0, high=2**63 - 1)
        if mode not in MODES:
            raise InputValidationError(f"expected `mode` in {MODES}, got {mode!r}")
        self.add_config("mode", mode)
        if head_reward not in HEAD_REWARDS:
            raise InputValidationError(f"expected `head_reward` in {HEAD_REWARDS}, got {head_reward!r}")
        self.add_config("head_reward", head_reward)
        self.add_config("context_dim", check_int("context_dim", context_dim, low=1))
        self.add_config("full_flops", check_float("full_flops", full_flops, low=0.0, low_open=True))
        if flop_budget is not None:
            flop_budget = check_float("flop_budget", flop_budget, low=0.0, high=1.0, low_open=True)
        self.add_config("flop_budget", flop_budget)
        self.add_config("lam_lr", check_float("lam_lr", lam_lr, low=0.0))
        self.add_config("warmup_steps", check_int("warmup_steps", warmup_steps, low=0))
        # lam is a buffer that travels with state_dict(): configuration at a fixed lam (a load must
        # hold the same value), adaptive state under a FLOP budget (a load restores it).
        self.add_hyperparameter("lam", lam, low=0.0, adaptive=flop_budget is not None)
        self.add_statistic("feedback_calls", torch.zeros((), dtype=torch.int64), low=0)
        blocks = max(num_layers - 1, 1)
        groups = blocks if mode == "tree" else 1
        check_slot("depth_policy", depth_policy, Policy, num_arms=num_layers, contextual=True, context_dim=context_dim)
        check_slot("count_policy", count_policy, Policy, num_arms=num_heads, contextual=False, num_groups=groups)
        check_slot("head_policy", head_policy, CombinatorialPolicy, num_arms=num_heads, contextual=False,
                   num_groups=groups)  # fmt: skip
        self.add_config("policies", tuple(type(p).__name__ for p in (depth_policy, count_policy, head_policy)))
        depth_costs = count_costs = None
        if cost_table is not None:
            table = check_cost_table(cost_table, num_layers, num_heads)
            blocks_full = [0.0, *table.layers[1:, -1].cumsum(0).tolist()]
            depth_costs = tuple(
                (table.stem + blocks_full[a] + table.classifier) / table.full for a in range(num_layers)
            )
            per_block = table.layers[1:, 1:] if num_layers > 1 else table.layers[:1, 1:]
            rows = per_block if mode == "tree" else per_block.mean(0, keepdim=True)
            count_costs = tuple(float(v) / table.full for v in rows.flatten().tolist())
        self.add_config("depth_costs", depth_costs)
        self.add_config("count_costs", count_costs)
        # the knob's costs on the controller's device, made once (not per decide)
        self.register_buffer("_depth_cost", torch.tensor(depth_costs or (), dtype=torch.float64), persistent=False)
        self.register_buffer(
            "_count_cost", torch.tensor(count_costs or (), dtype=torch.float64).view(-1, num_heads), persistent=False
        )
        self.add_hyperparameter("cost_bias", 0.0, low=-1.0, high=1.0, adaptive=True)
        # a mixed knob: each sample takes cost_bias_high with probability cost_mix
        self.add_hyperparameter("cost_bias_high", 0.0, low=-1.0, high=1.0, adaptive=True)
        self.add_hyperparameter("cost_mix", 0.0, low=0.0, high=1.0, adaptive=True)
        self.generator = make_generator(seed)
        # Host mirrors of the buffers, so that decide() reads them without a device sync per batch.
        self._calls, self._bias, self._bias_high, self._mix = 0, 0.0, 0.0, 0.0
        self.register_load_state_dict_post_hook(lambda module, _: module._mirror())
        self.depth_policy = depth_policy
        self.count_policy = count_policy
        self.head_policy = head_policy

    @property
    def state_reductions(self) -> dict[str, str | None]:
        # lam's adaptive steps come from batch means: the mean of the ranks' steps is the step on
        # the global batch; every rank gives feedback once a step, so the counter agrees anyway.
        return {"lam": "mean", "feedback_calls": None, "cost_bias": None, "cost_bias_high": None, "cost_mix": None}

    def operating_points(self) -> list[float] | None:
        """The cost biases a calibration tries (:data:`COST_BIASES`), or ``None`` without a
        ``cost_table`` (no knob)."""
        return None if self.depth_costs is None else list(COST_BIASES)

    mixes_operating_points = True

    def set_operating_point(self, value: float) -> None:
        if self.depth_costs is None:
            super().set_operating_point(value)
        bias = self._check_bias(value)
        self._set_knob(bias, 0.0, 0.0)

    def set_operating_mix(self, low: float, high: float, weight: float) -> None:
        """Mix two cost biases per sample: at inference each sample takes ``high`` with
        probability ``weight`` and ``low`` otherwise (a draw per sample from the controller's
        generator), so that the mean FLOP ratio moves continuously from ``low``'s to ``high``'s.

        Raises:
            InputValidationError: without a cost table, for a bias outside ``[-1, 1]`` or a weight
                outside ``[0, 1]``; nothing is changed then.
        """
        if self.depth_costs is None:  # no knob at all: the error says so
            Controller.set_operating_point(self, low)
        lo, hi = self._check_bias(low), self._check_bias(high)
        w = check_float("weight", weight, low=0.0, high=1.0)
        self._set_knob(lo, hi, w)

    def _check_bias(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1.0 <= float(value) <= 1.0:
            raise InputValidationError(f"expected a cost bias in [-1, 1], got {value!r}")
        return float(value)

    def _set_knob(self, low: float, high: float, weight: float) -> None:
        self.cost_bias.fill_(low)
        self.cost_bias_high.fill_(high)
        self.cost_mix.fill_(weight)
        self._bias, self._bias_high, self._mix = low, high, weight

    def _sample_bias(self, b: int, device: torch.device) -> Tensor | float:
        """The knob's bias of each of ``b`` samples: ``cost_bias``, or under a mix a ``(b, 1)``
        float64 tensor of ``cost_bias`` / ``cost_bias_high`` drawn per sample."""
        if self._mix == 0.0:
            return self._bias
        take_high = torch.rand(b, generator=self.generator, dtype=torch.float64) < self._mix
        bias = torch.where(take_high, self._bias_high, self._bias).unsqueeze(1)
        return bias.to(device)

    def _greedy(
        self, policy: Policy, costs: Tensor, bias: Tensor | float, context: Tensor | None = None, **rows: Any
    ) -> Tensor:
        """``argmax_a (estimate_a - bias * costs[..., a])``: the knob's inference rule (``bias``
        one float, or ``(n, 1)`` per row)."""
        means = policy.expected_rewards(context, **rows)  # (n, K) float64, -inf where unknown
        if isinstance(bias, Tensor):
            bias = bias.to(means.device)
        return (means - bias * costs.to(means.device, means.dtype)).argmax(1)

    def _decide(self, context: Tensor, explore: bool) -> Decision:
        b, layers, h = context.shape[0], self.num_layers, self.num_heads
        if context.shape[1] != self.context_dim:
            raise InputValidationError(f"expected `context` of width {self.context_dim}, got {context.shape[1]}")
        x = context.to(torch.float32)
        if explore and self._calls < self.warmup_steps:  # warm-up: the full model
            full = torch.ones(b, layers, h, dtype=torch.bool, device=context.device)
            return Decision(torch.full((b,), layers, device=context.device), full, DHTRecord(x, warmup=True))
        biased = not explore and self.depth_costs is not None and (self._bias != 0.0 or self._mix != 0.0)
        bias = self._sample_bias(b, context.device) if biased else 0.0  # per sample under a mix
        if biased:
            depth_arm = self._greedy(self.depth_policy, self._depth_cost, bias, x).to(context.device)
        else:
            depth_arm = self.depth_policy.select(x, explore=explore)  # (B,)
        heads = torch.ones(b, layers, h, dtype=torch.bool, device=context.device)
        if layers == 1:
            return Decision(depth_arm + 1, heads, DHTRecord(x, depth_arm))
        blocks = layers - 1
        count_costs = self._count_cost if biased else None
        if self.mode == "tree":
            groups = torch.arange(blocks, device=context.device).repeat(b)  # (B * (L-1),) block of each row
            if count_costs is not None:  # each row's block's costs per head count
                cost_rows = count_costs[groups]
                row_bias = bias.repeat_interleave(blocks, dim=0) if isinstance(bias, Tensor) else bias  # sample-major
                count_arm = self._greedy(self.count_policy, cost_rows, row_bias, groups=groups).to(context.device)
            else:
                count_arm = self.count_policy.select(groups=groups, explore=explore)
            chosen = self.head_policy.select(k=count_arm + 1, groups=groups, explore=explore)  # (B * (L-1), H)
            heads[:, 1:] = chosen.view(b, blocks, h)
            count_arm = count_arm.view(b, blocks)
        else:
            if count_costs is not None:
                count_arm = self._greedy(self.count_policy, count_costs.expand(b, -1), bias, n=b).to(context.device)
            else:
                count_arm = self.count_policy.select(n=b, explore=explore)  # one head count per sample
            chosen = self.head_policy.select(k=count_arm + 1, explore=explore)  # one head set per sample
            heads[:, 1:] = chosen.unsqueeze(1)
            count_arm = count_arm.unsqueeze(1).expand(b, blocks)
        return Decision(depth_arm + 1, heads, DHTRecord(x, depth_arm, count_arm))

    @property
    def wants_head_importance(self) -> bool:
        return self.head_reward == "importance" and self.num_layers > 1

    def reward(self, quality: Tensor, flops: Tensor) -> Tensor:
        """``(B,)`` rewards in [0, 1] from quality and FLOPs (see :func:`dht_reward`)."""
        ratio = (flops.to(torch.float64) / self.full_flops).clamp(0, 1)
        return dht_reward(quality.to(torch.float64), ratio, float(self.lam))

    def _feedback(self, decision: Decision, quality: Tensor, flops: Tensor, **extra: Tensor) -> None:
        # Validate everything, then apply: every policy update is checked before the first one
        # runs, and the counter and lam move last, so a feedback that raises changed nothing.
        record = self._record(decision)
        if record.warmup:
            self._count_feedback()
            return  # warm-up decisions teach the policies nothing
        updates = self._feedback_updates(decision, record, quality, flops, extra.get("head_importance"))
        for policy, args, kwargs in updates:
            policy.check_update(*args, **kwargs)
        if self.flop_budget is not None:  # dual ascent on the FLOP constraint
            # the ratio clamped to [0, 1], as in the reward: one absurd FLOP count moves lam by at most lam_lr
            ratio = float((flops.to(torch.float64) / self.full_flops).clamp(0, 1).mean())
            dual_ascent(self.lam, self.lam_lr, ratio, self.flop_budget)
        for policy, args, kwargs in updates:
            policy.update(*args, **kwargs)
        self._count_feedback()

    def _count_feedback(self) -> None:
        self.feedback_calls += 1
        self._calls += 1

    def _mirror(self) -> None:
        """Host copies of the counter and the knob, read by ``decide`` without a device sync."""
        self._calls, self._bias = int(self.feedback_calls), float(self.cost_bias)
        self._bias_high, self._mix = float(self.cost_bias_high), float(self.cost_mix)

    def _record(self, decision: Decision) -> DHTRecord:
        """``decision``'s record, checked to be one this controller's ``decide`` made for it."""
        record, b, blocks = decision.record, decision.batch_size, self.num_layers - 1
        if not isinstance(record, DHTRecord):
            raise InputValidationError(
                f"expected a Decision made by this controller's decide(), with a DHTRecord, got a record of type "
                f"{type(record).__name__}"
            )
        shapes: dict[str, tuple[int, ...]] = {"context": (b, self.context_dim)}
        if not record.warmup:
            shapes["depth_arm"] = (b,)
            if self.num_layers > 1:
                shapes["count_arm"] = (b, blocks)
        for key, shape in shapes.items():
            value = getattr(record, key)
            if not isinstance(value, Tensor) or tuple(value.shape) != shape:
                got = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
                raise InputValidationError(
                    f"expected a Decision made by this controller's decide(), with record.{key} of shape {shape}, "
                    f"got {got}"
                )
        return record

    def _feedback_updates(
        self, decision: Decision, record: DHTRecord, quality: Tensor, flops: Tensor, importance: Tensor | None
    ) -> list[tuple[Any, tuple, dict]]:
        """The policy updates one feedback makes, as ``(policy, args, kwargs)``."""
        h = self.num_heads
        r = self.reward(quality, flops).to(torch.float32)  # (B,)
        updates: list[tuple[Any, tuple, dict]] = [(self.depth_policy, (record.depth_arm, r, record.context), {})]
        if self.num_layers == 1:
            return updates
        ran = decision.active_layers[:, 1:]  # (B, L-1): blocks each sample ran
        if self.mode == "tree":
            updates += block_updates(self.count_policy, self.head_policy, ran, record.count_arm, r, decision.heads,
                                     importance)  # fmt: skip
        else:
            did = ran.any(1)  # samples that ran any block beyond the stem
            chosen = decision.heads[did, 1]
            if importance is not None:
                summed = (importance[:, 1:] * ran.unsqueeze(2)).sum(1)  # (B, H) over blocks run
                head_rewards = importance_rewards(r[did], summed[did], chosen)
            else:
                head_rewards = r[did].unsqueeze(1).expand(-1, h).contiguous()
            updates.append((self.count_policy, (record.count_arm[did, 0], r[did]), {}))
            updates.append((self.head_policy, (chosen, head_rewards.to(torch.float32)), {}))
        return updates


def block_updates(
    count_policy: Policy,
    head_policy: CombinatorialPolicy,
    ran: Tensor,
    count_arm: Tensor,
    reward: Tensor,
    heads: Tensor,
    importance: Tensor | None = None,
    context: Tensor | None = None,
) -> list[tuple[Any, tuple, dict]]:
    """The per-block updates of head counts and head sets (one statistics group per block): every
    block a sample ran is rewarded with the sample's reward, its head-count arm and its head set
    (each chosen head alike, or by ``importance``, :func:`importance_rewards`).

    Args:
        ran: ``(B, L - 1)`` bool, the blocks ``1 ..`` to reward; count_arm: ``(B, L - 1)`` int64
            arms there; reward: ``(B,)``; heads: ``(B, L, H)`` bool head sets as run;
        importance: ``(B, L, H)`` scores or ``None``; context: ``(B, L - 1, d)`` the count
            policy's context per block, for a contextual one, or ``None``.

    Returns:
        The two updates, as ``(policy, args, kwargs)``.
    """
    b, blocks = ran.shape
    groups = torch.arange(blocks, device=ran.device).expand(b, blocks)[ran]
    rewards = reward.unsqueeze(1).expand(b, blocks)[ran]
    chosen = heads[:, 1:][ran]  # (rows, H)
    if importance is not None:
        head_rewards = importance_rewards(rewards, importance[:, 1:][ran], chosen)
    else:
        head_rewards = rewards.unsqueeze(1).expand(-1, heads.shape[2]).contiguous()
    count_args: tuple = (count_arm[ran], rewards) if context is None else (count_arm[ran], rewards, context[ran])
    return [
        (count_policy, count_args, {"groups": groups}),
        (head_policy, (chosen, head_rewards.to(torch.float32)), {"groups": groups}),
    ]


def check_slot(
    name: str,
    policy: object,
    kind: type,
    *,
    num_arms: int,
    contextual: bool,
    context_dim: int | None = None,
    num_groups: int | None = None,
) -> None:
    """Check that ``policy`` fits a controller's slot: its kind, arms, context and groups.

    Raises:
        InputValidationError: naming the slot, what it needs and what ``policy`` is.
    """
    what = ("a contextual" if contextual else "a context-free") + f" {kind.__name__} over {num_arms} arms"
    if context_dim is not None:
        what += f" with context_dim={context_dim}"
    if num_groups is not None:
        what += f" and num_groups={num_groups}"
    ok = (
        isinstance(policy, kind)
        and policy.num_arms == num_arms
        and policy.is_contextual == contextual
        and (context_dim is None or policy.context_dim == context_dim)
        and (num_groups is None or policy.num_groups == num_groups)
    )
    if not ok:
        if isinstance(policy, PolicyBase):
            got = (
                f"{type(policy).__name__}(num_arms={policy.num_arms}, contextual={policy.is_contextual}, "
                f"context_dim={policy.context_dim}, num_groups={policy.num_groups})"
            )
        else:
            got = type(policy).__name__
        raise InputValidationError(f"expected `{name}` to be {what}, got {got}")
