"""Array creation: ``array`` and ``asarray`` (which stack nested lists of traced
values), conversions, constants of a given shape, and ``linspace``.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from functrans import primitives as lax
from functrans.core import Tracer, get_aval
from functrans.numpy._dispatch import numpy_api, rename
from functrans.numpy._dtypes import convert, nan, true_divide_dtype
from functrans.numpy._operands import (
    array_from_nested,
    as_array,
    as_operand,
    broadcast_explicitly,
    broadcast_operands,
    promote,
    shape_of,
)
from functrans.numpy.elementwise import add, divide, floor, multiply, subtract
from functrans.numpy.shapes import concatenate, expand_dims, moveaxis, reshape


@numpy_api(np.array)
def array(object, dtype=None, *, copy=True, order="K", ndmin=0):
    """``numpy.array``. Under a transform, a (nested) list of traced values is stacked
    into one traced array and a traced value is converted to ``dtype``.

    >>> import functrans as ft, functrans.numpy as fnp
    >>> float(ft.grad(lambda x: fnp.sum(fnp.array([x, 2 * x, 3.0]) ** 2))(1.0))
    10.0
    """
    if type(object) in (list, tuple):
        x = array_from_nested("array", object, dtype)
    else:
        x = as_array("array", object, (0, "object"))
        x = x if dtype is None else convert(x, np.dtype(dtype))
    if shape_of(x) and isinstance(x, Tracer) and x.aval.weak_type:
        x = lax.convert_element_type(x, x.dtype)
    missing = ndmin - len(shape_of(x))
    return reshape(x, (1,) * missing + shape_of(x)) if missing > 0 else x


@numpy_api(np.asarray)
def asarray(a, dtype=None, order=None, *, copy=None):
    """``numpy.asarray``; a traced value converted to ``dtype`` if given."""
    if type(a) in (list, tuple):
        return array_from_nested("asarray", a, dtype)
    x = as_array("asarray", a, (0, "a"))
    return x if dtype is None else convert(x, np.dtype(dtype))


@numpy_api(np.astype)
def astype(x, dtype, /, *, copy=True):
    """``x`` converted to ``dtype``."""
    return convert(as_array("astype", x, (0, "x")), np.dtype(dtype))


def _concrete_arg(a: Any) -> Any:
    """A traced size or bound as a Python number (a ConcretizationTypeError under jit)."""
    if isinstance(a, (tuple, list)):
        return type(a)(_concrete_arg(x) for x in a)
    if isinstance(a, Tracer):
        return operator.index(a) if a.dtype.kind in "biu" else float(a)
    return a


def _plain(numpy_fun):
    """A creation function with no traced inputs: NumPy's, with our error messages."""

    def traced(*args, **kwargs):
        # Reached only when an argument is traced: it must have a concrete value.
        return numpy_fun(*[_concrete_arg(a) for a in args], **kwargs)

    rename(traced, numpy_fun.__name__)
    traced.__doc__ = f"``numpy.{numpy_fun.__name__}`` (shape arguments must be static)."
    return numpy_api(numpy_fun)(traced)


zeros = _plain(np.zeros)
ones = _plain(np.ones)
empty = _plain(np.empty)
eye = _plain(np.eye)
arange = _plain(np.arange)


def _like(name: str, numpy_fun, fill):
    def traced(a, dtype=None, order="K", subok=True, shape=None):
        aval = get_aval(as_operand(name, a, (0, "a")))
        shape = aval.shape if shape is None else shape
        return np.full(shape, fill, aval.dtype if dtype is None else dtype)

    rename(traced, name)
    traced.__doc__ = f"``numpy.{name}``: a NumPy constant of ``a``'s shape and dtype."
    return numpy_api(numpy_fun)(traced)


zeros_like = _like("zeros_like", np.zeros_like, 0)
ones_like = _like("ones_like", np.ones_like, 1)
empty_like = _like("empty_like", np.empty_like, 0)


@numpy_api(np.full)
def full(shape, fill_value, dtype=None, order="C"):
    """``numpy.full``; a traced ``fill_value`` is broadcast to ``shape``."""
    fill = as_array("full", fill_value, (1, "fill_value"))
    fill = fill if dtype is None else convert(fill, np.dtype(dtype))
    return broadcast_explicitly("full", fill, shape)


@numpy_api(np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None):
    """``numpy.full_like``; a traced ``fill_value`` is broadcast."""
    aval = get_aval(as_operand("full_like", a, (0, "a")))
    fill = as_array("full_like", fill_value, (1, "fill_value"))
    dtype = aval.dtype if dtype is None else np.dtype(dtype)
    shape = aval.shape if shape is None else shape
    return broadcast_explicitly("full_like", convert(fill, dtype), shape)


@numpy_api(np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """``numpy.linspace``; ``start`` and ``stop`` may be traced (``num`` is static)."""
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"linspace: number of samples, {num}, must be non-negative")
    start, stop = promote("linspace", start, stop, inexact=true_divide_dtype)
    dt = get_aval(start).dtype
    start, stop = broadcast_operands("linspace", start, stop)
    shape = shape_of(start) or shape_of(stop)
    div = num - 1 if endpoint else num
    delta = subtract(stop, start)
    iota = np.arange(num, dtype=dt).reshape((-1,) + (1,) * len(shape))
    step = divide(delta, div) if div > 0 else nan
    y = add(multiply(iota, step if div > 0 else delta), start)
    if endpoint and num > 1:
        y = concatenate([y[:-1], expand_dims(stop, 0)], axis=0)
    y = moveaxis(y, 0, axis)
    if dtype is not None:
        y = astype(floor(y) if np.dtype(dtype).kind in "iu" else y, dtype)
    return (y, step) if retstep else y


@numpy_api(np.copy)
def copy(a, order="K", subok=False):
    """``numpy.copy``: a traced value is immutable, so its copy is itself."""
    return as_array("copy", a, (0, "a"))
