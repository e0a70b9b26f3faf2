"""The spine of functrans: primitives, abstract values, traces and tracers.

Every transform is an interpreter. An interpreter is a ``Trace``; the values it
works on are its ``Tracer`` objects. Applying a primitive (``prim.bind(*args)``)
hands the application to the *current trace*, a per-thread context variable.
Each trace holds a pointer to its ``parent``, the trace that was current when the
transform started, and evaluates primal computations by handing them to it. A
value that is not one of the current trace's tracers is a constant to it.

This is the "stackless" design: no global level counter, no searching of a
stack for the highest-level tracer; nesting order is simply the parent chain.
See ``docs/design.md``.

The IR's records (``Jaxpr``, ``Var``...) are reachable here too, as the IR's part of
the public API; ``functrans.ir`` defines them on top of this module, and the package's
``__init__`` attaches them.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from functrans.errors import (
    ConcretizationTypeError,
    TracerArrayConversionError,
    UnexpectedTracerError,
)

__all__ = [
    "KIND_RANK",
    "PYTHON_SCALARS",
    "Primitive",
    "ShapedArray",
    "Trace",
    "Tracer",
    "EvalTrace",
    "Zero",
    "current_trace",
    "get_aval",
    "instantiate",
    "is_float",
    "missing_rule",
    "new_trace",
    "registered_primitives",
    "set_current_trace",
    "short_dtype_name",
]

# The Python numbers functions accept as array inputs (weakly typed, under NEP 50).
PYTHON_SCALARS = (bool, int, float, complex)

# ---------------------------------------------------------------------------
# Abstract values
# ---------------------------------------------------------------------------

_SHORT_DTYPE_NAMES = {
    "float16": "f16",
    "float32": "f32",
    "float64": "f64",
    "int8": "i8",
    "int16": "i16",
    "int32": "i32",
    "int64": "i64",
    "uint8": "u8",
    "uint16": "u16",
    "uint32": "u32",
    "uint64": "u64",
    "bool": "bool",
    "complex64": "c64",
    "complex128": "c128",
}


def short_dtype_name(dtype: np.dtype) -> str:
    """The jaxpr spelling of a dtype: ``f32``, ``i64``, ``bool``..."""
    return _SHORT_DTYPE_NAMES.get(dtype.name, dtype.name)


class ShapedArray:
    """The abstract value of an array: its shape and dtype.

    ``weak_type`` marks values that came from Python scalars; under NEP 50 they
    adopt the dtype of the array they are combined with.
    """

    __slots__ = ("shape", "dtype", "weak_type")

    def __init__(self, shape: tuple[int, ...], dtype: Any, weak_type: bool = False):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.weak_type = weak_type

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def update(self, shape=None, dtype=None, weak_type=None) -> ShapedArray:
        return ShapedArray(
            self.shape if shape is None else shape,
            self.dtype if dtype is None else dtype,
            self.weak_type if weak_type is None else weak_type,
        )

    def strip_weak_type(self) -> ShapedArray:
        return ShapedArray(self.shape, self.dtype) if self.weak_type else self

    def str_short(self) -> str:
        return f"{short_dtype_name(self.dtype)}[{','.join(map(str, self.shape))}]"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ShapedArray)
            and self.shape == other.shape
            and self.dtype == other.dtype
            and self.weak_type == other.weak_type
        )

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype, self.weak_type))

    def __repr__(self) -> str:
        weak = ", weak_type=True" if self.weak_type else ""
        return f"ShapedArray({self.str_short()}{weak})"


_PYTHON_SCALAR_DTYPES = {
    bool: np.dtype(bool),
    int: np.dtype(np.int64),
    float: np.dtype(np.float64),
    complex: np.dtype(np.complex128),
}


def get_aval(x: Any) -> ShapedArray:
    """The abstract value of any array-like value or tracer."""
    if type(x) is np.ndarray or isinstance(x, np.generic):
        return ShapedArray(x.shape, x.dtype)
    if isinstance(x, Tracer):
        return x.aval
    if isinstance(x, np.ndarray):
        return ShapedArray(x.shape, x.dtype)
    dtype = _PYTHON_SCALAR_DTYPES.get(type(x))
    if dtype is not None:
        return ShapedArray((), dtype, weak_type=True)
    raise TypeError(f"value of type {type(x).__name__} is not a valid array: {x!r:.60}")


def is_float(aval: ShapedArray) -> bool:
    """Whether values of ``aval`` have derivatives (a floating or complex dtype)."""
    return aval.dtype.kind in "fc"


# How far each dtype kind is along NEP 50's promotion order: a weakly typed Python
# number takes the dtype of an array of its kind or a later one.
KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


# ---------------------------------------------------------------------------
# Symbolic zeros
# ---------------------------------------------------------------------------


class Zero:
    """A tangent or cotangent known to be zero: never materialised unless needed."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval

    def __repr__(self) -> str:
        return f"Zero({self.aval.str_short()})"


def instantiate(t: Any, aval: ShapedArray | None = None) -> Any:
    """A tangent or cotangent as an array: a symbolic ``Zero`` becomes zeros, and so
    does ``None`` (no cotangent) given the ``aval`` it stands for."""
    if aval is not None:
        return np.zeros(aval.shape, aval.dtype) if t is None or type(t) is Zero else t
    if type(t) is Zero:
        return np.zeros(t.aval.shape, t.aval.dtype)
    return t


# ---------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------


class Primitive:
    """A named operation. Its rules live in slots that the transforms read.

    ``impl(*arrays, **params)``              NumPy evaluation
    ``abstract_eval(*avals, **params)``     shape/dtype rule -> aval (or list of avals)
    ``jvp(primals, tangents, **params)``    -> (primal_out, tangent_out)
    ``vjp``                                 tuple, one rule per operand:
                                            ``rule(cotangent, ans, *primals, **params)``
                                            or ``None`` for an operand with no derivative
    ``reverse(parent, primals, positions, params)``
                                            a whole reverse-mode rule (calls, control
                                            flow, custom rules) that picks its residuals
    ``batch(args, dims, **params)``         -> (out, out_dim); dims entries are int or None
    ``lowering``                            how ``jit`` writes it in NumPy (without one,
                                            the generated code calls ``impl``)
    ``simplify(eqn, producers)``            the optimizer's algebraic rewrites
    ``call_param``                          for call primitives: the param holding the
                                            ``ClosedJaxpr`` that ``jit`` inlines

    A transform added later keeps its own rules in ``prim.rules`` (``def_rule``)
    rather than in a new slot. Constructing a primitive registers it under its name
    (``registered_primitives()``).
    """

    __slots__ = (
        "name",
        "multiple_results",
        "impl",
        "abstract_eval",
        "jvp",
        "vjp",
        "batch",
        "reverse",
        "differentiable",
        "lowering",
        "simplify",
        "call_param",
        "rules",
        "module",
        "__weakref__",
    )

    def __init__(self, name: str, multiple_results: bool = False):
        self.name = name
        self.multiple_results = multiple_results
        self.impl: Callable | None = None
        self.abstract_eval: Callable | None = None
        self.jvp: Callable | None = None
        self.vjp: tuple[Callable | None, ...] | None = None
        self.batch: Callable | None = None
        self.reverse: Callable | None = None
        # False for primitives whose outputs never carry a derivative (comparisons...).
        self.differentiable = True
        self.lowering: Any = None
        self.simplify: Callable | None = None
        self.call_param: str | None = None
        self.rules: dict[str, Any] = {}
        # Where its rules belong, as error messages say.
        self.module: str = _defining_module(sys._getframe(1))
        _registry.append(weakref.ref(self))

    def __repr__(self) -> str:
        return self.name

    def bind(self, *args: Any, **params: Any) -> Any:
        return _context.trace.process_primitive(self, args, params)

    def def_impl(self, impl: Callable) -> Callable:
        self.impl = impl
        return impl

    def def_abstract_eval(self, rule: Callable) -> Callable:
        self.abstract_eval = rule
        return rule

    def def_jvp(self, rule: Callable) -> Callable:
        self.jvp = rule
        return rule

    def def_vjp(self, *rules: Callable | None) -> None:
        self.vjp = rules

    def def_reverse(self, rule: Callable) -> Callable:
        self.reverse = rule
        return rule

    def def_batch(self, rule: Callable) -> Callable:
        self.batch = rule
        return rule

    def def_lowering(self, lowering: Any) -> Any:
        self.lowering = lowering
        return lowering

    def def_simplify(self, rule: Callable) -> Callable:
        self.simplify = rule
        return rule

    def def_rule(self, kind: str, rule: Any) -> Any:
        """Attach the rule of a transform that has no slot of its own."""
        self.rules[kind] = rule
        return rule


def _defining_module(caller: Any) -> str:
    """The module whose top-level code made a primitive: the caller's, or, when the
    caller is one of functrans's constructor helpers, the module that called it."""
    frame = caller
    while (
        frame is not None
        and frame.f_code.co_name != "<module>"
        and frame.f_globals.get("__name__", "").startswith("functrans.")
    ):
        frame = frame.f_back
    if frame is None or frame.f_code.co_name != "<module>":
        frame = caller
    return frame.f_globals.get("__name__", "?")


# Every primitive ever constructed (weakly: one made inside a function may go away).
_registry: list[weakref.ref[Primitive]] = []


def registered_primitives() -> list[Primitive]:
    """Every live primitive, in the order they were constructed.

    >>> any(p.name == "add" for p in registered_primitives())
    True
    """
    live = [p for p in (r() for r in _registry) if p is not None]
    if len(live) < len(_registry):
        _registry[:] = [weakref.ref(p) for p in live]
    return live


def missing_rule(prim: Primitive, transform: str, rule: str, how: str) -> NotImplementedError:
    """The error a transform raises when it meets a primitive without the rule it needs."""
    return NotImplementedError(
        f"{transform}: the primitive {prim.name!r} has no {rule} rule. Add it where the "
        f"primitive is defined ({prim.module}), with {how} (see docs/extending.md)."
    )


# ---------------------------------------------------------------------------
# Traces and tracers
# ---------------------------------------------------------------------------


class Trace:
    """An interpreter. Subclasses implement ``process_primitive``."""

    __slots__ = ("parent", "alive", "name")

    def __init__(self, parent: Trace | None, name: str = "") -> None:
        self.parent = parent
        self.alive = True
        self.name = name

    def process_primitive(self, prim: Primitive, args: Sequence[Any], params: dict) -> Any:
        raise NotImplementedError

    def concretize(self, tracer: Tracer, conversion: str) -> Any:
        """The concrete value of ``tracer`` for a Python conversion, or an error."""
        raise ConcretizationTypeError(
            f"{conversion}() was called on a traced value of shape {tracer.shape} "
            f"inside {self.name or type(self).__name__}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class EvalTrace(Trace):
    """The bottom interpreter: runs each primitive's NumPy implementation."""

    __slots__ = ()

    def process_primitive(self, prim: Primitive, args: Sequence[Any], params: dict) -> Any:
        for x in args:
            if isinstance(x, Tracer):
                raise UnexpectedTracerError.escaped(x, prim.name)
        if prim.impl is None:
            raise missing_rule(prim, "evaluation", "implementation", "prim.def_impl(impl)")
        try:
            return prim.impl(*args, **params)
        except Exception as numpy_error:
            _explain_failure(prim, args, params, numpy_error)
            raise


def _explain_failure(prim: Primitive, args: Sequence[Any], params: dict, error: Exception) -> None:
    """Raise the shape rule's error (which names the operation and the shapes) when it
    rejects the operands the implementation failed on; return if it accepts them."""
    try:
        avals = [get_aval(x) for x in args]
    except TypeError:
        return
    try:
        prim.abstract_eval(*avals, **params)
    except (TypeError, ValueError) as explained:
        raise explained from error


EVAL_TRACE = EvalTrace(None, "eval")


class _Context(threading.local):
    def __init__(self) -> None:
        self.trace: Trace = EVAL_TRACE


_context = _Context()


def current_trace() -> Trace:
    return _context.trace


@contextmanager
def set_current_trace(trace: Trace):
    """Make ``trace`` current for the duration of the block (this thread only)."""
    previous = _context.trace
    _context.trace = trace
    try:
        yield trace
    finally:
        _context.trace = previous


@contextmanager
def new_trace(trace_type: type[Trace], name: str = "", **kwargs: Any):
    """Start a transform: a new trace whose parent is the current one.

    When the block ends the trace dies, so that any of its tracers that leaked out
    are reported when they are used (``UnexpectedTracerError``).
    """
    previous = _context.trace
    trace = trace_type(previous, name, **kwargs)
    _context.trace = trace
    try:
        yield trace
    finally:
        _context.trace = previous
        trace.alive = False


def call_with_trace(trace: Trace, fun: Callable, *args: Any, **kwargs: Any) -> Any:
    """``fun(*args)`` with ``trace`` current: how a trace runs a rule on its parent."""
    previous = _context.trace
    _context.trace = trace
    try:
        return fun(*args, **kwargs)
    finally:
        _context.trace = previous


class Tracer:
    """A value being traced by a transform. Subclasses define ``aval``.

    Operators, NumPy protocols and array methods are attached by
    ``functrans.numpy``, so that tracers behave like NumPy arrays.
    """

    __slots__ = ("_trace",)
    __array_priority__ = 1000

    @property
    def aval(self) -> ShapedArray:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...]:
        return self.aval.shape

    @property
    def dtype(self) -> np.dtype:
        return self.aval.dtype

    @property
    def weak_type(self) -> bool:
        return self.aval.weak_type

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object (a traced scalar)")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d traced array")
        return (self[i] for i in range(self.shape[0]))

    def _concrete(self, conversion: str) -> Any:
        trace = self._trace
        if not trace.alive:
            raise UnexpectedTracerError.escaped(self, conversion)
        return trace.concretize(self, conversion)

    def __bool__(self) -> bool:
        return bool(self._concrete("bool"))

    def __int__(self) -> int:
        return int(self._concrete("int"))

    def __float__(self) -> float:
        return float(self._concrete("float"))

    def __complex__(self) -> complex:
        return complex(self._concrete("complex"))

    def __index__(self) -> int:
        return self._concrete("index").__index__()

    def __array__(self, dtype=None, copy=None):
        if not self._trace.alive:
            raise UnexpectedTracerError.escaped(self, "np.asarray")
        raise TracerArrayConversionError(self)

    def __hash__(self):
        raise TypeError(f"unhashable type: traced array {self.aval.str_short()}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}<{self.aval.str_short()}>"

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def is_tracer(x: Any) -> bool:
    return isinstance(x, Tracer)
