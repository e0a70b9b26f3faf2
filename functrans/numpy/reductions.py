"""Reductions: sums, products, extrema, means and variances, arg-extrema and truth
tests over ``axis`` (None, an int or a tuple), with NumPy's accumulator dtypes.
``keepdims`` is a ``reshape`` afterwards; ``mean``, ``var`` and ``std`` are
compositions with no rule of their own.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from functrans import primitives as lax
from functrans.core import get_aval
from functrans.numpy._dispatch import no_out, numpy_api, rename
from functrans.numpy._dtypes import as_bool, convert
from functrans.numpy._operands import as_array, normalize_axes, normalize_axis, shape_of


def _keepdims(y: Any, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Any:
    if not keepdims:
        return y
    return lax.reshape(y, tuple(1 if i in axes else n for i, n in enumerate(shape)))


def _accumulator_dtype(dt: np.dtype) -> np.dtype:
    """NumPy sums and multiplies small integers and booleans in the default int."""
    if dt.kind == "b" or (dt.kind == "i" and dt.itemsize < 8):
        return np.dtype(np.int64)
    if dt.kind == "u" and dt.itemsize < 8:
        return np.dtype(np.uint64)
    return dt


def _reduce_prep(name: str, a: Any, axis: Any) -> tuple[Any, tuple[int, ...]]:
    x = as_array(name, a, (0, "a"))
    return x, normalize_axes(name, axis, len(shape_of(x)))


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return math.prod(shape[i] for i in axes)


def _def_accumulate(numpy_fun, reduce):
    name = numpy_fun.__name__

    def traced(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
        no_out(name, out=out, initial=initial, where=where)
        x, axes = _reduce_prep(name, a, axis)
        dt = _accumulator_dtype(get_aval(x).dtype) if dtype is None else np.dtype(dtype)
        x = convert(x, dt, weak=True)
        y = reduce(x, axes) if axes else x
        return _keepdims(y, shape_of(x), axes, keepdims)

    rename(traced, name)
    traced.__doc__ = (
        f"``numpy.{name}`` over ``axis`` (None, an int or a tuple), with ``keepdims`` and "
        "``dtype``; small integers and booleans accumulate in int64, as in NumPy."
    )
    return numpy_api(numpy_fun)(traced)


sum = _def_accumulate(np.sum, lax.reduce_sum)
prod = _def_accumulate(np.prod, lax.reduce_prod)


def _def_extremum(numpy_fun, alias, reduce, ufunc_name):
    name = numpy_fun.__name__

    def traced(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        no_out(name, out=out, initial=initial, where=where)
        x, axes = _reduce_prep(name, a, axis)
        shape = shape_of(x)
        if builtins.any(shape[i] == 0 for i in axes):
            raise ValueError(
                f"{name}: zero-size array to reduction operation {ufunc_name} which has no "
                f"identity (shape {shape}, axis {axis})"
            )
        y = reduce(x, axes) if axes else x
        return _keepdims(y, shape, axes, keepdims)

    rename(traced, name)
    traced.__doc__ = f"``numpy.{name}`` over ``axis`` (None, an int or a tuple), ``keepdims``."
    return numpy_api(numpy_fun, alias)(traced)


max = amax = _def_extremum(np.max, np.amax, lax.reduce_max, "maximum")
min = amin = _def_extremum(np.min, np.amin, lax.reduce_min, "minimum")


def _mean_dtypes(x: Any, dtype: Any) -> tuple[np.dtype, np.dtype]:
    """(result dtype, dtype to accumulate in) of a mean, as NumPy chooses them."""
    if dtype is not None:
        dt = np.dtype(dtype)
    else:
        dt = get_aval(x).dtype
        dt = dt if dt.kind in "fc" else np.dtype(np.float64)
    acc = np.dtype(np.float32) if dt == np.float16 else dt
    return dt, acc if acc.kind in "fc" else np.dtype(np.float64)


@numpy_api(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """``numpy.mean``: integers average in float64, float32 stays float32."""
    no_out("mean", out=out, where=where)
    x, axes = _reduce_prep("mean", a, axis)
    dt, acc = _mean_dtypes(x, dtype)
    shape = shape_of(x)
    total = lax.reduce_sum(convert(x, acc), axes) if axes else convert(x, acc)
    y = lax.div(total, acc.type(_count(shape, axes)))
    return _keepdims(convert(y, dt), shape, axes, keepdims)


@numpy_api(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None):
    """``numpy.var``: mean squared deviation, divided by ``n - ddof``."""
    no_out("var", out=out, where=where)
    return _var("var", a, axis, dtype, ddof, keepdims)


def _var(name: str, a: Any, axis: Any, dtype: Any, ddof: Any, keepdims: bool) -> Any:
    x, axes = _reduce_prep(name, a, axis)
    dt, acc = _mean_dtypes(x, dtype)
    shape = shape_of(x)
    x = convert(x, acc)
    n = _count(shape, axes)
    total = lax.reduce_sum(x, axes) if axes else x
    centre = lax.div(total, acc.type(n))
    kept = tuple(i for i in range(len(shape)) if i not in axes)
    dev = lax.sub(x, lax.broadcast_in_dim(centre, shape, kept) if axes else centre)
    sq = lax.mul(dev, dev)
    y = lax.div(lax.reduce_sum(sq, axes) if axes else sq, acc.type(builtins.max(n - ddof, 0)))
    return _keepdims(convert(y, dt), shape, axes, keepdims)


@numpy_api(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None):
    """``numpy.std``: the square root of ``var``."""
    no_out("std", out=out, where=where)
    return lax.sqrt(_var("std", a, axis, dtype, ddof, keepdims))


def _def_argext(numpy_fun, op):
    name = numpy_fun.__name__

    def traced(a, axis=None, out=None, *, keepdims=False):
        no_out(name, out=out)
        x = as_array(name, a, (0, "a"))
        shape = shape_of(x)
        if axis is None:
            flat = lax.reshape(x, (math.prod(shape),))
            if not get_aval(flat).shape[0]:
                raise ValueError(
                    f"{name}: attempt to get {name} of an empty sequence (shape {shape})"
                )
            y = op(flat, 0, np.int64)
            return lax.reshape(y, (1,) * len(shape)) if keepdims else y
        ax = normalize_axis(name, axis, len(shape))
        if shape[ax] == 0:
            raise ValueError(f"{name}: attempt to get {name} of an empty sequence (shape {shape})")
        return _keepdims(op(x, ax, np.int64), shape, (ax,), keepdims)

    rename(traced, name)
    traced.__doc__ = f"``numpy.{name}``: int64 indices; ``axis=None`` flattens."
    return numpy_api(numpy_fun)(traced)


argmax = _def_argext(np.argmax, lax.argmax)
argmin = _def_argext(np.argmin, lax.argmin)


def _def_truth(numpy_fun, any_true: bool):
    name = numpy_fun.__name__

    def traced(a, axis=None, out=None, keepdims=False, *, where=None):
        no_out(name, out=out, where=where)
        x, axes = _reduce_prep(name, a, axis)
        truth = as_bool(x)
        if not axes:
            return truth
        hits = truth if any_true else lax.logical_not(truth)
        count = lax.reduce_sum(lax.convert_element_type(hits, np.int64), axes)
        y = lax.gt(count, np.int64(0)) if any_true else lax.eq(count, np.int64(0))
        return _keepdims(y, shape_of(x), axes, keepdims)

    rename(traced, name)
    traced.__doc__ = f"``numpy.{name}`` over ``axis`` (None, an int or a tuple); boolean."
    return numpy_api(numpy_fun)(traced)


any = _def_truth(np.any, True)
all = _def_truth(np.all, False)
