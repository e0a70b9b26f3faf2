"""Lowering a jaxpr to the source of one straight-line Python function over NumPy.

Each equation becomes one statement that calls NumPy directly, on local variables:

    def jitted(a, b, c):
        d = a @ b
        e = d + c
        f = np.tanh(e)
        return (f,)

How a primitive is written is its ``lowering`` slot, a function ``lower(ctx, eqn)``
over the API ``functrans.primitives._lowering.LoweringContext`` describes, which the
``Emitter`` here implements. A primitive without one is called through its ``impl``
(bound, with its params, to a generated name ``implN``); ``Compiled.fallbacks`` lists
the primitives that needed this.

Two things make the generated code as fast as hand-written NumPy. A
``broadcast_in_dim`` feeding elementwise operations becomes a reshape view (or
nothing at all), since NumPy broadcasts by itself; it is materialised (as a
``np.broadcast_to`` view) only for a consumer that needs the full shape. And an
elementwise result is written (``out=``) into the buffer of a temporary that dies
at that operation (``buffers.py``).

Generated code contains no text from the user's program: identifiers are
generated, and numbers and dtype names are written with ``repr``.

>>> import numpy as np, functrans as ft
>>> closed = ft.make_jaxpr(lambda a, b: np.tanh(a) * b)(np.ones(100), np.ones(100))
>>> print(compile_jaxpr(closed).source)
def jitted(a, b):
    c = np.tanh(a)
    d = np.multiply(c, b, out=c)
    return (d,)
"""

from __future__ import annotations

import functools
import itertools
import keyword
import linecache
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from functrans.core import Primitive, registered_primitives
from functrans.ir import Atom, ClosedJaxpr, Jaxpr, JaxprEqn, Literal, Var, var_names
from functrans.primitives._lowering import dtype_source, ints_source
from functrans.transforms.jit.buffers import Buffers
from functrans.transforms.jit.passes import inline_calls, optimize

__all__ = ["Compiled", "Emitter", "compile_jaxpr", "compiled", "lowered_primitives"]


def lowered_primitives() -> set[Primitive]:
    """The primitives with a NumPy lowering; the others call their ``impl``."""
    return {p for p in registered_primitives() if p.lowering is not None}


class Compiled(NamedTuple):
    """A compiled jaxpr: ``fn(*args)`` returns the tuple of outputs. ``typed_fn`` is
    ``fn`` with constant scalar outputs as NumPy values of their dtype rather than
    Python numbers, as a loop body needs so that its carry keeps its type."""

    fn: Callable[..., tuple]
    source: str
    fallbacks: frozenset[str]
    typed_fn: Callable[..., Sequence]


_RESERVED = {"np"}


def _identifiers() -> Iterator[str]:
    """The jaxpr printer's variable names (a, b, ..., z, ba, ...) minus Python keywords
    and the name the generated code uses (``np``)."""
    return (n for n in var_names() if not keyword.iskeyword(n) and n not in _RESERVED)


def _float_source(value: Any, dtype: np.dtype) -> str:
    """The shortest decimal that reads back as ``value`` in ``dtype`` (``0.1``, not
    ``0.10000000149011612``, for a float32)."""
    value = dtype.type(value)
    if np.isnan(value):
        return "np.nan"
    if np.isinf(value):
        return "np.inf" if value > 0 else "-np.inf"
    return repr(float(value)) if dtype == np.float64 else str(value)


_compile_count = itertools.count()


class Emitter:
    """Writes one jaxpr as the body of a Python function: the ``LoweringContext`` of
    every lowering it calls (see there for what each method promises)."""

    def __init__(self, jaxpr: Jaxpr, consts: list[Any]) -> None:
        self.jaxpr = jaxpr
        self.names: dict[Var, str] = {}
        self.fresh = _identifiers()
        self.namespace: dict[str, Any] = {"np": np}
        self.lines: list[str] = []
        self.rt_shape: dict[Var, tuple[int, ...]] = {}  # runtime shape of a lazy broadcast
        self.literal_of: dict[Var, Literal] = {}  # broadcasts of a literal
        self.materialized: dict[Var, str] = {}
        self.buffers = Buffers(jaxpr)
        self.own = self.buffers.own  # LoweringContext.own
        self.skipped: set[int] = set()  # ids of equations a lowering wrote with another
        self.index = 0  # of the equation being written
        self.fallbacks: set[str] = set()
        self.python_scalars: dict[Var, str] = {}  # strongly typed vars held as Python scalars
        self.num_fallbacks = 0
        self.needs_errstate = False
        self.const_notes: list[str] = []  # comments for constants made while lowering
        self.const_ids = {id(v) for v in jaxpr.constvars}
        for v, value in zip(jaxpr.constvars, consts, strict=True):
            self.namespace[self.bind(v)] = value
        self.params = [self.bind(v) for v in jaxpr.invars]
        self.inputs = set(jaxpr.invars)

    def bind(self, v: Var) -> str:
        name = self.names[v] = next(self.fresh)
        return name

    # --- operands -----------------------------------------------------------------

    def literal_source(self, lit: Literal, plain: bool) -> str:
        """Source of a scalar literal. ``plain`` Python numbers behave like weakly typed
        values in NumPy, which is right when another operand fixes the dtype."""
        dtype, value = lit.aval.dtype, lit.val
        if dtype.kind == "b":
            return "True" if value else "False"
        if dtype.kind == "f":
            text = _float_source(value, dtype)
        elif dtype.kind in "iu":
            text = repr(int(value))
        else:
            return self.constant(np.asarray(value, dtype)[()])
        spelled = dtype_source(dtype)
        if plain or lit.aval.weak_type or spelled is None:
            return text
        return f"{spelled}({text})"

    def constant(self, value: Any) -> str:
        name = f"k{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def runtime_shape(self, a: Atom) -> tuple[int, ...]:
        if type(a) is Literal or a in self.literal_of:
            return ()
        return self.rt_shape.get(a, a.aval.shape)

    def name(self, v: Var) -> str:
        return self.names[v]

    def literal(self, a: Atom) -> Literal | None:
        return a if type(a) is Literal else self.literal_of.get(a)

    def lazy_shape(self, v: Var) -> tuple[int, ...] | None:
        return self.rt_shape.get(v)

    def python_scalar(self, v: Var) -> str | None:
        return self.python_scalars.get(v)

    def full(self, v: Var) -> str:
        if v not in self.rt_shape and v not in self.literal_of:
            return self.names[v]
        name = self.materialized.get(v)
        if name is None and v in self.literal_of:
            # A number filling a whole array (a constant of equal elements, a seed):
            # made once, at compile time, as a real array. A zero-stride view would
            # do, but BLAS cannot use one (matmul on it is several times slower).
            value = np.full(v.aval.shape, self.literal_of[v].val, v.aval.dtype)
            value.flags.writeable = False  # shared by every call, as the view was
            name = self.materialized[v] = self.constant(value)
            self.const_notes.append(f"# {name}: constant {v.aval.str_short()}")
        elif name is None:
            name = self.materialized[v] = next(self.fresh)
            shape = ints_source(v.aval.shape)
            self.lines.append(f"{name} = np.broadcast_to({self.names[v]}, {shape})")
        return name

    def operands(self, eqn: JaxprEqn, elementwise: bool = False) -> list[str]:
        atoms = [self.literal_of.get(a, a) if type(a) is Var else a for a in eqn.invars]
        lazy = (
            elementwise
            and np.broadcast_shapes(*map(self.runtime_shape, eqn.invars))
            == eqn.outvars[0].aval.shape
        )
        strong = {a.aval.dtype for a in atoms if type(a) is Var and not a.aval.weak_type}
        args = []
        for a, orig in zip(atoms, eqn.invars, strict=True):
            if type(a) is Literal:
                if lazy or type(orig) is Literal:
                    args.append(self.literal_source(a, elementwise and a.aval.dtype in strong))
                else:
                    args.append(self.full(orig))
            elif lazy:
                args.append(self.names[a])
            else:
                args.append(self.full(a))
        return args

    def holds_numpy_value(self, eqn: JaxprEqn) -> bool:
        """Whether an operand is surely a NumPy array or scalar at run time (weakly
        typed values and literals may be Python scalars)."""
        return any(
            type(a) is Var
            and not a.aval.weak_type
            and a not in self.python_scalars
            and a not in self.literal_of
            for a in eqn.invars
        )

    # --- results ------------------------------------------------------------------

    def out_buffer(self, eqn: JaxprEqn, operand: bool = True) -> str:
        v = self.buffers.take(eqn, self.index, operand)
        return "" if v is None else f", out={self.names[v]}"

    def assign(self, out: Var, expr: str) -> str:
        name = self.bind(out)
        self.lines.append(f"{name} = {expr}")
        return name

    def statement(self, line: str) -> None:
        self.lines.append(line)

    def share(self, out: Var, name: str) -> None:
        self.names[out] = name

    def view_of(self, out: Var, x: Atom) -> None:
        if type(x) is Var:
            self.buffers.share(out, x)

    def set_lazy_shape(self, out: Var, shape: tuple[int, ...]) -> None:
        self.rt_shape[out] = shape

    def set_literal(self, out: Var, lit: Literal) -> None:
        self.literal_of[out] = lit

    def set_python_scalar(self, out: Var, dtype: str | None) -> None:
        if dtype is not None:
            self.python_scalars[out] = dtype

    def alias(self, src: Atom, out: Var) -> None:
        lit = self.literal(src)
        if lit is not None:
            self.literal_of[out] = lit
            return
        self.names[out] = self.names[src]
        self.buffers.share(out, src)
        if src in self.rt_shape:
            self.rt_shape[out] = self.rt_shape[src]
        if src in self.python_scalars:
            self.python_scalars[out] = self.python_scalars[src]

    def only_use(self, v: Var) -> JaxprEqn | None:
        i = self.buffers.only_use(v)
        return None if i is None else self.jaxpr.eqns[i]

    def skip(self, eqn: JaxprEqn) -> None:
        self.skipped.add(id(eqn))

    def ignore_overflow(self) -> None:
        self.needs_errstate = True

    def fallback(self, eqn: JaxprEqn) -> None:
        prim = eqn.primitive
        self.fallbacks.add(prim.name)
        impl = functools.partial(prim.impl, **eqn.params) if eqn.params else prim.impl
        name = f"impl{self.num_fallbacks}"
        self.num_fallbacks += 1
        self.namespace[name] = impl
        args = [
            self.literal_source(a, False) if type(a) is Literal else self.full(a)
            for a in eqn.invars
        ]
        for a in eqn.invars:  # an impl may return its operand itself: never reuse it
            if type(a) is Var:
                self.buffers.pin(a)
        outs = ", ".join(self.bind(v) for v in eqn.outvars)
        if prim.multiple_results:
            outs += "," if len(eqn.outvars) == 1 else ""
        self.lines.append(f"{outs} = {name}({', '.join(args)})")

    # --- the function -------------------------------------------------------------

    def emit_all(self) -> None:
        release = self.buffers.release
        for i, eqn in enumerate(self.jaxpr.eqns):
            if id(eqn) not in self.skipped:
                self.index = i
                lowering = eqn.primitive.lowering
                if lowering is None:
                    self.fallback(eqn)
                else:
                    lowering(self, eqn)
            release(eqn, i)

    def output(self, a: Atom) -> str:
        """An output's source: always a NumPy value (a weakly typed scalar, such as a
        Python number passed in or written in the function, comes out as a NumPy scalar)."""
        dtype_name = dtype_source(a.aval.dtype)
        lit = self.literal(a)
        if lit is not None:
            value = self.literal_source(lit, True)
            if a.aval.ndim == 0:
                return f"{dtype_name}({value})" if dtype_name else self.literal_source(lit, False)
            dtype = dtype_name or self.constant(a.aval.dtype)
            return f"np.full({ints_source(a.aval.shape)}, {value}, dtype={dtype})"
        if a in self.python_scalars:
            return f"{self.python_scalars[a]}({self.names[a]})"
        if a.aval.weak_type and a.aval.ndim == 0 and dtype_name:
            return f"{dtype_name}({self.full(a)})"
        if a.aval.ndim == 0:  # a NumPy scalar, as NumPy gives (never a view)
            return f"np.asarray({self.full(a)})[()]"
        root = self.buffers.owner(a)
        if root in self.inputs or id(root) in self.const_ids:
            # The caller's array or a constant (or a view of one): the result is new.
            return f"{self.full(a)}.copy()"
        return self.full(a)

    def source(self, fn_name: str) -> str:
        self.emit_all()
        outs = [self.output(a) for a in self.jaxpr.outvars]
        comma = "," if len(outs) == 1 else ""
        body = self.lines + [f"return ({', '.join(outs)}{comma})"]
        indent = "    "
        header = [f"def {fn_name}({', '.join(self.params)}):"]
        if self.needs_errstate:
            # A decorator keeps its error state per call (NumPy 2) and costs half of
            # what a ``with`` block does on every call.
            header.insert(0, '@np.errstate(over="ignore")')
        consts = [f"# {self.names[v]}: constant {v.aval.str_short()}" for v in self.jaxpr.constvars]
        consts += self.const_notes
        return "\n".join(consts + header + [indent + line for line in body]) + "\n"


def compile_jaxpr(closed: ClosedJaxpr, fn_name: str = "jitted") -> Compiled:
    """Lower ``closed`` to Python source and compile it.

    Call primitives (those with a ``call_param``) are inlined first; ``fn_name`` must
    be an identifier (it is not taken from user input).
    """
    if not fn_name.isidentifier() or keyword.iskeyword(fn_name):
        raise ValueError(f"compile_jaxpr: {fn_name!r} is not a valid function name")
    if any(e.primitive.call_param for e in closed.jaxpr.eqns):
        closed = optimize(inline_calls(closed))
    emitter = Emitter(closed.jaxpr, closed.consts)
    source = emitter.source(fn_name)
    filename = f"<functrans.jit-{next(_compile_count)}>"
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(code, emitter.namespace)
    fn = emitter.namespace[fn_name]
    constant = [(k, x.aval.dtype) for k, x in enumerate(closed.jaxpr.outvars) if type(x) is Literal]
    typed_fn = functools.partial(_typed_constants, fn, constant) if constant else fn
    return Compiled(fn, source, frozenset(emitter.fallbacks), typed_fn)


def _typed_constants(fn: Callable, constant: list, *args: Any) -> list[Any]:
    outs = list(fn(*args))
    for k, dtype in constant:
        outs[k] = np.asarray(outs[k], dtype)[()]
    return outs


_cache: weakref.WeakKeyDictionary[ClosedJaxpr, Compiled] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def compiled(closed: ClosedJaxpr) -> Compiled:
    """``compile_jaxpr(closed)``, once per ``ClosedJaxpr`` (for as long as it lives)."""
    result = _cache.get(closed)
    if result is None:
        result = compile_jaxpr(closed)
        with _cache_lock:
            result = _cache.setdefault(closed, result)
    return result
