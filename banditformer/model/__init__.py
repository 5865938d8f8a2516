"""The dynamic transformer and its configuration."""

from banditformer.model.config import TransformerConfig
from banditformer.model.layers import MLP, Attention, Block, InputEmbedding
from banditformer.model.transformer import PATHS, DynamicTransformer

__all__ = ["MLP", "PATHS", "Attention", "Block", "DynamicTransformer", "InputEmbedding", "TransformerConfig"]
