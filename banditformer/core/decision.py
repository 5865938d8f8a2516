"""A controller's per-sample architecture decision."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError
from banditformer.core.validation import check_device, check_int, check_tensor

__all__ = ["Decision", "DecisionRecord", "uniform_shapes"]


@dataclass(frozen=True)
class DecisionRecord:
    """What a controller needs back from its own ``decide`` in ``feedback`` (the arms it chose,
    the context it saw): a subclass per controller declares typed fields. The model and the
    trainer carry it without reading it.

    Examples:
        >>> @dataclass(frozen=True)
        ... class Chosen(DecisionRecord):
        ...     arms: Tensor
        >>> Chosen(torch.tensor([1, 0])).to("cpu").arms
        tensor([1, 0])
    """

    def to(self, device: torch.device | str) -> DecisionRecord:
        """A copy with every tensor field on ``device`` (other fields as they are)."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return dataclasses.replace(self, **moved)


@dataclass
class Decision:
    """Which layers and heads run for each sample of a batch.

    Attributes:
        depth: a ``(B,)`` int64 tensor; sample ``i`` runs layers ``0 .. depth[i] - 1``
            (``1 <= depth[i] <= L``) and then goes straight to the final norm and classifier.
        heads: a ``(B, L, H)`` bool tensor; ``heads[i, l]`` is the head set of sample ``i`` in
            layer ``l``. Entries of layers at or past ``depth[i]`` are ignored.
        record: the deciding controller's own record of what it chose
            (a :class:`DecisionRecord` subclass it defines), or ``None``.
        exits: ``None`` (each sample evaluates one classifier, at its depth), or a ``(B,)``
            int64 tensor of the exit classifiers each sample evaluated on its way, ``1 ..
            depth[i]``: a multi-exit pass (:class:`~banditformer.core.exits.ExitOutput`) evaluates
            every exit it passes, and each costs the classifier's FLOPs.

    Examples:
        >>> d = Decision.full(batch_size=2, num_layers=4, num_heads=8)
        >>> d.depth.tolist(), d.heads.shape
        ([4, 4], torch.Size([2, 4, 8]))
    """

    depth: Tensor
    heads: Tensor
    record: DecisionRecord | None = None
    exits: Tensor | None = None

    def to(self, device: torch.device | str) -> Decision:
        """The decision with its tensors, the record's included, on ``device``.

        Examples:
            >>> Decision.full(2, 3, 4).to("cpu").depth.device
            device(type='cpu')
        """
        device = check_device("device", device)
        record = None if self.record is None else self.record.to(device)
        exits = None if self.exits is None else self.exits.to(device)
        return Decision(self.depth.to(device), self.heads.to(device), record, exits)

    @property
    def batch_size(self) -> int:
        return int(self.depth.shape[0])

    @property
    def num_layers(self) -> int:
        return int(self.heads.shape[1])

    @property
    def num_heads(self) -> int:
        return int(self.heads.shape[2])

    @property
    def active_layers(self) -> Tensor:
        """A ``(B, L)`` bool tensor: True where the sample runs the layer."""
        layers = torch.arange(self.num_layers, device=self.depth.device)
        return layers.unsqueeze(0) < self.depth.unsqueeze(1)

    @property
    def head_counts(self) -> Tensor:
        """A ``(B, L)`` int64 tensor of heads per layer, 0 for layers the sample skips."""
        return (self.heads & self.active_layers.unsqueeze(-1)).sum(-1)

    @classmethod
    def full(cls, batch_size: int, num_layers: int, num_heads: int, device: torch.device | str = "cpu") -> Decision:
        """Every sample runs every layer with every head."""
        check_int("batch_size", batch_size, low=0)
        check_int("num_layers", num_layers, low=1)
        check_int("num_heads", num_heads, low=1)
        device = check_device("device", device)
        depth = torch.full((batch_size,), num_layers, dtype=torch.long, device=device)
        heads = torch.ones(batch_size, num_layers, num_heads, dtype=torch.bool, device=device)
        return cls(depth, heads)

    @classmethod
    def uniform(
        cls, batch_size: int, num_layers: int, num_heads: int, depth: int, heads: int,
        device: torch.device | str = "cpu",
    ) -> Decision:  # fmt: skip
        """Every sample runs the first ``depth`` blocks with heads ``0 .. heads - 1`` in blocks
        ``1 ..`` (block 0, the stem, in full): a static shape.

        Examples:
            >>> Decision.uniform(1, 3, 4, depth=2, heads=1).head_counts.tolist()
            [[4, 1, 0]]
        """
        check_int("depth", depth, low=1, high=num_layers)
        check_int("heads", heads, low=1, high=num_heads)
        d = cls.full(batch_size, num_layers, num_heads, device)
        d.depth.fill_(depth)
        d.heads[:, 1:, heads:] = False
        return d

    def validate(
        self,
        num_layers: int,
        num_heads: int,
        batch_size: int | None = None,
        device: torch.device | None = None,
    ) -> Decision:
        """Check shapes, dtypes, device, depth range and non-empty head sets; return ``self``.

        Raises:
            InputValidationError: saying what was expected and what was got.
        """
        check_int("num_layers", num_layers, low=1)
        check_int("num_heads", num_heads, low=1)
        check_tensor("decision.depth", self.depth, shape=(batch_size,), kind="int", device=device)
        b = self.depth.shape[0]
        check_tensor(
            "decision.heads",
            self.heads,
            shape=(b, num_layers, num_heads),
            kind="bool",
            device=self.depth.device if device is None else device,
        )
        if self.exits is not None:
            check_tensor("decision.exits", self.exits, shape=(b,), kind="int", device=self.depth.device)
        if b == 0:
            return self
        bad = (self.depth < 1) | (self.depth > num_layers)
        if bool(bad.any()):
            raise InputValidationError(
                f"expected `decision.depth` in [1, {num_layers}], got values {self.depth[bad][:5].tolist()}"
            )
        if self.exits is not None and bool(((self.exits < 1) | (self.exits > self.depth)).any()):
            wrong = ((self.exits < 1) | (self.exits > self.depth)).nonzero()[0, 0]
            raise InputValidationError(
                f"expected `decision.exits` in [1, depth] per sample, got {int(self.exits[wrong])} for sample "
                f"{int(wrong)} of depth {int(self.depth[wrong])}"
            )
        empty = self.active_layers & ~self.heads.any(-1)
        if bool(empty.any()):
            sample, layer = empty.nonzero()[0].tolist()
            raise InputValidationError(
                f"expected a non-empty head set in every layer a sample runs, got none for sample "
                f"{sample} in layer {layer} ({int(empty.sum())} empty in all)"
            )
        return self


def uniform_shapes(num_layers: int, num_heads: int) -> list[tuple[int, int]]:
    """Every uniform ``(depth, heads)`` shape of an ``L``-block, ``H``-head model, shallowest
    first: the stem alone once (its block keeps every head), then each depth ``2 .. L`` with each
    head count ``1 .. H`` in blocks ``1 ..`` (``1 + (L - 1) H`` shapes; see :meth:`Decision.uniform`).

    Examples:
        >>> uniform_shapes(3, 2)
        [(1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
    """
    check_int("num_layers", num_layers, low=1)
    check_int("num_heads", num_heads, low=1)
    return [(1, num_heads)] + [(d, k) for d in range(2, num_layers + 1) for k in range(1, num_heads + 1)]
