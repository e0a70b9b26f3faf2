"""Shapes: reshaping, transposing, moving, adding and removing axes, broadcasting,
joining and splitting arrays; each a ``reshape``, ``transpose``, ``broadcast_in_dim``,
``concatenate``, ``slice`` or ``rev``.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from functrans import primitives as lax
from functrans.core import Tracer
from functrans.errors import ConcretizationTypeError
from functrans.numpy._dispatch import no_out, numpy_api
from functrans.numpy._operands import (
    as_array,
    as_operand,
    broadcast_explicitly,
    normalize_axes,
    normalize_axis,
    promote_arrays,
    shape_of,
)


@numpy_api(np.shape)
def shape(a):
    """The shape of ``a`` (static, also for traced values)."""
    return shape_of(as_operand("shape", a, (0, "a")))


@numpy_api(np.ndim)
def ndim(a):
    """The number of axes of ``a``."""
    return len(shape_of(as_operand("ndim", a, (0, "a"))))


@numpy_api(np.size)
def size(a, axis=None):
    """The number of elements of ``a`` (along ``axis`` if given)."""
    s = shape_of(as_operand("size", a, (0, "a")))
    return math.prod(s) if axis is None else s[normalize_axis("size", axis, len(s))]


def _resolve_shape(name: str, old: tuple[int, ...], new: Any) -> tuple[int, ...]:
    new = (new,) if isinstance(new, (int, np.integer)) else tuple(new)
    try:
        new = tuple(operator.index(n) for n in new)
    except ConcretizationTypeError:
        raise  # a traced size: the error explains static_argnums
    except TypeError:
        raise TypeError(f"{name}: the new shape must be a tuple of ints, got {new}") from None
    size = math.prod(old)
    unknown = [i for i, n in enumerate(new) if n == -1]
    known = math.prod(n for n in new if n != -1)
    bad = len(unknown) > 1 or any(n < -1 for n in new)
    if unknown and not bad:
        if known == 0 or size % known:
            bad = True
        else:
            new = tuple(size // known if n == -1 else n for n in new)
    if bad or math.prod(new) != size:
        raise ValueError(f"{name}: cannot reshape array of shape {old} into shape {new}")
    return new


@numpy_api(np.reshape)
def reshape(a, /, shape, order="C", *, copy=None):
    """``numpy.reshape``; one entry of ``shape`` may be -1; ``order`` 'C' or 'F'.
    (``copy`` is accepted and has no effect: traced values are immutable.)

    >>> reshape(np.arange(6), (3, -1), order="F")
    array([[0, 3],
           [1, 4],
           [2, 5]])
    """
    x = as_array("reshape", a, (0, "a"))
    new = _resolve_shape("reshape", shape_of(x), shape)
    _check_order("reshape", order, ("A",))
    if order == "F":
        return transpose(lax.reshape(transpose(x), new[::-1]))
    return lax.reshape(x, new)


def _check_order(name: str, order: Any, layout_orders: tuple[str, ...]) -> None:
    """Only 'C' and 'F' are defined for traced values: the ``layout_orders`` ('A', 'K')
    follow the memory layout of a NumPy array, which a traced value does not have."""
    if order in ("C", "F"):
        return
    if order in layout_orders:
        raise ValueError(
            f"{name}: order={order!r} follows the memory layout of the array, which a traced "
            "value does not have; use order='C' or order='F'"
        )
    valid = ", ".join(repr(o) for o in ("C", "F", *layout_orders))
    raise ValueError(f"{name}: order must be one of {valid}, got {order!r}")


@numpy_api(np.ravel)
def ravel(a, order="C"):
    """``a`` flattened to one axis (``order`` 'C' or 'F')."""
    return _flattened("ravel", a, order)


def _flattened(name: str, a: Any, order: str) -> Any:
    x = as_array(name, a, (0, "a"))
    _check_order(name, order, ("A", "K"))
    return reshape(x, -1, order=order)


@numpy_api(np.transpose)
def transpose(a, axes=None):
    """``numpy.transpose``; ``axes`` may hold negative entries."""
    x = as_array("transpose", a, (0, "a"))
    nd = len(shape_of(x))
    if axes is None:
        return lax.transpose(x, tuple(reversed(range(nd))))
    perm = [normalize_axis("transpose", ax, nd) for ax in axes]
    if sorted(perm) != list(range(nd)):
        raise ValueError(f"transpose: axes {tuple(axes)} don't match array of shape {shape_of(x)}")
    return lax.transpose(x, perm)


@numpy_api(np.swapaxes)
def swapaxes(a, axis1, axis2):
    """``a`` with two axes interchanged."""
    x = as_array("swapaxes", a, (0, "a"))
    nd = len(shape_of(x))
    i, j = normalize_axis("swapaxes", axis1, nd), normalize_axis("swapaxes", axis2, nd)
    perm = list(range(nd))
    perm[i], perm[j] = j, i
    return lax.transpose(x, perm)


@numpy_api(np.moveaxis)
def moveaxis(a, source, destination):
    """``a`` with axes ``source`` moved to positions ``destination``."""
    x = as_array("moveaxis", a, (0, "a"))
    nd = len(shape_of(x))
    source = [source] if isinstance(source, (int, np.integer)) else list(source)
    destination = [destination] if isinstance(destination, (int, np.integer)) else list(destination)
    if len(source) != len(destination):
        raise ValueError(
            "moveaxis: `source` and `destination` arguments must have the same number of "
            f"elements, got {source} and {destination}"
        )
    src = [normalize_axis("moveaxis", s, nd) for s in source]
    dst = [normalize_axis("moveaxis", d, nd) for d in destination]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError(f"moveaxis: repeated axis in source {source} or destination {destination}")
    order = [n for n in range(nd) if n not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return lax.transpose(x, order)


def _expand(x: Any, axes: tuple[int, ...]) -> Any:
    """Insert size-1 axes at ``axes`` (of the result) with a ``broadcast_in_dim``."""
    if not axes:
        return x
    old = shape_of(x)
    nd = len(old) + len(axes)
    kept = [i for i in range(nd) if i not in axes]
    new = [1] * nd
    for i, n in zip(kept, old, strict=True):
        new[i] = n
    return lax.broadcast_in_dim(x, new, kept)


@numpy_api(np.expand_dims)
def expand_dims(a, axis):
    """``a`` with new size-1 axes at ``axis`` (an int or a tuple)."""
    x = as_array("expand_dims", a, (0, "a"))
    n_new = len(axis) if isinstance(axis, (tuple, list)) else 1
    return _expand(x, normalize_axes("expand_dims", axis, len(shape_of(x)) + n_new))


@numpy_api(np.squeeze)
def squeeze(a, axis=None):
    """``a`` without size-1 axes (all of them, or those in ``axis``)."""
    x = as_array("squeeze", a, (0, "a"))
    shape = shape_of(x)
    if axis is None:
        axes = tuple(i for i, n in enumerate(shape) if n == 1)
    else:
        axes = normalize_axes("squeeze", axis, len(shape))
        wrong = [i for i in axes if shape[i] != 1]
        if wrong:
            raise ValueError(
                "squeeze: cannot select an axis to squeeze out which has size not equal to one "
                f"(axis {wrong[0]} of shape {shape})"
            )
    return lax.reshape(x, tuple(n for i, n in enumerate(shape) if i not in axes))


@numpy_api(np.broadcast_to)
def broadcast_to(array, shape, subok=False):
    """``array`` broadcast to ``shape`` with an explicit ``broadcast_in_dim``."""
    x = as_array("broadcast_to", array, (0, "array"))
    return broadcast_explicitly("broadcast_to", x, shape)


def _sequence(name: str, arrays: Any) -> list[Any]:
    if isinstance(arrays, Tracer):
        return list(arrays)
    if isinstance(arrays, np.ndarray) or type(arrays) not in (list, tuple):
        raise TypeError(f"{name}: expected a sequence of arrays, got {type(arrays).__name__}")
    return list(arrays)


@numpy_api(np.concatenate)
def concatenate(arrays, /, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """Join arrays along ``axis`` (``None``: flatten them first)."""
    no_out("concatenate", out=out)
    xs = promote_arrays("concatenate", *_sequence("concatenate", arrays), dtype=dtype)
    return _concatenate("concatenate", xs, axis)


def _concatenate(name: str, xs: list[Any], axis: Any) -> Any:
    if not xs:
        raise ValueError(f"{name}: need at least one array to concatenate")
    if axis is None:
        xs = [lax.reshape(x, (math.prod(shape_of(x)),)) for x in xs]
        axis = 0
    shapes = [shape_of(x) for x in xs]
    if not shapes[0]:
        raise ValueError(f"{name}: zero-dimensional arrays cannot be concatenated")
    ax = normalize_axis(name, axis, len(shapes[0]))
    if any(
        len(s) != len(shapes[0]) or s[:ax] + s[ax + 1 :] != shapes[0][:ax] + shapes[0][ax + 1 :]
        for s in shapes
    ):
        listed = ", ".join(map(str, shapes))
        raise ValueError(f"{name}: incompatible shapes {listed} along axis {ax}")
    return xs[0] if len(xs) == 1 else lax.concatenate(xs, ax)


@numpy_api(np.stack)
def stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """Join arrays of one shape along a new axis."""
    no_out("stack", out=out)
    xs = promote_arrays("stack", *_sequence("stack", arrays), dtype=dtype)
    if not xs:
        raise ValueError("stack: need at least one array to stack")
    shapes = [shape_of(x) for x in xs]
    if len(set(shapes)) > 1:
        raise ValueError(
            f"stack: all input arrays must have the same shape, got {', '.join(map(str, shapes))}"
        )
    ax = normalize_axis("stack", axis, len(shapes[0]) + 1)
    xs = [_expand(x, (ax,)) for x in xs]
    return xs[0] if len(xs) == 1 else lax.concatenate(xs, ax)


@numpy_api(np.vstack)
def vstack(tup):
    """Stack arrays along the first axis (1-D arrays become rows)."""
    xs = promote_arrays("vstack", *_sequence("vstack", tup))
    return _concatenate("vstack", [atleast_2d(x) for x in xs], 0)


@numpy_api(np.hstack)
def hstack(tup):
    """Stack arrays along the second axis (the first for 1-D arrays)."""
    xs = [atleast_1d(x) for x in promote_arrays("hstack", *_sequence("hstack", tup))]
    return _concatenate("hstack", xs, 0 if xs and len(shape_of(xs[0])) == 1 else 1)


@numpy_api(np.atleast_1d)
def atleast_1d(x):
    """``x`` with at least one axis."""
    x = as_array("atleast_1d", x, (0, "x"))
    return x if shape_of(x) else lax.reshape(x, (1,))


@numpy_api(np.atleast_2d)
def atleast_2d(x):
    """``x`` with at least two axes (new ones in front)."""
    x = as_array("atleast_2d", x, (0, "x"))
    s = shape_of(x)
    return x if len(s) >= 2 else lax.reshape(x, (1,) * (2 - len(s)) + s)


@numpy_api(np.split)
def split(ary, indices_or_sections, axis=0):
    """``numpy.split``: into equal sections, or at the given indices; a list."""
    x = as_array("split", ary, (0, "ary"))
    shape = shape_of(x)
    ax = normalize_axis("split", axis, len(shape))
    n = shape[ax]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0 or n % sections:
            raise ValueError(
                f"split: array split does not result in an equal division (axis {ax} of "
                f"shape {shape} into {sections} sections)"
            )
        bounds = [(i * (n // sections), (i + 1) * (n // sections)) for i in range(sections)]
    else:
        points = [0, *(operator.index(i) for i in indices_or_sections), n]
        bounds = []
        for lo, hi in zip(points[:-1], points[1:], strict=True):
            lo, hi, _ = slice(lo, hi).indices(n)
            bounds.append((lo, max(lo, hi)))
    out = []
    for lo, hi in bounds:
        start, limit = [0] * len(shape), list(shape)
        start[ax], limit[ax] = lo, hi
        out.append(x if (lo, hi) == (0, n) else lax.slice(x, start, limit))
    return out


@numpy_api(np.flip)
def flip(m, axis=None):
    """``m`` reversed along ``axis`` (all axes if ``None``)."""
    x = as_array("flip", m, (0, "m"))
    axes = normalize_axes("flip", axis, len(shape_of(x)))
    return lax.rev(x, axes) if axes else x
