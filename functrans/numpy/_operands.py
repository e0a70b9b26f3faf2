"""Operands: arguments as tracers or arrays, promoted, broadcast explicitly, and
axes normalised, so that the primitives see one dtype, one shape and sorted axes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from functrans import primitives as lax
from functrans.core import PYTHON_SCALARS, Tracer, get_aval
from functrans.numpy._dispatch import check_array_arg, has_tracer
from functrans.numpy._dtypes import convert, float64, result_dtype


def as_operand(name: str, x: Any, what: Any = 0) -> Any:
    """A tracer, a NumPy array or scalar, or a Python scalar (kept weakly typed)."""
    if isinstance(x, Tracer):
        return x
    if isinstance(x, (np.ndarray, np.generic)) or type(x) in PYTHON_SCALARS:
        check_array_arg(name, what, x)
        return x
    if type(x) in (list, tuple) and has_tracer(x):
        return array_from_nested(name, x, None)
    check_array_arg(name, what, x)
    return np.asarray(x)


def as_array(name: str, x: Any, what: Any = 0) -> Any:
    """A tracer or a NumPy array: Python scalars become strongly typed arrays, as in
    NumPy's non-ufunc functions (``dot``, ``concatenate``...)."""
    x = as_operand(name, x, what)
    return np.asarray(x) if isinstance(x, (np.generic, *PYTHON_SCALARS)) else x


def promote(name: str, *args: Any, inexact: Callable[[np.dtype], np.dtype] | None = None):
    """Operands converted to their NEP 50 result dtype (then to ``inexact(dtype)``)."""
    n = len(args)
    args = [as_operand(name, x, (i, f"x{i + 1}" if n > 1 else "x")) for i, x in enumerate(args)]
    dtype, weak = result_dtype(*args)
    if inexact is not None and dtype.kind not in "fc":
        dtype = inexact(dtype)  # n / 2 of Python ints is a Python float: still weak
    return [convert(x, dtype, weak) for x in args]


def promote_arrays(name: str, *args: Any, dtype: Any = None) -> list[Any]:
    """Operands as arrays of one dtype, promoted as NumPy's non-ufunc functions do
    (every operand strongly typed)."""
    arrays = [as_array(name, x, i) for i, x in enumerate(args)]
    if dtype is None:
        dtype = np.result_type(*[get_aval(a).dtype for a in arrays]) if arrays else float64
    return [convert(a, np.dtype(dtype)) for a in arrays]


def shape_of(x: Any) -> tuple[int, ...]:
    if isinstance(x, Tracer):
        return x.shape
    return () if isinstance(x, PYTHON_SCALARS) else np.shape(x)


def format_shapes(*xs: Any) -> str:
    return " and ".join(str(shape_of(x)) for x in xs)


def broadcast_shapes(name: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{name}: incompatible shapes {' and '.join(str(tuple(s)) for s in shapes)}"
        ) from None


def broadcast_to_shape(x: Any, shape: tuple[int, ...]) -> Any:
    x_shape = shape_of(x)
    if x_shape == shape or not x_shape:
        return x  # rank-0 operands broadcast inside elementwise primitives
    offset = len(shape) - len(x_shape)
    return lax.broadcast_in_dim(x, shape, tuple(range(offset, len(shape))))


def broadcast_explicitly(name: str, x: Any, shape: Any) -> Any:
    """``x`` broadcast to ``shape`` by one ``broadcast_in_dim`` (NumPy's trailing-axes
    rule); a ``ValueError`` naming ``name`` if it does not fit."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    old = shape_of(x)
    offset = len(shape) - len(old)
    if offset < 0 or any(n not in (1, shape[offset + i]) for i, n in enumerate(old)):
        raise ValueError(f"{name}: cannot broadcast an array of shape {old} to {shape}")
    if old == shape:
        return x
    return lax.broadcast_in_dim(x, shape, tuple(range(offset, len(shape))))


def broadcast_operands(name: str, *args: Any) -> list[Any]:
    shape = broadcast_shapes(name, *[shape_of(x) for x in args])
    return [broadcast_to_shape(x, shape) for x in args]


def apply_elementwise(name: str, op: Callable[..., Any], *args: Any, inexact=None) -> Any:
    agreeing = _agreeing_operands(args, inexact)
    if agreeing is not None:
        return op(*agreeing)
    args = promote(name, *args, inexact=inexact)
    return op(*broadcast_operands(name, *args))


def _agreeing_operands(args: tuple[Any, ...], inexact) -> list[Any] | None:
    """The common case inside a model, without the general promotion and broadcasting:
    strongly typed arrays and tracers of one shape and one inexact dtype, and Python
    numbers (which NEP 50 converts to that dtype). ``None`` if anything else is there."""
    reference = None
    for x in args:
        if type(x) is np.ndarray or isinstance(x, Tracer):
            reference = x
            break
    if reference is None:
        return None
    dtype, shape = reference.dtype, reference.shape
    if dtype.kind not in "fc":
        return None
    out = []
    for x in args:
        kind = type(x)
        if kind is float or kind is int:
            out.append(dtype.type(x))
        elif (
            (kind is np.ndarray or isinstance(x, Tracer))
            and x.dtype == dtype
            and x.shape == shape
            and not (kind is not np.ndarray and x.weak_type)
        ):
            out.append(x)
        else:
            return None
    return out


def normalize_axis(name: str, axis: Any, ndim: int) -> int:
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name}: axis must be an integer, got {type(axis).__name__}") from None
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(
            f"{name}: axis {axis} is out of bounds for an array of dimension {ndim}"
        )
    return axis % ndim


def normalize_axes(name: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` (``None``, an int or a tuple of ints) as a sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = [normalize_axis(name, a, ndim) for a in axis]
        if len(set(axes)) != len(axes):
            raise ValueError(f"{name}: repeated axis in {tuple(axis)}")
        return tuple(sorted(axes))
    return (normalize_axis(name, axis, ndim),)


def nested_aval(name: str, obj: Any) -> tuple[tuple[int, ...], list[np.dtype]]:
    """Shape and leaf dtypes of a nested list of arrays, tracers and numbers, as
    ``numpy.array`` would build it (Python scalars count as their default dtype)."""
    if type(obj) in (list, tuple):
        if not obj:
            return (0,), [np.dtype(np.float64)]
        parts = [nested_aval(name, o) for o in obj]
        shapes = {s for s, _ in parts}
        if len(shapes) > 1:
            raise TypeError(
                f"{name}: the nested sequence is ragged: its elements have shapes "
                f"{', '.join(str(s) for s, _ in parts)}"
            )
        return (len(obj), *parts[0][0]), [d for _, ds in parts for d in ds]
    if isinstance(obj, Tracer):
        return obj.shape, [obj.dtype]
    check_array_arg(name, (0, "object"), obj)
    arr = np.asarray(obj)
    return arr.shape, [arr.dtype]


def array_from_nested(name: str, obj: Any, dtype: Any) -> Any:
    """Stack a nested list containing tracers into one traced array."""
    shape, dtypes = nested_aval(name, obj)
    dtype = np.result_type(*dtypes) if dtype is None else np.dtype(dtype)

    def build(o):
        if type(o) not in (list, tuple):
            return convert(o if isinstance(o, Tracer) else np.asarray(o), dtype)
        if not has_tracer(o):
            return np.array(o, dtype=dtype)
        parts = [build(p) for p in o]
        parts = [
            lax.broadcast_in_dim(p, (1, *shape_of(p)), range(1, len(shape_of(p)) + 1))
            for p in parts
        ]
        return lax.concatenate(parts, 0)

    return build(obj)
