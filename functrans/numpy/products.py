"""Products: ``matmul``, ``dot``, ``outer``, ``tensordot``, ``einsum``,
``diagonal`` and ``trace``, lowered to the strict ``matmul`` primitive.

A contraction (``dot_general``) is a transpose that groups each operand's axes into
(batch, free, contracted), a reshape to a rank-2 or rank-3 operand, one ``matmul``
and a reshape back. ``einsum`` takes diagonals with ``gather``, sums labels that
only one operand carries with ``reduce_sum`` and then contracts operands pairwise,
smallest intermediate first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from functrans import primitives as lax
from functrans.numpy._dispatch import no_out, numpy_api
from functrans.numpy._operands import (
    as_array,
    broadcast_to_shape,
    format_shapes,
    normalize_axis,
    promote,
    promote_arrays,
    shape_of,
)
from functrans.numpy.elementwise import multiply
from functrans.numpy.reductions import sum
from functrans.numpy.shapes import moveaxis


def _matmul_error(name: str, a: Any, b: Any) -> ValueError:
    return ValueError(f"{name}: incompatible shapes {format_shapes(a, b)}")


@numpy_api(np.matmul)
def matmul(x1, x2, /):
    """Matrix product with NumPy's rules for 1-D operands and broadcast batch axes.

    Lowered to the strict ``matmul`` primitive: ``(..., n, k) @ (k, m)`` folds into one
    2-D product; other batch axes are broadcast with ``broadcast_in_dim``.

    >>> import functrans as ft
    >>> print(ft.make_jaxpr(lambda x, w: x @ w)(np.ones((4, 5, 3)), np.ones((3, 2))))
    { lambda ; a:f64[4,5,3] b:f64[3,2]. let
        c:f64[20,3] = reshape[new_sizes=(20, 3)] a
        d:f64[20,2] = matmul c b
        e:f64[4,5,2] = reshape[new_sizes=(4, 5, 2)] d
      in (e,) }
    """
    a, b = promote("matmul", x1, x2)
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        raise ValueError(
            f"matmul: incompatible shapes {sa} and {sb} (operands must be at least 1-D)"
        )
    k_b = sb[0] if len(sb) == 1 else sb[-2]
    if sa[-1] != k_b:
        raise _matmul_error("matmul", a, b)
    if len(sa) <= 2 and len(sb) <= 2:
        return lax.matmul(a, b)
    if len(sa) == 1:  # (k,) @ (..., k, m): one matrix-vector product over (... * m, k)
        bt = lax.transpose(b, (*range(len(sb) - 2), len(sb) - 1, len(sb) - 2))
        out = lax.matmul(lax.reshape(bt, (math.prod(sb[:-2]) * sb[-1], sa[0])), a)
        return lax.reshape(out, (*sb[:-2], sb[-1]))
    if len(sb) == 1:  # (..., n, k) @ (k,)
        out = lax.matmul(lax.reshape(a, (math.prod(sa[:-1]), sa[-1])), b)
        return lax.reshape(out, sa[:-1])
    try:
        batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError:
        raise _matmul_error("matmul", a, b) from None
    n, k, m = sa[-2], sa[-1], sb[-1]
    if math.prod(sb[:-2]) == 1:  # (..., n, k) @ (k, m): one GEMM on (... * n, k)
        out = lax.matmul(lax.reshape(a, (math.prod(sa[:-1]), k)), lax.reshape(b, (k, m)))
        return lax.reshape(out, (*batch, n, m))
    a = broadcast_to_shape(a, (*batch, n, k)) if sa != (*batch, n, k) else a
    b = broadcast_to_shape(b, (*batch, k, m)) if sb != (*batch, k, m) else b
    return lax.matmul(a, b)


@numpy_api(np.dot)
def dot(a, b, out=None):
    """``numpy.dot``: a product with a scalar, the inner product of vectors, or a sum
    over the last axis of ``a`` and the second-to-last of ``b``."""
    no_out("dot", out=out)
    a, b = promote_arrays("dot", a, b)
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return multiply(a, b)
    k_b = sb[0] if len(sb) == 1 else sb[-2]
    if sa[-1] != k_b:
        raise _matmul_error("dot", a, b)
    if len(sa) <= 2 and len(sb) <= 2:
        return lax.matmul(a, b)
    cb = 0 if len(sb) == 1 else len(sb) - 2
    return dot_general(a, b, ((len(sa) - 1,), (cb,)))


@numpy_api(np.outer)
def outer(a, b, out=None):
    """Outer product of ``a`` and ``b`` (both flattened)."""
    no_out("outer", out=out)
    a, b = promote_arrays("outer", a, b)
    a = lax.reshape(a, (math.prod(shape_of(a)),))
    b = lax.reshape(b, (math.prod(shape_of(b)),))
    return dot_general(a, b, ((), ()))


@numpy_api(np.tensordot)
def tensordot(a, b, axes=2):
    """``numpy.tensordot``: contract the last ``axes`` axes of ``a`` with the first of
    ``b``, or the axes listed in ``axes = (a_axes, b_axes)``."""
    a, b = promote_arrays("tensordot", a, b)
    sa, sb = shape_of(a), shape_of(b)
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > len(sa) or n > len(sb):
            raise ValueError(f"tensordot: axes={n} does not fit shapes {format_shapes(a, b)}")
        ca, cb = list(range(len(sa) - n, len(sa))), list(range(n))
    else:
        ca, cb = ([x] if isinstance(x, (int, np.integer)) else list(x) for x in axes)
        ca = [normalize_axis("tensordot", i, len(sa)) for i in ca]
        cb = [normalize_axis("tensordot", i, len(sb)) for i in cb]
    if len(ca) != len(cb) or any(sa[i] != sb[j] for i, j in zip(ca, cb, strict=True)):
        raise ValueError(
            f"tensordot: shape-mismatch for sum: shapes {format_shapes(a, b)}, axes {ca} and {cb}"
        )
    return dot_general(a, b, (ca, cb))


@numpy_api(np.einsum)
def einsum(subscripts, /, *operands, out=None, dtype=None, optimize=False, **kwargs):
    """``numpy.einsum`` with explicit (``'ij,jk->ik'``) or implicit (``'ij,jk'``)
    output, ``...`` and repeated labels (diagonals, traces). Contracts pairwise
    through ``matmul``, smallest intermediate first (``optimize`` is ignored).

    >>> float(einsum("ii", np.eye(3))), einsum("ij,j->i", np.eye(2), np.array([1.0, 2.0]))
    (3.0, array([1., 2.]))
    """
    no_out("einsum", out=out)
    if not isinstance(subscripts, str):
        raise TypeError(
            "einsum: only the subscripts-string form einsum('ij,jk->ik', a, b) is supported"
        )
    if kwargs:
        raise TypeError(f"einsum: unsupported arguments {sorted(kwargs)}")
    xs = promote_arrays("einsum", *operands, dtype=dtype)
    return _einsum_operands(subscripts, xs)


@numpy_api(np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    """The diagonal of ``a`` over ``axis1`` and ``axis2``, appended as the last axis."""
    return _diagonal("diagonal", a, offset, axis1, axis2)


def _diagonal(name: str, a: Any, offset: Any, axis1: Any, axis2: Any) -> Any:
    x = as_array(name, a, (0, "a"))
    shape = shape_of(x)
    nd = len(shape)
    if nd < 2:
        raise ValueError(f"{name}: array of shape {shape} must be at least 2-D")
    i, j = normalize_axis(name, axis1, nd), normalize_axis(name, axis2, nd)
    if i == j:
        raise ValueError(f"{name}: axis1 and axis2 cannot be the same")
    rest = [d for d in range(nd) if d not in (i, j)]
    x = lax.transpose(x, (i, j, *rest))
    r0, c0 = (0, offset) if offset >= 0 else (-offset, 0)
    n = max(0, min(shape[i] - r0, shape[j] - c0))
    rows, cols = np.arange(r0, r0 + n), np.arange(c0, c0 + n)
    out = lax.gather(x, [rows, cols])
    return moveaxis(out, 0, -1)


@numpy_api(np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """Sum along a diagonal of ``a``."""
    no_out("trace", out=out)
    return sum(_diagonal("trace", a, offset, axis1, axis2), axis=-1, dtype=dtype)


# --- contractions -------------------------------------------------------------------------


def _broadcast_dims(x: Any, shape: tuple[int, ...], dims: Sequence[int]) -> Any:
    if shape_of(x) == shape and tuple(dims) == tuple(range(len(shape))):
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
    xs, ys = shape_of(x), shape_of(y)
    fx = [d for d in range(len(xs)) if d not in cx and d not in bx]
    fy = [d for d in range(len(ys)) if d not in cy and d not in by]
    batch_sizes = [xs[d] for d in bx]
    fx_sizes, fy_sizes = [xs[d] for d in fx], [ys[d] for d in fy]
    out_shape = (*batch_sizes, *fx_sizes, *fy_sizes)
    nb, nfx = len(bx), len(fx)
    x = lax.transpose(x, (*bx, *fx, *cx))
    y = lax.transpose(y, (*by, *cy, *fy))
    if not cx:  # nothing to sum: an outer product over the free axes, per batch entry
        x = _broadcast_dims(x, out_shape, range(nb + nfx))
        y = _broadcast_dims(y, out_shape, (*range(nb), *range(nb + nfx, len(out_shape))))
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


# --- the einsum planner -------------------------------------------------------------------

_ELLIPSIS_LABELS = [chr(0x2460 + i) for i in range(64)]  # private labels for '...' axes


def _einsum_error(message: str, shapes: Sequence[tuple[int, ...]]) -> ValueError:
    return ValueError(f"einsum: {message} (operand shapes {', '.join(map(str, shapes))})")


def _parse(subscripts: str, shapes: Sequence[tuple[int, ...]]) -> tuple[list[list[str]], list[str]]:
    """Labels of each operand's axes and of the output, with '...' expanded."""
    spec = subscripts.replace(" ", "")
    inputs, arrow, output = spec.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(shapes):
        raise _einsum_error(
            f"subscripts {subscripts!r} name {len(terms)} operands, got {len(shapes)}", shapes
        )
    for term in [*terms, output]:
        letters = term.replace("...", "")
        if not all(ch.isalpha() and ch.isascii() for ch in letters) or "." in letters:
            raise _einsum_error(f"invalid subscripts {subscripts!r}", shapes)
    n_ellipsis = []
    for term, shape in zip(terms, shapes, strict=True):
        explicit = len(term.replace("...", ""))
        n = len(shape) - explicit if "..." in term else 0
        if n < 0 or ("..." not in term and explicit != len(shape)):
            raise _einsum_error(
                f"subscripts {term!r} do not match an operand of shape {shape}", shapes
            )
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
            raise _einsum_error(f"output {output!r} has no '...' for the broadcast axes", shapes)
        else:
            out = list(output)
    else:
        counts: dict[str, int] = {}
        for ls in labels:
            for label in ls:
                counts[label] = counts.get(label, 0) + 1
        out = ell + sorted(k for k, v in counts.items() if v == 1 and k not in ell)
    if len(set(out)) != len(out):
        raise _einsum_error(f"output subscripts {output!r} repeat a label", shapes)
    every = {label for ls in labels for label in ls}
    missing = [label for label in out if label not in every]
    if missing:
        raise _einsum_error(f"output label {missing[0]!r} appears in no operand", shapes)
    return labels, out


def _label_sizes(labels, shapes) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for ls, shape in zip(labels, shapes, strict=True):
        own: dict[str, int] = {}
        for label, n in zip(ls, shape, strict=True):
            if own.setdefault(label, n) != n:
                raise _einsum_error(
                    f"repeated label {label!r} has sizes {own[label]} and {n}", shapes
                )
            if sizes.get(label, 1) == 1:
                sizes[label] = n
            elif n not in (1, sizes[label]):
                name = label if label.isascii() else "..."
                raise _einsum_error(f"label {name!r} has sizes {sizes[label]} and {n}", shapes)
    return sizes


def _take_diagonals(x: Any, labels: list[str]) -> tuple[Any, list[str]]:
    """Take the diagonal over each label that is repeated within one operand."""
    for label in dict.fromkeys(labels):
        positions = [i for i, lab in enumerate(labels) if lab == label]
        if len(positions) < 2:
            continue
        others = [i for i, lab in enumerate(labels) if lab != label]
        x = lax.transpose(x, (*positions, *others))
        iota = np.arange(shape_of(x)[0])
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
    shape = shape_of(x)
    keep = [i for i, label in enumerate(labels) if not (shape[i] == 1 and sizes[label] != 1)]
    if len(keep) == len(labels):
        return x, labels
    return lax.reshape(x, [shape[i] for i in keep]), [labels[i] for i in keep]


def _einsum_operands(subscripts: str, operands: Sequence[Any]) -> Any:
    """``numpy.einsum`` for operands of one dtype (explicit or implicit output)."""
    shapes = [shape_of(x) for x in operands]
    labels, out = _parse(subscripts, shapes)
    sizes = _label_sizes(labels, shapes)
    ops = []
    for x, ls in zip(operands, labels, strict=True):
        x, ls = _take_diagonals(x, ls)
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
