"""``functrans.numpy``: the NumPy API, composed from functrans primitives.

Outside any transform every function here is a thin layer over the NumPy function
of the same name and returns exactly what NumPy returns. When an argument is a
tracer, the function canonicalises its arguments (NEP 50 dtype promotion, explicit
``broadcast_in_dim`` for implicit broadcasting, normalised axes) and binds
primitives, so the transforms see a small, strict set of operations.

Tracers get NumPy's operators and methods from this module, and NumPy's dispatch
protocols (``__array_ufunc__``, ``__array_function__``) route plain NumPy calls on
tracers here, so ``np.tanh(x)`` traces exactly like ``fnp.tanh(x)``.

>>> import functrans as ft, functrans.numpy as fnp
>>> float(ft.grad(lambda x: fnp.sum(fnp.tanh(x) ** 2))(np.zeros(3)).sum())
0.0
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans import primitives as lax
from functrans.core import ShapedArray, Tracer, get_aval, new_trace
from functrans.transforms.staging import DynamicJaxprTrace

float16, float32, float64 = np.float16, np.float32, np.float64
int8, int16, int32, int64 = np.int8, np.int16, np.int32, np.int64
uint8, bool_, complex64, complex128 = np.uint8, np.bool_, np.complex64, np.complex128
ndarray, dtype, newaxis, pi, e, inf, nan = np.ndarray, np.dtype, None, np.pi, np.e, np.inf, np.nan

_PYTHON_SCALARS = (bool, int, float, complex)
_WEAK_REPRESENTATIVE = {"b": False, "i": 0, "u": 0, "f": 0.0, "c": 0j}

# ---------------------------------------------------------------------------
# The eager fast path and the error path
# ---------------------------------------------------------------------------


def _has_tracer(args: Sequence[Any]) -> bool:
    for a in args:
        if isinstance(a, Tracer):
            return True
        if type(a) in (list, tuple):
            for b in a:
                if isinstance(b, Tracer) or type(b) in (list, tuple) and _has_tracer(b):
                    return True
    return False


def _numpy_api(numpy_fun: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a traced implementation its eager twin: ``numpy_fun`` when no argument is a
    tracer. Eager failures are explained by re-running the traced implementation on
    abstract values, so eager and traced errors say the same thing."""

    def decorate(traced: Callable[..., Any]) -> Callable[..., Any]:
        name = traced.__name__

        @functools.wraps(traced)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _has_tracer(args) or (kwargs and _has_tracer(list(kwargs.values()))):
                return traced(*args, **kwargs)
            try:
                return numpy_fun(*args, **kwargs)
            except (ValueError, TypeError, IndexError, np.exceptions.AxisError) as err:
                _explain_eager_failure(name, traced, args, kwargs, err)
                raise

        wrapper.__wrapped_numpy__ = numpy_fun  # type: ignore[attr-defined]
        _NUMPY_TO_FNP[numpy_fun] = wrapper
        return wrapper

    return decorate


_NUMPY_TO_FNP: dict[Any, Callable[..., Any]] = {}


def _explain_eager_failure(name: str, traced, args, kwargs, err: Exception) -> None:
    for i, a in enumerate(args):
        _check_array_arg(name, i, a)
    try:
        with new_trace(DynamicJaxprTrace, name) as trace:
            abstract = [
                trace.new_arg(get_aval(np.asarray(a)))
                if isinstance(a, (np.ndarray, np.generic, list))
                else a
                for a in args
            ]
            traced(*abstract, **kwargs)
    except (ValueError, TypeError, IndexError) as ours:
        raise ours from None
    except Exception:  # our path failed differently: NumPy's own message is best
        pass


def _check_array_arg(name: str, position: int, x: Any) -> None:
    if isinstance(x, (np.ndarray, np.generic, Tracer, *_PYTHON_SCALARS)) or x is None:
        return
    if isinstance(x, (list, tuple)):
        try:
            arr = np.asarray(x)
        except ValueError:
            raise TypeError(
                f"{name}: argument {position} is a ragged nested sequence; "
                "all rows must have the same length"
            ) from None
        if arr.dtype.kind in "biufc":
            return
    if isinstance(x, (str, bytes)) or not isinstance(x, (list, tuple)):
        raise TypeError(
            f"{name}: argument {position} must be an array, a number or a list of numbers, "
            f"not {type(x).__name__} ({x!r:.40})"
        )


# ---------------------------------------------------------------------------
# Canonicalisation: arrays, dtypes, broadcasting, axes
# ---------------------------------------------------------------------------


def _aval_of(name: str, x: Any, position: int = 0) -> ShapedArray:
    try:
        return get_aval(x)
    except TypeError:
        _check_array_arg(name, position, x)
        return get_aval(np.asarray(x))


def _as_operand(name: str, x: Any, position: int = 0) -> Any:
    """A tracer, a NumPy array or scalar, or a Python scalar (kept weakly typed)."""
    if isinstance(x, (Tracer, np.ndarray, np.generic, *_PYTHON_SCALARS)):
        return x
    _check_array_arg(name, position, x)
    return np.asarray(x)


def result_dtype(*args: Any) -> tuple[np.dtype, bool]:
    """NEP 50 promotion: Python scalars and weakly typed tracers adopt the dtype of
    the other operands; returns the dtype and whether the result is weakly typed."""
    operands = []
    weak = True
    for x in args:
        if isinstance(x, _PYTHON_SCALARS):
            operands.append(x)
            continue
        aval = get_aval(x)
        if aval.weak_type:
            operands.append(_WEAK_REPRESENTATIVE[aval.dtype.kind])
        else:
            operands.append(aval.dtype)
            weak = False
    return np.result_type(*operands), weak


def _convert(x: Any, dtype: np.dtype, weak: bool) -> Any:
    if isinstance(x, _PYTHON_SCALARS):
        return x if weak else dtype.type(x)
    if isinstance(x, Tracer):
        aval = x.aval
        if aval.dtype == dtype and (weak or not aval.weak_type):
            return x
        return lax.convert_element_type(x, dtype)
    if x.dtype != dtype:
        return np.asarray(x).astype(dtype) if isinstance(x, np.ndarray) else dtype.type(x)
    return x


def _promote(name: str, *args: Any, inexact: bool = False) -> list[Any]:
    args = [_as_operand(name, x, i) for i, x in enumerate(args)]
    dtype, weak = result_dtype(*args)
    if inexact and dtype.kind not in "fc":
        dtype = _inexact(dtype)
    return [_convert(x, dtype, weak) for x in args]


def _inexact(dtype: np.dtype) -> np.dtype:
    """The floating dtype NumPy computes transcendental functions of ``dtype`` in."""
    return dtype if dtype.kind in "fc" else np.result_type(dtype, np.float16)


def _shape(x: Any) -> tuple[int, ...]:
    return () if isinstance(x, _PYTHON_SCALARS) else np.shape(x) if not isinstance(x, Tracer) else x.shape


def broadcast_shapes(name: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{name}: incompatible shapes {' and '.join(str(tuple(s)) for s in shapes)}"
        ) from None


def _broadcast_to_shape(x: Any, shape: tuple[int, ...]) -> Any:
    x_shape = _shape(x)
    if x_shape == shape or not x_shape:
        return x  # rank-0 operands broadcast inside elementwise primitives
    offset = len(shape) - len(x_shape)
    return lax.broadcast_in_dim(x, shape, tuple(range(offset, len(shape))))


def _broadcast(name: str, *args: Any) -> list[Any]:
    shape = broadcast_shapes(name, *[_shape(x) for x in args])
    return [_broadcast_to_shape(x, shape) for x in args]


def _elementwise(name: str, op: Callable[..., Any], *args: Any, inexact: bool = False) -> Any:
    args = _promote(name, *args, inexact=inexact)
    return op(*_broadcast(name, *args))


def normalize_axis(name: str, axis: int, ndim: int) -> int:
    axis = int(axis)
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


def _as_tracer_or_array(name: str, x: Any) -> Any:
    x = _as_operand(name, x)
    return np.asarray(x) if isinstance(x, _PYTHON_SCALARS) else x


# ---------------------------------------------------------------------------
# Elementwise functions
# ---------------------------------------------------------------------------


def _def_unary(numpy_fun, op, inexact: bool = True):
    name = numpy_fun.__name__

    def traced(x):
        return _elementwise(name, op, x, inexact=inexact)

    traced.__name__ = name
    traced.__qualname__ = name
    traced.__doc__ = f"Elementwise ``numpy.{name}``, differentiable and batchable."
    return _numpy_api(numpy_fun)(traced)


def _def_binary(numpy_fun, op, inexact: bool = False):
    name = numpy_fun.__name__

    def traced(x1, x2):
        return _elementwise(name, op, x1, x2, inexact=inexact)

    traced.__name__ = name
    traced.__qualname__ = name
    traced.__doc__ = f"Elementwise ``numpy.{name}`` with broadcasting."
    return _numpy_api(numpy_fun)(traced)


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
negative = _def_unary(np.negative, lax.neg, inexact=False)
abs = absolute = _def_unary(np.absolute, lax.abs, inexact=False)
sign = _def_unary(np.sign, lax.sign, inexact=False)
floor = _def_unary(np.floor, lax.floor)

add = _def_binary(np.add, lax.add)
subtract = _def_binary(np.subtract, lax.sub)
multiply = _def_binary(np.multiply, lax.mul)
divide = true_divide = _def_binary(np.true_divide, lax.div, inexact=True)
maximum = _def_binary(np.maximum, lax.max)
minimum = _def_binary(np.minimum, lax.min)
equal = _def_binary(np.equal, lax.eq)
not_equal = _def_binary(np.not_equal, lax.ne)
less = _def_binary(np.less, lax.lt)
less_equal = _def_binary(np.less_equal, lax.le)
greater = _def_binary(np.greater, lax.gt)
greater_equal = _def_binary(np.greater_equal, lax.ge)
logical_and = _def_binary(np.logical_and, lambda x, y: lax.logical_and(_bool(x), _bool(y)))
logical_or = _def_binary(np.logical_or, lambda x, y: lax.logical_or(_bool(x), _bool(y)))


def _bool(x: Any) -> Any:
    return x if get_aval(x).dtype == np.bool_ else lax.ne(x, get_aval(x).dtype.type(0))


@_numpy_api(np.logical_not)
def logical_not(x):
    """Elementwise ``numpy.logical_not``."""
    return lax.logical_not(_bool(_as_operand("logical_not", x)))


@_numpy_api(np.square)
def square(x):
    """Elementwise ``x * x``."""
    (x,) = _promote("square", x)
    return lax.integer_pow(x, 2)


@_numpy_api(np.power)
def power(x1, x2):
    """Elementwise ``x1 ** x2``. A Python-int exponent is an ``integer_pow``."""
    if isinstance(x2, int) and not isinstance(x2, bool) and isinstance(x1, Tracer):
        (x1,) = _promote("power", x1)
        return lax.integer_pow(x1, x2)
    return _elementwise("power", lax.pow, x1, x2)


@_numpy_api(np.where)
def where(condition, x=None, y=None):
    """``x`` where ``condition`` else ``y``, with broadcasting (three-argument form)."""
    if x is None or y is None:
        raise TypeError("where: functrans supports only the three-argument form where(c, x, y)")
    condition = _as_operand("where", condition)
    if get_aval(condition).dtype != np.bool_:
        condition = not_equal(condition, 0)
    x, y = _promote("where", x, y)
    condition, x, y = _broadcast("where", condition, x, y)
    return lax.select(condition, x, y)


@_numpy_api(np.clip)
def clip(a, a_min=None, a_max=None):
    """``a`` limited to ``[a_min, a_max]`` (either bound may be ``None``)."""
    if a_min is not None:
        a = maximum(a, a_min)
    if a_max is not None:
        a = minimum(a, a_max)
    return a


# ---------------------------------------------------------------------------
# Tracer operators, methods and NumPy protocols
# ---------------------------------------------------------------------------


def _reversed(fun: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    return lambda self, other: fun(other, self)


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    fnp_fun = _NUMPY_TO_FNP.get(ufunc)
    if method != "__call__" or fnp_fun is None or "out" in kwargs:
        raise TypeError(
            f"numpy.{ufunc.__name__}{'' if method == '__call__' else '.' + method} is not "
            "supported on traced values by functrans.numpy; use a functrans.numpy function"
        )
    return fnp_fun(*inputs, **kwargs)


def _array_function(self, func, types, args, kwargs):
    fnp_fun = _NUMPY_TO_FNP.get(func)
    if fnp_fun is None:
        raise TypeError(
            f"numpy.{func.__name__} is not supported on traced values by functrans.numpy; "
            f"see functrans.numpy for the supported functions{_nearest(func.__name__)}"
        )
    return fnp_fun(*args, **kwargs)


def _nearest(name: str) -> str:
    import difflib

    names = [getattr(f, "__name__", "") for f in _NUMPY_TO_FNP.values()]
    close = difflib.get_close_matches(name, names, n=1)
    return f" (nearest: functrans.numpy.{close[0]})" if close else ""


def _install_tracer_methods() -> None:
    methods = {
        "__add__": add,
        "__radd__": _reversed(add),
        "__sub__": subtract,
        "__rsub__": _reversed(subtract),
        "__mul__": multiply,
        "__rmul__": _reversed(multiply),
        "__truediv__": true_divide,
        "__rtruediv__": _reversed(true_divide),
        "__pow__": power,
        "__rpow__": _reversed(power),
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
        "__array_ufunc__": _array_ufunc,
        "__array_function__": _array_function,
    }
    for name, fun in methods.items():
        setattr(Tracer, name, fun)


_install_tracer_methods()
