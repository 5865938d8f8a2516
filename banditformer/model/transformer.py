"""The dynamic transformer: an encoder classifier whose depth and heads are chosen per sample.

Data flow: ``stem(x)`` runs the embedding and the first block for every sample and returns the
hidden states and each sample's context (the pooled, detached stem output); a controller turns the
context into a :class:`~banditformer.core.Decision`; ``run(h, decision)`` runs the rest. A sample
of depth ``d`` goes from block ``d - 1`` straight to the final norm and classifier.

Two execution paths give the same result (both in :mod:`banditformer.model.execution`, which
the adapted models of :mod:`banditformer.adapters` run too):

- ``path="reference"``: every block runs on every sample; skipped blocks are undone with
  ``torch.where`` and unchosen heads are zeroed (masking: simple, plainly right, saves nothing);
- ``path="fast"`` (default): samples are sorted by depth, block ``l`` runs on the contiguous prefix
  still active, and attention computes the chosen heads only (the backend's routed kernel).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from banditformer.core.backend import Backend
from banditformer.core.cost import CostTable
from banditformer.core.decision import Decision
from banditformer.core.errors import InputValidationError
from banditformer.core.exits import ExitOutput
from banditformer.core.validation import check_tensor
from banditformer.model import execution
from banditformer.model.config import TransformerConfig
from banditformer.model.execution import PATHS, HaltFn, RouteFn
from banditformer.model.flops import MATMUL_OPS, count_flops
from banditformer.model.layers import Block, InputEmbedding

__all__ = ["PATHS", "DynamicTransformer", "HaltFn", "RouteFn"]


class DynamicTransformer(nn.Module):
    """A pre-LN transformer encoder classifier with per-sample depth and heads.

    Args:
        cfg: the :class:`TransformerConfig`.
        backend: supplies the fast path's kernels (``routed_attention``); default (``None``): the
            built-in backend of the input's device (:func:`banditformer.backends.default_backend`).
            A :class:`~banditformer.training.Trainer` sets it to its own backend.

    Attributes:
        backend: the backend given (or set since), or ``None``.
        exit_norms, exit_classifiers: with ``cfg.exit_heads``, the norm and classifier of each
            exit depth ``1 .. L-1`` (empty otherwise).

    Examples:
        >>> from banditformer.model import TransformerConfig
        >>> model = DynamicTransformer(TransformerConfig(input="sequence", num_classes=3, seq_len=8, d_model=16,
        ...                                              num_layers=3, num_heads=2))
        >>> x = torch.randn(4, 8)
        >>> h, context = model.stem(x)                      # (4, 9, 16), (4, 16)
        >>> d = Decision.full(4, 3, 2); d.depth[:2] = 1     # two samples stop after the stem
        >>> model.run(h, d).shape                           # (4, 3) logits
        torch.Size([4, 3])
    """

    def __init__(self, cfg: TransformerConfig, backend: Backend | None = None) -> None:
        super().__init__()
        if not isinstance(cfg, TransformerConfig):
            raise InputValidationError(f"expected a TransformerConfig, got {type(cfg).__name__}")
        if backend is not None and not isinstance(backend, Backend):
            raise InputValidationError(f"expected `backend` to be a Backend or None, got {type(backend).__name__}")
        self.cfg = cfg
        self.backend = backend
        self.embed = InputEmbedding(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.head = nn.Linear(cfg.d_model, cfg.num_classes, bias=cfg.bias)
        # With cfg.exit_heads, depths 1 .. L-1 have their own norm and classifier; depth L uses norm/head.
        exits = cfg.num_layers - 1 if cfg.exit_heads else 0
        self.exit_norms = nn.ModuleList(nn.LayerNorm(cfg.d_model, bias=cfg.bias) for _ in range(exits))
        self.exit_classifiers = nn.ModuleList(
            nn.Linear(cfg.d_model, cfg.num_classes, bias=cfg.bias) for _ in range(exits)
        )
        self.apply(self._init_weights)
        self._cost_tables: dict[tuple[str, ...] | None, CostTable] = {}
        self._default_backends: dict[str, Backend] = {}

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (inputs go there): the model contract's device."""
        return self.head.weight.device

    # ---------------------------------------------------------------------------------- FLOPs
    def example_input(self, batch_size: int = 1) -> Tensor:
        """A zero input of the configured kind and shape, on the model's device."""
        cfg, dev, dtype = self.cfg, self.head.weight.device, self.head.weight.dtype
        if cfg.input == "tokens":
            return torch.zeros(batch_size, cfg.seq_len, dtype=torch.long, device=dev)
        if cfg.input == "patches":
            return torch.zeros(batch_size, cfg.channels, cfg.image_size, cfg.image_size, device=dev, dtype=dtype)
        return torch.zeros(batch_size, cfg.seq_len, cfg.features, device=dev, dtype=dtype)

    def cost_table(self, ops: Sequence[str] | None = None) -> CostTable:
        """Per-sample forward FLOPs of the stem, of each block with ``k = 1 .. H`` heads, and of the
        classifier, counted once each with fvcore (multiply-add = 1; see
        :mod:`banditformer.model.flops`). The blocks share one shape, so block 1's counts serve all.

        Args:
            ops: count only these operator kinds (e.g. :data:`~banditformer.model.flops.MATMUL_OPS`);
                default: all.
        """
        if isinstance(ops, str):
            raise InputValidationError(f"expected `ops` to be a sequence of operator names, got the string {ops!r}")
        key = tuple(ops) if ops is not None else None
        cached = self._cost_tables.get(key)
        if cached is not None:
            return cached
        cfg = self.cfg

        def total(counter: Counter[str]) -> float:
            return float(sum(v for k, v in counter.items() if ops is None or k in ops))

        h = torch.zeros(
            1, cfg.tokens_per_sample, cfg.d_model, device=self.head.weight.device, dtype=self.head.weight.dtype
        )
        embed = count_flops(self.embed, self, [self.example_input()])
        full_block = count_flops(lambda x: self.blocks[0].forward_subset(x, None), self, [h])
        per_heads = [0.0]
        all_heads: Counter[str] = Counter()
        for k in range(1, cfg.num_heads + 1):
            idx = torch.arange(k, device=h.device)
            counted = count_flops(lambda x, i=idx: self.blocks[0].forward_subset(x, i), self, [h])
            per_heads.append(total(counted))
            all_heads = counted
        classifier = count_flops(self.classify, self, [h])
        layers = torch.tensor(per_heads, dtype=torch.float64).expand(cfg.num_layers, -1).clone()
        everything = embed + full_block + classifier  # the full model, as sample_flops counts it
        for _ in range(cfg.num_layers - 1):
            everything.update(all_heads)
        matmuls = sum(v for k, v in everything.items() if k in MATMUL_OPS)
        table = CostTable(
            stem=total(embed) + total(full_block),
            layers=layers,
            classifier=total(classifier),
            seq_len=cfg.tokens_per_sample,
            matmul_share=matmuls / max(sum(everything.values()), 1),
        )
        self._cost_tables[key] = table
        return table

    def sample_flops(self, decision: Decision, training: bool = False) -> Tensor:
        """``(B,)`` forward FLOPs of each sample under ``decision`` (x3 when ``training``)."""
        return self.cost_table().sample_flops(decision, training)

    # --------------------------------------------------------------------------------- checks
    def check_input(self, x: object) -> Tensor:
        """Check the raw input for the configured kind; return it."""
        cfg = self.cfg
        dev, dtype = self.head.weight.device, self.head.weight.dtype
        if cfg.input == "tokens":
            x = check_tensor("x", x, shape=(None, cfg.seq_len), kind="int", device=dev)
            if x.dtype not in (torch.int32, torch.int64):
                raise InputValidationError(f"expected token ids of dtype int64 or int32, got {x.dtype}")
            if x.numel() and bool(((x < 0) | (x >= int(cfg.vocab_size))).any()):  # type: ignore[arg-type]
                raise InputValidationError(f"expected token ids in [0, {cfg.vocab_size}), got {x.min()}..{x.max()}")
        elif cfg.input == "patches":
            s = cfg.image_size
            x = check_tensor("x", x, shape=(None, cfg.channels, s, s), kind="float", device=dev)
        else:
            x = check_tensor("x", x, kind="float", device=dev)
            ok = (x.ndim == 2 and cfg.features == 1 and x.shape[1] == cfg.seq_len) or (
                x.ndim == 3 and tuple(x.shape[1:]) == (cfg.seq_len, cfg.features)
            )
            if not ok:
                raise InputValidationError(
                    f"expected `x` of shape (B, {cfg.seq_len}, {cfg.features})"
                    + (f" or (B, {cfg.seq_len})" if cfg.features == 1 else "")
                    + f", got {tuple(x.shape)}"
                )
        if cfg.input != "tokens" and x.dtype != dtype:
            raise InputValidationError(f"expected `x` of the model's dtype {dtype}, got {x.dtype}")
        return x

    def check_decision(self, decision: object, batch_size: int, device: torch.device) -> Decision:
        """Validate a decision for this model; block 0 (the stem) must keep every head."""
        return execution.check_decision(decision, self.cfg.num_layers, self.cfg.num_heads, batch_size, device)

    # -------------------------------------------------------------------------------- forward
    def pool(self, h: Tensor) -> Tensor:
        """``(B, T', D)`` -> ``(B, D)``: the class token or the mean over positions."""
        return h[:, 0] if self.cfg.pooling == "cls" else h.mean(1)

    def stem(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Embedding and block 0 for every sample.

        Returns:
            ``h`` ``(B, T', D)`` hidden states and ``context`` ``(B, D)``, the pooled, detached
            stem output that controllers decide from.
        """
        h = self.blocks[0](self.embed(self.check_input(x)))
        return h, self.pool(h).detach()

    def classify(self, h: Tensor, depth: int | None = None) -> Tensor:
        """Final norm, pooling and classifier: ``(B, T', D)`` -> ``(B, num_classes)`` logits, with
        the exit's own norm and classifier (``exit_norms[depth - 1]``, ``exit_classifiers[depth - 1]``)
        for samples of ``depth < L`` when the config has ``exit_heads`` (``None``: the full depth's)."""
        if depth is None or depth >= self.cfg.num_layers or not self.cfg.exit_heads:
            return self.head(self.pool(self.norm(h)))
        return self.exit_classifiers[depth - 1](self.pool(self.exit_norms[depth - 1](h)))

    def backend_for(self, device: torch.device | str) -> Backend:
        """The backend whose kernels the fast path runs for inputs on ``device``: :attr:`backend`
        when set, else the built-in one of that device (made once per device)."""
        return execution.cached_backend(self.backend, self._default_backends, device)

    def run(self, h: Tensor, decision: Decision, path: str = "fast", head_gate: Tensor | None = None) -> Tensor:
        """Blocks ``1 .. depth - 1`` of each sample, then the classifier.

        Args:
            h: ``(B, T', D)`` from :meth:`stem`.
            decision: the per-sample depth ``(B,)`` and head sets ``(B, L, H)``.
            path: ``"fast"`` or ``"reference"`` (see the module docstring).
            head_gate: ``(B, L, H)`` float multipliers of each head's output, or ``None``. Pass
                ``torch.ones(..., requires_grad=True)``: the logits are unchanged, and after a
                backward pass ``head_gate.grad`` holds each chosen head's importance score
                ``dL/d gate`` for its sample (Michel et al., 2019); entries of heads that did not
                run get no gradient. Block 0 is not gated.

        Returns:
            ``(B, num_classes)`` logits.
        """
        decision = self._check_run(h, decision, path, head_gate)
        return execution.run(_Stack(self), h, decision, path, head_gate)

    def run_exits(
        self,
        h: Tensor,
        decision: Decision,
        *,
        halt: HaltFn | None = None,
        route: RouteFn | None = None,
        all_exits: bool = False,
        path: str = "fast",
        head_gate: Tensor | None = None,
    ) -> ExitOutput:
        """Run the rest of the model deciding at exit points, evaluating every exit passed.

        At exit point ``d = 1 .. L - 1`` (after block ``d - 1``) the exit classifier of depth ``d``
        runs on every sample still running; the samples whose planned depth is ``d`` stop, and
        ``halt`` is asked which of the others stop too. Halted samples leave the active set: on
        the fast path the blocks after run on the remaining rows only, so halting saves time; on
        the reference path every block runs on every sample and ``torch.where`` keeps the halted
        ones' states (the two paths give the same outputs and gradients).

        Args:
            h, decision, path, head_gate: as in :meth:`run` (``decision.depth`` is each sample's
                planned depth: it stops there unless it halts before).
            halt: ``halt(point) -> (n,) bool`` at each exit point (``point.rows`` increasing), or
                ``None``: nobody halts.
            route: ``route(point) -> (n, H) bool`` at each exit point ``d``, after ``halt``, for
                the samples that go on: their head sets in block ``d`` (replacing the
                decision's), or ``None``: the decision's head sets stand. Each exit's point
                shows the rows still running there, so the choice can depend on the evidence.
            all_exits: evaluate every exit passed also without ``halt`` (multi-exit training
                objectives need them); with ``halt=None`` and ``all_exits=False`` this is
                :meth:`run`, with only each sample's last exit evaluated.

        Returns:
            An :class:`~banditformer.core.exits.ExitOutput`: each sample's logits at the depth it
            reached, that depth, every exit's logits (when evaluated), the exits evaluated, and
            with ``route`` the head sets as run.
        """
        decision = self._check_run(h, decision, path, head_gate)
        return execution.run_exits(
            _Stack(self), h, decision, halt=halt, route=route, all_exits=all_exits, path=path, gate=head_gate
        )

    def _check_run(self, h: Tensor, decision: object, path: str, head_gate: Tensor | None) -> Decision:
        if path not in PATHS:
            raise InputValidationError(f"expected `path` in {PATHS}, got {path!r}")
        weight = self.head.weight
        check_tensor(
            "h", h, shape=(None, self.cfg.tokens_per_sample, self.cfg.d_model), kind="float", device=weight.device
        )
        if h.dtype != weight.dtype:
            raise InputValidationError(f"expected `h` of the model's dtype {weight.dtype}, got {h.dtype}")
        decision = self.check_decision(decision, h.shape[0], h.device)
        if head_gate is not None:
            check_tensor("head_gate", head_gate, shape=tuple(decision.heads.shape), kind="float", device=weight.device)
        return decision

    def forward(self, x: Tensor, decision: Decision | None = None, path: str = "fast") -> Tensor:
        """Logits ``(B, num_classes)`` for input ``x`` under ``decision`` (the full model if None)."""
        h, _ = self.stem(x)
        if decision is None:
            decision = Decision.full(h.shape[0], self.cfg.num_layers, self.cfg.num_heads, device=h.device)
        return self.run(h, decision, path)


class _Stack:
    """A :class:`DynamicTransformer` as the :class:`~banditformer.model.execution.BlockStack`
    that :mod:`banditformer.model.execution` runs: its states are ``(B, T', D)`` tensors."""

    def __init__(self, model: DynamicTransformer) -> None:
        self.model = model
        self.num_layers, self.num_heads = model.cfg.num_layers, model.cfg.num_heads
        self.exit_heads = model.cfg.exit_heads
        self.classify, self.pool = model.classify, model.pool

    def rows(self, h: Tensor, index: Tensor | slice) -> Tensor:
        return h[index]

    def cat(self, parts: Sequence[Tensor]) -> Tensor:
        return torch.cat(list(parts))

    def where(self, active: Tensor, new: Tensor, old: Tensor) -> Tensor:
        return torch.where(active[:, None, None], new, old)  # active: (B,) -> (B, 1, 1)

    def block(self, layer: int, h: Tensor, heads: Tensor, host: Tensor, gate: Tensor | None) -> Tensor:
        block = self.model.blocks[layer]
        if bool(host.all()):
            return block.forward_subset(h, None, gate)  # all heads: one dense block
        return block.forward_routed(h, heads, self.model.backend_for(h.device), host, gate)

    def block_masked(self, layer: int, h: Tensor, heads: Tensor, gate: Tensor | None) -> Tensor:
        return self.model.blocks[layer](h, heads, gate)
