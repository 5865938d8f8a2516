"""The built-in family for timm's Vision Transformer (``timm.models.VisionTransformer``).

Nothing here imports ``timm``: a model is recognised by its class name and read through its
attributes, so that this module costs nothing where timm is not installed. What is supported is
timm's standard ViT, the one ``timm.create_model("vit_*")`` builds for the classic ViT and DeiT
weights:

- blocks: ``model.blocks``, each a ``Block`` (pre-LN; optional LayerScale and stochastic depth)
  whose ``attn`` is timm's ``Attention`` with a fused ``qkv`` projection;
- embeddings: the model's own ``patch_embed``, ``_pos_embed`` (class and register tokens,
  position embeddings, their dropout), ``patch_drop`` and ``norm_pre``;
- classifier: ``global_pool="token"`` (the class token), then ``norm``, ``fc_norm``,
  ``head_drop`` and ``head``, as ``forward_head`` runs them.

Models whose attention normalises queries and keys (``qk_norm``), scales its output
(``scale_norm``) or gates it, average-pooled or attention-pooled heads, and distilled ViTs (two
heads) are refused with an error that says what differs: the adapter would not give their logits.
"""

from __future__ import annotations

from torch import Tensor, nn

from banditformer.adapters.family import AttendFn, Family, HeadProjections, ModelInputs
from banditformer.core.errors import InputValidationError

__all__ = ["TIMM_FAMILIES", "TIMM_VIT"]


def _is_identity(module: nn.Module | None) -> bool:
    return module is None or isinstance(module, nn.Identity)


def _check_model(model: nn.Module) -> None:
    """Refuse the ViT variants whose forward the family does not describe."""
    name = type(model).__name__
    if any(cls.__name__ == "VisionTransformerDistilled" for cls in type(model).__mro__):
        raise InputValidationError(f"expected timm's VisionTransformer with one head, got {name} (a distillation head)")
    pool = getattr(model, "global_pool", None)
    if pool != "token" or getattr(model, "attn_pool", None) is not None:
        raise InputValidationError(
            f"expected a timm VisionTransformer with global_pool='token' (the class token), got global_pool={pool!r}"
            + (" with an attention pool" if getattr(model, "attn_pool", None) is not None else "")
        )
    if getattr(model, "cls_token", None) is None:
        raise InputValidationError(f"expected a timm VisionTransformer with a class token, got {name} without one")


def _timm_blocks(model: nn.Module) -> nn.Module:
    _check_model(model)
    return model.blocks


def _timm_attention(block: nn.Module) -> HeadProjections:
    kind, attn = type(block).__name__, getattr(block, "attn", None)
    if kind != "Block" or type(attn).__name__ != "Attention":
        raise InputValidationError(
            f"expected timm ViT blocks of class Block with an Attention, got {kind} with {type(attn).__name__}"
        )
    for part in ("q_norm", "k_norm", "norm"):
        if not _is_identity(getattr(attn, part, None)):
            raise InputValidationError(
                f"expected timm attention without {part} (qk_norm and scale_norm off), "
                f"got {type(getattr(attn, part)).__name__}"
            )
    if getattr(attn, "gate", None) is not None:
        raise InputValidationError("expected timm attention without an output gate (gated=False), got a gate")
    q, k, v = attn.qkv.weight.chunk(3)  # (H * hd, D) views of the fused projection
    qb, kb, vb = (None, None, None) if attn.qkv.bias is None else attn.qkv.bias.chunk(3)
    return HeadProjections(
        q, qb, k, kb, v, vb, attn.proj.weight, attn.proj.bias,
        num_heads=int(attn.num_heads), scale=float(attn.scale), dropout=float(attn.attn_drop.p),
    )  # fmt: skip


def _timm_block(block: nn.Module, x: Tensor, attend: AttendFn) -> Tensor:
    h = x + block.drop_path1(block.ls1(block.attn.proj_drop(attend(block.norm1(x)))))
    return h + block.drop_path2(block.ls2(block.mlp(block.norm2(h))))


def _timm_embed(model: nn.Module, inputs: ModelInputs) -> Tensor:
    x = model._pos_embed(model.patch_embed(inputs.main))
    return model.norm_pre(model.patch_drop(x))


def _timm_head(model: nn.Module) -> nn.Module:
    # LayerNorm acts per token, so norm-then-pool (timm's order) equals pool-then-norm (the family's).
    return nn.Sequential(model.norm, model.fc_norm, model.head_drop, model.head)


def _timm_positions(model: nn.Module) -> int:
    return int(model.patch_embed.num_patches) + int(model.num_prefix_tokens)


def _timm_image(model: nn.Module) -> tuple[int, int, int]:
    embed = model.patch_embed
    height, width = embed.img_size
    return int(embed.proj.in_channels), int(height), int(width)


TIMM_VIT = Family(
    name="timm_vit", architectures=("VisionTransformer",), blocks=_timm_blocks, attention=_timm_attention,
    block=_timm_block, embed=_timm_embed, head=_timm_head, input="pixels", max_len=_timm_positions,
    image_shape=_timm_image,
)  # fmt: skip

#: The built-in timm families, tried after the Hugging Face ones.
TIMM_FAMILIES = (TIMM_VIT,)
