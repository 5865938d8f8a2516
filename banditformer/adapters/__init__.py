"""Bring your own transformer: adapters that make an existing model sample-adaptive.

:func:`adapt` recognises a Hugging Face BERT, RoBERTa, DistilBERT or GPT-2 sequence classifier, a
Hugging Face ViT image classifier or timm's ``VisionTransformer``, and returns an
:class:`AdaptedTransformer`, which every controller drives as it drives
:class:`~banditformer.model.DynamicTransformer`: per-sample depth with exit heads at the exit
points, per-sample head sets in every attention layer, the fast path, a FLOP cost table. With the
full decision its logits are the original's. A model of another architecture becomes
adaptive through a :class:`Family`, the small protocol that says where its blocks, attention
projections, head count, embeddings and classifier are (see ``docs/adapters.md``).

Nothing here imports ``transformers`` or ``timm`` (install them with the ``hf`` and ``timm`` extras
to use their models).
"""

from banditformer.adapters.adapted import (
    FAMILIES,
    PATHS,
    AdaptedConfig,
    AdaptedHidden,
    AdaptedTransformer,
    adapt,
    supported,
)
from banditformer.adapters.family import AttendFn, Family, HeadProjections, ModelInputs
from banditformer.adapters.hf import BERT, DISTILBERT, GPT2, ROBERTA, VIT
from banditformer.adapters.timm_vit import TIMM_VIT

__all__ = [
    "BERT",
    "DISTILBERT",
    "FAMILIES",
    "GPT2",
    "PATHS",
    "ROBERTA",
    "TIMM_VIT",
    "VIT",
    "AdaptedConfig",
    "AdaptedHidden",
    "AdaptedTransformer",
    "AttendFn",
    "Family",
    "HeadProjections",
    "ModelInputs",
    "adapt",
    "supported",
]
