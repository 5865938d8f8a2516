"""The dynamic transformer, its configuration, the model contract every model driven by a
controller keeps (:class:`AdaptiveModel`), and the execution of per-sample depth and heads
(:mod:`banditformer.model.execution`) that the library's model and the adapted ones share."""

from banditformer.model.config import TransformerConfig
from banditformer.model.contract import AdaptiveModel, check_model
from banditformer.model.layers import MLP, Attention, Block, InputEmbedding
from banditformer.model.transformer import PATHS, DynamicTransformer

__all__ = [
    "MLP",
    "PATHS",
    "AdaptiveModel",
    "Attention",
    "Block",
    "DynamicTransformer",
    "InputEmbedding",
    "TransformerConfig",
    "check_model",
]
