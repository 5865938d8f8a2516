"""ListOps (Nangia and Bowman, 2018): nested list operations over digits, generated locally, with
each sample's nesting depth as its known difficulty.

An expression is a digit ``0 .. 9`` or ``[OP a_1 ... a_k ]`` with ``OP`` one of ``MIN``, ``MAX``,
``MED`` (the lower median: the ``(k-1)//2``-th smallest) and ``SM`` (the sum modulo 10), and each
``a_i`` an expression. The label is the expression's value (10 classes). A sample's depth is its
number of nested brackets: depth 1 is one operation over digits, and each level more needs the
value of an inner list before the outer one can be computed.

Tokens: ``0`` pads, ``1 .. 10`` are the digits ``0 .. 9``, ``11 .. 14`` open ``[MIN``, ``[MAX``,
``[MED``, ``[SM``, and ``15`` closes ``]``; expressions are padded on the right to ``seq_len``.

Examples:
    >>> task = listops(seed=0, num_samples=40, max_depth=3, seq_len=48)
    >>> task.model["vocab_size"], task.model["num_classes"], tuple(task.train.x.shape[1:])
    (16, 10, (48,))
    >>> decode(task.train.x[0]).startswith("[")
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError
from banditformer.core.random import make_generator
from banditformer.core.task import Task
from banditformer.core.validation import check_int
from banditformer.tasks.datasets import split

__all__ = ["CLOSE", "OPS", "PAD", "VOCAB_SIZE", "balanced_length", "decode", "evaluate", "listops"]

OPS = ("MIN", "MAX", "MED", "SM")
PAD, CLOSE = 0, 15
VOCAB_SIZE = 16
_DIGIT0, _OP0 = 1, 11


def _apply(op: str, values: list[int]) -> int:
    if op == "MIN":
        return min(values)
    if op == "MAX":
        return max(values)
    if op == "MED":
        return sorted(values)[(len(values) - 1) // 2]
    return sum(values) % 10


def _expression(
    gen: torch.Generator, depth: int, max_args: int, ops: tuple[int, ...] = tuple(range(len(OPS)))
) -> tuple[list[int], int]:
    """Tokens and value of a random expression of nesting depth exactly ``depth`` (0: a digit),
    its operations drawn uniformly from ``ops`` (indices into :data:`OPS`)."""
    if depth == 0:
        digit = int(torch.randint(10, (1,), generator=gen))
        return [_DIGIT0 + digit], digit
    op = ops[int(torch.randint(len(ops), (1,), generator=gen))]
    k = int(torch.randint(2, max_args + 1, (1,), generator=gen))
    deep = int(torch.randint(k, (1,), generator=gen))  # the argument that reaches the full depth
    tokens, values = [_OP0 + op], []
    for i in range(k):
        inner = depth - 1 if i == deep else int(torch.randint(depth, (1,), generator=gen))
        t, v = _expression(gen, inner, max_args, ops)
        tokens += t
        values.append(v)
    return [*tokens, CLOSE], _apply(OPS[op], values)


def _template(depth: int, k: int) -> list[tuple[int, int]]:
    """The token layout of a complete ``k``-ary expression of nesting depth ``depth``, in prefix
    order: ``(0, node)`` opens internal node ``node`` (heap order: node ``i``'s arguments are
    ``k i + 1 .. k i + k``), ``(1, leaf)`` is leaf ``leaf``'s digit, ``(2, 0)`` closes a list."""
    internal = (k**depth - 1) // (k - 1)
    out: list[tuple[int, int]] = []

    def walk(node: int) -> None:
        if node >= internal:
            out.append((1, node - internal))
            return
        out.append((0, node))
        for child in range(k * node + 1, k * node + k + 1):
            walk(child)
        out.append((2, 0))

    walk(0)
    return out


def balanced_length(depth: int, k: int) -> int:
    """Tokens of a complete ``k``-ary expression of nesting depth ``depth``: an open and a close
    token per list, ``(k^depth - 1) / (k - 1)`` lists, and ``k^depth`` digits.

    Examples:
        >>> balanced_length(1, 2), balanced_length(3, 2), balanced_length(2, 3)
        (4, 22, 17)
    """
    return 2 * (k**depth - 1) // (k - 1) + k**depth


def _apply_rows(op: Tensor, args: Tensor) -> Tensor:
    """Each row's operation (``op`` ``(N,)``, indices into :data:`OPS`) over its arguments
    (``args`` ``(N, k)``): ``(N,)``."""
    ordered = args.sort(dim=1).values
    by_op = torch.stack([
        ordered[:, 0], ordered[:, -1], ordered[:, (args.shape[1] - 1) // 2], args.sum(1) % 10,
    ], dim=1)  # fmt: skip
    return by_op.gather(1, op.unsqueeze(1)).squeeze(1)


def _balanced(
    gen: torch.Generator, depths: Tensor, k: int, op_ids: tuple[int, ...], seq_len: int
) -> tuple[Tensor, Tensor]:
    """Complete ``k``-ary expressions, every digit at the sample's full depth: tokens
    ``(N, seq_len)`` and values ``(N,)``. Depth by depth in increasing order, the operations and
    then the digits of every sample of that depth are drawn from ``gen`` in one call each."""
    n = depths.shape[0]
    x = torch.full((n, seq_len), PAD, dtype=torch.long)
    y = torch.empty(n, dtype=torch.long)
    choices = torch.tensor(op_ids)
    for depth in sorted(set(depths.tolist())):
        rows = (depths == depth).nonzero().squeeze(1)
        internal, leaves = (k**depth - 1) // (k - 1), k**depth
        ops = choices[torch.randint(len(op_ids), (len(rows), internal), generator=gen)]
        digits = torch.randint(10, (len(rows), leaves), generator=gen)
        values = torch.cat([torch.empty(len(rows), internal, dtype=torch.long), digits], dim=1)
        for node in range(internal - 1, -1, -1):  # bottom up: arguments before their list
            values[:, node] = _apply_rows(ops[:, node], values[:, k * node + 1 : k * node + k + 1])
        layout = _template(depth, k)
        tokens = torch.full((len(rows), len(layout)), CLOSE, dtype=torch.long)
        for pos, (kind, index) in enumerate(layout):
            if kind == 0:
                tokens[:, pos] = _OP0 + ops[:, index]
            elif kind == 1:
                tokens[:, pos] = _DIGIT0 + digits[:, index]
        x[rows, : len(layout)] = tokens
        y[rows] = values[:, 0]
    return x, y


def evaluate(tokens: Tensor | list[int]) -> int:
    """The value of one token sequence (padding ignored).

    Raises:
        InputValidationError: for a sequence that is not one well-formed expression.
    """
    seq = [int(t) for t in tokens if int(t) != PAD]
    stack: list[tuple[str, list[int]]] = []
    result: int | None = None
    for t in seq:
        if result is not None:
            raise InputValidationError(f"expected one expression, got tokens after its end: {seq}")
        if _DIGIT0 <= t < _DIGIT0 + 10:
            value = t - _DIGIT0
        elif _OP0 <= t < _OP0 + len(OPS):
            stack.append((OPS[t - _OP0], []))
            continue
        elif t == CLOSE and stack and stack[-1][1]:
            op, args = stack.pop()
            value = _apply(op, args)
        else:
            raise InputValidationError(f"expected a well-formed ListOps expression, got token {t} in {seq}")
        if stack:
            stack[-1][1].append(value)
        else:
            result = value
    if result is None or stack:
        raise InputValidationError(f"expected a complete ListOps expression, got {seq}")
    return result


def decode(tokens: Tensor | list[int]) -> str:
    """A token sequence as text: ``[MAX 3 [MIN 4 1 ] ]``."""
    words = []
    for t in (int(t) for t in tokens):
        if t == PAD:
            continue
        if _DIGIT0 <= t < _DIGIT0 + 10:
            words.append(str(t - _DIGIT0))
        elif _OP0 <= t < _OP0 + len(OPS):
            words.append(f"[{OPS[t - _OP0]}")
        elif t == CLOSE:
            words.append("]")
        else:
            raise InputValidationError(f"expected ListOps tokens in [0, {VOCAB_SIZE}), got {t}")
    return " ".join(words)


def _check_ops(ops: object) -> tuple[int, ...]:
    """``ops`` (distinct names from :data:`OPS`) as indices into :data:`OPS`, in :data:`OPS`' order."""
    if isinstance(ops, str) or not isinstance(ops, Sequence) or not ops:
        raise InputValidationError(f"expected `ops` to be a non-empty list of names from {list(OPS)}, got {ops!r}")
    bad = [op for op in ops if op not in OPS]
    if bad or len(set(ops)) != len(ops):
        why = f"unknown names {bad}" if bad else "a name twice"
        raise InputValidationError(f"expected `ops` to be distinct names from {list(OPS)}, got {list(ops)} ({why})")
    return tuple(i for i, name in enumerate(OPS) if name in ops)


def listops(
    seed: int = 0,
    num_samples: int = 20000,
    max_depth: int = 4,
    max_args: int = 4,
    seq_len: int = 96,
    ops: Sequence[str] = OPS,
    balanced: bool = False,
) -> Task:
    """ListOps expressions with nesting depth uniform in ``[1, max_depth]`` (the known
    difficulty), each operation taking 2 to ``max_args`` arguments, at most ``seq_len`` tokens.
    Operations are drawn uniformly from ``ops`` (a subset of :data:`OPS`; the token ids and
    vocabulary stay those of all four, and the default draws every sample as before the option).

    With ``balanced``, every list takes exactly ``max_args`` arguments and every digit sits at
    the sample's full depth (a complete ``max_args``-ary tree), so all samples of one depth share
    one layout of :func:`balanced_length` tokens and only their operations and digits differ:
    the difficulty of finding each list's arguments is gone and what is left is one level of
    evaluation per nesting level. (``MED`` of two arguments is ``MIN``.)

    Every draw comes from one generator seeded by ``seed``; an expression longer than ``seq_len``
    is drawn again (so deep samples have fewer arguments on average than unconstrained ones).
    The split is the library's 70/15/15 by ``seed``.

    Raises:
        InputValidationError: for a bad argument, or a ``seq_len`` too short for ``max_depth``
            (a depth-``d`` expression has at least ``3d + 1`` tokens, a balanced one
            :func:`balanced_length`).
    """
    check_int("num_samples", num_samples, low=3)
    check_int("max_depth", max_depth, low=1)
    check_int("max_args", max_args, low=2)
    check_int("seq_len", seq_len, low=4)
    op_ids = _check_ops(ops)
    if not isinstance(balanced, bool):
        raise InputValidationError(f"expected `balanced` to be a bool, got {balanced!r}")
    if balanced and seq_len < balanced_length(max_depth, max_args):
        raise InputValidationError(
            f"expected `seq_len` of at least {balanced_length(max_depth, max_args)} for a balanced expression of "
            f"depth {max_depth} with {max_args} arguments per list, got {seq_len}"
        )
    if seq_len < 3 * max_depth + 1:
        raise InputValidationError(
            f"expected `seq_len` of at least {3 * max_depth + 1} for max_depth={max_depth} (the shortest expression "
            f"of that depth), got {seq_len}"
        )
    gen = make_generator(seed)
    depths = torch.randint(1, max_depth + 1, (num_samples,), generator=gen)
    model = {"input": "tokens", "vocab_size": VOCAB_SIZE, "seq_len": seq_len, "num_classes": 10}
    if balanced:
        x, y = _balanced(gen, depths, max_args, op_ids, seq_len)
        return split("listops", model, x, y, seed, [str(d) for d in range(10)], depths)
    x = torch.full((num_samples, seq_len), PAD, dtype=torch.long)
    y = torch.empty(num_samples, dtype=torch.long)
    for i, depth in enumerate(depths.tolist()):
        while True:
            tokens, value = _expression(gen, depth, max_args, op_ids)
            if len(tokens) <= seq_len:
                break
        x[i, : len(tokens)] = torch.tensor(tokens)
        y[i] = value
    return split("listops", model, x, y, seed, [str(d) for d in range(10)], depths)
