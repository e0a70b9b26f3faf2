"""Dtypes: NumPy's dtype names, NEP 50 promotion and conversion of operands.

Python scalars and weakly typed tracers are *weak*: they adopt the dtype of the
arrays they meet (``x * 2`` keeps a float32 ``x`` float32), as NumPy 2 does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from functrans import primitives as lax
from functrans.core import PYTHON_SCALARS, Tracer, get_aval

float16, float32, float64 = np.float16, np.float32, np.float64
int8, int16, int32, int64 = np.int8, np.int16, np.int32, np.int64
uint8, bool_, complex64, complex128 = np.uint8, np.bool_, np.complex64, np.complex128
ndarray, dtype, newaxis, pi, e, inf, nan = np.ndarray, np.dtype, None, np.pi, np.e, np.inf, np.nan

NUMERIC_KINDS = "biufc"
_WEAK_REPRESENTATIVE = {"b": False, "i": 0, "u": 0, "f": 0.0, "c": 0j}


def result_dtype(*args: Any) -> tuple[np.dtype, bool]:
    """NEP 50 promotion: Python scalars and weakly typed tracers adopt the dtype of
    the other operands; returns the dtype and whether the result is weakly typed."""
    operands = []
    weak = True
    for x in args:
        if isinstance(x, PYTHON_SCALARS):
            operands.append(x)
            continue
        aval = get_aval(x)
        if aval.weak_type:
            operands.append(_WEAK_REPRESENTATIVE[aval.dtype.kind])
        else:
            operands.append(aval.dtype)
            weak = False
    return np.result_type(*operands), weak


def convert(x: Any, dtype: np.dtype, weak: bool = False) -> Any:
    """``x`` (a tracer, a NumPy value or a Python scalar) as ``dtype``; a weak result
    stays a Python scalar or a weakly typed tracer."""
    if isinstance(x, PYTHON_SCALARS):
        return x if weak else dtype.type(x)
    if isinstance(x, Tracer):
        aval = x.aval
        if aval.dtype == dtype and (weak or not aval.weak_type):
            return x
        # Weakly typed operands with a weakly typed result (a loop index times 0.5)
        # stay weak: the result still adopts the dtype of the arrays it meets.
        return lax.convert_element_type(x, dtype, weak_type=weak and aval.weak_type)
    if x.dtype != dtype:
        return np.asarray(x).astype(dtype) if isinstance(x, np.ndarray) else dtype.type(x)
    return x


def inexact_dtype(dtype: np.dtype) -> np.dtype:
    """The floating dtype NumPy computes transcendental functions of ``dtype`` in."""
    return dtype if dtype.kind in "fc" else np.result_type(dtype, np.float16)


def true_divide_dtype(dtype: np.dtype) -> np.dtype:
    """``true_divide`` of integers or booleans is always float64 in NumPy."""
    return np.dtype(np.float64)


def as_bool(x: Any) -> Any:
    """``x`` as a boolean array: ``x != 0`` unless it is boolean already."""
    return x if get_aval(x).dtype == np.bool_ else lax.ne(x, get_aval(x).dtype.type(0))
