"""Exit points: what the model knows about a sample after each block, for controllers that decide
as the sample goes (halting), and what a multi-exit forward pass returns.

A model of ``L`` blocks has exit points ``1 .. L - 1``: exit point ``d`` comes after ``d`` blocks
(block 0 is the stem), where the exit classifier of depth ``d`` gives logits. A sample that halts
at exit point ``d`` has depth ``d``; one that never halts runs to its planned depth
(``Decision.depth``, the full depth for a halting-only controller).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError
from banditformer.core.validation import check_int, check_tensor

__all__ = [
    "ExitOutput", "ExitPoint", "check_halt", "check_head_sets", "check_route", "exit_features", "next_patience",
    "replay_exits",
]  # fmt: skip


@dataclass(frozen=True)
class ExitPoint:
    """The samples still running at exit point ``depth``, and what the model knows about them.

    Attributes:
        depth: blocks run so far, ``1 .. num_layers - 1``; halting here gives the sample this depth.
        num_layers: L, the model's blocks.
        rows: ``(n,)`` int64, the samples' rows in the batch, increasing.
        logits: ``(n, C)`` float32 logits of this exit's classifier, detached.
        context: ``(n, D)`` the samples' stem contexts (what ``decide`` saw).
        patience: ``(n,)`` int64, how many consecutive exits up to this one predicted the same
            class (1 when the prediction just changed or at the first exit), as PABEE counts it.

    Examples:
        >>> p = ExitPoint(1, 3, torch.tensor([0, 2]), torch.tensor([[2.0, 0.0], [0.0, 0.0]]),
        ...               torch.zeros(2, 4), torch.ones(2, dtype=torch.long))
        >>> [round(v, 3) for v in p.max_prob.tolist()], [round(v, 3) for v in p.entropy.tolist()]
        ([0.881, 0.5], [0.527, 1.0])
    """

    depth: int
    num_layers: int
    rows: Tensor
    logits: Tensor
    context: Tensor
    patience: Tensor

    @property
    def size(self) -> int:
        return int(self.rows.shape[0])

    @functools.cached_property
    def probs(self) -> Tensor:
        """``(n, C)`` softmax of the exit's logits (computed once: every measure reads it)."""
        return self.logits.float().softmax(-1)

    @property
    def max_prob(self) -> Tensor:
        """``(n,)`` the largest class probability (BranchyNet's and DeeBERT's confidence)."""
        return self.probs.amax(-1)

    @property
    def margin(self) -> Tensor:
        """``(n,)`` the top probability minus the second (1 with a single class)."""
        p = self.probs
        if p.shape[-1] < 2:
            return torch.ones(p.shape[0], dtype=p.dtype, device=p.device)
        top = p.topk(2, dim=-1).values
        return top[:, 0] - top[:, 1]

    @property
    def entropy(self) -> Tensor:
        """``(n,)`` the prediction's entropy over ``log C``, in ``[0, 1]`` (1: uniform)."""
        p = self.probs
        classes = p.shape[-1]
        if classes < 2:
            return torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
        h = -(p * p.clamp_min(1e-30).log()).sum(-1)
        return (h / math.log(classes)).clamp(0.0, 1.0)

    @property
    def prediction(self) -> Tensor:
        """``(n,)`` int64 argmax class."""
        return self.logits.argmax(-1)


def next_patience(pred: Tensor, last: Tensor | None, streak: Tensor | None) -> Tensor:
    """Consecutive exits predicting the same class, this one (``pred``) included, given the
    previous exit's predictions and streaks (``None`` at the first exit): PABEE's patience."""
    if last is None or streak is None:
        return torch.ones_like(pred)
    return torch.where(pred == last, streak + 1, torch.ones_like(streak))


def exit_features(point: ExitPoint) -> Tensor:
    """``(n, 5)`` float32 features of an exit point for a contextual policy: max probability,
    margin, normalised entropy, the exit's depth over ``L``, and patience over ``L``. All in
    ``[0, 1]``.

    Examples:
        >>> p = ExitPoint(2, 4, torch.tensor([0]), torch.zeros(1, 3), torch.zeros(1, 2), torch.tensor([2]))
        >>> [round(v, 3) for v in exit_features(p)[0].tolist()]
        [0.333, 0.0, 1.0, 0.5, 0.5]
    """
    return torch.stack(
        [
            point.max_prob,
            point.margin,
            point.entropy,
            torch.full((point.size,), point.depth / point.num_layers, device=point.logits.device),
            point.patience.float().to(point.logits.device) / point.num_layers,
        ],
        dim=1,
    ).float()


@dataclass
class ExitOutput:
    """What a multi-exit forward pass returns.

    Attributes:
        logits: ``(B, C)`` each sample's logits at the depth it reached.
        depth: ``(B,)`` int64, the depth each sample reached (its planned depth unless it halted).
        exit_logits: ``(B, L, C)``: ``exit_logits[i, d - 1]`` is sample ``i``'s logits at exit
            ``d`` for ``d <= depth[i]`` (zeros past it); ``None`` unless the pass evaluated every
            exit it passed (halting, or ``all_exits=True``).
        exits: ``(B,)`` int64, the exit classifiers evaluated per sample (FLOPs count each one):
            ``depth`` when every exit passed was evaluated, else 1.
        heads: ``(B, L, H)`` bool, the head sets as run: the decision's, with each block that a
            ``route`` callback chose on the way replaced by its choice (``None``: the decision's
            heads stood, nothing was routed).
    """

    logits: Tensor
    depth: Tensor
    exit_logits: Tensor | None
    exits: Tensor
    heads: Tensor | None = None

    def reached(self) -> Tensor:
        """``(B, L)`` bool: True at the exits sample ``i`` evaluated (``d <= depth[i]``), when
        :attr:`exit_logits` is given.

        Raises:
            InputValidationError: when the pass evaluated only each sample's last exit.
        """
        if self.exit_logits is None:
            raise InputValidationError(
                "expected an output with every exit's logits (all_exits=True), got only the last"
            )
        layers = torch.arange(1, self.exit_logits.shape[1] + 1, device=self.depth.device)
        return layers.unsqueeze(0) <= self.depth.unsqueeze(1)


def check_halt(mask: object, point: ExitPoint, owner: str) -> Tensor:
    """A halting mask for ``point``: a ``(n,)`` bool tensor on the logits' device."""
    check_int("depth", point.depth, low=1, high=point.num_layers - 1)
    return check_tensor(f"{owner}.halt", mask, shape=(point.size,), kind="bool", device=point.logits.device)


def check_route(heads: object, point: ExitPoint, num_heads: int, owner: str) -> Tensor:
    """A routing answer for ``point``: a ``(n, H)`` bool tensor on the logits' device (the heads
    of block ``point.depth`` for each sample of ``point``); see :func:`check_head_sets` for the
    non-empty rule."""
    check_int("depth", point.depth, low=1, high=point.num_layers - 1)
    return check_tensor(f"{owner}.route", heads, shape=(point.size, num_heads), kind="bool", device=point.logits.device)


def check_head_sets(host: Tensor, point: ExitPoint, owner: str) -> None:
    """Every row of ``host`` (a routing answer's copy on the host: no device sync) is a non-empty
    head set."""
    empty = ~host.any(1)
    if point.size and bool(empty.any()):
        row = int(empty.nonzero()[0, 0])
        raise InputValidationError(
            f"expected `{owner}.route` to give a non-empty head set to every sample, got none for row {row} "
            f"(batch row {int(point.rows[row])}) at exit point {point.depth}"
        )


def replay_exits(halt: Callable[[ExitPoint], Tensor], exit_logits: Tensor, planned: Tensor, context: Tensor) -> Tensor:
    """The depth each sample reaches under ``halt``, replayed on the logits of every exit
    (``exit_logits`` ``(B, L, C)``, from a full pass with ``all_exits=True``): the same exit
    points, rows and patience that a multi-exit forward pass shows ``halt``, without running the
    model again (an exit's logits do not depend on who halted before it).

    Args:
        planned: ``(B,)`` int64 planned depths; context: ``(B, D)`` stem contexts.

    Returns:
        ``(B,)`` int64 depths reached.
    """
    b, layers = exit_logits.shape[0], exit_logits.shape[1]
    depth = planned.clone()
    active = torch.ones(b, dtype=torch.bool, device=planned.device)
    last: Tensor | None = None
    streak: Tensor | None = None
    for d in range(1, layers):
        logits = exit_logits[:, d - 1]
        pred = logits.argmax(-1)
        streak, last = next_patience(pred, last, streak), pred
        stop = active & (planned <= d)
        going = (active & ~stop).nonzero().squeeze(1)
        if going.numel():
            point = ExitPoint(d, layers, going, logits[going].detach().float(), context[going], streak[going])
            stop[going] |= check_halt(halt(point), point, "halt")
        depth = torch.where(stop, torch.full_like(depth, d), depth)
        active &= ~stop
        if not bool(active.any()):
            break
    return depth
