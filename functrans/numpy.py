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

Beyond the names in the contract, this module also provides ``full_like
empty_like astype shape ndim size flip take take_along_axis tensordot trace
diagonal atleast_1d atleast_2d hstack vstack logical_and logical_or logical_not
floor amax amin any all isfinite isnan isinf floor_divide remainder mod fmod divmod
copy`` (and the operators ``//``, ``%`` and ``divmod`` on traced values).
One known difference from NumPy under tracing: out-of-range traced indices are not
checked.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from functrans import _einsum, _indexing
from functrans import primitives as lax
from functrans.core import PYTHON_SCALARS, Tracer, get_aval, new_trace
from functrans.errors import ConcretizationTypeError
from functrans.transforms.staging import DynamicJaxprTrace

float16, float32, float64 = np.float16, np.float32, np.float64
int8, int16, int32, int64 = np.int8, np.int16, np.int32, np.int64
uint8, bool_, complex64, complex128 = np.uint8, np.bool_, np.complex64, np.complex128
ndarray, dtype, newaxis, pi, e, inf, nan = np.ndarray, np.dtype, None, np.pi, np.e, np.inf, np.nan

_WEAK_REPRESENTATIVE = {"b": False, "i": 0, "u": 0, "f": 0.0, "c": 0j}
_NUMERIC_KINDS = "biufc"

# ---------------------------------------------------------------------------
# The eager fast path and the error path
# ---------------------------------------------------------------------------


_PLAIN_TYPES = frozenset({np.ndarray, float, int, bool, str, type(None)})


def _has_tracer(args: Any) -> bool:
    for a in args:
        t = type(a)
        if t in _PLAIN_TYPES:
            continue
        if isinstance(a, Tracer) or ((t is list or t is tuple) and _has_tracer(a)):
            return True
    return False


def _numpy_api(
    *numpy_funs: Callable[..., Any],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a traced implementation its eager twin: ``numpy_funs[0]`` when no argument
    is a tracer. Eager failures are explained by re-running the traced implementation
    on abstract values, so eager and traced errors say the same thing. Every one of
    ``numpy_funs`` dispatches to the result when NumPy sees a tracer."""
    numpy_fun = numpy_funs[0]

    def decorate(traced: Callable[..., Any]) -> Callable[..., Any]:
        name = traced.__name__

        @functools.wraps(traced)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _has_tracer(args) or (kwargs and _has_tracer(kwargs.values())):
                return traced(*args, **kwargs)
            try:
                out = numpy_fun(*args, **kwargs)
            except (ValueError, TypeError, IndexError, ArithmeticError):
                _explain_eager_failure(name, traced, args, kwargs)
                raise
            if type(out) is not np.ndarray or out.dtype.kind not in _NUMERIC_KINDS:
                _check_result(name, traced, args, kwargs, out)
            return out

        wrapper.__wrapped_numpy__ = numpy_fun  # type: ignore[attr-defined]
        for f in numpy_funs:
            _NUMPY_TO_FNP[f] = wrapper
        return wrapper

    return decorate


_NUMPY_TO_FNP: dict[Any, Callable[..., Any]] = {}


def _explain_eager_failure(name: str, traced, args, kwargs) -> None:
    """Raise our own error for an eager NumPy failure if the traced implementation
    finds one at the same inputs (NumPy arrays made abstract); else return."""
    try:
        with new_trace(DynamicJaxprTrace, name) as trace:

            def abstract(a):
                if isinstance(a, np.ndarray) and a.dtype.kind in _NUMERIC_KINDS:
                    return trace.new_arg(get_aval(a))
                if type(a) in (list, tuple) and builtins.any(isinstance(b, np.ndarray) for b in a):
                    return type(a)(abstract(b) for b in a)
                return a

            traced(*map(abstract, args), **{k: abstract(v) for k, v in kwargs.items()})
    except ConcretizationTypeError:
        pass  # an array argument used as a static value: NumPy's message is better
    except (ValueError, TypeError, IndexError) as ours:
        raise ours from None
    except Exception:  # our path failed differently: NumPy's own message is best
        pass


def _check_result(name: str, traced, args, kwargs, out) -> None:
    if isinstance(out, (np.ndarray, np.generic)) and out.dtype.kind not in _NUMERIC_KINDS:
        _reject_non_numeric(name, traced, args, kwargs, out)


_STRING_PARAMS = ("dtype", "subscripts", "order", "casting", "mode")


def _reject_non_numeric(name: str, traced, args, kwargs, out) -> None:
    """NumPy accepted a string or object input; the contract says ``TypeError``."""
    params = list(inspect.signature(traced).parameters)
    named = [*((i, p) for i, p in enumerate(params[: len(args)])), *kwargs]
    for what, value in zip(named, [*args, *kwargs.values()], strict=True):
        if (what[1] if isinstance(what, tuple) else what) in _STRING_PARAMS:
            continue
        if isinstance(value, (np.ndarray, np.generic, list, tuple)):
            try:
                kind = np.asarray(value).dtype.kind
            except ValueError:
                continue
            if kind not in _NUMERIC_KINDS:
                _check_array_arg(name, what, value)
        elif not isinstance(value, (*PYTHON_SCALARS, type, np.dtype, type(None))):
            _check_array_arg(name, what, value)
    raise TypeError(f"{name}: the result has the non-numeric dtype {out.dtype}")


def _check_array_arg(name: str, what: Any, x: Any) -> None:
    """A ``TypeError`` naming the argument unless ``x`` is a valid array input.
    ``what`` is the argument's position, its name, or both as a pair."""
    if isinstance(what, tuple):
        what = f"argument {what[0]} ({what[1]})"
    elif isinstance(what, int):
        what = f"argument {what}"
    else:
        what = f"argument {what!r}"
    if isinstance(x, (Tracer, *PYTHON_SCALARS)):
        return
    if isinstance(x, (np.ndarray, np.generic)):
        if x.dtype.kind in _NUMERIC_KINDS:
            return
        raise TypeError(
            f"{name}: {what} must be a numeric array, got an array of dtype {x.dtype} ({x!r:.40})"
        )
    if type(x) in (list, tuple):
        try:
            arr = np.asarray(x)
        except ValueError:
            raise TypeError(
                f"{name}: {what} is a ragged nested sequence; all rows must have the same length"
            ) from None
        if arr.dtype.kind in _NUMERIC_KINDS:
            return
    raise TypeError(
        f"{name}: {what} must be an array, a number or a list of numbers, not "
        f"{type(x).__name__} ({x!r:.40})"
    )


# ---------------------------------------------------------------------------
# Canonicalisation: arrays, dtypes, broadcasting, axes
# ---------------------------------------------------------------------------


def _as_operand(name: str, x: Any, what: Any = 0) -> Any:
    """A tracer, a NumPy array or scalar, or a Python scalar (kept weakly typed)."""
    if isinstance(x, Tracer):
        return x
    if isinstance(x, (np.ndarray, np.generic)) or type(x) in PYTHON_SCALARS:
        _check_array_arg(name, what, x)
        return x
    if type(x) in (list, tuple) and _has_tracer(x):
        return _array_from_nested(name, x, None)
    _check_array_arg(name, what, x)
    return np.asarray(x)


def _as_array(name: str, x: Any, what: Any = 0) -> Any:
    """A tracer or a NumPy array: Python scalars become strongly typed arrays, as in
    NumPy's non-ufunc functions (``dot``, ``concatenate``...)."""
    x = _as_operand(name, x, what)
    return np.asarray(x) if isinstance(x, (np.generic, *PYTHON_SCALARS)) else x


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


def _convert(x: Any, dtype: np.dtype, weak: bool = False) -> Any:
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


def _promote(name: str, *args: Any, inexact: Callable[[np.dtype], np.dtype] | None = None):
    """Operands converted to their NEP 50 result dtype (then to ``inexact(dtype)``)."""
    n = len(args)
    args = [_as_operand(name, x, (i, f"x{i + 1}" if n > 1 else "x")) for i, x in enumerate(args)]
    dtype, weak = result_dtype(*args)
    if inexact is not None and dtype.kind not in "fc":
        dtype = inexact(dtype)  # n / 2 of Python ints is a Python float: still weak
    return [_convert(x, dtype, weak) for x in args]


def _promote_arrays(name: str, *args: Any, dtype: Any = None) -> list[Any]:
    """Operands as arrays of one dtype, promoted as NumPy's non-ufunc functions do
    (every operand strongly typed)."""
    arrays = [_as_array(name, x, i) for i, x in enumerate(args)]
    if dtype is None:
        dtype = np.result_type(*[get_aval(a).dtype for a in arrays]) if arrays else float64
    return [_convert(a, np.dtype(dtype)) for a in arrays]


def _inexact(dtype: np.dtype) -> np.dtype:
    """The floating dtype NumPy computes transcendental functions of ``dtype`` in."""
    return dtype if dtype.kind in "fc" else np.result_type(dtype, np.float16)


def _inexact_divide(dtype: np.dtype) -> np.dtype:
    """``true_divide`` of integers or booleans is always float64 in NumPy."""
    return np.dtype(np.float64)


def _shape(x: Any) -> tuple[int, ...]:
    if isinstance(x, Tracer):
        return x.shape
    return () if isinstance(x, PYTHON_SCALARS) else np.shape(x)


def _fmt_shapes(*xs: Any) -> str:
    return " and ".join(str(_shape(x)) for x in xs)


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


def _elementwise(name: str, op: Callable[..., Any], *args: Any, inexact=None) -> Any:
    agreeing = _agreeing_operands(args, inexact)
    if agreeing is not None:
        return op(*agreeing)
    args = _promote(name, *args, inexact=inexact)
    return op(*_broadcast(name, *args))


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


def _rename(fun: Callable[..., Any], name: str) -> None:
    """Name a generated function, also in Python's own argument errors
    (``add() got an unexpected keyword argument ...``)."""
    fun.__name__ = fun.__qualname__ = name
    code = fun.__code__.replace(co_name=name)
    if hasattr(code, "co_qualname"):
        code = code.replace(co_qualname=name)
    fun.__code__ = code


def _no_out(name: str, **unsupported: Any) -> None:
    for key, value in unsupported.items():
        if value is not None:
            raise TypeError(f"{name}: the argument {key}= is not supported by functrans.numpy")


# ---------------------------------------------------------------------------
# Array creation
# ---------------------------------------------------------------------------


def _nested_aval(name: str, obj: Any) -> tuple[tuple[int, ...], list[np.dtype]]:
    """Shape and leaf dtypes of a nested list of arrays, tracers and numbers, as
    ``numpy.array`` would build it (Python scalars count as their default dtype)."""
    if type(obj) in (list, tuple):
        if not obj:
            return (0,), [np.dtype(np.float64)]
        parts = [_nested_aval(name, o) for o in obj]
        shapes = {s for s, _ in parts}
        if len(shapes) > 1:
            raise TypeError(
                f"{name}: the nested sequence is ragged: its elements have shapes "
                f"{', '.join(str(s) for s, _ in parts)}"
            )
        return (len(obj), *parts[0][0]), [d for _, ds in parts for d in ds]
    if isinstance(obj, Tracer):
        return obj.shape, [obj.dtype]
    _check_array_arg(name, (0, "object"), obj)
    arr = np.asarray(obj)
    return arr.shape, [arr.dtype]


def _array_from_nested(name: str, obj: Any, dtype: Any) -> Any:
    """Stack a nested list containing tracers into one traced array."""
    shape, dtypes = _nested_aval(name, obj)
    dtype = np.result_type(*dtypes) if dtype is None else np.dtype(dtype)

    def build(o):
        if type(o) not in (list, tuple):
            return _convert(o if isinstance(o, Tracer) else np.asarray(o), dtype)
        if not _has_tracer(o):
            return np.array(o, dtype=dtype)
        parts = [build(p) for p in o]
        parts = [
            lax.broadcast_in_dim(p, (1, *_shape(p)), range(1, len(_shape(p)) + 1)) for p in parts
        ]
        return lax.concatenate(parts, 0)

    return build(obj)


@_numpy_api(np.array)
def array(object, dtype=None, *, copy=True, order="K", ndmin=0):
    """``numpy.array``. Under a transform, a (nested) list of traced values is stacked
    into one traced array and a traced value is converted to ``dtype``.

    >>> import functrans as ft
    >>> float(ft.grad(lambda x: sum(array([x, 2 * x, 3.0]) ** 2))(1.0))
    10.0
    """
    if type(object) in (list, tuple):
        x = _array_from_nested("array", object, dtype)
    else:
        x = _as_array("array", object, (0, "object"))
        x = x if dtype is None else _convert(x, np.dtype(dtype))
    if _shape(x) and isinstance(x, Tracer) and x.aval.weak_type:
        x = lax.convert_element_type(x, x.dtype)
    missing = ndmin - len(_shape(x))
    return reshape(x, (1,) * missing + _shape(x)) if missing > 0 else x


@_numpy_api(np.asarray)
def asarray(a, dtype=None, order=None, *, copy=None):
    """``numpy.asarray``; a traced value converted to ``dtype`` if given."""
    if type(a) in (list, tuple):
        return _array_from_nested("asarray", a, dtype)
    x = _as_array("asarray", a, (0, "a"))
    return x if dtype is None else _convert(x, np.dtype(dtype))


@_numpy_api(np.astype)
def astype(x, dtype, /, *, copy=True):
    """``x`` converted to ``dtype``."""
    return _convert(_as_array("astype", x, (0, "x")), np.dtype(dtype))


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

    _rename(traced, numpy_fun.__name__)
    traced.__doc__ = f"``numpy.{numpy_fun.__name__}`` (shape arguments must be static)."
    return _numpy_api(numpy_fun)(traced)


zeros = _plain(np.zeros)
ones = _plain(np.ones)
empty = _plain(np.empty)
eye = _plain(np.eye)
arange = _plain(np.arange)


def _like(name: str, numpy_fun, fill):
    def traced(a, dtype=None, order="K", subok=True, shape=None):
        aval = get_aval(_as_operand(name, a, (0, "a")))
        shape = aval.shape if shape is None else shape
        return np.full(shape, fill, aval.dtype if dtype is None else dtype)

    _rename(traced, name)
    traced.__doc__ = f"``numpy.{name}``: a NumPy constant of ``a``'s shape and dtype."
    return _numpy_api(numpy_fun)(traced)


zeros_like = _like("zeros_like", np.zeros_like, 0)
ones_like = _like("ones_like", np.ones_like, 1)
empty_like = _like("empty_like", np.empty_like, 0)


@_numpy_api(np.full)
def full(shape, fill_value, dtype=None, order="C"):
    """``numpy.full``; a traced ``fill_value`` is broadcast to ``shape``."""
    fill = _as_array("full", fill_value, (1, "fill_value"))
    return _broadcast_to("full", fill if dtype is None else _convert(fill, np.dtype(dtype)), shape)


@_numpy_api(np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None):
    """``numpy.full_like``; a traced ``fill_value`` is broadcast."""
    aval = get_aval(_as_operand("full_like", a, (0, "a")))
    fill = _as_array("full_like", fill_value, (1, "fill_value"))
    dtype = aval.dtype if dtype is None else np.dtype(dtype)
    return _broadcast_to("full_like", _convert(fill, dtype), aval.shape if shape is None else shape)


@_numpy_api(np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """``numpy.linspace``; ``start`` and ``stop`` may be traced (``num`` is static)."""
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"linspace: number of samples, {num}, must be non-negative")
    start, stop = _promote("linspace", start, stop, inexact=_inexact_divide)
    dt = get_aval(start).dtype
    start, stop = _broadcast("linspace", start, stop)
    shape = _shape(start) or _shape(stop)
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


# ---------------------------------------------------------------------------
# Elementwise functions
# ---------------------------------------------------------------------------


def _def_unary(numpy_fun, op, inexact=_inexact, name: str | None = None):
    name = name or numpy_fun.__name__

    def traced(x):
        return _elementwise(name, op, x, inexact=inexact)

    _rename(traced, name)
    traced.__doc__ = f"Elementwise ``numpy.{name}``, differentiable and batchable."
    return _numpy_api(numpy_fun)(traced)


def _def_binary(numpy_fun, op, inexact=None, name: str | None = None):
    name = name or numpy_fun.__name__

    def traced(x1, x2):
        return _elementwise(name, op, x1, x2, inexact=inexact)

    _rename(traced, name)
    traced.__doc__ = f"Elementwise ``numpy.{name}`` with broadcasting."
    return _numpy_api(numpy_fun)(traced)


def _no_bool(name: str, op, hint: str):
    def apply(*args):
        if builtins.any(get_aval(a).dtype == np.bool_ for a in args):
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
divide = true_divide = _def_binary(np.true_divide, lax.div, _inexact_divide, "divide")
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


def _int8_for_bool(op):
    """NumPy has no boolean loop for floor division and remainders: booleans divide
    in int8 (``True // True`` is ``int8(1)``)."""

    def apply(x, y):
        if get_aval(x).dtype == np.bool_:
            x, y = _convert(x, np.dtype(np.int8)), _convert(y, np.dtype(np.int8))
        return op(x, y)

    return apply


floor_divide = _def_binary(np.floor_divide, _int8_for_bool(lax.floor_divide))
remainder = mod = _def_binary(np.remainder, _int8_for_bool(lax.remainder), name="remainder")
fmod = _def_binary(np.fmod, _int8_for_bool(lax.fmod))


@_numpy_api(np.divmod)
def divmod(x1, x2, /):
    """``(floor_divide(x1, x2), remainder(x1, x2))``, with broadcasting.

    >>> divmod(np.array([7, -7]), 2)
    (array([ 3, -4]), array([1, 1]))
    """
    x1, x2 = _broadcast("divmod", *_promote("divmod", x1, x2))
    return _int8_for_bool(lax.floor_divide)(x1, x2), _int8_for_bool(lax.remainder)(x1, x2)


def _bool(x: Any) -> Any:
    return x if get_aval(x).dtype == np.bool_ else lax.ne(x, get_aval(x).dtype.type(0))


def _def_float_test(numpy_fun, test, integer_value: bool):
    name = numpy_fun.__name__

    def traced(x):
        (x,) = _promote(name, x)
        aval = get_aval(x)
        if aval.dtype.kind not in "fc":  # integers and booleans are always finite
            return np.full(aval.shape, integer_value)
        return test(x)

    _rename(traced, name)
    traced.__doc__ = f"Elementwise ``numpy.{name}``; boolean result."
    return _numpy_api(numpy_fun)(traced)


isnan = _def_float_test(np.isnan, lambda x: lax.ne(x, x), False)
isfinite = _def_float_test(np.isfinite, lax.is_finite, True)
isinf = _def_float_test(
    np.isinf, lambda x: lax.logical_not(lax.logical_or(lax.is_finite(x), lax.ne(x, x))), False
)


@_numpy_api(np.logical_not)
def logical_not(x):
    """Elementwise ``numpy.logical_not``."""
    return lax.logical_not(_bool(_as_operand("logical_not", x, (0, "x"))))


@_numpy_api(np.floor)
def floor(x):
    """Elementwise ``numpy.floor`` (integers are returned unchanged, as in NumPy 2)."""
    (x,) = _promote("floor", x)
    return x if get_aval(x).dtype.kind in "biu" else lax.floor(x)


@_numpy_api(np.square)
def square(x):
    """Elementwise ``x * x`` (booleans square in int8, as in NumPy)."""
    (x,) = _promote("square", x)
    if get_aval(x).dtype == np.bool_:
        x = _convert(x, np.dtype(np.int8))
    return lax.integer_pow(x, 2)


def _static_int(x: Any) -> int | None:
    """The value of a concrete integer scalar (the exponent of an ``integer_pow``)."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        return int(x)
    return None


@_numpy_api(np.power)
def power(x1, x2):
    """Elementwise ``x1 ** x2``. A concrete integer exponent is an ``integer_pow``."""
    n = _static_int(x2)  # before promotion turns a Python int into a float
    x1, x2 = _promote("power", x1, x2)
    if get_aval(x1).dtype == np.bool_:  # NumPy has no boolean power loop: it uses int8
        x1, x2 = (_convert(v, np.dtype(np.int8)) for v in (x1, x2))
    kind = get_aval(x1).dtype.kind
    if n is not None:
        if n < 0 and kind in "iu":
            raise ValueError(
                f"power: integers to negative integer powers are not allowed (base of shape "
                f"{_shape(x1)} and dtype {get_aval(x1).dtype}, exponent {n})"
            )
        return lax.integer_pow(x1, n)
    x1, x2 = _broadcast("power", x1, x2)
    return lax.pow(x1, x2)


@_numpy_api(np.where)
def where(condition, x=None, y=None, /):
    """``x`` where ``condition`` else ``y``, with broadcasting (three-argument form)."""
    if x is None or y is None:
        raise TypeError(
            "where: functrans supports only the three-argument form where(condition, x, y); "
            "the one-argument form has a data-dependent shape"
        )
    condition = _as_operand("where", condition, (0, "condition"))
    if get_aval(condition).dtype != np.bool_:
        condition = not_equal(condition, 0)
    x, y = _promote("where", x, y)
    condition, x, y = _broadcast("where", condition, x, y)
    return lax.select(condition, x, y)


@_numpy_api(np.clip)
def clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None):
    """``a`` limited to ``[a_min, a_max]`` (either bound may be ``None``)."""
    _no_out("clip", out=out)
    a_min = min if a_min is None else a_min
    a_max = max if a_max is None else a_max
    named = [(0, "a"), (1, "a_min"), (2, "a_max")]
    a, a_min, a_max = (
        None if x is None else _as_operand("clip", x, what)
        for x, what in zip((a, a_min, a_max), named, strict=True)
    )
    # Checked here so that an error names clip and every operand, not maximum.
    broadcast_shapes("clip", *[_shape(x) for x in (a, a_min, a_max) if x is not None])
    if a_min is not None:
        a = maximum(a, a_min)
    if a_max is not None:
        a = minimum(a, a_max)
    return _as_operand("clip", a, (0, "a"))


# ---------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------


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
    x = _as_array(name, a, (0, "a"))
    return x, normalize_axes(name, axis, len(_shape(x)))


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return math.prod(shape[i] for i in axes)


def _def_accumulate(numpy_fun, reduce):
    name = numpy_fun.__name__

    def traced(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
        _no_out(name, out=out, initial=initial, where=where)
        x, axes = _reduce_prep(name, a, axis)
        dt = _accumulator_dtype(get_aval(x).dtype) if dtype is None else np.dtype(dtype)
        x = _convert(x, dt, weak=True)
        y = reduce(x, axes) if axes else x
        return _keepdims(y, _shape(x), axes, keepdims)

    _rename(traced, name)
    traced.__doc__ = (
        f"``numpy.{name}`` over ``axis`` (None, an int or a tuple), with ``keepdims`` and "
        "``dtype``; small integers and booleans accumulate in int64, as in NumPy."
    )
    return _numpy_api(numpy_fun)(traced)


sum = _def_accumulate(np.sum, lax.reduce_sum)
prod = _def_accumulate(np.prod, lax.reduce_prod)


def _def_extremum(numpy_fun, alias, reduce, ufunc_name):
    name = numpy_fun.__name__

    def traced(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        _no_out(name, out=out, initial=initial, where=where)
        x, axes = _reduce_prep(name, a, axis)
        shape = _shape(x)
        if builtins.any(shape[i] == 0 for i in axes):
            raise ValueError(
                f"{name}: zero-size array to reduction operation {ufunc_name} which has no "
                f"identity (shape {shape}, axis {axis})"
            )
        y = reduce(x, axes) if axes else x
        return _keepdims(y, shape, axes, keepdims)

    _rename(traced, name)
    traced.__doc__ = f"``numpy.{name}`` over ``axis`` (None, an int or a tuple), ``keepdims``."
    return _numpy_api(numpy_fun, alias)(traced)


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


@_numpy_api(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """``numpy.mean``: integers average in float64, float32 stays float32."""
    _no_out("mean", out=out, where=where)
    x, axes = _reduce_prep("mean", a, axis)
    dt, acc = _mean_dtypes(x, dtype)
    shape = _shape(x)
    total = lax.reduce_sum(_convert(x, acc), axes) if axes else _convert(x, acc)
    y = lax.div(total, acc.type(_count(shape, axes)))
    return _keepdims(_convert(y, dt), shape, axes, keepdims)


@_numpy_api(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None):
    """``numpy.var``: mean squared deviation, divided by ``n - ddof``."""
    _no_out("var", out=out, where=where)
    return _var("var", a, axis, dtype, ddof, keepdims)


def _var(name: str, a: Any, axis: Any, dtype: Any, ddof: Any, keepdims: bool) -> Any:
    x, axes = _reduce_prep(name, a, axis)
    dt, acc = _mean_dtypes(x, dtype)
    shape = _shape(x)
    x = _convert(x, acc)
    n = _count(shape, axes)
    total = lax.reduce_sum(x, axes) if axes else x
    centre = lax.div(total, acc.type(n))
    kept = tuple(i for i in range(len(shape)) if i not in axes)
    dev = lax.sub(x, lax.broadcast_in_dim(centre, shape, kept) if axes else centre)
    sq = lax.mul(dev, dev)
    y = lax.div(lax.reduce_sum(sq, axes) if axes else sq, acc.type(builtins.max(n - ddof, 0)))
    return _keepdims(_convert(y, dt), shape, axes, keepdims)


@_numpy_api(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None):
    """``numpy.std``: the square root of ``var``."""
    _no_out("std", out=out, where=where)
    return lax.sqrt(_var("std", a, axis, dtype, ddof, keepdims))


def _def_argext(numpy_fun, op):
    name = numpy_fun.__name__

    def traced(a, axis=None, out=None, *, keepdims=False):
        _no_out(name, out=out)
        x = _as_array(name, a, (0, "a"))
        shape = _shape(x)
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

    _rename(traced, name)
    traced.__doc__ = f"``numpy.{name}``: int64 indices; ``axis=None`` flattens."
    return _numpy_api(numpy_fun)(traced)


argmax = _def_argext(np.argmax, lax.argmax)
argmin = _def_argext(np.argmin, lax.argmin)


def _def_truth(numpy_fun, any_true: bool):
    name = numpy_fun.__name__

    def traced(a, axis=None, out=None, keepdims=False, *, where=None):
        _no_out(name, out=out, where=where)
        x, axes = _reduce_prep(name, a, axis)
        truth = _bool(x)
        if not axes:
            return truth
        hits = truth if any_true else lax.logical_not(truth)
        count = lax.reduce_sum(lax.convert_element_type(hits, np.int64), axes)
        y = lax.gt(count, np.int64(0)) if any_true else lax.eq(count, np.int64(0))
        return _keepdims(y, _shape(x), axes, keepdims)

    _rename(traced, name)
    traced.__doc__ = f"``numpy.{name}`` over ``axis`` (None, an int or a tuple); boolean."
    return _numpy_api(numpy_fun)(traced)


any = _def_truth(np.any, True)
all = _def_truth(np.all, False)


# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------


@_numpy_api(np.shape)
def shape(a):
    """The shape of ``a`` (static, also for traced values)."""
    return _shape(_as_operand("shape", a, (0, "a")))


@_numpy_api(np.ndim)
def ndim(a):
    """The number of axes of ``a``."""
    return len(_shape(_as_operand("ndim", a, (0, "a"))))


@_numpy_api(np.size)
def size(a, axis=None):
    """The number of elements of ``a`` (along ``axis`` if given)."""
    s = _shape(_as_operand("size", a, (0, "a")))
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
    bad = len(unknown) > 1 or builtins.any(n < -1 for n in new)
    if unknown and not bad:
        if known == 0 or size % known:
            bad = True
        else:
            new = tuple(size // known if n == -1 else n for n in new)
    if bad or math.prod(new) != size:
        raise ValueError(f"{name}: cannot reshape array of shape {old} into shape {new}")
    return new


@_numpy_api(np.reshape)
def reshape(a, /, shape, order="C", *, copy=None):
    """``numpy.reshape``; one entry of ``shape`` may be -1; ``order`` 'C' or 'F'.
    (``copy`` is accepted and has no effect: traced values are immutable.)

    >>> reshape(np.arange(6), (3, -1), order="F")
    array([[0, 3],
           [1, 4],
           [2, 5]])
    """
    x = _as_array("reshape", a, (0, "a"))
    new = _resolve_shape("reshape", _shape(x), shape)
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


@_numpy_api(np.ravel)
def ravel(a, order="C"):
    """``a`` flattened to one axis (``order`` 'C' or 'F')."""
    return _flattened("ravel", a, order)


def _flattened(name: str, a: Any, order: str) -> Any:
    x = _as_array(name, a, (0, "a"))
    _check_order(name, order, ("A", "K"))
    return reshape(x, -1, order=order)


@_numpy_api(np.transpose)
def transpose(a, axes=None):
    """``numpy.transpose``; ``axes`` may hold negative entries."""
    x = _as_array("transpose", a, (0, "a"))
    nd = len(_shape(x))
    if axes is None:
        return lax.transpose(x, tuple(reversed(range(nd))))
    perm = [normalize_axis("transpose", ax, nd) for ax in axes]
    if sorted(perm) != list(range(nd)):
        raise ValueError(f"transpose: axes {tuple(axes)} don't match array of shape {_shape(x)}")
    return lax.transpose(x, perm)


@_numpy_api(np.swapaxes)
def swapaxes(a, axis1, axis2):
    """``a`` with two axes interchanged."""
    x = _as_array("swapaxes", a, (0, "a"))
    nd = len(_shape(x))
    i, j = normalize_axis("swapaxes", axis1, nd), normalize_axis("swapaxes", axis2, nd)
    perm = list(range(nd))
    perm[i], perm[j] = j, i
    return lax.transpose(x, perm)


@_numpy_api(np.moveaxis)
def moveaxis(a, source, destination):
    """``a`` with axes ``source`` moved to positions ``destination``."""
    x = _as_array("moveaxis", a, (0, "a"))
    nd = len(_shape(x))
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
    old = _shape(x)
    nd = len(old) + len(axes)
    kept = [i for i in range(nd) if i not in axes]
    new = [1] * nd
    for i, n in zip(kept, old, strict=True):
        new[i] = n
    return lax.broadcast_in_dim(x, new, kept)


@_numpy_api(np.expand_dims)
def expand_dims(a, axis):
    """``a`` with new size-1 axes at ``axis`` (an int or a tuple)."""
    x = _as_array("expand_dims", a, (0, "a"))
    n_new = len(axis) if isinstance(axis, (tuple, list)) else 1
    return _expand(x, normalize_axes("expand_dims", axis, len(_shape(x)) + n_new))


@_numpy_api(np.squeeze)
def squeeze(a, axis=None):
    """``a`` without size-1 axes (all of them, or those in ``axis``)."""
    x = _as_array("squeeze", a, (0, "a"))
    shape = _shape(x)
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


@_numpy_api(np.broadcast_to)
def broadcast_to(array, shape, subok=False):
    """``array`` broadcast to ``shape`` with an explicit ``broadcast_in_dim``."""
    return _broadcast_to("broadcast_to", _as_array("broadcast_to", array, (0, "array")), shape)


def _broadcast_to(name: str, x: Any, shape: Any) -> Any:
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    old = _shape(x)
    offset = len(shape) - len(old)
    if offset < 0 or builtins.any(n not in (1, shape[offset + i]) for i, n in enumerate(old)):
        raise ValueError(f"{name}: cannot broadcast an array of shape {old} to {shape}")
    if old == shape:
        return x
    return lax.broadcast_in_dim(x, shape, tuple(range(offset, len(shape))))


def _sequence(name: str, arrays: Any) -> list[Any]:
    if isinstance(arrays, Tracer):
        return list(arrays)
    if isinstance(arrays, np.ndarray) or type(arrays) not in (list, tuple):
        raise TypeError(f"{name}: expected a sequence of arrays, got {type(arrays).__name__}")
    return list(arrays)


@_numpy_api(np.concatenate)
def concatenate(arrays, /, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """Join arrays along ``axis`` (``None``: flatten them first)."""
    _no_out("concatenate", out=out)
    xs = _promote_arrays("concatenate", *_sequence("concatenate", arrays), dtype=dtype)
    return _concatenate("concatenate", xs, axis)


def _concatenate(name: str, xs: list[Any], axis: Any) -> Any:
    if not xs:
        raise ValueError(f"{name}: need at least one array to concatenate")
    if axis is None:
        xs = [lax.reshape(x, (math.prod(_shape(x)),)) for x in xs]
        axis = 0
    shapes = [_shape(x) for x in xs]
    if not shapes[0]:
        raise ValueError(f"{name}: zero-dimensional arrays cannot be concatenated")
    ax = normalize_axis(name, axis, len(shapes[0]))
    if builtins.any(
        len(s) != len(shapes[0]) or s[:ax] + s[ax + 1 :] != shapes[0][:ax] + shapes[0][ax + 1 :]
        for s in shapes
    ):
        listed = ", ".join(map(str, shapes))
        raise ValueError(f"{name}: incompatible shapes {listed} along axis {ax}")
    return xs[0] if len(xs) == 1 else lax.concatenate(xs, ax)


@_numpy_api(np.stack)
def stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """Join arrays of one shape along a new axis."""
    _no_out("stack", out=out)
    xs = _promote_arrays("stack", *_sequence("stack", arrays), dtype=dtype)
    if not xs:
        raise ValueError("stack: need at least one array to stack")
    shapes = [_shape(x) for x in xs]
    if len(set(shapes)) > 1:
        raise ValueError(
            f"stack: all input arrays must have the same shape, got {', '.join(map(str, shapes))}"
        )
    ax = normalize_axis("stack", axis, len(shapes[0]) + 1)
    xs = [_expand(x, (ax,)) for x in xs]
    return xs[0] if len(xs) == 1 else lax.concatenate(xs, ax)


@_numpy_api(np.vstack)
def vstack(tup):
    """Stack arrays along the first axis (1-D arrays become rows)."""
    xs = _promote_arrays("vstack", *_sequence("vstack", tup))
    return _concatenate("vstack", [atleast_2d(x) for x in xs], 0)


@_numpy_api(np.hstack)
def hstack(tup):
    """Stack arrays along the second axis (the first for 1-D arrays)."""
    xs = [atleast_1d(x) for x in _promote_arrays("hstack", *_sequence("hstack", tup))]
    return _concatenate("hstack", xs, 0 if xs and len(_shape(xs[0])) == 1 else 1)


@_numpy_api(np.atleast_1d)
def atleast_1d(x):
    """``x`` with at least one axis."""
    x = _as_array("atleast_1d", x, (0, "x"))
    return x if _shape(x) else lax.reshape(x, (1,))


@_numpy_api(np.atleast_2d)
def atleast_2d(x):
    """``x`` with at least two axes (new ones in front)."""
    x = _as_array("atleast_2d", x, (0, "x"))
    s = _shape(x)
    return x if len(s) >= 2 else lax.reshape(x, (1,) * (2 - len(s)) + s)


@_numpy_api(np.split)
def split(ary, indices_or_sections, axis=0):
    """``numpy.split``: into equal sections, or at the given indices; a list."""
    x = _as_array("split", ary, (0, "ary"))
    shape = _shape(x)
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
            lo, hi, _ = builtins.slice(lo, hi).indices(n)
            bounds.append((lo, builtins.max(lo, hi)))
    out = []
    for lo, hi in bounds:
        start, limit = [0] * len(shape), list(shape)
        start[ax], limit[ax] = lo, hi
        out.append(x if (lo, hi) == (0, n) else lax.slice(x, start, limit))
    return out


@_numpy_api(np.flip)
def flip(m, axis=None):
    """``m`` reversed along ``axis`` (all axes if ``None``)."""
    x = _as_array("flip", m, (0, "m"))
    axes = normalize_axes("flip", axis, len(_shape(x)))
    return lax.rev(x, axes) if axes else x


# ---------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------


@_numpy_api(np.copy)
def copy(a, order="K", subok=False):
    """``numpy.copy``: a traced value is immutable, so its copy is itself."""
    return _as_array("copy", a, (0, "a"))


def _getitem(self, index):
    return _indexing.getitem(self, index)


def _setitem(self, index, value):
    raise TypeError(
        f"traced arrays are immutable: cannot assign to x[...] of a traced {self.aval.str_short()}"
        "; build the result with functrans.numpy.where or functrans.numpy.concatenate instead"
    )


@_numpy_api(np.take)
def take(a, indices, axis=None, out=None, mode=None):
    """``numpy.take``: elements of ``a`` at integer ``indices`` along ``axis``
    (flattened if ``None``). ``indices`` may be traced."""
    _no_out("take", out=out, mode=mode)
    x = _as_array("take", a, (0, "a"))
    if axis is None:
        return _indexing.getitem(lax.reshape(x, (math.prod(_shape(x)),)), indices)
    ax = normalize_axis("take", axis, len(_shape(x)))
    return _indexing.getitem(x, (builtins.slice(None),) * ax + (_index_array(indices),))


def _index_array(i):
    return i if isinstance(i, (Tracer, int, np.integer)) else np.asarray(i)


@_numpy_api(np.take_along_axis)
def take_along_axis(arr, indices, axis):
    """``numpy.take_along_axis``: ``arr`` indexed along ``axis`` by ``indices`` of the
    same rank (other axes broadcast)."""
    x = _as_array("take_along_axis", arr, (0, "arr"))
    idx = _as_array("take_along_axis", indices, (1, "indices"))
    shape, ishape = _shape(x), _shape(idx)
    if axis is None:
        x, shape, axis = lax.reshape(x, (math.prod(shape),)), (math.prod(shape),), 0
    if len(ishape) != len(shape):
        raise ValueError(
            f"take_along_axis: indices of shape {ishape} and arr of shape {shape} must have the "
            "same number of dimensions"
        )
    ax = normalize_axis("take_along_axis", axis, len(shape))
    pairs = enumerate(zip(shape, ishape, strict=True))
    if builtins.any(d != ax and n != k and 1 not in (n, k) for d, (n, k) in pairs):
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
    return _indexing.getitem(x, tuple(index))


# ---------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------


def _matmul_error(name: str, a: Any, b: Any) -> ValueError:
    return ValueError(f"{name}: incompatible shapes {_fmt_shapes(a, b)}")


@_numpy_api(np.matmul)
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
    a, b = _promote("matmul", x1, x2)
    sa, sb = _shape(a), _shape(b)
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
    a = _broadcast_to_shape(a, (*batch, n, k)) if sa != (*batch, n, k) else a
    b = _broadcast_to_shape(b, (*batch, k, m)) if sb != (*batch, k, m) else b
    return lax.matmul(a, b)


@_numpy_api(np.dot)
def dot(a, b, out=None):
    """``numpy.dot``: a product with a scalar, the inner product of vectors, or a sum
    over the last axis of ``a`` and the second-to-last of ``b``."""
    _no_out("dot", out=out)
    a, b = _promote_arrays("dot", a, b)
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        return multiply(a, b)
    k_b = sb[0] if len(sb) == 1 else sb[-2]
    if sa[-1] != k_b:
        raise _matmul_error("dot", a, b)
    if len(sa) <= 2 and len(sb) <= 2:
        return lax.matmul(a, b)
    cb = 0 if len(sb) == 1 else len(sb) - 2
    return _einsum.dot_general(a, b, ((len(sa) - 1,), (cb,)))


@_numpy_api(np.outer)
def outer(a, b, out=None):
    """Outer product of ``a`` and ``b`` (both flattened)."""
    _no_out("outer", out=out)
    a, b = _promote_arrays("outer", a, b)
    a = lax.reshape(a, (math.prod(_shape(a)),))
    b = lax.reshape(b, (math.prod(_shape(b)),))
    return _einsum.dot_general(a, b, ((), ()))


@_numpy_api(np.tensordot)
def tensordot(a, b, axes=2):
    """``numpy.tensordot``: contract the last ``axes`` axes of ``a`` with the first of
    ``b``, or the axes listed in ``axes = (a_axes, b_axes)``."""
    a, b = _promote_arrays("tensordot", a, b)
    sa, sb = _shape(a), _shape(b)
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > len(sa) or n > len(sb):
            raise ValueError(f"tensordot: axes={n} does not fit shapes {_fmt_shapes(a, b)}")
        ca, cb = list(range(len(sa) - n, len(sa))), list(range(n))
    else:
        ca, cb = ([x] if isinstance(x, (int, np.integer)) else list(x) for x in axes)
        ca = [normalize_axis("tensordot", i, len(sa)) for i in ca]
        cb = [normalize_axis("tensordot", i, len(sb)) for i in cb]
    if len(ca) != len(cb) or builtins.any(sa[i] != sb[j] for i, j in zip(ca, cb, strict=True)):
        raise ValueError(
            f"tensordot: shape-mismatch for sum: shapes {_fmt_shapes(a, b)}, axes {ca} and {cb}"
        )
    return _einsum.dot_general(a, b, (ca, cb))


@_numpy_api(np.einsum)
def einsum(subscripts, /, *operands, out=None, dtype=None, optimize=False, **kwargs):
    """``numpy.einsum`` with explicit (``'ij,jk->ik'``) or implicit (``'ij,jk'``)
    output, ``...`` and repeated labels (diagonals, traces). Contracts pairwise
    through ``matmul``, smallest intermediate first (``optimize`` is ignored).

    >>> float(einsum("ii", np.eye(3))), einsum("ij,j->i", np.eye(2), np.array([1.0, 2.0]))
    (3.0, array([1., 2.]))
    """
    _no_out("einsum", out=out)
    if not isinstance(subscripts, str):
        raise TypeError(
            "einsum: only the subscripts-string form einsum('ij,jk->ik', a, b) is supported"
        )
    if kwargs:
        raise TypeError(f"einsum: unsupported arguments {sorted(kwargs)}")
    xs = _promote_arrays("einsum", *operands, dtype=dtype)
    return _einsum.einsum(subscripts, xs)


@_numpy_api(np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    """The diagonal of ``a`` over ``axis1`` and ``axis2``, appended as the last axis."""
    return _diagonal("diagonal", a, offset, axis1, axis2)


def _diagonal(name: str, a: Any, offset: Any, axis1: Any, axis2: Any) -> Any:
    x = _as_array(name, a, (0, "a"))
    shape = _shape(x)
    nd = len(shape)
    if nd < 2:
        raise ValueError(f"{name}: array of shape {shape} must be at least 2-D")
    i, j = normalize_axis(name, axis1, nd), normalize_axis(name, axis2, nd)
    if i == j:
        raise ValueError(f"{name}: axis1 and axis2 cannot be the same")
    rest = [d for d in range(nd) if d not in (i, j)]
    x = lax.transpose(x, (i, j, *rest))
    r0, c0 = (0, offset) if offset >= 0 else (-offset, 0)
    n = builtins.max(0, builtins.min(shape[i] - r0, shape[j] - c0))
    rows, cols = np.arange(r0, r0 + n), np.arange(c0, c0 + n)
    out = lax.gather(x, [rows, cols])
    return moveaxis(out, 0, -1)


@_numpy_api(np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """Sum along a diagonal of ``a``."""
    _no_out("trace", out=out)
    return sum(_diagonal("trace", a, offset, axis1, axis2), axis=-1, dtype=dtype)


# ---------------------------------------------------------------------------
# Tracer operators, methods and NumPy protocols
# ---------------------------------------------------------------------------


def _reversed(fun: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    return lambda self, other: fun(other, self)


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    fnp_fun = _NUMPY_TO_FNP.get(ufunc)
    if kwargs and method == "__call__" and fnp_fun is not None:
        raise TypeError(
            f"numpy.{ufunc.__name__}: the keyword arguments {sorted(kwargs)} are not supported "
            "on traced values by functrans.numpy"
        )
    if method != "__call__" or fnp_fun is None:
        raise TypeError(
            f"numpy.{ufunc.__name__}{'' if method == '__call__' else '.' + method} is not "
            f"supported on traced values by functrans.numpy{_nearest(ufunc.__name__)}"
        )
    return fnp_fun(*inputs, **kwargs)


def _array_function(self, func, types, args, kwargs):
    fnp_fun = _NUMPY_TO_FNP.get(func)
    if fnp_fun is None:
        raise TypeError(
            f"{_qualified(func)} is not supported on traced values by functrans.numpy; "
            f"see functrans.numpy for the supported functions{_nearest(func.__name__)}"
        )
    return fnp_fun(*args, **kwargs)


def _qualified(func: Any) -> str:
    module = getattr(func, "__module__", None) or "numpy"
    return f"{module}.{func.__name__}"


def _nearest(name: str) -> str:
    import difflib

    names = sorted({getattr(f, "__name__", "") for f in _NUMPY_TO_FNP.values()})
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    return f" (nearest: functrans.numpy.{close[0]})" if close else ""


def _shape_args(args: tuple[Any, ...]) -> Any:
    """``x.reshape(2, 3)`` and ``x.reshape((2, 3))`` alike."""
    if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
        return args[0]
    return args


def _method_transpose(self, *axes):
    return transpose(self, _shape_args(axes) if axes else None)


def _method_reshape(self, *shape, order="C", copy=None):
    return reshape(self, _shape_args(shape), order=order)


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
        "__getitem__": _getitem,
        "__setitem__": _setitem,
        "__array_ufunc__": _array_ufunc,
        "__array_function__": _array_function,
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
        "sum": sum,
        "mean": mean,
        "max": max,
        "min": min,
        "prod": prod,
        "var": var,
        "std": std,
        "argmax": argmax,
        "argmin": argmin,
        "any": any,
        "all": all,
        "diagonal": diagonal,
        "trace": trace,
    }
    for name, fun in methods.items():
        setattr(Tracer, name, fun)


_install_tracer_methods()
