"""Errors that explain what went wrong in a transform and how to fix it."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConcretizationTypeError",
    "TracerArrayConversionError",
    "UnexpectedTracerError",
]


class ConcretizationTypeError(TypeError):
    """A traced value was needed as a concrete Python value.

    Under ``jit`` and ``make_jaxpr`` a function sees abstract values (a shape and a
    dtype, no numbers), and under ``vmap`` a value may stand for a whole batch. Code
    such as ``if x > 0:``, ``int(n)``, ``float(x)`` or ``range(n)`` needs a single
    concrete value, which does not exist at that point.

    How to fix it:

    * branch on data with ``functrans.numpy.where(c, a, b)`` or
      ``functrans.lax.cond(pred, true_fun, false_fun, *operands)``;
    * loop with ``functrans.lax.fori_loop`` / ``while_loop`` / ``scan``;
    * if the value is really a configuration constant, mark the argument static:
      ``jit(f, static_argnums=...)``.
    """


class TracerArrayConversionError(TypeError):
    """A traced value was converted to a NumPy array (``np.asarray(tracer)``).

    Inside a transform, values are tracers and cannot become NumPy arrays. Use
    ``functrans.numpy`` functions (or plain NumPy functions that dispatch to them,
    such as ``np.tanh`` or ``np.sum``) instead of converting.
    """

    def __init__(self, tracer: Any):
        super().__init__(
            f"cannot convert a traced array {tracer.aval.str_short()} to a NumPy array "
            "(np.asarray / np.array / __array__). Inside a transform use functrans.numpy "
            "operations, or plain NumPy functions that dispatch to them, instead."
        )


class UnexpectedTracerError(Exception):
    """A tracer was used after the transform that created it had finished.

    This happens when a traced value escapes its function, e.g. by being stored in a
    global, a list or an object attribute inside a ``jit``/``grad``/``vmap``-ed
    function and then used later. Return the value from the function instead.
    """

    @classmethod
    def escaped(cls, tracer: Any, operation: str) -> UnexpectedTracerError:
        trace = tracer._trace
        return cls(
            f"{operation}: encountered a traced value {tracer.aval.str_short()} created by "
            f"{trace.name or type(trace).__name__}, which has already finished (or is "
            "not an enclosing transform). A traced value leaked out of its function, for "
            "example through a global variable or an attribute; return it instead."
        )
