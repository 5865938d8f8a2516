"""Tiny models for the adapter tests, built offline: a plain PyTorch encoder with the Family that
adapts it, and randomly initialised Hugging Face models from their config classes (each builder
skips its test when ``transformers`` is not installed). Inputs come with padding, as the
original models count it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from banditformer.adapters import AdaptedTransformer, Family, HeadProjections, adapt
from banditformer.core.task import Split, Task

VOCAB, SEQ, D, HEADS = 40, 10, 32, 4


class PlainBlock(nn.Module):
    """A pre-LN block with a fused ``qkv``, as people write them."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def attention(self, x: Tensor, mask: Tensor | None) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, T, hd)
        attn_mask = None if mask is None else mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = x + self.attention(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


class PlainClassifier(nn.Module):
    """Token ids -> logits from the first position, through ``layers`` plain blocks."""

    def __init__(self, layers: int = 3, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D)
        self.pos = nn.Parameter(torch.randn(1, SEQ, D) * 0.1)
        self.blocks = nn.ModuleList(PlainBlock(D, HEADS) for _ in range(layers))
        self.norm, self.head = nn.LayerNorm(D), nn.Linear(D, classes)

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.embed(ids) + self.pos[:, : ids.shape[1]]
        for block in self.blocks:
            h = block(h, mask)
        return self.head(self.norm(h[:, 0]))


def _plain_attention(block: nn.Module) -> HeadProjections:
    q, k, v = block.qkv.weight.chunk(3)  # (D, D) views of the fused projection
    qb, kb, vb = block.qkv.bias.chunk(3)
    return HeadProjections(q, qb, k, kb, v, vb, block.proj.weight, block.proj.bias, num_heads=block.heads)


def _plain_block(block: nn.Module, x: Tensor, attend) -> Tensor:
    h = x + attend(block.ln1(x))
    return h + block.mlp(block.ln2(h))


PLAIN = Family(
    name="plain",
    blocks=lambda model: model.blocks,
    attention=_plain_attention,
    block=_plain_block,
    embed=lambda model, inputs: model.embed(inputs.main) + model.pos[:, : inputs.main.shape[1]],
    head=lambda model: nn.Sequential(model.norm, model.head),
    max_len=lambda model: model.pos.shape[1],
    vocab_size=lambda model: model.embed.num_embeddings,
)


@dataclass
class Case:
    """An original model, its adaptation, and how to make a batch for both."""

    original: nn.Module
    adapted: AdaptedTransformer
    batch: Callable[[int, torch.Generator], dict[str, Tensor] | Tensor]
    call: Callable[[nn.Module, dict[str, Tensor] | Tensor], Tensor]  # the original's logits


def _rescale(model: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # larger weights than the init, so that every head matters
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2 + (1.0 if p.ndim == 1 and p.shape[0] == D else 0.0))


def padded_tokens(b: int, gen: torch.Generator, pad: int, left: bool = False, types: bool = False) -> dict[str, Tensor]:
    """``b`` rows of ``SEQ`` ids, each row ``1 .. SEQ`` real tokens then ``pad`` (or pad first with ``left``)."""
    ids = torch.randint(2, VOCAB, (b, SEQ), generator=gen)
    lengths = torch.randint(1, SEQ + 1, (b,), generator=gen)
    positions = torch.arange(SEQ).unsqueeze(0)
    mask = (positions >= SEQ - lengths.unsqueeze(1)) if left else (positions < lengths.unsqueeze(1))
    ids = torch.where(mask, ids, torch.full_like(ids, pad))
    out = {"input_ids": ids, "attention_mask": mask.long()}
    if types:
        out["token_type_ids"] = (positions >= lengths.unsqueeze(1) // 2).long().expand(b, -1).contiguous()
    return out


def _hf(name: str, layers: int, seed: int, exits) -> Case:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    common = dict(num_labels=3)
    gpt2_left = False
    if name == "bert":
        cfg = transformers.BertConfig(
            vocab_size=VOCAB, hidden_size=D, num_hidden_layers=layers, num_attention_heads=HEADS,
            intermediate_size=2 * D, max_position_embeddings=SEQ + 4, type_vocab_size=2, **common,
        )  # fmt: skip
        model = transformers.BertForSequenceClassification(cfg)
    elif name == "roberta":
        cfg = transformers.RobertaConfig(
            vocab_size=VOCAB, hidden_size=D, num_hidden_layers=layers, num_attention_heads=HEADS,
            intermediate_size=2 * D, max_position_embeddings=SEQ + 2, pad_token_id=1, type_vocab_size=1, **common,
        )  # fmt: skip
        model = transformers.RobertaForSequenceClassification(cfg)
    elif name == "distilbert":
        cfg = transformers.DistilBertConfig(
            vocab_size=VOCAB, dim=D, n_layers=layers, n_heads=HEADS, hidden_dim=2 * D, max_position_embeddings=SEQ,
            **common,
        )  # fmt: skip
        model = transformers.DistilBertForSequenceClassification(cfg)
    elif name in ("gpt2", "gpt2_left"):
        gpt2_left = name == "gpt2_left"
        cfg = transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=D, n_layer=layers, n_head=HEADS, n_positions=SEQ, pad_token_id=0,
            bos_token_id=1, eos_token_id=1, **common,
        )  # fmt: skip
        model = transformers.GPT2ForSequenceClassification(cfg)
    elif name == "vit":
        cfg = transformers.ViTConfig(
            hidden_size=D, num_hidden_layers=layers, num_attention_heads=HEADS, intermediate_size=2 * D,
            image_size=8, patch_size=4, num_channels=2, **common,
        )  # fmt: skip
        model = transformers.ViTForImageClassification(cfg)
    else:
        raise AssertionError(name)
    _rescale(model, seed)
    model.eval()
    adapted = adapt(model, exits=exits, seq_len=SEQ if name != "vit" else None)
    if name == "vit":
        return Case(model, adapted, lambda b, gen: torch.randn(b, 2, 8, 8, generator=gen),
                    lambda m, x: m(pixel_values=x).logits)  # fmt: skip
    pad = {"roberta": 1}.get(name, 0)
    types = name == "bert"
    return Case(
        model, adapted, lambda b, gen: padded_tokens(b, gen, pad, left=gpt2_left, types=types),
        lambda m, x: m(**x).logits,
    )  # fmt: skip


def _timm(layers: int, seed: int, exits) -> Case:
    """timm's VisionTransformer with a register token and LayerScale (skipped without timm, which
    needs torchvision; not in the dev extra)."""
    timm = pytest.importorskip("timm", reason="timm is not installed (it needs a torchvision built for this torch)")
    torch.manual_seed(seed)
    model = timm.models.VisionTransformer(
        img_size=8, patch_size=4, in_chans=2, num_classes=3, embed_dim=D, depth=layers, num_heads=HEADS,
        mlp_ratio=2.0, qkv_bias=True, reg_tokens=1, init_values=0.5, global_pool="token",
    )  # fmt: skip
    _rescale(model, seed)
    model.eval()
    pixels = lambda b, gen: torch.randn(b, 2, 8, 8, generator=gen)  # noqa: E731
    return Case(model, adapt(model, exits=exits), pixels, lambda m, x: m(x))


def _plain(layers: int, seed: int, exits) -> Case:
    torch.manual_seed(seed)
    model = PlainClassifier(layers)
    _rescale(model, seed)
    model.eval()

    def call(m: nn.Module, x: dict[str, Tensor]) -> Tensor:
        return m(x["input_ids"], x["attention_mask"].bool())

    return Case(model, adapt(model, family=PLAIN, exits=exits), lambda b, gen: padded_tokens(b, gen, 0), call)


NAMES = ["plain", "bert", "roberta", "distilbert", "gpt2", "gpt2_left", "vit", "timm_vit"]


def build(name: str, seed: int = 0, layers: int = 3, exits: str | tuple[int, ...] = "all") -> Case:
    """A fresh case, the same for the same arguments (for tests that train it)."""
    if name == "plain":
        return _plain(layers, seed, exits)
    if name == "timm_vit":
        return _timm(layers, seed, exits)
    return _hf(name, layers, seed, exits)


@functools.lru_cache(maxsize=64)
def case(name: str, seed: int = 0, layers: int = 3, exits: str | tuple[int, ...] = "all") -> Case:
    """A cached case (tests zero the gradients they use and change no weights)."""
    return build(name, seed, layers, exits)


def token_task(seed: int = 0, rows: int = 64, classes: int = 3) -> Task:
    """A generated task for the token models: ``SEQ`` ids in ``[2, VOCAB)`` (no padding: a
    task's inputs are plain tensors), labelled by the bin of the id at position 1; ``rows`` rows
    in each of the train, validation and test splits."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(2, VOCAB, (3 * rows, SEQ), generator=gen)
    y = (x[:, 1] - 2) * classes // (VOCAB - 2)
    parts = [Split(x[i * rows : (i + 1) * rows], y[i * rows : (i + 1) * rows]) for i in range(3)]
    return Task("tokens", {"input": "tokens", "vocab_size": VOCAB, "seq_len": SEQ, "num_classes": classes}, *parts)


def padded_token_task(seed: int = 0, rows: int = 64, classes: int = 3, pad: int = 0) -> Task:
    """:func:`token_task` with each row cut to ``2 .. SEQ`` real tokens and padded on the right
    with ``pad``: a task's padded id tensors, as a tokenized corpus stored as one tensor is."""
    task = token_task(seed, rows, classes)
    gen = torch.Generator().manual_seed(seed + 1)
    positions = torch.arange(SEQ)
    for split in (task.train, task.val, task.test):
        lengths = torch.randint(2, SEQ + 1, (len(split),), generator=gen)
        split.x = torch.where(positions < lengths.unsqueeze(1), split.x, torch.full_like(split.x, pad))
    return task
