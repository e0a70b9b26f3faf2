"""The eager dispatcher: every ``functrans.numpy`` function is NumPy's own outside
transforms, and its traced implementation when an argument is a tracer.

``numpy_api`` gives a traced implementation its eager twin (about half a microsecond
of overhead). When NumPy raises, the traced implementation runs again on abstract
values so that the eager error says what the traced one says; when NumPy accepts a
string or object input the contract rejects, the ``TypeError`` names the argument.
The table ``NUMPY_TO_FNP`` maps NumPy functions to ours for NumPy's dispatch
protocols (``__array_ufunc__``, ``__array_function__``) on tracers.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from functrans.core import PYTHON_SCALARS, Tracer, get_aval, new_trace
from functrans.errors import ConcretizationTypeError
from functrans.numpy._abstract_eval import AbstractEvalTrace
from functrans.numpy._dtypes import NUMERIC_KINDS

_PLAIN_TYPES = frozenset({np.ndarray, float, int, bool, str, type(None)})


def has_tracer(args: Any) -> bool:
    for a in args:
        t = type(a)
        if t in _PLAIN_TYPES:
            continue
        if isinstance(a, Tracer) or ((t is list or t is tuple) and has_tracer(a)):
            return True
    return False


def numpy_api(
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
            if has_tracer(args) or (kwargs and has_tracer(kwargs.values())):
                return traced(*args, **kwargs)
            try:
                out = numpy_fun(*args, **kwargs)
            except (ValueError, TypeError, IndexError, ArithmeticError):
                _explain_eager_failure(name, traced, args, kwargs)
                raise
            if type(out) is not np.ndarray or out.dtype.kind not in NUMERIC_KINDS:
                _check_result(name, traced, args, kwargs, out)
            return out

        wrapper.__wrapped_numpy__ = numpy_fun  # type: ignore[attr-defined]
        for f in numpy_funs:
            NUMPY_TO_FNP[f] = wrapper
        return wrapper

    return decorate


NUMPY_TO_FNP: dict[Any, Callable[..., Any]] = {}


def _explain_eager_failure(name: str, traced, args, kwargs) -> None:
    """Raise our own error for an eager NumPy failure if the traced implementation
    finds one at the same inputs (NumPy arrays made abstract); else return."""
    try:
        with new_trace(AbstractEvalTrace, name) as trace:

            def abstract(a):
                if isinstance(a, np.ndarray) and a.dtype.kind in NUMERIC_KINDS:
                    return trace.new_arg(get_aval(a))
                if type(a) in (list, tuple) and any(isinstance(b, np.ndarray) for b in a):
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
    if isinstance(out, (np.ndarray, np.generic)) and out.dtype.kind not in NUMERIC_KINDS:
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
            if kind not in NUMERIC_KINDS:
                check_array_arg(name, what, value)
        elif not isinstance(value, (*PYTHON_SCALARS, type, np.dtype, type(None))):
            check_array_arg(name, what, value)
    raise TypeError(f"{name}: the result has the non-numeric dtype {out.dtype}")


def check_array_arg(name: str, what: Any, x: Any) -> None:
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
        if x.dtype.kind in NUMERIC_KINDS:
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
        if arr.dtype.kind in NUMERIC_KINDS:
            return
    raise TypeError(
        f"{name}: {what} must be an array, a number or a list of numbers, not "
        f"{type(x).__name__} ({x!r:.40})"
    )


def rename(fun: Callable[..., Any], name: str) -> None:
    """Name a generated function, also in Python's own argument errors
    (``add() got an unexpected keyword argument ...``)."""
    fun.__name__ = fun.__qualname__ = name
    code = fun.__code__.replace(co_name=name)
    if hasattr(code, "co_qualname"):
        code = code.replace(co_qualname=name)
    fun.__code__ = code


def no_out(name: str, **unsupported: Any) -> None:
    for key, value in unsupported.items():
        if value is not None:
            raise TypeError(f"{name}: the argument {key}= is not supported by functrans.numpy")


# --- NumPy's dispatch protocols on tracers: plain NumPy calls route here ------------------


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    fnp_fun = NUMPY_TO_FNP.get(ufunc)
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


def array_function(self, func, types, args, kwargs):
    fnp_fun = NUMPY_TO_FNP.get(func)
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
    names = sorted({getattr(f, "__name__", "") for f in NUMPY_TO_FNP.values()})
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    return f" (nearest: functrans.numpy.{close[0]})" if close else ""
