"""Tensor contractions for ``functrans.numpy``: ``dot_general`` and ``einsum``.

Both lower to the strict primitives: a contraction is a transpose that groups each
operand's axes into (batch, free, contracted), a reshape to a rank-2 or rank-3
operand, one ``matmul`` and a reshape back. ``einsum`` takes diagonals with
``gather``, sums labels that only one operand carries with ``reduce_sum`` and then
contracts operands pairwise, smallest intermediate first.

Operands reach this module already promoted to one dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from functrans import primitives as lax
from functrans.core import get_aval

__all__ = ["dot_general", "einsum"]


def _shape(x: Any) -> tuple[int, ...]:
    return get_aval(x).shape


def _broadcast(x: Any, shape: tuple[int, ...], dims: Sequence[int]) -> Any:
    if _shape(x) == shape and tuple(dims) == tuple(range(len(shape))):
        return x
    return lax.broadcast_in_dim(x, shape, tuple(dims))


def dot_general(
    x: Any,
    y: Any,
    contracting: tuple[Sequence[int], Sequence[int]],
    batch: tuple[Sequence[int], Sequence[int]] = ((), ()),
) -> Any:
    """Contract axes ``contracting[0]`` of ``x`` with ``contracting[1]`` of ``y``.

    Batch axes (``batch[0]`` of ``x`` paired with ``batch[1]`` of ``y``) are kept and
    come first in the result, then the free axes of ``x``, then those of ``y``, each
    in their original order. Sizes of paired axes must already agree.
    """
    (cx, cy), (bx, by) = contracting, batch
    xs, ys = _shape(x), _shape(y)
    fx = [d for d in range(len(xs)) if d not in cx and d not in bx]
    fy = [d for d in range(len(ys)) if d not in cy and d not in by]
    batch_sizes = [xs[d] for d in bx]
    fx_sizes, fy_sizes = [xs[d] for d in fx], [ys[d] for d in fy]
    out_shape = (*batch_sizes, *fx_sizes, *fy_sizes)
    nb, nfx = len(bx), len(fx)
    x = lax.transpose(x, (*bx, *fx, *cx))
    y = lax.transpose(y, (*by, *cy, *fy))
    if not cx:  # nothing to sum: an outer product over the free axes, per batch entry
        x = _broadcast(x, out_shape, range(nb + nfx))
        y = _broadcast(y, out_shape, (*range(nb), *range(nb + nfx, len(out_shape))))
        return lax.mul(x, y)
    c = math.prod(xs[d] for d in cx)
    nx, ny = math.prod(fx_sizes), math.prod(fy_sizes)
    if bx:
        b = math.prod(batch_sizes)
        out = lax.matmul(lax.reshape(x, (b, nx, c)), lax.reshape(y, (b, c, ny)))
    else:
        x = lax.reshape(x, (nx, c) if fx else (c,))
        y = lax.reshape(y, (c, ny) if fy else (c,))
        out = lax.matmul(x, y)
    return lax.reshape(out, out_shape)


# ---------------------------------------------------------------------------
# einsum
# ---------------------------------------------------------------------------

_ELLIPSIS_LABELS = [chr(0x2460 + i) for i in range(64)]  # private labels for '...' axes


def _error(message: str, shapes: Sequence[tuple[int, ...]]) -> ValueError:
    return ValueError(f"einsum: {message} (operand shapes {', '.join(map(str, shapes))})")


def _parse(subscripts: str, shapes: Sequence[tuple[int, ...]]) -> tuple[list[list[str]], list[str]]:
    """Labels of each operand's axes and of the output, with '...' expanded."""
    spec = subscripts.replace(" ", "")
    inputs, arrow, output = spec.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(shapes):
        raise _error(
            f"subscripts {subscripts!r} name {len(terms)} operands, got {len(shapes)}", shapes
        )
    for term in [*terms, output]:
        letters = term.replace("...", "")
        if not all(ch.isalpha() and ch.isascii() for ch in letters) or "." in letters:
            raise _error(f"invalid subscripts {subscripts!r}", shapes)
    n_ellipsis = []
    for term, shape in zip(terms, shapes, strict=True):
        explicit = len(term.replace("...", ""))
        n = len(shape) - explicit if "..." in term else 0
        if n < 0 or ("..." not in term and explicit != len(shape)):
            raise _error(f"subscripts {term!r} do not match an operand of shape {shape}", shapes)
        n_ellipsis.append(n)
    width = max(n_ellipsis, default=0)
    ell = _ELLIPSIS_LABELS[:width]
    labels = []
    for term, n in zip(terms, n_ellipsis, strict=True):
        before, _, after = term.partition("...")
        labels.append([*before, *ell[width - n :], *after])
    if arrow:
        if "..." in output:
            before, _, after = output.partition("...")
            out = [*before, *ell, *after]
        elif width:
            raise _error(f"output {output!r} has no '...' for the broadcast axes", shapes)
        else:
            out = list(output)
    else:
        counts: dict[str, int] = {}
        for ls in labels:
            for label in ls:
                counts[label] = counts.get(label, 0) + 1
        out = ell + sorted(k for k, v in counts.items() if v == 1 and k not in ell)
    if len(set(out)) != len(out):
        raise _error(f"output subscripts {output!r} repeat a label", shapes)
    every = {label for ls in labels for label in ls}
    missing = [label for label in out if label not in every]
    if missing:
        raise _error(f"output label {missing[0]!r} appears in no operand", shapes)
    return labels, out


def _label_sizes(labels, shapes) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for ls, shape in zip(labels, shapes, strict=True):
        own: dict[str, int] = {}
        for label, n in zip(ls, shape, strict=True):
            if own.setdefault(label, n) != n:
                raise _error(f"repeated label {label!r} has sizes {own[label]} and {n}", shapes)
            if sizes.get(label, 1) == 1:
                sizes[label] = n
            elif n not in (1, sizes[label]):
                name = label if label.isascii() else "..."
                raise _error(f"label {name!r} has sizes {sizes[label]} and {n}", shapes)
    return sizes


def _diagonal(x: Any, labels: list[str]) -> tuple[Any, list[str]]:
    """Take the diagonal over each label that is repeated within one operand."""
    for label in dict.fromkeys(labels):
        positions = [i for i, lab in enumerate(labels) if lab == label]
        if len(positions) < 2:
            continue
        others = [i for i, lab in enumerate(labels) if lab != label]
        x = lax.transpose(x, (*positions, *others))
        iota = np.arange(_shape(x)[0])
        x = lax.gather(x, [iota] * len(positions))
        labels = [label, *(labels[i] for i in others)]
    return x, labels


def _sum_labels(x: Any, labels: list[str], drop: set[str]) -> tuple[Any, list[str]]:
    axes = [i for i, label in enumerate(labels) if label in drop]
    if not axes:
        return x, labels
    return lax.reduce_sum(x, axes), [label for label in labels if label not in drop]


def _squeeze_broadcast(x, labels, sizes) -> tuple[Any, list[str]]:
    """Drop size-1 axes whose label has a larger size elsewhere: they broadcast."""
    shape = _shape(x)
    keep = [i for i, label in enumerate(labels) if not (shape[i] == 1 and sizes[label] != 1)]
    if len(keep) == len(labels):
        return x, labels
    return lax.reshape(x, [shape[i] for i in keep]), [labels[i] for i in keep]


def einsum(subscripts: str, operands: Sequence[Any]) -> Any:
    """``numpy.einsum`` for operands of one dtype (explicit or implicit output)."""
    shapes = [_shape(x) for x in operands]
    labels, out = _parse(subscripts, shapes)
    sizes = _label_sizes(labels, shapes)
    ops = []
    for x, ls in zip(operands, labels, strict=True):
        x, ls = _diagonal(x, ls)
        ops.append(list(_squeeze_broadcast(x, ls, sizes)))
    # Sum labels that only one operand carries and the output does not keep.
    for i, (x, ls) in enumerate(ops):
        elsewhere = {label for j, (_, other) in enumerate(ops) if j != i for label in other}
        ops[i] = list(
            _sum_labels(x, ls, {lab for lab in ls if lab not in elsewhere and lab not in out})
        )
    while len(ops) > 1:
        i, j = _cheapest_pair(ops, out, sizes)
        (x, lx), (y, ly) = ops[i], ops[j]
        rest = [o for k, o in enumerate(ops) if k not in (i, j)]
        keep = set(out) | {label for _, ls in rest for label in ls}
        ops = [*rest, list(_contract(x, lx, y, ly, keep))]
    ((x, ls),) = ops
    x, ls = _sum_labels(x, ls, {label for label in ls if label not in out})
    return lax.transpose(x, [ls.index(label) for label in out])


def _pair_labels(lx, ly, keep):
    batch = [label for label in lx if label in ly and label in keep]
    contract = [label for label in lx if label in ly and label not in keep]
    free_x = [label for label in lx if label not in ly]
    free_y = [label for label in ly if label not in lx]
    return batch, contract, free_x, free_y


def _cheapest_pair(ops, out, sizes) -> tuple[int, int]:
    best, best_cost = (0, 1), None
    for i in range(len(ops)):
        for j in range(i + 1, len(ops)):
            rest = {label for k, (_, ls) in enumerate(ops) if k not in (i, j) for label in ls}
            batch, _, fx, fy = _pair_labels(ops[i][1], ops[j][1], set(out) | rest)
            cost = math.prod(sizes[label] for label in [*batch, *fx, *fy])
            if best_cost is None or cost < best_cost:
                best, best_cost = (i, j), cost
    return best


def _contract(x, lx, y, ly, keep) -> tuple[Any, list[str]]:
    x, lx = _sum_labels(x, lx, {label for label in lx if label not in ly and label not in keep})
    y, ly = _sum_labels(y, ly, {label for label in ly if label not in lx and label not in keep})
    batch, contract, free_x, free_y = _pair_labels(lx, ly, keep)
    out = dot_general(
        x,
        y,
        ([lx.index(label) for label in contract], [ly.index(label) for label in contract]),
        ([lx.index(label) for label in batch], [ly.index(label) for label in batch]),
    )
    return out, [*batch, *free_x, *free_y]
