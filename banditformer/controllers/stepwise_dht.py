"""DHT as the sample goes (``stepwise_dht``): at every exit point a contextual bandit decides stop
or continue, and for the samples that continue a UCB policy picks the next block's head count and
a combinatorial Thompson sampler picks which heads, from what the model knows there.

DHT (:mod:`banditformer.controllers.dht`) decides everything up front from the stem's context. Here
the decisions follow the evidence: at exit point ``d`` (after ``d`` blocks) the exit classifier's
:func:`~banditformer.core.exits.exit_features` (max probability, margin, entropy, depth, patience)
are the context of

- the stop-or-continue policy, exactly as :class:`~banditformer.controllers.BanditHalting` (one
  statistics group per exit point, the same stop and continue rewards, ``reveal``, the
  ``stop_bias`` inference knob, ``lam`` or a ``flop_budget``);
- the head-count policy of block ``d`` (``H`` arms, heads - 1; one statistics group per block;
  contextual on the exit features, or context-free);
- the head-set policy of block ``d`` (a combinatorial policy, one group per block), given that
  count.

Rewards. The exit costs of the halting rewards are each sample's own: the FLOPs of the head
counts it ran, not those of the full blocks. Every block decision of a sample (its head count and
head set in each block it ran past the stem) is rewarded, as in DHT's tree mode, with the
sample's ``r = (quality - lam * flops / full + lam) / (1 + lam)``; with ``head_reward="importance"``
each chosen head's share is scaled by its importance score (:func:`~banditformer.controllers.dht.importance_rewards`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from banditformer.controllers.dht import HEAD_REWARDS, block_updates, check_slot, dht_reward
from banditformer.controllers.halting import EXIT_FEATURES, BanditHalting, HaltingRecord
from banditformer.controllers.static import check_cost_table
from banditformer.controllers.threshold_bandit import ThresholdBandit
from banditformer.core.decision import Decision
from banditformer.core.errors import InputValidationError
from banditformer.core.exits import ExitPoint, exit_features
from banditformer.core.policy import CombinatorialPolicy, Policy

__all__ = ["StepwiseDHT", "StepwiseRecord"]


@dataclass(frozen=True)
class StepwiseRecord(HaltingRecord):
    """What :class:`StepwiseDHT` chose for a batch of ``B`` samples, filled in as they go.

    Attributes:
        count_arm: ``(B, L - 1)`` int64, the head-count arm (heads - 1) chosen for blocks
            ``1 .. L - 1``; -1 where the sample did not go on to the block (or in warm-up).
        (and :class:`~banditformer.controllers.halting.HaltingRecord`'s fields)
    """

    count_arm: Tensor | None = None


class StepwiseDHT(BanditHalting):
    """Stop or continue, and the next block's head count and head set, decided at every exit
    point by bandits (see the module docstring).

    Args:
        num_layers: L >= 2.
        num_heads: H.
        cost_table: the model's :class:`~banditformer.core.cost.CostTable`: each sample's exit
            costs follow the head counts it ran.
        policy: the stop-or-continue policy, as :class:`BanditHalting` takes it (2 arms,
            ``context_dim=5``, ``num_groups=L - 1``).
        count_policy: a :class:`~banditformer.core.Policy` over ``H`` arms (heads - 1) with
            ``num_groups=L - 1``: contextual with ``context_dim=5`` (the exit features) or
            context-free.
        head_policy: a context-free :class:`~banditformer.core.CombinatorialPolicy` over ``H``
            heads with ``num_groups=L - 1``.
        head_reward: ``"sample"`` or ``"importance"`` (as in :class:`~banditformer.controllers.DHTController`).
        lam, flop_budget, lam_lr, reveal, warmup_steps, seed: as :class:`BanditHalting` takes them.

    Examples:
        >>> from banditformer.bandits import CTS, LinUCB
        >>> from banditformer.core import CostTable
        >>> table = CostTable(stem=4.0, layers=torch.tensor([[0.0, 1.0, 2.0]] * 3), classifier=0.5, seq_len=4)
        >>> c = StepwiseDHT(3, 2, table, policy=LinUCB(2, context_dim=5, num_groups=2),
        ...                 count_policy=LinUCB(2, context_dim=5, num_groups=2), head_policy=CTS(2, num_groups=2))
        >>> c.routes, c.decide(torch.zeros(4, 8)).record.count_arm.tolist()
        (True, [[-1, -1], [-1, -1], [-1, -1], [-1, -1]])
    """

    def __init__(
        self,
        num_layers: int,
        num_heads: int,
        cost_table: Any,
        *,
        policy: Policy,
        count_policy: Policy,
        head_policy: CombinatorialPolicy,
        head_reward: str = "sample",
        lam: float = 0.5,
        flop_budget: float | None = None,
        lam_lr: float = 0.05,
        reveal: float = 0.1,
        warmup_steps: int = 0,
        seed: int = 0,
    ) -> None:
        table = check_cost_table(cost_table, num_layers, num_heads)
        super().__init__(
            num_layers, num_heads, table.full, ThresholdBandit.costs_from_table(table), policy=policy, lam=lam,
            flop_budget=flop_budget, lam_lr=lam_lr, reveal=reveal, warmup_steps=warmup_steps, seed=seed,
        )  # fmt: skip
        if head_reward not in HEAD_REWARDS:
            raise InputValidationError(f"expected `head_reward` in {HEAD_REWARDS}, got {head_reward!r}")
        self.add_config("head_reward", head_reward)
        blocks = num_layers - 1
        contextual = isinstance(count_policy, Policy) and count_policy.is_contextual
        check_slot("count_policy", count_policy, Policy, num_arms=num_heads, contextual=contextual,
                   context_dim=EXIT_FEATURES if contextual else None, num_groups=blocks)  # fmt: skip
        check_slot("head_policy", head_policy, CombinatorialPolicy, num_arms=num_heads, contextual=False,
                   num_groups=blocks)  # fmt: skip
        self.add_config("count_class", type(count_policy).__name__)
        self.add_config("head_class", type(head_policy).__name__)
        # each sample's exit costs: stem + classifier per exit evaluated + the blocks as run, over full
        full = table.full
        self.add_config("block_costs", tuple(float(v) / full for v in table.layers[1:, 1:].flatten().tolist()))
        self.register_buffer(
            "_blocks", torch.tensor(self.block_costs, dtype=torch.float64).view(blocks, num_heads), persistent=False
        )
        self._stem_cost, self._classifier_cost = table.stem / full, table.classifier / full
        self.count_policy = count_policy
        self.head_policy = head_policy

    @property
    def routes(self) -> bool:
        return True

    @property
    def wants_head_importance(self) -> bool:
        return self.head_reward == "importance"

    def _decide(self, context: Tensor, explore: bool) -> Decision:
        d = super()._decide(context, explore)
        record = d.record
        assert isinstance(record, HaltingRecord)
        arms = torch.full((d.batch_size, self.num_layers - 1), -1, dtype=torch.long, device=context.device)
        d.record = StepwiseRecord(record.reveal, record.features, record.warmup, arms)
        return d

    def _route(self, point: ExitPoint, decision: Decision, explore: bool) -> Tensor:
        record = self._check_record(decision)
        dev = point.logits.device
        if record.warmup or point.size == 0:
            return torch.ones(point.size, self.num_heads, dtype=torch.bool, device=dev)
        groups = torch.full((point.size,), point.depth - 1, dtype=torch.long, device=self.count_policy.device)
        if self.count_policy.is_contextual:
            x = exit_features(point).to(self.count_policy.device)
            arm = self.count_policy.select(x, groups=groups, explore=explore)
        else:
            arm = self.count_policy.select(groups=groups, explore=explore)
        hgroups = groups.to(self.head_policy.device)
        chosen = self.head_policy.select(k=arm.to(hgroups.device) + 1, groups=hgroups, explore=explore)
        assert isinstance(record, StepwiseRecord) and record.count_arm is not None
        record.count_arm[point.rows.to(record.count_arm.device), point.depth - 1] = arm.to(record.count_arm.device)
        return chosen.to(dev)

    def _check_record(self, decision: Decision) -> HaltingRecord:
        record = super()._check_record(decision)
        want = (decision.batch_size, self.num_layers - 1)
        arms = getattr(record, "count_arm", None)
        if not isinstance(record, StepwiseRecord) or not isinstance(arms, Tensor) or tuple(arms.shape) != want:
            got = tuple(arms.shape) if isinstance(arms, Tensor) else type(record).__name__
            raise InputValidationError(
                f"expected a Decision made by this controller's decide(), with a StepwiseRecord whose count_arm has "
                f"shape {want}, got {got}"
            )
        return record

    def sample_exit_costs(self, decision: Decision) -> Tensor:
        """``(B, L)`` float64: each sample's FLOP ratio of running to exit ``d`` with the head
        counts it ran (blocks past its depth counted with every head: never read there)."""
        counts = decision.head_counts[:, 1:]  # (B, L - 1), 0 past the depth
        blocks = self._blocks.to(counts.device)
        full_heads = blocks[:, -1].expand(counts.shape[0], -1)
        ran = blocks.gather(1, (counts - 1).clamp(min=0).T).T  # (B, L - 1): block l + 1 with its heads
        per_block = torch.where(counts > 0, ran, full_heads)
        before = torch.cat([per_block.new_zeros(counts.shape[0], 1), per_block.cumsum(1)], 1)  # (B, L)
        exits = torch.arange(1, self.num_layers + 1, device=counts.device, dtype=torch.float64)
        return self._stem_cost + before + self._classifier_cost * exits

    def _exit_costs(self, decision: Decision) -> Tensor:
        return self.sample_exit_costs(decision)

    def _feedback_updates(
        self, decision: Decision, record: HaltingRecord, quality: Tensor, flops: Tensor, extra: dict[str, Tensor]
    ) -> list[tuple[Any, tuple, dict]]:
        updates = super()._feedback_updates(decision, record, quality, flops, extra)
        assert isinstance(record, StepwiseRecord) and record.count_arm is not None
        arms = record.count_arm.to(quality.device)
        ran = decision.active_layers[:, 1:].to(quality.device) & (arms >= 0)  # (B, L - 1): blocks routed and run
        counts = decision.head_counts[:, 1:].to(quality.device)
        if bool((ran & (counts != arms + 1)).any()):
            raise InputValidationError(
                "expected the decision as run (the heads route() chose), got head counts that differ from the "
                "counts chosen"
            )
        if not bool(ran.any()):
            return updates
        ratio = (flops.to(torch.float64) / self.full_flops).clamp(0, 1)
        r = dht_reward(quality.to(torch.float64), ratio, float(self.lam)).to(torch.float32)
        context = record.features if self.count_policy.is_contextual else None  # exit d's features chose block d's
        return updates + block_updates(self.count_policy, self.head_policy, ran, arms, r, decision.heads,
                                       extra.get("head_importance"), context)  # fmt: skip
