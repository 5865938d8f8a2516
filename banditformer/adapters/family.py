"""The protocol an architecture implements to become sample-adaptive: a :class:`Family` says where
a model's blocks are, what each block's self-attention projections and head count are, how a
block runs around its attention, how inputs are embedded, which token the classifier reads and
what the classifier head is. Nothing else about the model is assumed: the adapter runs the
model's own modules (its embeddings, norms, MLPs, classifier) and computes only the attention
itself, so that it can leave out the heads a decision does not choose.

The built-in families (Hugging Face BERT, RoBERTa, DistilBERT, GPT-2, ViT; timm's ViT) are
instances of :class:`Family` in :mod:`banditformer.adapters.hf` and
:mod:`banditformer.adapters.timm_vit`; a family for your own model is a few small functions (see
``docs/adapters.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from banditformer.core.errors import InputValidationError

__all__ = ["INPUT_KINDS", "AttendFn", "Family", "HeadProjections", "ModelInputs"]

#: What a family's model takes: token ids ``(B, T)`` (with an optional padding mask) or pixels ``(B, C, H, W)``.
INPUT_KINDS = ("tokens", "pixels")


@dataclass(frozen=True)
class HeadProjections:
    """One self-attention layer's parameters, weights in ``nn.Linear`` layout (``(out, in)``).

    The query, key and value weights are ``(H * hd, D)`` with head ``h`` in rows ``h * hd ..
    (h + 1) * hd``; the output weight is ``(D, H * hd)`` with head ``h`` in those columns. Views
    of a fused projection work (``qkv.weight[:D]``, or ``conv1d.weight.T`` for GPT-2's ``Conv1D``):
    gradients reach the model's own parameters.

    Attributes:
        query, key, value: ``(H * hd, D)`` weights; query_bias, key_bias, value_bias: ``(H * hd,)`` or None.
        out: ``(D, H * hd)`` output projection weight; out_bias: ``(D,)`` or None.
        num_heads: H.
        scale: the factor of the attention scores (``None``: ``hd ** -0.5``).
        causal: True for a decoder (position ``t`` attends to ``0 .. t`` only).
        dropout: the attention-probability dropout applied in training mode.
    """

    query: Tensor
    query_bias: Tensor | None
    key: Tensor
    key_bias: Tensor | None
    value: Tensor
    value_bias: Tensor | None
    out: Tensor
    out_bias: Tensor | None
    num_heads: int
    scale: float | None = None
    causal: bool = False
    dropout: float = 0.0

    @property
    def head_dim(self) -> int:
        return int(self.query.shape[0]) // self.num_heads

    def check(self, where: str) -> HeadProjections:
        """Check the shapes agree with each other and with ``num_heads``; return self."""
        if not isinstance(self.num_heads, int) or self.num_heads < 1:
            raise InputValidationError(f"expected {where}.num_heads to be an int >= 1, got {self.num_heads!r}")
        for name in ("query", "key", "value", "out"):
            w = getattr(self, name)
            if not isinstance(w, Tensor) or w.ndim != 2:
                raise InputValidationError(f"expected {where}.{name} to be a 2-D weight tensor, got {w!r:.60}")
        inner, d = self.query.shape
        if inner % self.num_heads:
            raise InputValidationError(
                f"expected {where}.query's {inner} rows to be a multiple of num_heads {self.num_heads}, got a remainder"
            )
        for name in ("key", "value"):
            got = tuple(getattr(self, name).shape)
            if got != (inner, d):
                raise InputValidationError(f"expected {where}.{name} of shape {(inner, d)} like the query, got {got}")
        if tuple(self.out.shape) != (d, inner):
            raise InputValidationError(f"expected {where}.out of shape {(d, inner)}, got {tuple(self.out.shape)}")
        for name, size in (("query_bias", inner), ("key_bias", inner), ("value_bias", inner), ("out_bias", d)):
            b = getattr(self, name)
            if b is not None and (not isinstance(b, Tensor) or tuple(b.shape) != (size,)):
                raise InputValidationError(f"expected {where}.{name} of shape ({size},) or None, got {b!r:.60}")
        return self


@dataclass(frozen=True)
class ModelInputs:
    """A batch as the adapter parsed it.

    Attributes:
        main: ``(B, T)`` int64 token ids, or ``(B, C, H, W)`` float pixels.
        mask: ``(B, T)`` bool, True at real tokens (the original's ``attention_mask``), or None: all real.
        token_type_ids: ``(B, T)`` int64 segment ids, or None.
    """

    main: Tensor
    mask: Tensor | None = None
    token_type_ids: Tensor | None = None


#: ``attend(x) -> y``: a block's self-attention on its input ``x`` ``(n, T, D)``, after the output
#: projection and its bias, ``(n, T, D)``, with each sample's chosen heads only; the adapter
#: supplies it (the padding mask, causality and head choice are its business).
AttendFn = Callable[[Tensor], Tensor]


def _first_token(model: nn.Module, inputs: ModelInputs) -> Tensor:
    return torch.zeros(inputs.main.shape[0], dtype=torch.long, device=inputs.main.device)


@dataclass(frozen=True)
class Family:
    """How to run one architecture with per-sample depth and heads: the adapter's protocol.

    Attributes:
        name: a short name (``"bert"``), shown in messages.
        blocks: ``blocks(model)`` -> the ``L`` transformer blocks in order (a ``ModuleList``).
        attention: ``attention(block)`` -> the block's :class:`HeadProjections`. Every block has
            the same head count.
        block: ``block(block, x, attend)`` -> ``(n, T, D)``: the block's forward on ``x`` ``(n, T,
            D)`` with its self-attention (the projections given by ``attention``) replaced by the
            call ``attend(attention_input)``; everything else is the block's own modules
            (residuals, norms, MLP, dropout).
        embed: ``embed(model, inputs)`` -> ``(B, T, D)``: the hidden states entering block 0, as
            the original computes them (:class:`ModelInputs`).
        head: ``head(model)`` -> a module from the pooled ``(n, D)`` hidden state to ``(n, C)``
            logits: the original's classifier (final norm included when the original has one).
            Each exit point gets a deep copy of it: the only new parameters.
        pool: ``pool(model, inputs)`` -> ``(B,)`` int64, the position the classifier reads
            (default: the first token, as BERT's ``[CLS]``).
        input: ``"tokens"`` (``main`` is ``(B, T)`` ids, with an optional padding mask) or
            ``"pixels"`` (``main`` is ``(B, C, H, W)``).
        max_len: ``max_len(model)`` -> the longest sequence the model takes (tokens) or the
            positions it makes (pixels): the cost table's default length.
        vocab_size: ``vocab_size(model)`` -> the number of token ids (tokens), for input checks;
            ``None``: unchecked.
        image_shape: ``image_shape(model)`` -> ``(C, H, W)`` the model takes (pixels).
        architectures: the class names this family describes (``"BertForSequenceClassification"``):
            :func:`~banditformer.adapters.adapt` recognises a model whose class, or a base class
            of it, has one of these names, and names them in its error for a model it does not know.
        matches: ``matches(model)`` -> True when this family describes ``model``, instead of the
            class names (``None``: by the class names).

    Examples:
        >>> from banditformer.adapters import FAMILIES
        >>> sorted(f.name for f in FAMILIES)
        ['bert', 'distilbert', 'gpt2', 'roberta', 'timm_vit', 'vit']
    """

    name: str
    blocks: Callable[[nn.Module], Sequence[nn.Module]]
    attention: Callable[[nn.Module], HeadProjections]
    block: Callable[[nn.Module, Tensor, AttendFn], Tensor]
    embed: Callable[[nn.Module, ModelInputs], Tensor]
    head: Callable[[nn.Module], nn.Module]
    max_len: Callable[[nn.Module], int]
    pool: Callable[[nn.Module, ModelInputs], Tensor] = _first_token
    input: str = "tokens"
    vocab_size: Callable[[nn.Module], int] | None = None
    image_shape: Callable[[nn.Module], tuple[int, int, int]] | None = None
    architectures: tuple[str, ...] = ()
    matches: Callable[[nn.Module], bool] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InputValidationError(f"expected `name` to be a non-empty string, got {self.name!r}")
        if self.input not in INPUT_KINDS:
            raise InputValidationError(f"expected `input` in {INPUT_KINDS}, got {self.input!r}")
        for field in ("blocks", "attention", "block", "embed", "head", "max_len", "pool"):
            if not callable(getattr(self, field)):
                raise InputValidationError(
                    f"expected Family `{field}` to be callable, got {type(getattr(self, field)).__name__}"
                )
        for field in ("vocab_size", "image_shape", "matches"):
            value = getattr(self, field)
            if value is not None and not callable(value):
                raise InputValidationError(f"expected Family `{field}` to be callable or None, got {value!r}")
        if self.input == "pixels" and self.image_shape is None:
            raise InputValidationError("expected `image_shape` for a family of input 'pixels', got None")
        if not isinstance(self.architectures, tuple) or not all(isinstance(a, str) for a in self.architectures):
            raise InputValidationError(
                f"expected `architectures` to be a tuple of class names, got {self.architectures!r}"
            )

    def recognises(self, model: object) -> bool:
        """True when this family describes ``model`` (by :attr:`matches`, else by class name)."""
        if self.matches is not None:
            return bool(self.matches(model))  # type: ignore[arg-type]
        return any(cls.__name__ in self.architectures for cls in type(model).__mro__)
