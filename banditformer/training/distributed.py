"""Data-parallel bandit statistics: every rank decides for its own samples and updates its own
copy of the statistics; :class:`StateSync` makes the copies identical again by all-reducing what
each rank added since the last sync.

Each statistic declares its reduction when it is registered (``PolicyBase.add_state``, or a
controller's ``state_reductions``):

- ``"sum"`` (counts and sums): ``new = old + sum over ranks of (mine - old)``, which is exactly the
  statistic a single process would hold after updating with every rank's rows, for any policy
  whose update adds a function of each row (all the counting, Beta and ridge-regression ones);
- ``"mean"``: ``new = old + mean over ranks of (mine - old)`` (a step size adapted from batch
  means, like DHT's ``lam``: the mean of the ranks' steps is the step on the global batch);
- ``"max"`` / ``"min"``: the elementwise maximum / minimum;
- ``None``: identical on every rank by construction (hyperparameters, step counters); broadcast
  from rank 0 so that a drift would be overwritten, never kept.

Updates that are not sums of per-row terms (a discount ``gamma * old + x``; sequential k-means
buckets, whose assignments depend on the order of rows) still end identical on every rank, but
not equal to one process's run: the sync merges increments, not orders.

The trainer's other distributed parts live here too: the data-parallel wrapping of its forward
module (:func:`data_parallel`), the per-rank seeds (:func:`global_seed`, :func:`rejoin_ranks`),
the shard check (:func:`check_shards`) and the gathering of evaluation rows (:func:`gather_rows`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from banditformer.core.errors import InputValidationError
from banditformer.core.policy import REDUCTIONS as _REDUCE
from banditformer.core.random import derive_seed, make_generator
from banditformer.core.validation import check_int

__all__ = [
    "StateSync",
    "check_shards",
    "data_parallel",
    "fork_generators",
    "gather_rows",
    "global_seed",
    "rank_and_world",
    "reduced_states",
    "rejoin_ranks",
    "sum_over_ranks",
]


def rank_and_world(group: Any = None) -> tuple[int, int]:
    """``(rank, world size)`` in ``group``; ``(0, 1)`` without an initialised process group."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def global_seed(seed: int, rank: int, step: int | None = None) -> int:
    """The seed of the global RNG (dropout) of ``rank``: rank 0 draws as a single process would
    (``derive_seed(seed, "global")``), every other rank from its own stream; ``step``: the seed of
    a rank ``> 0`` resuming at that step (the checkpoint holds rank 0's state only)."""
    check_int("seed", seed, low=0)
    check_int("rank", rank, low=0)
    if step is not None:
        check_int("step", step, low=0)
    return derive_seed(seed, "global", *([rank] if rank else []), *([] if step is None else [step]))


def check_shards(rows: int, batch_size: int, world: int) -> None:
    """Check that every global batch of ``batch_size`` rows out of ``rows`` (the last one may be
    shorter) gives each of ``world`` ranks at least one row.

    Raises:
        InputValidationError: naming the batch sizes and the ranks.
    """
    check_int("rows", rows, low=0)
    check_int("batch_size", batch_size, low=1)
    check_int("world", world, low=1)
    steps = -(-rows // batch_size)
    last = rows - (steps - 1) * batch_size
    if min(batch_size, last) < world:
        raise InputValidationError(
            f"expected every global batch to give each of {world} ranks a row (batch_size {batch_size}, last "
            f"batch {last}), got fewer rows than ranks"
        )


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` for ``device`` (its index on CUDA), finding
    unused parameters: skipped blocks and unchosen heads get no gradient. Needs an initialised
    process group. The outputs pass through as they are (a ``Decision`` in them is a leaf)."""
    from torch.nn.parallel import DistributedDataParallel

    if not isinstance(module, nn.Module):
        raise InputValidationError(f"expected an nn.Module to wrap, got {type(module).__name__}")
    cuda = device.type == "cuda"
    return DistributedDataParallel(module, device_ids=[device] if cuda else None, find_unused_parameters=True)


def sum_over_ranks(tensor: Tensor) -> Tensor:
    """``tensor`` summed over the ranks, in place (as it is without a process group of several ranks)."""
    if rank_and_world()[1] > 1:
        torch.distributed.all_reduce(tensor)
    return tensor


def gather_rows(part: Tensor | None, n: int) -> Tensor:
    """Rows ``rank::world`` from every rank, put back in order (``n`` rows in all): each rank holds
    its rows of a split, or ``None`` when it has none. A collective: every rank calls it."""
    check_int("n", n, low=0)
    world = rank_and_world()[1]
    pieces: list[Any] = [None] * world
    torch.distributed.all_gather_object(pieces, part)
    template = next(p for p in pieces if p is not None)
    out = torch.empty((n, *template.shape[1:]), dtype=template.dtype)
    for r, piece in enumerate(pieces):
        if piece is not None:
            out[r::world] = piece
    return out


def rejoin_ranks(controller: nn.Module, rank: int, seed: int, step: int) -> None:
    """After every rank loaded the same checkpoint: fork the controller's generators per rank
    again, and reseed the global RNG of ranks ``> 0`` (:func:`global_seed` at ``step``), so that
    a resumed run draws as an uninterrupted one would on rank 0 and independently elsewhere."""
    fork_generators(controller, rank)
    if rank:  # the checkpoint holds rank 0's global RNG; the others draw their own
        torch.manual_seed(global_seed(seed, rank, step))


def fork_generators(module: nn.Module, rank: int) -> int:
    """Give every random source in ``module`` (a policy's ``_generator``, a controller's
    ``generator``) a new seed drawn from its current state and ``rank``, so that ranks explore
    independently yet deterministically. Returns how many were forked."""
    check_int("rank", rank, low=0)
    forked = 0
    for sub in module.modules():
        for attr in ("_generator", "generator"):
            gen = sub.__dict__.get(attr)
            if isinstance(gen, torch.Generator):
                base = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device).item())
                setattr(sub, attr, make_generator(derive_seed(base, "rank", rank), gen.device))
                forked += 1
    return forked


def reduced_states(module: nn.Module) -> Iterator[tuple[str, Tensor, str | None]]:
    """``(qualified name, buffer, reduction)`` of every declared statistic in ``module`` and its
    submodules (anything with a ``state_reductions`` mapping of buffer name -> reduction), in a
    fixed order."""
    for prefix, sub in module.named_modules():
        reductions = getattr(sub, "state_reductions", None)
        if not reductions:
            continue
        for name, reduce in sorted(reductions.items()):
            qualified = f"{prefix}.{name}" if prefix else name
            if reduce not in _REDUCE:
                raise InputValidationError(f"expected the reduction of `{qualified}` in {_REDUCE}, got {reduce!r}")
            buf = getattr(sub, name, None)
            if reduce == "mean" and isinstance(buf, Tensor) and not buf.is_floating_point():
                raise InputValidationError(
                    f"expected a floating buffer for the mean of `{qualified}`, got {buf.dtype}"
                )
            if not isinstance(buf, Tensor):
                got = type(buf).__name__
                raise InputValidationError(f"expected `{qualified}` to be a tensor buffer, got {got}")
            yield qualified, buf, reduce


class StateSync:
    """Keeps the bandit statistics of ``module`` (a controller or a policy) identical on every
    rank of a ``torch.distributed`` process group.

    Args:
        module: what to keep in step.
        every: sync on every ``every``-th call of :meth:`step` (1: every training step).
        group: the process group (default: the world).

    Call :meth:`step` after every local update (the trainer does); :meth:`sync` forces one.
    Without an initialised process group, or with one rank, both are no-ops.

    Examples:
        >>> import banditformer as bf
        >>> policy = bf.make_policy("ucb1", num_arms=3)
        >>> sync = StateSync(policy)        # single process: a no-op
        >>> sync.step()
        False
    """

    def __init__(self, module: nn.Module, every: int = 1, group: Any = None) -> None:
        if not isinstance(module, nn.Module):
            raise InputValidationError(f"expected an nn.Module (a controller or policy), got {type(module).__name__}")
        self.module = module
        self.every = check_int("every", every, low=1)
        self.group = group
        self.calls = 0
        self.syncs = 0
        self._snapshot: dict[str, Tensor] = {}
        self.refresh()

    @property
    def active(self) -> bool:
        """Whether there is more than one rank to sync with."""
        dist = torch.distributed
        return dist.is_available() and dist.is_initialized() and dist.get_world_size(self.group) > 1

    def refresh(self) -> None:
        """Take the current statistics as the common base (after a load or an external change)."""
        self._snapshot = {name: buf.detach().clone() for name, buf, _ in reduced_states(self.module)}

    def step(self) -> bool:
        """Count one local update; sync when it is the ``every``-th. Returns whether it synced."""
        self.calls += 1
        if self.calls % self.every:
            return False
        return self.sync()

    @torch.no_grad()
    def sync(self) -> bool:
        """All-reduce every statistic's increments since the last sync (see the module
        docstring); returns False when there is nothing to sync with."""
        if not self.active:
            return False
        dist = torch.distributed
        world = dist.get_world_size(self.group)
        states = list(reduced_states(self.module))
        if set(self._snapshot) != {name for name, _, _ in states}:
            raise InputValidationError(
                f"expected the statistics {sorted(self._snapshot)} since the last sync, got "
                f"{sorted(name for name, _, _ in states)} (call refresh() after changing the module)"
            )
        # One flat all-reduce per (reduction, dtype, device): increments for sum and mean.
        buckets: dict[tuple[Any, torch.dtype, torch.device], list[tuple[str, Tensor]]] = {}
        for name, buf, reduce in states:
            buckets.setdefault((reduce, buf.dtype, buf.device), []).append((name, buf))
        for (reduce, _, _), items in buckets.items():
            if reduce in ("sum", "mean"):
                flat = torch.cat([(buf - self._snapshot[name]).reshape(-1) for name, buf in items])
            else:
                flat = torch.cat([buf.reshape(-1) for _, buf in items])
            if reduce is None:
                dist.broadcast(flat, src=dist.get_global_rank(self.group, 0) if self.group else 0, group=self.group)
            else:
                op = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX,
                      "min": dist.ReduceOp.MIN}[reduce]  # fmt: skip
                dist.all_reduce(flat, op=op, group=self.group)
            if reduce == "mean":
                flat = flat / world
            offset = 0
            for name, buf in items:
                n = buf.numel()
                part = flat[offset : offset + n].view_as(buf)
                buf.copy_(self._snapshot[name] + part if reduce in ("sum", "mean") else part)
                offset += n
        self.refresh()
        self.syncs += 1
        return True
