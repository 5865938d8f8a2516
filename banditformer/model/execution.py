"""Per-sample depth and heads over a stack of blocks: the one algorithm that runs a model's
blocks after its stem, shared by :class:`~banditformer.model.DynamicTransformer` and the adapted
models of :mod:`banditformer.adapters`.

A model describes itself through a :class:`BlockStack` (its hidden state's type ``S``: a
``(B, T', D)`` tensor for the library's own model, the states with their padding mask for an
adapted one), and :func:`run` / :func:`run_exits` do the rest, on either path:

- ``path="reference"``: every block runs on every sample; skipped blocks are undone with
  ``torch.where`` (:meth:`BlockStack.where`) and unchosen heads are zeroed (masking: simple,
  plainly right, saves nothing);
- ``path="fast"``: samples are sorted by depth (or leave the active set as they halt), block
  ``l`` runs on the rows still active, and attention computes the chosen heads only.

The inputs are checked by the model before these functions are called (they check only the
callbacks): the model's public ``run`` and ``run_exits`` validate, then call :func:`run` and
:func:`run_exits` here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import torch
from torch import Tensor

from banditformer.backends import default_backend
from banditformer.core.backend import Backend
from banditformer.core.decision import Decision
from banditformer.core.errors import InputValidationError
from banditformer.core.exits import ExitOutput, ExitPoint, check_halt, check_head_sets, check_route, next_patience

__all__ = [
    "PATHS",
    "Batched",
    "BlockStack",
    "HaltFn",
    "RouteFn",
    "cached_backend",
    "check_decision",
    "run",
    "run_exits",
]

PATHS = ("fast", "reference")

#: ``halt(point) -> (n,) bool``: which samples of an exit point stop there (e.g.
#: ``functools.partial(controller.halt, decision=d, explore=False)``).
HaltFn = Callable[[ExitPoint], Tensor]
#: ``route(point) -> (n, H) bool``: the head sets of block ``point.depth`` for the samples of an
#: exit point that go on past it (e.g. ``functools.partial(controller.route, decision=d)``).
RouteFn = Callable[[ExitPoint], Tensor]


class Batched(Protocol):
    """A batch of hidden states: ``shape[0]`` is its batch size ``B`` (a tensor is one)."""

    @property
    def shape(self) -> torch.Size: ...

    @property
    def device(self) -> torch.device: ...


S = TypeVar("S", bound=Batched)


class BlockStack(Protocol[S]):
    """What :func:`run` and :func:`run_exits` need of a model whose hidden state is of type ``S``.

    ``S`` is :class:`Batched` (a tensor is). Block ``0`` is the stem's, run before: these calls
    run blocks ``1 .. L - 1``.

    Attributes:
        num_layers: L; num_heads: H.
        exit_heads: True when some exit ``1 .. L - 1`` has its own classifier (else every depth
            is classified alike, and the reference :func:`run` classifies once).
    """

    @property
    def num_layers(self) -> int: ...

    @property
    def num_heads(self) -> int: ...

    @property
    def exit_heads(self) -> bool: ...

    def classify(self, h: S, depth: int | None = None) -> Tensor:
        """``(n, C)`` logits of ``h`` at exit ``depth`` (``None``: the full depth's classifier)."""
        ...

    def pool(self, h: S) -> Tensor:
        """``(n, D)``: what the classifier reads (the controllers' context, detached)."""
        ...

    def rows(self, h: S, index: Tensor | slice) -> S:
        """The rows ``index`` (a ``(k,)`` int64 tensor on ``h``'s device, or a slice) of ``h``."""
        ...

    def cat(self, parts: Sequence[S]) -> S:
        """The states ``parts`` stacked along the batch."""
        ...

    def where(self, active: Tensor, new: S, old: S) -> S:
        """Row ``i`` of ``new`` where ``active[i]`` (``(B,)`` bool), else of ``old``."""
        ...

    def block(self, layer: int, h: S, heads: Tensor, host: Tensor, gate: Tensor | None) -> S:
        """The fast path: block ``layer`` on ``h`` ``(n, ...)``, row ``i`` running the heads of
        ``heads[i]`` (``(n, H)`` bool) only; ``host`` is their CPU copy (for the kernel's
        planning, and every head run as one dense block when it is all True); ``gate`` ``(n, H)``
        float multiplies each head's output, or None."""
        ...

    def block_masked(self, layer: int, h: S, heads: Tensor, gate: Tensor | None) -> S:
        """The reference path: block ``layer`` with every head computed and the heads outside
        ``heads`` ``(B, H)`` zeroed."""
        ...


def check_decision(
    decision: object, num_layers: int, num_heads: int, batch_size: int, device: torch.device
) -> Decision:
    """Validate a decision for a model of ``num_layers`` blocks of ``num_heads`` heads; block 0
    (the stem) must keep every head."""
    if not isinstance(decision, Decision):
        raise InputValidationError(f"expected `decision` to be a Decision, got {type(decision).__name__}")
    decision.validate(num_layers, num_heads, batch_size, device)
    if batch_size and not bool(decision.heads[:, 0].all()):
        raise InputValidationError(
            "expected every head in block 0 (the stem always runs in full), got a partial head set"
        )
    return decision


def cached_backend(backend: Backend | None, cache: dict[str, Backend], device: torch.device | str) -> Backend:
    """``backend`` when set, else the built-in one of ``device``, made once per device (kept in ``cache``)."""
    if backend is not None:
        return backend
    device = torch.device(device)
    key = str(device)
    if key not in cache:
        cache[key] = default_backend(device)
    return cache[key]


def run(stack: BlockStack[S], h: S, decision: Decision, path: str = "fast", gate: Tensor | None = None) -> Tensor:
    """Blocks ``1 .. depth - 1`` of each sample, then its classifier: ``(B, C)`` logits.

    Args:
        stack: the model's :class:`BlockStack`.
        h: the stem's states of ``B`` samples; decision: their checked :class:`Decision`.
        path: ``"fast"`` or ``"reference"`` (see the module docstring).
        gate: ``(B, L, H)`` float head multipliers, or None.
    """
    if h.shape[0] == 0:
        return stack.classify(h)
    if path == "reference":
        return _run_reference(stack, h, decision, gate)
    return _run_fast(stack, h, decision, gate)


def run_exits(
    stack: BlockStack[S],
    h: S,
    decision: Decision,
    *,
    halt: HaltFn | None = None,
    route: RouteFn | None = None,
    all_exits: bool = False,
    path: str = "fast",
    gate: Tensor | None = None,
) -> ExitOutput:
    """The rest of the model, deciding at exit points (the contract of
    :meth:`~banditformer.model.DynamicTransformer.run_exits`, whose docstring says it all);
    checks ``halt`` and ``route``, the model has checked the rest."""
    if halt is not None and not callable(halt):
        raise InputValidationError(f"expected `halt` to be a callable (ExitPoint) -> mask or None, got {halt!r}")
    if route is not None and not callable(route):
        raise InputValidationError(f"expected `route` to be a callable (ExitPoint) -> head sets or None, got {route!r}")
    if halt is None and route is None and not all_exits:
        logits = run(stack, h, decision, path, gate)
        return ExitOutput(logits, decision.depth, None, torch.ones_like(decision.depth))
    if h.shape[0] == 0:
        logits = stack.classify(h)
        empty = logits.new_zeros(0, stack.num_layers, logits.shape[-1])
        heads = None if route is None else decision.heads.clone()
        return ExitOutput(logits, decision.depth, empty, decision.depth.clone(), heads)
    if path == "reference":
        return _exits_reference(stack, h, decision, halt, route, gate)
    return _exits_fast(stack, h, decision, halt, route, gate)


# ------------------------------------------------------------------------------------- run
def _run_reference(stack: BlockStack[S], h: S, decision: Decision, gate: Tensor | None) -> Tensor:
    for layer in range(1, stack.num_layers):
        g = None if gate is None else gate[:, layer]
        h = stack.where(decision.depth > layer, stack.block_masked(layer, h, decision.heads[:, layer], g), h)
    if not stack.exit_heads:
        return stack.classify(h)
    every = torch.stack([stack.classify(h, d) for d in range(1, stack.num_layers + 1)], 1)  # (B, L, C)
    return every[torch.arange(every.shape[0], device=every.device), decision.depth - 1]


def _run_fast(stack: BlockStack[S], h: S, decision: Decision, gate: Tensor | None) -> Tensor:
    layers = stack.num_layers
    order = torch.sort(decision.depth, descending=True, stable=True).indices  # deepest first
    depth, heads = decision.depth[order], decision.heads[order]
    gate = None if gate is None else gate[order]
    # One copy of the sorted decision to the host: all planning below reads it, so the blocks
    # run without further host syncs.
    packed = torch.cat([depth.unsqueeze(1), heads.flatten(1).long()], dim=1).cpu()
    depth_host, heads_host = packed[:, 0], packed[:, 1:].view_as(heads).bool()
    active = (depth_host.unsqueeze(1) > torch.arange(1, layers)).sum(0).tolist()
    cur, done = stack.rows(h, order), []
    for layer, n in zip(range(1, layers), active, strict=True):
        if n < cur.shape[0]:
            done.append((layer, stack.rows(cur, slice(n, None))))  # these samples' depth is reached
            cur = stack.rows(cur, slice(0, n))
        if n == 0:
            break
        g = None if gate is None else gate[:n, layer]
        cur = stack.block(layer, cur, heads[:n, layer], heads_host[:n, layer], g)
    done.append((layers, cur))
    if stack.exit_heads:  # each exit's own classifier, the chunks back in sorted order
        logits = torch.cat([stack.classify(chunk, d) for d, chunk in done[::-1]])
    else:
        logits = stack.classify(stack.cat([chunk for _, chunk in done[::-1]]))
    return logits[torch.argsort(order)]


# ------------------------------------------------------------------------------- run_exits
def _point(stack: BlockStack[S], d: int, rows: Tensor, logits: Tensor, context: Tensor, streak: Tensor) -> ExitPoint:
    return ExitPoint(d, stack.num_layers, rows, logits.detach().float(), context, streak)


def _ask(halt: HaltFn, point: ExitPoint) -> Tensor:
    return check_halt(halt(point), point, "halt")


def _route(route: RouteFn, point: ExitPoint, num_heads: int) -> tuple[Tensor, Tensor]:
    """The head sets ``route`` gives, checked, and their host copy (the one copy per exit point,
    which the routed kernel's planning reads and the non-empty check runs on)."""
    heads = check_route(route(point), point, num_heads, "route")
    host = heads.cpu()
    check_head_sets(host, point, "route")
    return heads, host


def _exits_reference(
    stack: BlockStack[S], h: S, decision: Decision, halt: HaltFn | None, route: RouteFn | None, gate: Tensor | None
) -> ExitOutput:
    b, layers, dev = h.shape[0], stack.num_layers, h.device
    context = stack.pool(h).detach()
    planned = decision.depth
    active = torch.ones(b, dtype=torch.bool, device=dev)
    depth = planned.clone()
    heads = decision.heads if route is None else decision.heads.clone()  # as run
    every, last, streak = [], None, None
    for d in range(1, layers):
        logits = stack.classify(h, d)
        every.append(logits)
        pred = logits.argmax(-1)
        streak, last = next_patience(pred, last, streak), pred
        stop = active & (planned <= d)
        going = active & ~stop
        if halt is not None and bool(going.any()):
            idx = going.nonzero().squeeze(1)
            halted = _ask(halt, _point(stack, d, idx, logits[idx], context[idx], streak[idx]))
            stop = stop.index_put((idx,), halted, accumulate=False) | stop
        depth = torch.where(stop, torch.full_like(depth, d), depth)
        active = active & ~stop
        if route is not None and bool(active.any()):
            idx = active.nonzero().squeeze(1)
            point = _point(stack, d, idx, logits[idx], context[idx], streak[idx])
            heads[idx, d] = _route(route, point, stack.num_heads)[0].to(heads.device)
        g = None if gate is None else gate[:, d]
        h = stack.where(active, stack.block_masked(d, h, heads[:, d], g), h)
    every.append(stack.classify(h, layers))
    stacked = torch.stack(every, 1)  # (B, L, C)
    logits = stacked[torch.arange(b, device=dev), depth - 1]
    reached = torch.arange(1, layers + 1, device=dev).unsqueeze(0) <= depth.unsqueeze(1)  # (B, L)
    exit_logits = torch.where(reached.unsqueeze(-1), stacked, torch.zeros_like(stacked))
    return ExitOutput(logits, depth, exit_logits, depth.clone(), None if route is None else heads)


def _exits_fast(
    stack: BlockStack[S], h: S, decision: Decision, halt: HaltFn | None, route: RouteFn | None, gate: Tensor | None
) -> ExitOutput:
    b, layers, dev = h.shape[0], stack.num_layers, h.device
    context = stack.pool(h).detach()
    packed = torch.cat([decision.depth.unsqueeze(1), decision.heads.flatten(1).long()], dim=1).cpu()
    planned_host, heads_host = packed[:, 0], packed[:, 1:].view_as(decision.heads).bool()
    rows_host, rows = torch.arange(b), torch.arange(b, device=dev)
    heads = decision.heads if route is None else decision.heads.clone()  # as run
    cur, last, streak = h, None, None
    done_rows, done_logits, done_depth = [], [], []  # the samples that stopped, per exit
    seen_rows, seen_depth, seen_logits = [], [], []  # every exit evaluated
    for d in range(1, layers + 1):
        logits = stack.classify(cur, d)
        seen_rows.append(rows)
        seen_depth.append(torch.full_like(rows, d - 1))
        seen_logits.append(logits)
        if d == layers:
            done_rows.append(rows_host)
            done_logits.append(logits)
            done_depth.append(torch.full_like(rows_host, d))
            break
        pred = logits.argmax(-1)
        streak, last = next_patience(pred, last, streak), pred
        stop = planned_host[rows_host] <= d
        if halt is not None and not bool(stop.all()):
            idx = (~stop).nonzero().squeeze(1)
            on_dev = idx.to(dev)
            point = _point(stack, d, rows[on_dev], logits[on_dev], context[rows[on_dev]], streak[on_dev])
            stop[idx] = _ask(halt, point).cpu()
        if bool(stop.any()):
            out = stop.nonzero().squeeze(1)
            done_rows.append(rows_host[out])
            done_logits.append(logits[out.to(dev)])
            done_depth.append(torch.full_like(out, d))
        keep = (~stop).nonzero().squeeze(1)
        if keep.numel() == 0:
            break
        if keep.numel() < stop.numel():  # the halted samples leave the active set
            on_dev = keep.to(dev)
            rows_host, rows = rows_host[keep], rows[on_dev]
            cur, last, streak, logits = stack.rows(cur, on_dev), last[on_dev], streak[on_dev], logits[on_dev]
        if route is None:
            chosen, host_heads = decision.heads[rows, d], heads_host[rows_host, d]
        else:  # this block's head sets, chosen here: one host copy per exit point
            point = _point(stack, d, rows, logits, context[rows], streak)
            chosen, host_heads = _route(route, point, stack.num_heads)
            heads[rows, d] = chosen.to(heads.device)
        g = None if gate is None else gate[rows, d]
        cur = stack.block(d, cur, chosen, host_heads, g)
    order = torch.argsort(torch.cat(done_rows)).to(dev)
    logits = torch.cat(done_logits)[order]
    depth = torch.cat(done_depth)[order.cpu()].to(dev)
    first = seen_logits[0]
    exit_logits = first.new_zeros(b, layers, first.shape[-1]).index_put(
        (torch.cat(seen_rows), torch.cat(seen_depth)), torch.cat(seen_logits)
    )  # (B, L, C): zeros at the exits not evaluated
    return ExitOutput(logits, depth, exit_logits, depth.clone(), None if route is None else heads)
