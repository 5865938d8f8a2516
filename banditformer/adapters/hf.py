"""The built-in families: Hugging Face ``transformers`` models (version 5 module layout), described
by their layer structure. BERT and RoBERTa share one description but for the classifier head;
each family is a handful of small functions over the model's own modules.

Nothing here imports ``transformers``: a model is recognised by its class names and read through
its attributes, so ``import banditformer`` works without the extra installed.

- BERT (post-LN): blocks ``bert.encoder.layer``; the classifier reads ``[CLS]`` through the pooler.
- RoBERTa (post-LN): ``roberta.encoder.layer``; ``<s>``.
- DistilBERT (post-LN): ``distilbert.transformer.layer``; ``[CLS]``.
- GPT-2 (pre-LN, causal): ``transformer.h``; the last token that is not the pad token.
- ViT (pre-LN): ``vit.layers``; the class token.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from banditformer.adapters.family import AttendFn, Family, HeadProjections, ModelInputs

__all__ = ["BERT", "DISTILBERT", "GPT2", "HF_FAMILIES", "ROBERTA", "VIT"]


def _base(model: nn.Module) -> nn.Module:
    """The bare encoder or decoder under a task head (``model.bert``, ``model.transformer``, ...)."""
    return getattr(model, model.base_model_prefix)  # type: ignore[arg-type]


def _config(model: nn.Module) -> object:
    return model.config


def _linear(layer: nn.Linear) -> tuple[Tensor, Tensor | None]:
    return layer.weight, layer.bias


def _vocab(model: nn.Module) -> int:
    return int(model.get_input_embeddings().num_embeddings)  # type: ignore[operator]


class _TokenHead(nn.Module):
    """A head that reads the first position of ``(n, T, D)`` features (RoBERTa's), fed ``(n, D)``."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, pooled: Tensor) -> Tensor:
        return self.head(pooled.unsqueeze(1))  # (n, D) -> (n, 1, D): the head takes position 0


# ------------------------------------------------------------------------------------- BERT, RoBERTa
def _bert_blocks(model: nn.Module) -> nn.ModuleList:
    return _base(model).encoder.layer


def _bert_attention(block: nn.Module) -> HeadProjections:
    sa, out = block.attention.self, block.attention.output.dense
    return HeadProjections(
        *_linear(sa.query), *_linear(sa.key), *_linear(sa.value), *_linear(out),
        num_heads=int(sa.num_attention_heads), scale=getattr(sa, "scaling", None),
        causal=bool(getattr(sa, "is_causal", False)), dropout=float(sa.dropout.p),
    )  # fmt: skip


def _bert_block(block: nn.Module, x: Tensor, attend: AttendFn) -> Tensor:
    out = block.attention.output  # BertSelfOutput: dense (in attend), dropout, LayerNorm(. + x)
    h = out.LayerNorm(out.dropout(attend(x)) + x)
    return block.feed_forward_chunk(h)  # intermediate, then output: dense, dropout, LayerNorm(. + h)


def _bert_embed(model: nn.Module, inputs: ModelInputs) -> Tensor:
    return _base(model).embeddings(input_ids=inputs.main, token_type_ids=inputs.token_type_ids)


def _bert_head(model: nn.Module) -> nn.Module:
    pooler = _base(model).pooler  # dense and tanh on [CLS]
    return nn.Sequential(pooler.dense, pooler.activation, model.dropout, model.classifier)


def _positions(model: nn.Module) -> int:
    return int(_config(model).max_position_embeddings)


BERT = Family(
    name="bert", architectures=("BertForSequenceClassification",), blocks=_bert_blocks,
    attention=_bert_attention, block=_bert_block, embed=_bert_embed, head=_bert_head, max_len=_positions,
    vocab_size=_vocab,
)  # fmt: skip


def _roberta_max_len(model: nn.Module) -> int:
    cfg = _config(model)  # positions start after the padding index
    return int(cfg.max_position_embeddings) - int(cfg.pad_token_id) - 1


ROBERTA = Family(
    name="roberta", architectures=("RobertaForSequenceClassification",), blocks=_bert_blocks,
    attention=_bert_attention, block=_bert_block, embed=_bert_embed,
    head=lambda model: _TokenHead(model.classifier), max_len=_roberta_max_len, vocab_size=_vocab,
)  # fmt: skip


# ---------------------------------------------------------------------------------------- DistilBERT
def _distil_attention(block: nn.Module) -> HeadProjections:
    a = block.attention
    return HeadProjections(
        *_linear(a.q_lin), *_linear(a.k_lin), *_linear(a.v_lin), *_linear(a.out_lin),
        num_heads=int(a.n_heads), scale=getattr(a, "scaling", None), dropout=float(a.dropout.p),
    )  # fmt: skip


def _distil_block(block: nn.Module, x: Tensor, attend: AttendFn) -> Tensor:
    h = block.sa_layer_norm(attend(x) + x)
    return block.output_layer_norm(block.ffn(h) + h)


def _distil_head(model: nn.Module) -> nn.Module:
    return nn.Sequential(model.pre_classifier, nn.ReLU(), model.dropout, model.classifier)


DISTILBERT = Family(
    name="distilbert", architectures=("DistilBertForSequenceClassification",),
    blocks=lambda model: _base(model).transformer.layer, attention=_distil_attention, block=_distil_block,
    embed=lambda model, inputs: _base(model).embeddings(inputs.main), head=_distil_head, max_len=_positions,
    vocab_size=_vocab,
)  # fmt: skip


# --------------------------------------------------------------------------------------------- GPT-2
def _gpt2_attention(block: nn.Module) -> HeadProjections:
    a = block.attn
    d = a.c_attn.weight.shape[0]
    w, b = a.c_attn.weight, a.c_attn.bias  # Conv1D: y = x @ w + b, w (D, 3D); nn.Linear layout is w.T
    scale = getattr(a, "scaling", None)
    return HeadProjections(
        w[:, :d].T, b[:d], w[:, d : 2 * d].T, b[d : 2 * d], w[:, 2 * d :].T, b[2 * d :],
        a.c_proj.weight.T, a.c_proj.bias, num_heads=int(a.num_heads), scale=scale, causal=True,
        dropout=float(a.attn_dropout.p),
    )  # fmt: skip


def _gpt2_block(block: nn.Module, x: Tensor, attend: AttendFn) -> Tensor:
    h = x + block.attn.resid_dropout(attend(block.ln_1(x)))
    return h + block.mlp(block.ln_2(h))


def _gpt2_embed(model: nn.Module, inputs: ModelInputs) -> Tensor:
    base, ids = _base(model), inputs.main
    positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)  # (1, T): as the original, unpadded
    h = base.wte(ids) + base.wpe(positions)
    if inputs.token_type_ids is not None:
        h = h + base.wte(inputs.token_type_ids)
    return base.drop(h)


def _gpt2_pool(model: nn.Module, inputs: ModelInputs) -> Tensor:
    """The rightmost token that is not the pad token (the original's rule, left or right padding)."""
    ids, pad = inputs.main, _config(model).pad_token_id
    t = ids.shape[1]
    if pad is None:
        return torch.full((ids.shape[0],), t - 1, dtype=torch.long, device=ids.device)
    positions = torch.arange(t, device=ids.device)
    return (positions * (ids != pad).long()).argmax(-1)


GPT2 = Family(
    name="gpt2", architectures=("GPT2ForSequenceClassification",), blocks=lambda model: _base(model).h,
    attention=_gpt2_attention, block=_gpt2_block, embed=_gpt2_embed,
    head=lambda model: nn.Sequential(_base(model).ln_f, model.score), pool=_gpt2_pool,
    max_len=lambda model: int(_config(model).n_positions), vocab_size=_vocab,
)  # fmt: skip


# ----------------------------------------------------------------------------------------------- ViT
def _vit_attention(block: nn.Module) -> HeadProjections:
    a = block.attention
    return HeadProjections(
        *_linear(a.q_proj), *_linear(a.k_proj), *_linear(a.v_proj), *_linear(a.o_proj),
        num_heads=int(a.num_attention_heads), scale=getattr(a, "scaling", None), dropout=float(a.attention_dropout),
    )  # fmt: skip


def _vit_block(block: nn.Module, x: Tensor, attend: AttendFn) -> Tensor:
    h = x + block.dropout(attend(block.layernorm_before(x)))
    return h + block.dropout(block.mlp(block.layernorm_after(h)))


def _vit_positions(model: nn.Module) -> int:
    cfg = _config(model)
    return (int(cfg.image_size) // int(cfg.patch_size)) ** 2 + 1  # the patches and the class token


def _vit_image(model: nn.Module) -> tuple[int, int, int]:
    cfg = _config(model)
    return int(cfg.num_channels), int(cfg.image_size), int(cfg.image_size)


VIT = Family(
    name="vit", architectures=("ViTForImageClassification",), blocks=lambda model: _base(model).layers,
    attention=_vit_attention, block=_vit_block, embed=lambda model, inputs: _base(model).embeddings(inputs.main),
    head=lambda model: nn.Sequential(_base(model).layernorm, model.classifier), input="pixels",
    max_len=_vit_positions, image_shape=_vit_image,
)  # fmt: skip

#: The built-in Hugging Face families, in the order :func:`~banditformer.adapters.adapt` tries them.
HF_FAMILIES = (BERT, ROBERTA, DISTILBERT, GPT2, VIT)
