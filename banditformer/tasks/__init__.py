"""The built-in model tasks: bundled or generated data sets with a fixed split (``-> core``)."""

from banditformer.tasks.datasets import FRACTIONS, bbc_news, digits, mnist1d, pointer_chasing, split, split_indices
from banditformer.tasks.listops import listops

__all__ = ["FRACTIONS", "bbc_news", "digits", "listops", "mnist1d", "pointer_chasing", "split", "split_indices"]
