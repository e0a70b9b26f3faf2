"""Indexing of traced arrays: ``x[index]`` lowered to strict primitives.

Basic indexing (ints, slices of any step, ``None``, ``...``) is static: one ``rev``
for the negative-step axes, one ``slice`` and one ``reshape`` (or, when only new
axes appear, a ``broadcast_in_dim``). Advanced indexing (integer arrays, concrete
boolean masks, traced integer indices) follows NumPy: the indexed axes move to the
front, one ``gather`` picks the elements, and the broadcast index axes end up where
NumPy puts them (in place of the indexed axes when those are adjacent in the index,
otherwise in front). ``take`` and ``take_along_axis`` build such an index.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from functrans import primitives as lax
from functrans.core import Tracer, get_aval
from functrans.numpy._dispatch import no_out, numpy_api
from functrans.numpy._operands import as_array, normalize_axis, shape_of
from functrans.numpy.creation import asarray

_NEW, _SLICE, _INT, _ARRAY = "new", "slice", "int", "array"

_VALID = (
    "only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and integer "
    "arrays are valid indices"
)


def getitem(x: Any, index: Any) -> Any:
    """``x[index]`` with NumPy semantics, for a tracer (or array) ``x``.

    >>> import functrans as ft
    >>> print(ft.make_jaxpr(lambda x: x[::-1, 1])(np.ones((3, 4))))
    { lambda ; a:f64[3,4]. let
        b:f64[3,4] = rev[dimensions=(0,)] a
        c:f64[3,1] = slice[limit_indices=(3, 2) start_indices=(0, 1) strides=None] b
        d:f64[3] = reshape[new_sizes=(3,)] c
      in (d,) }
    """
    shape = get_aval(x).shape
    items = _expand_ellipsis(shape, _classify(shape, index))
    advanced = any(kind == _ARRAY for kind, _ in items)
    if advanced:  # ints then count as 0-d index arrays (NumPy's rule for mixed indices)
        items = [(_ARRAY, np.asarray(v)) if kind == _INT else (kind, v) for kind, v in items]
    x, sizes = _apply_slices(x, shape, items)
    if not advanced:
        return _finish_basic(x, items, sizes)
    return _apply_advanced(x, shape, items, sizes)


# --- classifying the index ----------------------------------------------------------------


def _classify(shape: tuple[int, ...], index: Any) -> list[tuple[str, Any]]:
    if not isinstance(index, tuple):
        index = (index,)
    items: list[tuple[str, Any]] = []
    for i in index:
        if i is None:
            items.append((_NEW, None))
        elif i is Ellipsis:
            if any(kind == "..." for kind, _ in items):
                raise IndexError("an index can only have a single ellipsis ('...')")
            items.append(("...", None))
        elif isinstance(i, slice):
            items.append((_SLICE, i))
        elif isinstance(i, Tracer):
            items.append((_ARRAY, _check_traced_index(i, shape)))
        elif isinstance(i, (bool, np.bool_)):
            raise IndexError(f"boolean scalar indices are not supported (indexing shape {shape})")
        elif isinstance(i, (int, np.integer)):
            items.append((_INT, int(i)))
        elif isinstance(i, (list, tuple, np.ndarray)):
            items.extend(_classify_array(i, shape))
        else:
            raise IndexError(f"{_VALID}; got {type(i).__name__} (indexing shape {shape})")
    return items


def _check_traced_index(i: Tracer, shape: tuple[int, ...]) -> Tracer:
    kind = i.dtype.kind
    if kind == "b":
        raise TypeError(
            f"indexing with a traced boolean mask {i.aval.str_short()} (array of shape {shape}) "
            "is not supported: the result's shape would depend on the mask's values. Use "
            "functrans.numpy.where(mask, x, 0) or a concrete (NumPy) mask instead."
        )
    if kind not in "iu":
        raise IndexError(f"{_VALID}; got a traced {i.aval.str_short()} (indexing shape {shape})")
    return i


def _classify_array(i: Any, shape: tuple[int, ...]) -> list[tuple[str, Any]]:
    if not isinstance(i, np.ndarray) and _contains_tracer(i):
        return [(_ARRAY, _check_traced_index(asarray(i), shape))]
    try:
        arr = np.asarray(i)
    except ValueError:
        raise IndexError(f"{_VALID}; got a ragged sequence (indexing shape {shape})") from None
    if arr.dtype.kind == "b":
        # A concrete mask: its True positions are known now, so the shape is static.
        return [(_ARRAY, k) for k in np.nonzero(arr)] if arr.ndim else _bool_scalar(shape)
    if arr.dtype.kind in "iu":
        return [(_INT, int(arr))] if arr.ndim == 0 else [(_ARRAY, arr)]
    if arr.size == 0:
        return [(_ARRAY, arr.astype(np.intp))]
    raise IndexError(f"{_VALID}; got an array of dtype {arr.dtype} (indexing shape {shape})")


def _bool_scalar(shape):
    raise IndexError(f"boolean scalar indices are not supported (indexing shape {shape})")


def _contains_tracer(seq: Any) -> bool:
    return any(
        isinstance(v, Tracer) or (isinstance(v, (list, tuple)) and _contains_tracer(v)) for v in seq
    )


def _expand_ellipsis(shape: tuple[int, ...], items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Replace ``...`` (or the implicit trailing one) by full slices; check the count.
    A concrete boolean mask was split into one index array per axis it covers."""
    consumed = sum(kind not in (_NEW, "...") for kind, _ in items)
    if consumed > len(shape):
        raise IndexError(
            f"too many indices for array: array of shape {shape} is {len(shape)}-dimensional, "
            f"but {consumed} were indexed"
        )
    fill = [(_SLICE, slice(None))] * (len(shape) - consumed)
    for pos, (kind, _) in enumerate(items):
        if kind == "...":
            return items[:pos] + fill + items[pos + 1 :]
    return items + fill


# --- basic indexing -----------------------------------------------------------------------


def _slice_bounds(s: slice, n: int) -> tuple[int, int, int, bool]:
    """``(start, limit, stride, reversed)`` selecting ``s`` from an axis of size ``n``:
    a negative step reverses the axis first, then takes a positive-step slice."""
    start, stop, step = s.indices(n)
    m = len(range(start, stop, step))
    if m == 0:
        return 0, 0, 1, False
    if step > 0:
        return start, start + (m - 1) * step + 1, step, False
    lo = n - 1 - start
    return lo, lo + (m - 1) * -step + 1, -step, True


def _apply_slices(x: Any, shape: tuple[int, ...], items) -> tuple[Any, list[int]]:
    """Apply every slice and (basic) int of ``items``; returns the result and, per
    consumed axis, its new size."""
    starts, limits, strides, flips = [], [], [], []
    axis = 0
    for kind, value in items:
        if kind == _NEW:
            continue
        n = shape[axis]
        if kind == _SLICE:
            lo, hi, st, flip = _slice_bounds(value, n)
        elif kind == _INT:
            lo, hi, st, flip = _normalize_int(value, axis, shape), None, 1, False
            hi = lo + 1
        else:
            lo, hi, st, flip = 0, n, 1, False
        starts.append(lo)
        limits.append(hi)
        strides.append(st)
        if flip:
            flips.append(axis)
        axis += 1
    if flips:
        x = lax.rev(x, flips)
    if starts != [0] * len(shape) or limits != list(shape) or set(strides) - {1}:
        x = lax.slice(x, starts, limits, None if set(strides) <= {1} else strides)
    return x, list(get_aval(x).shape)


def _normalize_int(i: int, axis: int, shape: tuple[int, ...]) -> int:
    n = shape[axis]
    if not -n <= i < n:
        raise IndexError(
            f"index {i} is out of bounds for axis {axis} with size {n} "
            f"(indexing an array of shape {shape})"
        )
    return i % n


def _finish_basic(x: Any, items, sizes: list[int]) -> Any:
    """Drop the int-indexed axes and insert the new ones."""
    out_shape, kept, it = [], [], iter(enumerate(sizes))
    for kind, _ in items:
        if kind == _NEW:
            out_shape.append(1)
            continue
        axis, n = next(it)
        if kind == _SLICE:
            kept.append(len(out_shape))
            out_shape.append(n)
    if len(kept) == len(sizes):  # only new axes: a broadcast, which later ones compose with
        if len(out_shape) == len(sizes):
            return x
        return lax.broadcast_in_dim(x, out_shape, kept)
    return lax.reshape(x, out_shape)


# --- advanced indexing --------------------------------------------------------------------


def _apply_advanced(x: Any, shape: tuple[int, ...], items, sizes: list[int]) -> Any:
    consumed = [(kind, value) for kind, value in items if kind != _NEW]
    adv_axes = [axis for axis, (kind, _) in enumerate(consumed) if kind == _ARRAY]
    indices = [_normalize_indices(consumed[axis][1], axis, shape) for axis in adv_axes]
    index_shape = _broadcast_index_shapes(indices, shape)
    indices = [_broadcast_index(i, index_shape) for i in indices]
    other_axes = [axis for axis in range(len(sizes)) if axis not in adv_axes]
    x = lax.transpose(x, (*adv_axes, *other_axes))
    out = lax.gather(x, indices)  # index_shape + sizes of the other axes

    # Where NumPy puts the index dimensions: in place of adjacent advanced indices,
    # otherwise in front. New axes between advanced indices break adjacency.
    positions = [p for p, (kind, _) in enumerate(items) if kind == _ARRAY]
    adjacent = positions == list(range(positions[0], positions[-1] + 1))
    nb = len(index_shape)
    before = sum(kind == _SLICE for kind, _ in items[: positions[0]]) if adjacent else 0
    n_other = len(other_axes)
    perm = [*range(nb, nb + before), *range(nb), *range(nb + before, nb + n_other)]
    out = lax.transpose(out, perm)

    # Insert the new axes.
    if not any(kind == _NEW for kind, _ in items):
        return out
    out_sizes = get_aval(out).shape
    final, kept, it, placed = [], [], iter(range(len(out_sizes))), False
    if not adjacent:
        for _ in range(nb):
            d = next(it)
            kept.append(len(final))
            final.append(out_sizes[d])
        placed = True
    for kind, _ in items:
        if kind == _NEW:
            final.append(1)
        elif kind == _SLICE or not placed:
            count = 1 if kind == _SLICE else nb
            for _ in range(count):
                d = next(it)
                kept.append(len(final))
                final.append(out_sizes[d])
            placed = placed or kind == _ARRAY
    return lax.broadcast_in_dim(out, final, kept)


def _normalize_indices(i: Any, axis: int, shape: tuple[int, ...]) -> Any:
    """Negative indices count from the end. Concrete ones are bounds-checked now."""
    n = shape[axis]
    if not isinstance(i, Tracer):
        i = np.asarray(i, dtype=np.intp) if i.dtype.kind == "b" else np.asarray(i)
        bad = (i < -n) | (i >= n)
        if bad.any():
            raise IndexError(
                f"index {int(i[bad].flat[0])} is out of bounds for axis {axis} with size {n} "
                f"(indexing an array of shape {shape})"
            )
        return np.where(i < 0, i + n, i).astype(np.intp, copy=False)
    if i.dtype.kind == "u":
        return i
    zero, size = i.dtype.type(0), i.dtype.type(n)
    return lax.select(lax.lt(i, zero), lax.add(i, size), i)


def _broadcast_index_shapes(indices, shape) -> tuple[int, ...]:
    shapes = [get_aval(i).shape for i in indices]
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise IndexError(
            "shape mismatch: indexing arrays could not be broadcast together with shapes "
            f"{' '.join(map(str, shapes))} (indexing an array of shape {shape})"
        ) from None


def _broadcast_index(i: Any, shape: tuple[int, ...]) -> Any:
    own = get_aval(i).shape
    if own == shape:
        return i
    if not isinstance(i, Tracer):
        return np.broadcast_to(i, shape)
    return lax.broadcast_in_dim(i, shape, tuple(range(len(shape) - len(own), len(shape))))


# --- take ---------------------------------------------------------------------------------


@numpy_api(np.take)
def take(a, indices, axis=None, out=None, mode=None):
    """``numpy.take``: elements of ``a`` at integer ``indices`` along ``axis``
    (flattened if ``None``). ``indices`` may be traced."""
    no_out("take", out=out, mode=mode)
    x = as_array("take", a, (0, "a"))
    if axis is None:
        return getitem(lax.reshape(x, (math.prod(shape_of(x)),)), indices)
    ax = normalize_axis("take", axis, len(shape_of(x)))
    return getitem(x, (slice(None),) * ax + (_index_array(indices),))


def _index_array(i):
    return i if isinstance(i, (Tracer, int, np.integer)) else np.asarray(i)


@numpy_api(np.take_along_axis)
def take_along_axis(arr, indices, axis):
    """``numpy.take_along_axis``: ``arr`` indexed along ``axis`` by ``indices`` of the
    same rank (other axes broadcast)."""
    x = as_array("take_along_axis", arr, (0, "arr"))
    idx = as_array("take_along_axis", indices, (1, "indices"))
    shape, ishape = shape_of(x), shape_of(idx)
    if axis is None:
        x, shape, axis = lax.reshape(x, (math.prod(shape),)), (math.prod(shape),), 0
    if len(ishape) != len(shape):
        raise ValueError(
            f"take_along_axis: indices of shape {ishape} and arr of shape {shape} must have the "
            "same number of dimensions"
        )
    ax = normalize_axis("take_along_axis", axis, len(shape))
    pairs = enumerate(zip(shape, ishape, strict=True))
    if any(d != ax and n != k and 1 not in (n, k) for d, (n, k) in pairs):
        raise ValueError(
            f"take_along_axis: indices of shape {ishape} do not broadcast against arr of shape "
            f"{shape} outside axis {ax}"
        )
    index = []
    for d, n in enumerate(shape):
        if d == ax:
            index.append(idx)
        else:
            iota_shape = [1] * len(shape)
            iota_shape[d] = n
            index.append(np.arange(n).reshape(iota_shape))
    return getitem(x, tuple(index))
