"""NumPy's operators, methods and dispatch protocols on ``core.Tracer``: a traced
value behaves like a NumPy array, and ``np.tanh(x)`` traces like ``fnp.tanh(x)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from functrans.core import Tracer
from functrans.numpy import reductions
from functrans.numpy._dispatch import array_function, array_ufunc
from functrans.numpy.creation import astype
from functrans.numpy.elementwise import (
    absolute,
    add,
    clip,
    divmod,
    equal,
    floor_divide,
    greater,
    greater_equal,
    less,
    less_equal,
    logical_and,
    logical_not,
    logical_or,
    multiply,
    negative,
    not_equal,
    power,
    remainder,
    subtract,
    true_divide,
)
from functrans.numpy.indexing import getitem, take
from functrans.numpy.products import diagonal, dot, matmul, trace
from functrans.numpy.shapes import _flattened, ravel, reshape, squeeze, swapaxes, transpose


def _reversed(fun: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    return lambda self, other: fun(other, self)


def _setitem(self, index, value):
    raise TypeError(
        f"traced arrays are immutable: cannot assign to x[...] of a traced {self.aval.str_short()}"
        "; build the result with functrans.numpy.where or functrans.numpy.concatenate instead"
    )


def _shape_args(args: tuple[Any, ...]) -> Any:
    """``x.reshape(2, 3)`` and ``x.reshape((2, 3))`` alike."""
    if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
        return args[0]
    return args


def _method_transpose(self, *axes):
    return transpose(self, _shape_args(axes) if axes else None)


def _method_reshape(self, *shape, order="C", copy=None):
    return reshape(self, _shape_args(shape), order=order)


def install() -> None:
    """Attach the operators and methods to ``Tracer`` (once, from the package)."""
    methods = {
        "__add__": add,
        "__radd__": _reversed(add),
        "__sub__": subtract,
        "__rsub__": _reversed(subtract),
        "__mul__": multiply,
        "__rmul__": _reversed(multiply),
        "__truediv__": true_divide,
        "__rtruediv__": _reversed(true_divide),
        "__floordiv__": floor_divide,
        "__rfloordiv__": _reversed(floor_divide),
        "__mod__": remainder,
        "__rmod__": _reversed(remainder),
        "__divmod__": divmod,
        "__rdivmod__": _reversed(divmod),
        "__pow__": power,
        "__rpow__": _reversed(power),
        "__matmul__": matmul,
        "__rmatmul__": _reversed(matmul),
        "__neg__": negative,
        "__pos__": lambda self: self,
        "__abs__": absolute,
        "__lt__": less,
        "__le__": less_equal,
        "__gt__": greater,
        "__ge__": greater_equal,
        "__eq__": equal,
        "__ne__": not_equal,
        "__and__": logical_and,
        "__or__": logical_or,
        "__invert__": logical_not,
        "__getitem__": getitem,
        "__setitem__": _setitem,
        "__array_ufunc__": array_ufunc,
        "__array_function__": array_function,
        "T": property(lambda self: transpose(self)),
        "mT": property(lambda self: swapaxes(self, -1, -2)),
        "reshape": _method_reshape,
        "transpose": _method_transpose,
        "astype": lambda self, dtype: astype(self, dtype),
        "copy": lambda self, order="C": self,
        "ravel": lambda self, order="C": ravel(self, order),
        "flatten": lambda self, order="C": _flattened("flatten", self, order),
        "squeeze": lambda self, axis=None: squeeze(self, axis),
        "swapaxes": swapaxes,
        "dot": dot,
        "clip": clip,
        "take": take,
        "sum": reductions.sum,
        "mean": reductions.mean,
        "max": reductions.max,
        "min": reductions.min,
        "prod": reductions.prod,
        "var": reductions.var,
        "std": reductions.std,
        "argmax": reductions.argmax,
        "argmin": reductions.argmin,
        "any": reductions.any,
        "all": reductions.all,
        "diagonal": diagonal,
        "trace": trace,
    }
    for name, fun in methods.items():
        setattr(Tracer, name, fun)
