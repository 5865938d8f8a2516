"""A model you already have, made sample-adaptive: :class:`AdaptedTransformer` wraps it and runs
its own modules with per-sample depth and heads, under the same contract as
:class:`~banditformer.model.DynamicTransformer` (``stem``, ``run``, ``run_exits``, ``cost_table``,
``sample_flops``), so every controller drives it as it drives the library's own model.

With the full decision the logits are the original's. Its pretrained weights are kept as they are;
the exit heads (a copy of the original's classifier at each chosen exit point) are the only new
parameters. Where the library's model carries a plain ``(B, T', D)`` tensor between ``stem`` and
``run``, an adapted one carries :class:`AdaptedHidden`: the states with the padding mask and the
position the classifier reads, because padded batches of varying length are its normal input.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from banditformer.adapters._attention import masked_attention, routed_attention, subset_attention
from banditformer.adapters.family import Family, HeadProjections, ModelInputs
from banditformer.adapters.hf import HF_FAMILIES
from banditformer.adapters.timm_vit import TIMM_FAMILIES
from banditformer.core.backend import Backend
from banditformer.core.cost import CostTable
from banditformer.core.decision import Decision
from banditformer.core.errors import InputValidationError
from banditformer.core.exits import ExitOutput
from banditformer.core.validation import check_int, check_tensor
from banditformer.model import execution
from banditformer.model.execution import PATHS, HaltFn, RouteFn
from banditformer.model.flops import MATMUL_OPS, count_flops

__all__ = ["FAMILIES", "PATHS", "AdaptedConfig", "AdaptedHidden", "AdaptedTransformer", "adapt", "supported"]

#: The families :func:`adapt` recognises, tried in order.
FAMILIES: tuple[Family, ...] = HF_FAMILIES + TIMM_FAMILIES
_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class AdaptedConfig:
    """What an adapted model is, read off the original (the controllers and the trainer read
    ``num_layers``, ``num_heads`` and ``num_classes``, as from a ``TransformerConfig``).

    Attributes:
        family: the family's name; num_layers: L blocks; num_heads: H heads per block;
        num_classes: C; d_model: D; seq_len: the positions the cost table counts by default;
        exits: the exit points ``1 .. L - 1`` with their own classifier (the others use the
        original's).
    """

    family: str
    num_layers: int
    num_heads: int
    num_classes: int
    d_model: int
    seq_len: int
    exits: tuple[int, ...]

    @property
    def exit_heads(self) -> bool:
        return bool(self.exits)


@dataclass(frozen=True)
class AdaptedHidden:
    """The hidden states an adapted model carries from :meth:`AdaptedTransformer.stem` to ``run``.

    Attributes:
        states: ``(B, T, D)`` float hidden states.
        mask: ``(B, T)`` bool, True at real tokens, or ``None`` (no padding in the batch).
        index: ``(B,)`` int64, the position each sample's classifier reads.
    """

    states: Tensor
    mask: Tensor | None
    index: Tensor

    @property
    def device(self) -> torch.device:
        return self.states.device

    @property
    def dtype(self) -> torch.dtype:
        return self.states.dtype

    @property
    def shape(self) -> torch.Size:
        return self.states.shape

    def take(self, rows: Tensor | slice) -> AdaptedHidden:
        """The rows ``rows`` (an index tensor or a slice) of every field."""
        mask = None if self.mask is None else self.mask[rows]
        return AdaptedHidden(self.states[rows], mask, self.index[rows])

    def replace(self, states: Tensor) -> AdaptedHidden:
        return AdaptedHidden(states, self.mask, self.index)


def _cat(parts: Sequence[AdaptedHidden]) -> AdaptedHidden:
    masks = [p.mask for p in parts]
    if all(m is None for m in masks):
        mask = None
    else:
        mask = torch.cat([torch.ones(p.states.shape[:2], dtype=torch.bool, device=p.device) if p.mask is None
                          else p.mask for p in parts])  # fmt: skip
    return AdaptedHidden(torch.cat([p.states for p in parts]), mask, torch.cat([p.index for p in parts]))


class AdaptedTransformer(nn.Module):
    """An existing transformer classifier with per-sample depth and heads (see :func:`adapt`).

    Args:
        model: the original model; its modules run as they are (``model`` is a submodule: its
            parameters train with the exits, and ``train()``/``eval()`` reach it).
        family: the :class:`~banditformer.adapters.Family` describing it.
        exits: the exit points ``1 .. L - 1`` that get their own classifier (a deep copy of the
            original's, trained from there): ``"all"`` (default), ``"none"`` or a sequence of
            depths. A depth without one is classified by the original's classifier.
        seq_len: the positions :meth:`cost_table` counts by default (default: the longest the
            model takes; for images the number of positions it makes).
        backend: kept for the trainer's contract (``model.backend``, :meth:`backend_for`); the
            attention of an adapted model runs the adapter's own kernels, which take the padding
            mask, causality and separate projections.
        pad_token_id: for token models: the id that pads a plain ``(B, T)`` id tensor. Its
            positions are masked as a tokenizer's ``attention_mask`` masks them, so that a task's
            padded id tensors train through the :class:`~banditformer.training.Trainer` as
            tokenized batches do. ``None`` (default): a plain tensor is all real tokens, as the
            original takes it. A mapping's own ``attention_mask`` always wins.

    Examples:
        >>> from banditformer.adapters import adapt
        >>> from transformers import BertConfig, BertForSequenceClassification   # doctest: +SKIP
        >>> bert = BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=2,
        ...     num_attention_heads=4, intermediate_size=64, num_labels=3)).eval()  # doctest: +SKIP
        >>> model = adapt(bert)                                                   # doctest: +SKIP
        >>> h, context = model.stem({"input_ids": ids, "attention_mask": mask})   # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        family: Family,
        exits: str | Sequence[int] = "all",
        seq_len: int | None = None,
        backend: Backend | None = None,
        pad_token_id: int | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputValidationError(f"expected `model` to be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(family, Family):
            raise InputValidationError(
                f"expected `family` to be a banditformer.adapters.Family, got {type(family).__name__}"
            )
        if backend is not None and not isinstance(backend, Backend):
            raise InputValidationError(f"expected `backend` to be a Backend or None, got {type(backend).__name__}")
        blocks = list(family.blocks(model))
        if not blocks or not all(isinstance(b, nn.Module) for b in blocks):
            raise InputValidationError(
                f"expected {family.name}'s blocks(model) to give at least one nn.Module, got {len(blocks)} blocks"
            )
        attns = [family.attention(b).check(f"{family.name} block {i} attention") for i, b in enumerate(blocks)]
        num_heads, d = attns[0].num_heads, int(attns[0].query.shape[1])
        for i, a in enumerate(attns):
            if a.num_heads != num_heads or int(a.query.shape[1]) != d:
                raise InputValidationError(
                    f"expected every block with {num_heads} heads of width {d} like block 0, got {a.num_heads} heads "
                    f"of width {int(a.query.shape[1])} in block {i} (pruned heads are not supported)"
                )
        head = family.head(model)
        if not isinstance(head, nn.Module):
            raise InputValidationError(f"expected {family.name}'s head(model) to be an nn.Module, got {head!r}")
        weight = attns[0].query
        with torch.no_grad():
            num_classes = int(head(torch.zeros(1, d, device=weight.device, dtype=weight.dtype)).shape[-1])
        layers = len(blocks)
        points = _exit_points(exits, layers)
        max_len = int(family.max_len(model))
        seq_len = max_len if seq_len is None else check_int("seq_len", seq_len, low=1, high=max_len)
        if family.input == "pixels" and seq_len != max_len:
            raise InputValidationError(
                f"expected `seq_len` {max_len} (the positions of an image) or None, got {seq_len}"
            )
        if pad_token_id is not None:
            if family.input != "tokens":
                raise InputValidationError(
                    f"expected `pad_token_id` None for a model of {family.input}, got {pad_token_id!r}"
                )
            vocab = None if family.vocab_size is None else int(family.vocab_size(model))
            pad_token_id = check_int("pad_token_id", pad_token_id, low=0, high=None if vocab is None else vocab - 1)
        super().__init__()  # everything checked: nothing below can fail on the user's input
        self.model = model
        self.family = family
        self.backend = backend
        self.cfg = AdaptedConfig(family.name, layers, num_heads, num_classes, d, seq_len, points)
        self.exit_heads = nn.ModuleDict({str(p): copy.deepcopy(head) for p in points})
        self._blocks = tuple(blocks)  # owned by `model`: not registered twice
        self._head = (head,)
        self._max_len = max_len
        self.pad_token_id = pad_token_id
        self._cost_tables: dict[tuple[tuple[str, ...] | None, int], CostTable] = {}
        self._default_backends: dict[str, Backend] = {}

    # ---------------------------------------------------------------------------- properties
    @property
    def num_layers(self) -> int:
        return self.cfg.num_layers

    @property
    def num_heads(self) -> int:
        return self.cfg.num_heads

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    @property
    def _weight(self) -> Tensor:
        return self.family.attention(self._blocks[0]).query

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (inputs go there): the model contract's device."""
        return self._weight.device

    def freeze_original(self, frozen: bool = True) -> AdaptedTransformer:
        """Freeze (``frozen=False``: unfreeze) the original model's weights, its classifier
        included: then only the exit heads learn, as in DeeBERT's second stage. Training
        (the :class:`~banditformer.training.Trainer` or your own optimizer) leaves a parameter
        without a gradient as it is. By default everything trains, as in fine-tuning.

        Returns:
            ``self``.
        """
        if not isinstance(frozen, bool):
            raise InputValidationError(f"expected `frozen` to be a bool, got {type(frozen).__name__}")
        self.model.requires_grad_(not frozen)
        return self

    def backend_for(self, device: torch.device | str) -> Backend:
        """:attr:`backend` when set, else the built-in one of ``device`` (the trainer's contract)."""
        return execution.cached_backend(self.backend, self._default_backends, device)

    # -------------------------------------------------------------------------------- inputs
    def check_input(self, x: object) -> ModelInputs:
        """Parse and check a batch: token ids ``(B, T)`` or a mapping with ``input_ids`` and
        optionally ``attention_mask`` (1 at real tokens) and ``token_type_ids`` (what a Hugging
        Face tokenizer returns); pixels ``(B, C, H, W)`` or a mapping with ``pixel_values``."""
        dev, family = self.device, self.family
        if family.input == "pixels":
            if isinstance(x, Mapping):
                if set(x) != {"pixel_values"}:
                    raise InputValidationError(f"expected a mapping with the key 'pixel_values' only, got {sorted(x)}")
                x = x["pixel_values"]
            shape = tuple(family.image_shape(self.model))  # type: ignore[misc]
            x = check_tensor("pixel_values", x, shape=(None, *shape), kind="float", device=dev)
            if x.dtype != self._weight.dtype:
                raise InputValidationError(f"expected pixels of the model's dtype {self._weight.dtype}, got {x.dtype}")
            return ModelInputs(x)
        mask = types = None
        if isinstance(x, Mapping):
            unknown = sorted(set(x) - set(_INPUT_KEYS))
            if unknown or "input_ids" not in x:
                raise InputValidationError(
                    f"expected a mapping with 'input_ids' and optionally 'attention_mask', 'token_type_ids', got keys "
                    f"{sorted(x)}"
                )
            ids, mask, types = x["input_ids"], x.get("attention_mask"), x.get("token_type_ids")
        else:
            ids = x
        ids = check_tensor("input_ids", ids, ndim=2, kind="int", device=dev)
        if mask is None and self.pad_token_id is not None:
            mask = ids != self.pad_token_id
            if ids.numel() and not bool(mask.any(1).all()):
                row = int((~mask.any(1)).nonzero()[0])
                raise InputValidationError(
                    f"expected every row of `input_ids` to hold a token other than pad_token_id {self.pad_token_id}, "
                    f"got row {row} all padding"
                )
        b, t = ids.shape
        if not 1 <= t <= self._max_len:
            raise InputValidationError(f"expected `input_ids` of 1 to {self._max_len} positions, got {t}")
        vocab = None if family.vocab_size is None else int(family.vocab_size(self.model))
        if vocab is not None and ids.numel() and bool(((ids < 0) | (ids >= vocab)).any()):
            raise InputValidationError(f"expected token ids in [0, {vocab}), got {int(ids.min())}..{int(ids.max())}")
        if mask is not None:
            mask = check_tensor("attention_mask", mask, shape=(b, t), device=dev)
            if mask.dtype != torch.bool:
                if mask.is_floating_point() or mask.is_complex() or bool(((mask != 0) & (mask != 1)).any()):
                    raise InputValidationError(f"expected `attention_mask` of 0s and 1s (or bool), got {mask.dtype}")
                mask = mask.bool()
            if bool(mask.all()):
                mask = None  # no padding: attention runs unmasked, as the original's does
        if types is not None:
            types = check_tensor("token_type_ids", types, shape=(b, t), kind="int", device=dev)
        return ModelInputs(ids.long(), mask, None if types is None else types.long())

    def example_input(self, batch_size: int = 1, seq_len: int | None = None) -> Tensor:
        """A zero input (token ids or pixels) of ``seq_len`` positions (default: the config's)."""
        if self.family.input == "pixels":
            shape = tuple(self.family.image_shape(self.model))  # type: ignore[misc]
            return torch.zeros(batch_size, *shape, device=self.device, dtype=self._weight.dtype)
        t = self.cfg.seq_len if seq_len is None else seq_len
        return torch.zeros(batch_size, t, dtype=torch.long, device=self.device)

    def check_decision(self, decision: object, batch_size: int, device: torch.device) -> Decision:
        """Validate a decision for this model; block 0 (the stem) must keep every head."""
        return execution.check_decision(decision, self.num_layers, self.num_heads, batch_size, device)

    def _check_run(self, h: object, decision: object, path: str, head_gate: Tensor | None) -> Decision:
        if path not in PATHS:
            raise InputValidationError(f"expected `path` in {PATHS}, got {path!r}")
        if not isinstance(h, AdaptedHidden):
            raise InputValidationError(
                f"expected `h` to be the AdaptedHidden that stem() returns, got {type(h).__name__}"
            )
        dev = self.device
        states = check_tensor("h.states", h.states, shape=(None, None, self.cfg.d_model), kind="float", device=dev)
        b, t = states.shape[:2]
        if h.mask is not None:
            check_tensor("h.mask", h.mask, shape=(b, t), kind="bool", device=dev)
        check_tensor("h.index", h.index, shape=(b,), kind="int", device=dev)
        decision = self.check_decision(decision, b, dev)
        if head_gate is not None:
            check_tensor("head_gate", head_gate, shape=tuple(decision.heads.shape), kind="float", device=dev)
        return decision

    # ------------------------------------------------------------------------------- forward
    def pool(self, h: AdaptedHidden) -> Tensor:
        """``(B, D)``: each sample's state at the position its classifier reads."""
        return h.states[torch.arange(h.states.shape[0], device=h.device), h.index]

    def stem(self, x: object) -> tuple[AdaptedHidden, Tensor]:
        """The embeddings and block 0 for every sample.

        Returns:
            ``h`` (:class:`AdaptedHidden`: ``(B, T, D)`` states, the padding mask, the position
            classified) and ``context`` ``(B, D)``, that position's state, detached: what
            controllers decide from.
        """
        inputs = self.check_input(x)
        states = self.family.embed(self.model, inputs)
        index = self.family.pool(self.model, inputs).long()
        h = AdaptedHidden(self._block(0, states, inputs.mask), inputs.mask, index)
        return h, self.pool(h).detach()

    def classify(self, h: AdaptedHidden, depth: int | None = None) -> Tensor:
        """``(B, C)`` logits from the pooled state: the exit's own classifier at an exit point
        that has one, the original's otherwise (``depth=None``: the full depth's)."""
        pooled = self.pool(h)
        head = self.exit_heads[str(depth)] if depth is not None and str(depth) in self.exit_heads else self._head[0]
        return head(pooled)

    def forward(self, x: object, decision: Decision | None = None, path: str = "fast") -> Tensor:
        """Logits ``(B, C)`` for the batch ``x`` under ``decision`` (the full model if None)."""
        h, _ = self.stem(x)
        if decision is None:
            decision = Decision.full(h.states.shape[0], self.num_layers, self.num_heads, device=h.device)
        return self.run(h, decision, path)

    def _attention(self, layer: int) -> HeadProjections:
        return self.family.attention(self._blocks[layer])  # views of the current parameters

    def _block(
        self,
        layer: int,
        states: Tensor,
        mask: Tensor | None,
        *,
        idx: Tensor | None = None,
        heads: Tensor | None = None,
        host: Tensor | None = None,
        gate: Tensor | None = None,
        masked: bool = False,
    ) -> Tensor:
        """Block ``layer`` on ``states`` ``(n, T, D)``: every head (default), heads ``idx`` for
        every row, row ``i``'s ``heads[i]`` routed (``host``: their CPU copy) or, with
        ``masked``, every head run and the unchosen ones zeroed (the reference)."""
        block, p = self._blocks[layer], self._attention(layer)
        training = block.training
        if masked:
            return self.family.block(block, states, lambda x: masked_attention(x, p, heads, mask, gate, training))
        if heads is not None and host is not None and not bool(host.all()):
            return self.family.block(block, states, lambda x: routed_attention(x, p, heads, host, mask, gate, training))
        return self.family.block(block, states, lambda x: subset_attention(x, p, idx, mask, gate, training))

    def run(self, h: AdaptedHidden, decision: Decision, path: str = "fast", head_gate: Tensor | None = None) -> Tensor:
        """Blocks ``1 .. depth - 1`` of each sample, then its classifier.

        Args:
            h: from :meth:`stem`; decision: per-sample depth ``(B,)`` and head sets ``(B, L, H)``.
            path: ``"fast"`` (samples sorted by depth, each block on the rows still active, the
                chosen heads only) or ``"reference"`` (every block on every sample, masking).
            head_gate: ``(B, L, H)`` multipliers of each head's output, or None (see
                :meth:`banditformer.model.DynamicTransformer.run`).

        Returns:
            ``(B, C)`` logits.
        """
        decision = self._check_run(h, decision, path, head_gate)
        return execution.run(_Stack(self), h, decision, path, head_gate)

    def run_exits(
        self,
        h: AdaptedHidden,
        decision: Decision,
        *,
        halt: HaltFn | None = None,
        route: RouteFn | None = None,
        all_exits: bool = False,
        path: str = "fast",
        head_gate: Tensor | None = None,
    ) -> ExitOutput:
        """Run the rest deciding at exit points, evaluating every exit passed: the contract of
        :meth:`banditformer.model.DynamicTransformer.run_exits` (halted samples leave the
        active set on the fast path; ``route`` chooses block ``d``'s heads at exit point ``d``).

        Returns:
            An :class:`~banditformer.core.exits.ExitOutput`.
        """
        decision = self._check_run(h, decision, path, head_gate)
        return execution.run_exits(
            _Stack(self), h, decision, halt=halt, route=route, all_exits=all_exits, path=path, gate=head_gate
        )

    # --------------------------------------------------------------------------------- FLOPs
    def cost_table(self, ops: Sequence[str] | None = None, seq_len: int | None = None) -> CostTable:
        """Per-sample forward FLOPs of the stem (embeddings and block 0), of each block with ``k =
        1 .. H`` heads and of the classifier, at ``seq_len`` positions (default: the config's),
        counted once each with fvcore as the library's own model counts them (multiply-add = 1;
        see :mod:`banditformer.model.flops`). Padded positions count: the model computes them.

        Args:
            ops: count only these operator kinds (e.g. :data:`~banditformer.model.flops.MATMUL_OPS`).
            seq_len: the positions per sample (tokens only; an image's are fixed).
        """
        if isinstance(ops, str):
            raise InputValidationError(f"expected `ops` to be a sequence of operator names, got the string {ops!r}")
        if seq_len is None:
            seq_len = self.cfg.seq_len
        elif self.family.input == "pixels":
            if seq_len != self.cfg.seq_len:
                raise InputValidationError(
                    f"expected `seq_len` {self.cfg.seq_len} (an image's positions), got {seq_len}"
                )
        else:
            seq_len = check_int("seq_len", seq_len, low=1, high=self._max_len)
        key = (None if ops is None else tuple(ops), seq_len)
        cached = self._cost_tables.get(key)
        if cached is not None:
            return cached

        def total(counter: Counter[str]) -> float:
            return float(sum(v for k, v in counter.items() if ops is None or k in ops))

        weight = self._weight
        h = torch.zeros(1, seq_len, self.cfg.d_model, device=weight.device, dtype=weight.dtype)
        stem = count_flops(
            lambda x: self._block(0, self.family.embed(self.model, ModelInputs(x)), None), self,
            [self.example_input(1, seq_len)],
        )  # fmt: skip
        shapes = [[tuple(p.shape) for p in b.parameters()] for b in self._blocks]
        counted: dict[int, list[Counter[str]]] = {}  # block -> its counts with 1 .. H heads
        for layer in [*range(1, self.num_layers), 0]:  # row 0 (the stem's block) is not read by sample_flops
            twin = next((i for i in counted if shapes[i] == shapes[layer]), None)
            if twin is not None:  # the same shapes: the same counts
                counted[layer] = counted[twin]
                continue
            counted[layer] = [self._count_block(layer, k, h) for k in range(1, self.num_heads + 1)]
        per_block = [counted[layer] for layer in range(self.num_layers)]
        pooled = AdaptedHidden(h, None, torch.zeros(1, dtype=torch.long, device=weight.device))
        classifier = count_flops(lambda x: self.classify(pooled.replace(x)), self, [h])
        table = torch.tensor([[0.0] + [total(c) for c in counts] for counts in per_block], dtype=torch.float64)
        everything = stem + classifier
        for counts in per_block[1:]:
            everything.update(counts[-1])
        matmuls = sum(v for k, v in everything.items() if k in MATMUL_OPS)
        result = CostTable(
            stem=total(stem), layers=table, classifier=total(classifier), seq_len=seq_len,
            matmul_share=matmuls / max(sum(everything.values()), 1),
        )  # fmt: skip
        self._cost_tables[key] = result
        return result

    def _count_block(self, layer: int, k: int, h: Tensor) -> Counter[str]:
        idx = torch.arange(k, device=h.device)
        return count_flops(lambda x: self._block(layer, x, None, idx=idx), self, [h])

    def sample_flops(self, decision: Decision, training: bool = False, seq_len: int | None = None) -> Tensor:
        """``(B,)`` forward FLOPs of each sample under ``decision`` at ``seq_len`` positions (x3 when ``training``)."""
        return self.cost_table(seq_len=seq_len).sample_flops(decision, training)


class _Stack:
    """An :class:`AdaptedTransformer` as the :class:`~banditformer.model.execution.BlockStack`
    that :mod:`banditformer.model.execution` runs: its states are :class:`AdaptedHidden`."""

    def __init__(self, model: AdaptedTransformer) -> None:
        self.model = model
        self.num_layers, self.num_heads, self.exit_heads = model.num_layers, model.num_heads, model.cfg.exit_heads
        self.classify, self.pool = model.classify, model.pool

    def rows(self, h: AdaptedHidden, index: Tensor | slice) -> AdaptedHidden:
        return h.take(index)

    def cat(self, parts: Sequence[AdaptedHidden]) -> AdaptedHidden:
        return _cat(parts)

    def where(self, active: Tensor, new: AdaptedHidden, old: AdaptedHidden) -> AdaptedHidden:
        return old.replace(torch.where(active[:, None, None], new.states, old.states))  # active: (B,) -> (B, 1, 1)

    def block(self, layer: int, h: AdaptedHidden, heads: Tensor, host: Tensor, gate: Tensor | None) -> AdaptedHidden:
        return h.replace(self.model._block(layer, h.states, h.mask, heads=heads, host=host, gate=gate))

    def block_masked(self, layer: int, h: AdaptedHidden, heads: Tensor, gate: Tensor | None) -> AdaptedHidden:
        return h.replace(self.model._block(layer, h.states, h.mask, heads=heads, gate=gate, masked=True))


def _exit_points(exits: object, layers: int) -> tuple[int, ...]:
    if exits == "all":
        return tuple(range(1, layers))
    if exits == "none":
        return ()
    if isinstance(exits, str) or not isinstance(exits, Sequence):
        raise InputValidationError(f"expected `exits` to be 'all', 'none' or a sequence of depths, got {exits!r}")
    points = [check_int("exits[]", p, low=1, high=layers - 1) if layers > 1 else p for p in exits]
    if layers == 1 and points:
        raise InputValidationError(f"expected no exit points for a 1-block model, got {list(exits)}")
    if len(set(points)) != len(points):
        raise InputValidationError(f"expected distinct exit points, got {list(exits)}")
    return tuple(sorted(points))


def supported() -> list[str]:
    """The class names :func:`adapt` recognises."""
    return [a for f in FAMILIES for a in f.architectures]


def adapt(
    model: nn.Module,
    *,
    family: Family | None = None,
    exits: str | Sequence[int] = "all",
    seq_len: int | None = None,
    backend: Backend | None = None,
    pad_token_id: int | None = None,
) -> AdaptedTransformer:
    """Make an existing transformer classifier sample-adaptive: every controller drives the result.

    Args:
        model: a Hugging Face ``BertForSequenceClassification``, ``RobertaForSequenceClassification``,
            ``DistilBertForSequenceClassification``, ``GPT2ForSequenceClassification`` or
            ``ViTForImageClassification``, or timm's ``VisionTransformer`` (recognised by class), or
            any model with a ``family``.
        family: a :class:`~banditformer.adapters.Family` describing the model (your own
            architecture); ``None``: recognise a built-in one.
        exits, seq_len, backend, pad_token_id: see :class:`AdaptedTransformer`.

    Returns:
        An :class:`AdaptedTransformer` whose full decision gives the original's logits.

    Raises:
        InputValidationError: for a model no family describes; the message names the supported
            architectures and the protocol. Nothing is changed.
    """
    if not isinstance(model, nn.Module):
        raise InputValidationError(f"expected `model` to be a torch.nn.Module, got {type(model).__name__}")
    if family is None:
        found = [f for f in FAMILIES if f.recognises(model)]
        if not found:
            raise InputValidationError(
                f"expected a model of a supported architecture ({', '.join(supported())}) or `family=` a "
                "banditformer.adapters.Family describing yours (its blocks, each block's attention projections and "
                "head count, how a block runs around its attention, the embeddings and the classifier head; see "
                f"docs/adapters.md), got {type(model).__name__}"
            )
        family = found[0]
    return AdaptedTransformer(model, family, exits=exits, seq_len=seq_len, backend=backend, pad_token_id=pad_token_id)
