"""Elementwise functions: NumPy's ufuncs with NEP 50 promotion and explicit
broadcasting, each binding one primitive (or a short composition of them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from functrans import primitives as lax
from functrans.core import get_aval
from functrans.numpy._dispatch import no_out, numpy_api, rename
from functrans.numpy._dtypes import as_bool, convert, inexact_dtype, true_divide_dtype
from functrans.numpy._operands import (
    apply_elementwise,
    as_operand,
    broadcast_operands,
    broadcast_shapes,
    promote,
    shape_of,
)


def _def_unary(numpy_fun, op, inexact=inexact_dtype, name: str | None = None):
    name = name or numpy_fun.__name__

    def traced(x):
        return apply_elementwise(name, op, x, inexact=inexact)

    rename(traced, name)
    traced.__doc__ = f"Elementwise ``numpy.{name}``, differentiable and batchable."
    return numpy_api(numpy_fun)(traced)


def _def_binary(numpy_fun, op, inexact=None, name: str | None = None):
    name = name or numpy_fun.__name__

    def traced(x1, x2):
        return apply_elementwise(name, op, x1, x2, inexact=inexact)

    rename(traced, name)
    traced.__doc__ = f"Elementwise ``numpy.{name}`` with broadcasting."
    return numpy_api(numpy_fun)(traced)


def _no_bool(name: str, op, hint: str):
    def apply(*args):
        if any(get_aval(a).dtype == np.bool_ for a in args):
            raise TypeError(f"{name}: not supported for booleans; use {hint} instead")
        return op(*args)

    return apply


exp = _def_unary(np.exp, lax.exp)
log = _def_unary(np.log, lax.log)
log1p = _def_unary(np.log1p, lax.log1p)
expm1 = _def_unary(np.expm1, lax.expm1)
tanh = _def_unary(np.tanh, lax.tanh)
sin = _def_unary(np.sin, lax.sin)
cos = _def_unary(np.cos, lax.cos)
tan = _def_unary(np.tan, lax.tan)
arctan = _def_unary(np.arctan, lax.atan)
sqrt = _def_unary(np.sqrt, lax.sqrt)
negative = _def_unary(np.negative, _no_bool("negative", lax.neg, "logical_not"), None)
abs = absolute = _def_unary(np.absolute, lax.abs, None, "absolute")
sign = _def_unary(np.sign, _no_bool("sign", lax.sign, "astype"), None)

add = _def_binary(np.add, lax.add)
subtract = _def_binary(np.subtract, _no_bool("subtract", lax.sub, "logical_xor"))
multiply = _def_binary(np.multiply, lax.mul)
divide = true_divide = _def_binary(np.true_divide, lax.div, true_divide_dtype, "divide")
maximum = _def_binary(np.maximum, lax.max)
minimum = _def_binary(np.minimum, lax.min)
equal = _def_binary(np.equal, lax.eq)
not_equal = _def_binary(np.not_equal, lax.ne)
less = _def_binary(np.less, lax.lt)
less_equal = _def_binary(np.less_equal, lax.le)
greater = _def_binary(np.greater, lax.gt)
greater_equal = _def_binary(np.greater_equal, lax.ge)
logical_and = _def_binary(np.logical_and, lambda x, y: lax.logical_and(as_bool(x), as_bool(y)))
logical_or = _def_binary(np.logical_or, lambda x, y: lax.logical_or(as_bool(x), as_bool(y)))


def _int8_for_bool(op):
    """NumPy has no boolean loop for floor division and remainders: booleans divide
    in int8 (``True // True`` is ``int8(1)``)."""

    def apply(x, y):
        if get_aval(x).dtype == np.bool_:
            x, y = convert(x, np.dtype(np.int8)), convert(y, np.dtype(np.int8))
        return op(x, y)

    return apply


floor_divide = _def_binary(np.floor_divide, _int8_for_bool(lax.floor_divide))
remainder = mod = _def_binary(np.remainder, _int8_for_bool(lax.remainder), name="remainder")
fmod = _def_binary(np.fmod, _int8_for_bool(lax.fmod))


@numpy_api(np.divmod)
def divmod(x1, x2, /):
    """``(floor_divide(x1, x2), remainder(x1, x2))``, with broadcasting.

    >>> divmod(np.array([7, -7]), 2)
    (array([ 3, -4]), array([1, 1]))
    """
    x1, x2 = broadcast_operands("divmod", *promote("divmod", x1, x2))
    return _int8_for_bool(lax.floor_divide)(x1, x2), _int8_for_bool(lax.remainder)(x1, x2)


def _def_float_test(numpy_fun, test, integer_value: bool):
    name = numpy_fun.__name__

    def traced(x):
        (x,) = promote(name, x)
        aval = get_aval(x)
        if aval.dtype.kind not in "fc":  # integers and booleans are always finite
            return np.full(aval.shape, integer_value)
        return test(x)

    rename(traced, name)
    traced.__doc__ = f"Elementwise ``numpy.{name}``; boolean result."
    return numpy_api(numpy_fun)(traced)


isnan = _def_float_test(np.isnan, lambda x: lax.ne(x, x), False)
isfinite = _def_float_test(np.isfinite, lax.is_finite, True)
isinf = _def_float_test(
    np.isinf, lambda x: lax.logical_not(lax.logical_or(lax.is_finite(x), lax.ne(x, x))), False
)


@numpy_api(np.logical_not)
def logical_not(x):
    """Elementwise ``numpy.logical_not``."""
    return lax.logical_not(as_bool(as_operand("logical_not", x, (0, "x"))))


@numpy_api(np.floor)
def floor(x):
    """Elementwise ``numpy.floor`` (integers are returned unchanged, as in NumPy 2)."""
    (x,) = promote("floor", x)
    return x if get_aval(x).dtype.kind in "biu" else lax.floor(x)


@numpy_api(np.square)
def square(x):
    """Elementwise ``x * x`` (booleans square in int8, as in NumPy)."""
    (x,) = promote("square", x)
    if get_aval(x).dtype == np.bool_:
        x = convert(x, np.dtype(np.int8))
    return lax.integer_pow(x, 2)


def _static_int(x: Any) -> int | None:
    """The value of a concrete integer scalar (the exponent of an ``integer_pow``)."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        return int(x)
    return None


@numpy_api(np.power)
def power(x1, x2):
    """Elementwise ``x1 ** x2``. A concrete integer exponent is an ``integer_pow``."""
    n = _static_int(x2)  # before promotion turns a Python int into a float
    x1, x2 = promote("power", x1, x2)
    if get_aval(x1).dtype == np.bool_:  # NumPy has no boolean power loop: it uses int8
        x1, x2 = (convert(v, np.dtype(np.int8)) for v in (x1, x2))
    kind = get_aval(x1).dtype.kind
    if n is not None:
        if n < 0 and kind in "iu":
            raise ValueError(
                f"power: integers to negative integer powers are not allowed (base of shape "
                f"{shape_of(x1)} and dtype {get_aval(x1).dtype}, exponent {n})"
            )
        return lax.integer_pow(x1, n)
    x1, x2 = broadcast_operands("power", x1, x2)
    return lax.pow(x1, x2)


@numpy_api(np.where)
def where(condition, x=None, y=None, /):
    """``x`` where ``condition`` else ``y``, with broadcasting (three-argument form)."""
    if x is None or y is None:
        raise TypeError(
            "where: functrans supports only the three-argument form where(condition, x, y); "
            "the one-argument form has a data-dependent shape"
        )
    condition = as_operand("where", condition, (0, "condition"))
    if get_aval(condition).dtype != np.bool_:
        condition = not_equal(condition, 0)
    x, y = promote("where", x, y)
    condition, x, y = broadcast_operands("where", condition, x, y)
    return lax.select(condition, x, y)


@numpy_api(np.clip)
def clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None):
    """``a`` limited to ``[a_min, a_max]`` (either bound may be ``None``)."""
    no_out("clip", out=out)
    a_min = min if a_min is None else a_min
    a_max = max if a_max is None else a_max
    named = [(0, "a"), (1, "a_min"), (2, "a_max")]
    a, a_min, a_max = (
        None if x is None else as_operand("clip", x, what)
        for x, what in zip((a, a_min, a_max), named, strict=True)
    )
    # Checked here so that an error names clip and every operand, not maximum.
    broadcast_shapes("clip", *[shape_of(x) for x in (a, a_min, a_max) if x is not None])
    if a_min is not None:
        a = maximum(a, a_min)
    if a_max is not None:
        a = minimum(a, a_max)
    return as_operand("clip", a, (0, "a"))
