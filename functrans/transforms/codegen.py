"""Lowering a jaxpr to the source of one straight-line Python function over NumPy.

Each equation becomes one statement that calls NumPy directly, on local variables:

    def jitted(a, b, c):
        d = a @ b
        e = d + c
        f = np.tanh(e)
        return (f,)

``LOWERINGS`` maps a primitive to its lowering. A primitive without one is called
through its ``impl`` (bound, with its params, to a generated name ``implN``);
``Compiled.fallbacks`` lists the primitives that needed this.

Two things make the generated code as fast as hand-written NumPy. A
``broadcast_in_dim`` feeding elementwise operations becomes a reshape view (or
nothing at all), since NumPy broadcasts by itself; it is materialised (as a
``np.broadcast_to`` view) only for a consumer that needs the full shape. And an
elementwise result is written (``out=``) into the buffer of a temporary that dies
at that operation, or into a dead temporary of the same type, which saves
allocations on long elementwise chains. Only arrays the generated code allocated
itself are ever reused: never an input, a constant, or memory a view still shares.

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

from functrans import primitives as P
from functrans.core import Primitive
from functrans.ir import ClosedJaxpr, Jaxpr, JaxprEqn, Literal, Var, var_names
from functrans.transforms.autodiff.custom import custom_jvp_call_p, custom_vjp_call_p

__all__ = [
    "CALLS",
    "LOWERINGS",
    "Compiled",
    "Lowering",
    "compile_jaxpr",
    "compiled",
    "lowered_primitives",
]

# Call primitives whose bodies code generation inlines (primitive -> param holding
# the ClosedJaxpr). ``jit`` adds its own primitive.
CALLS: dict[Primitive, str] = {custom_jvp_call_p: "call_jaxpr", custom_vjp_call_p: "call_jaxpr"}

# Temporaries smaller than this are not worth an ``out=`` argument.
REUSE_MIN_SIZE = 64


class Lowering(NamedTuple):
    """How to write one primitive in NumPy.

    ``emit(args, eqn, out)`` returns the expression; ``args`` are the operands'
    source, ``out`` is ``""`` or ``", out=<buffer>"`` (only when ``out`` is set).
    ``elementwise``: operands broadcast against each other as in NumPy.
    ``out``: ``"operand"`` if the result may be written into a dying operand (ufuncs),
    ``"fresh"`` if only into a buffer that is not an operand (``np.matmul``).
    ``result``: ``"fresh"`` (a new array), ``"view"`` (shares operand 0's memory) or
    ``"alias"`` (is operand 0).
    ``operator``: the Python operator with the same meaning, used when an operand is
    a NumPy value (two Python scalars would give a Python scalar); it is a little
    faster than the function call on small arrays.
    """

    emit: Callable[[list[str], JaxprEqn, str], str]
    elementwise: bool = False
    out: str | None = None
    result: str = "fresh"
    operator: str | None = None  # written ``a + b`` / ``-a`` when not writing into a buffer


def _ints(values: Any) -> str:
    values = tuple(int(v) for v in values)
    return repr(values)


def _axis(axes: Any) -> str:
    axes = tuple(int(a) for a in axes)
    return str(axes[0]) if len(axes) == 1 else repr(axes)


# dtype name -> how generated code spells it (only these names are ever written out)
_DTYPE_NAMES = {"bool": "np.bool_"} | {
    name: f"np.{name}"
    for name in [
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64", "complex64", "complex128",
    ]
}  # fmt: skip


def _ufunc(name: str, operator: str | None = None) -> Lowering:
    return Lowering(
        lambda args, e, out: f"np.{name}({', '.join(args)}{out})",
        elementwise=True,
        out="operand",
        operator=operator,
    )


# Operands of rank >= 1 are always ndarrays, so methods (faster than the np.* functions
# on small arrays) are safe; a rank-0 operand may be a Python scalar.


def _transpose(args, e, out):
    perm = tuple(int(p) for p in e.params["permutation"])
    return f"{args[0]}.T" if perm == (1, 0) else f"{args[0]}.transpose({_ints(perm)})"


def _reshape(args, e, out):
    shape = _ints(e.params["new_sizes"])
    if e.invars[0].aval.ndim:
        return f"{args[0]}.reshape({shape})"
    return f"np.reshape({args[0]}, {shape})"


def _integer_pow(args, e, out):
    (x,), y = args, int(e.params["y"])
    if y == 2:
        return f"np.multiply({x}, {x}{out})"
    return f"np.power({x}, {y}{out})"


def _slice(args, e, out):
    p = e.params
    strides = p["strides"] or (1,) * len(p["start_indices"])
    parts = []
    for a, b, s in zip(p["start_indices"], p["limit_indices"], strides, strict=True):
        a, b, s = int(a), int(b), int(s)
        parts.append(f"{a}:{b}" if s == 1 else f"{a}:{b}:{s}")
    return f"{args[0]}[{', '.join(parts)}]"


def _argmax(name: str) -> Lowering:
    def emit(args, e, out):
        expr = f"{args[0]}.{name}(axis={int(e.params['axis'])})"
        dtype = np.dtype(e.params["index_dtype"])
        if dtype != np.dtype(np.intp):
            expr += f".astype({_DTYPE_NAMES[dtype.name]})"
        return expr

    return Lowering(emit)


LOWERINGS: dict[Primitive, Lowering] = {
    **{
        prim: _ufunc(name, operator)
        for prim, name, operator in [
            (P.add_p, "add", "+"),
            (P.sub_p, "subtract", "-"),
            (P.mul_p, "multiply", "*"),
            (P.div_p, "divide", "/"),
            (P.floor_divide_p, "floor_divide", "//"),
            (P.remainder_p, "remainder", "%"),
            (P.neg_p, "negative", "-"),
            (P.eq_p, "equal", "=="),
            (P.ne_p, "not_equal", "!="),
            (P.lt_p, "less", "<"),
            (P.le_p, "less_equal", "<="),
            (P.gt_p, "greater", ">"),
            (P.ge_p, "greater_equal", ">="),
        ]
    },
    **{
        prim: _ufunc(name)
        for prim, name in [
            (P.exp_p, "exp"),
            (P.log_p, "log"),
            (P.log1p_p, "log1p"),
            (P.expm1_p, "expm1"),
            (P.tanh_p, "tanh"),
            (P.sin_p, "sin"),
            (P.cos_p, "cos"),
            (P.tan_p, "tan"),
            (P.atan_p, "arctan"),
            (P.sqrt_p, "sqrt"),
            (P.abs_p, "absolute"),
            (P.sign_p, "sign"),
            (P.floor_p, "floor"),
            (P.fmod_p, "fmod"),
            (P.max_p, "maximum"),
            (P.min_p, "minimum"),
            (P.pow_p, "power"),
            (P.not_p, "logical_not"),
            (P.is_finite_p, "isfinite"),
            (P.and_p, "logical_and"),
            (P.or_p, "logical_or"),
        ]
    },  # fmt: skip
    P.integer_pow_p: Lowering(_integer_pow, elementwise=True, out="operand"),
    P.select_p: Lowering(lambda a, e, out: f"np.where({', '.join(a)})", elementwise=True),
    P.matmul_p: Lowering(
        lambda a, e, out: f"np.matmul({a[0]}, {a[1]}{out})", out="fresh", operator="@"
    ),
    P.argmax_p: _argmax("argmax"),
    P.argmin_p: _argmax("argmin"),
    P.transpose_p: Lowering(_transpose, result="view"),
    P.reshape_p: Lowering(_reshape, result="view"),
    P.rev_p: Lowering(
        lambda a, e, out: f"np.flip({a[0]}, axis={_ints(e.params['dimensions'])})",
        result="view",
    ),
    P.slice_p: Lowering(_slice, result="view"),
    P.gather_p: Lowering(lambda a, e, out: f"{a[0]}[{', '.join(a[1:])}]", result="view"),
    P.concatenate_p: Lowering(
        lambda a, e, out: f"np.concatenate(({', '.join(a)},), axis={int(e.params['dimension'])})"
    ),
    P.stop_gradient_p: Lowering(lambda a, e, out: a[0], result="alias"),
}


def _pad(args, e, out):
    widths = tuple((int(lo), int(hi)) for lo, hi, _ in e.params["padding_config"])
    return f"np.pad({args[0]}, {widths!r})"


# The ufunc reductions: what ndarray.sum and friends call, minus a Python layer.
_REDUCTIONS = {P.reduce_sum_p: "np.add", P.reduce_max_p: "np.maximum",
               P.reduce_min_p: "np.minimum", P.reduce_prod_p: "np.multiply"}  # fmt: skip


def _lowering(eqn: JaxprEqn) -> Lowering | None:
    if eqn.primitive is P.pad_p:
        # np.pad takes neither interior nor negative (cropping) padding, nor a scalar
        # (no axes to pad): those fall back to the impl.
        config = eqn.params["padding_config"]
        if not config or any(i or lo < 0 or hi < 0 for lo, hi, i in config):
            return None
        return Lowering(_pad)
    return LOWERINGS.get(eqn.primitive)


def _convert_lowering(eqn: JaxprEqn) -> str | None:
    return _DTYPE_NAMES.get(np.dtype(eqn.params["new_dtype"]).name)


def lowered_primitives() -> set[Primitive]:
    """The primitives with a NumPy lowering; the others call their ``impl``."""
    special = {P.broadcast_in_dim_p, P.sigmoid_p, P.convert_element_type_p, P.pad_p}
    return set(LOWERINGS) | special | set(_REDUCTIONS)


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


def _float_text(value: Any, dtype: np.dtype) -> str:
    """The shortest decimal that reads back as ``value`` in ``dtype`` (``0.1``, not
    ``0.10000000149011612``, for a float32)."""
    value = dtype.type(value)
    if np.isnan(value):
        return "np.nan"
    if np.isinf(value):
        return "np.inf" if value > 0 else "-np.inf"
    return repr(float(value)) if dtype == np.float64 else str(value)


_compile_count = itertools.count()


class _Emitter:
    def __init__(self, jaxpr: Jaxpr, consts: list[Any]) -> None:
        self.jaxpr = jaxpr
        self.names: dict[Var, str] = {}
        self.fresh = _identifiers()
        self.namespace: dict[str, Any] = {"np": np}
        self.lines: list[str] = []
        self.rt_shape: dict[Var, tuple[int, ...]] = {}  # runtime shape of a lazy broadcast
        self.literal_of: dict[Var, Literal] = {}  # broadcasts of a literal
        self.materialized: dict[Var, str] = {}
        self.owned: set[Var] = set()  # buffers this function allocated
        self.pinned: set[Var] = set()  # buffers that a view or alias shares
        self.root: dict[Var, Var] = {}  # view/alias -> the variable owning the memory
        self.pool: dict[tuple, list[Var]] = {}  # dead owned buffers by (shape, dtype)
        self.fallbacks: set[str] = set()
        self.python_scalar: dict[Var, str] = {}  # strongly typed vars held as Python scalars
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

    def literal(self, lit: Literal, plain: bool) -> str:
        """Source of a scalar literal. ``plain`` Python numbers behave like weakly typed
        values in NumPy, which is right when another operand fixes the dtype."""
        dtype, value = lit.aval.dtype, lit.val
        if dtype.kind == "b":
            return "True" if value else "False"
        if dtype.kind == "f":
            text = _float_text(value, dtype)
        elif dtype.kind in "iu":
            text = repr(int(value))
        else:
            return self.constant(np.asarray(value, dtype)[()])
        if plain or lit.aval.weak_type or dtype.name not in _DTYPE_NAMES:
            return text
        return f"{_DTYPE_NAMES[dtype.name]}({text})"

    def constant(self, value: Any) -> str:
        name = f"k{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def runtime_shape(self, a: Var | Literal) -> tuple[int, ...]:
        if type(a) is Literal or a in self.literal_of:
            return ()
        return self.rt_shape.get(a, a.aval.shape)

    def full(self, v: Var) -> str:
        """``v`` with its full shape (a lazy broadcast materialised once, as a view)."""
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
            self.lines.append(f"{name} = np.broadcast_to({self.names[v]}, {_ints(v.aval.shape)})")
        return name

    def operands(self, eqn: JaxprEqn, elementwise: bool) -> list[str]:
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
                    args.append(self.literal(a, elementwise and a.aval.dtype in strong))
                else:
                    args.append(self.full(orig))
            elif lazy:
                args.append(self.names[a])
            else:
                args.append(self.full(a))
        return args

    # --- buffers ------------------------------------------------------------------

    def owner(self, v: Var) -> Var:
        return self.root.get(v, v)

    def reusable(self, v: Var, out: Var) -> bool:
        return (
            v in self.owned
            and v not in self.pinned
            and v.aval.shape == out.aval.shape
            and v.aval.dtype == out.aval.dtype
            and not v.aval.weak_type
        )

    def take_buffer(self, eqn: JaxprEqn, mode: str, i: int) -> str:
        out = eqn.outvars[0]
        aval = out.aval
        if aval.ndim == 0 or aval.size < REUSE_MIN_SIZE or aval.weak_type:
            return ""
        if any(type(a) is Var and a.aval.weak_type for a in eqn.invars):
            return ""
        if mode == "operand":
            for a in eqn.invars:
                if type(a) is Var and self.last_use.get(a) == i and self.reusable(a, out):
                    self.owned.discard(a)
                    return f", out={self.names[a]}"
        free = self.pool.get((aval.shape, aval.dtype))
        if free:
            return f", out={self.names[free.pop()]}"
        return ""

    def release(self, eqn: JaxprEqn, i: int) -> None:
        for a in set(eqn.invars):
            if type(a) is Var and self.last_use.get(a) == i and a in self.owned:
                self.owned.discard(a)
                if a not in self.pinned and a.aval.ndim and not a.aval.weak_type:
                    self.pool.setdefault((a.aval.shape, a.aval.dtype), []).append(a)

    # --- equations ------------------------------------------------------------------

    def emit_all(self) -> None:
        self.last_use: dict[Var, int] = {}
        self.users: dict[Var, list[int]] = {}
        for i, eqn in enumerate(self.jaxpr.eqns):
            for a in eqn.invars:
                if type(a) is Var:
                    self.last_use[a] = i
                    self.users.setdefault(a, []).append(i)
        for a in self.jaxpr.outvars:
            if type(a) is Var:
                self.last_use[a] = len(self.jaxpr.eqns)
                self.users.setdefault(a, []).append(len(self.jaxpr.eqns))
        self.skip: set[int] = set()
        for i, eqn in enumerate(self.jaxpr.eqns):
            if i not in self.skip:
                self.emit(eqn, i)
            self.release(eqn, i)

    def keepdims_reshape(self, eqn: JaxprEqn) -> int | None:
        """The index of the reshape that is the only use of a reduction's result and
        only restores the reduced axes as size 1 (NumPy's ``keepdims=True``)."""
        (x,), (out,) = eqn.invars, eqn.outvars
        users = self.users.get(out, [])
        if len(users) != 1 or users[0] >= len(self.jaxpr.eqns):
            return None
        user = self.jaxpr.eqns[users[0]]
        axes = eqn.params["axes"]
        kept = tuple(1 if i in axes else n for i, n in enumerate(x.aval.shape))
        if user.primitive is P.reshape_p and user.outvars[0].aval.shape == kept:
            return users[0]
        return None

    def emit(self, eqn: JaxprEqn, i: int) -> None:
        prim = eqn.primitive
        if prim is P.broadcast_in_dim_p:
            return self.broadcast(eqn)
        if prim is P.sigmoid_p:
            return self.sigmoid(eqn, i)
        if prim is P.convert_element_type_p and _convert_lowering(eqn) is not None:
            return self.convert(eqn)
        if prim in _REDUCTIONS:
            return self.reduction(eqn, _REDUCTIONS[prim])
        lowering = _lowering(eqn)
        if lowering is None:
            return self.fallback(eqn)
        (out,) = eqn.outvars
        if lowering.result == "alias":
            return self.alias(eqn.invars[0], out)
        args = self.operands(eqn, lowering.elementwise)
        buffer = self.take_buffer(eqn, lowering.out, i) if lowering.out else ""
        if lowering.operator and not buffer and self.holds_numpy_value(eqn):
            op = lowering.operator
            expr = f"{op}{args[0]}" if len(args) == 1 else f" {op} ".join(args)
        else:
            expr = lowering.emit(args, eqn, buffer)
        self.lines.append(f"{self.bind(out)} = {expr}")
        if lowering.result == "view":
            if type(eqn.invars[0]) is Var:
                owner = self.owner(eqn.invars[0])
                self.root[out] = owner
                self.pinned.add(owner)
        elif out.aval.ndim:
            self.owned.add(out)
        return None

    def holds_numpy_value(self, eqn: JaxprEqn) -> bool:
        """Whether an operand is surely a NumPy array or scalar at run time (weakly
        typed values and literals may be Python scalars)."""
        return any(
            type(a) is Var
            and not a.aval.weak_type
            and a not in self.python_scalar
            and a not in self.literal_of
            for a in eqn.invars
        )

    def alias(self, src: Var | Literal, out: Var) -> None:
        """``out`` is ``src``: no statement, the same variable (or literal)."""
        if type(src) is Literal or src in self.literal_of:
            self.literal_of[out] = src if type(src) is Literal else self.literal_of[src]
            return
        self.names[out] = self.names[src]
        self.root[out] = self.owner(src)
        self.pinned.add(self.owner(src))
        if src in self.rt_shape:
            self.rt_shape[out] = self.rt_shape[src]
        if src in self.python_scalar:
            self.python_scalar[out] = self.python_scalar[src]

    def broadcast(self, eqn: JaxprEqn) -> None:
        (x,), (out,) = eqn.invars, eqn.outvars
        shape, dims = eqn.params["shape"], eqn.params["broadcast_dimensions"]
        if type(x) is Literal or x in self.literal_of:
            self.literal_of[out] = x if type(x) is Literal else self.literal_of[x]
            return
        src = self.full(x)
        expanded = [1] * len(shape)
        for size, d in zip(x.aval.shape, dims, strict=True):
            expanded[d] = size
        lead = next((k for k, n in enumerate(expanded) if n != 1), len(expanded))
        view = tuple(expanded[lead:])
        owner = self.owner(x)
        self.pinned.add(owner)
        self.root[out] = owner
        if tuple(expanded) == tuple(shape):  # no new data: a reshape
            if x.aval.shape == tuple(shape):
                self.names[out] = src
                return
            self.lines.append(f"{self.bind(out)} = {self.reshape(x, src, shape)}")
            return
        if view == x.aval.shape:  # NumPy broadcasts leading axes by itself
            self.names[out] = src
            if x in self.python_scalar:
                self.python_scalar[out] = self.python_scalar[x]
        else:
            self.lines.append(f"{self.bind(out)} = {self.reshape(x, src, view)}")
        self.rt_shape[out] = view

    @staticmethod
    def reshape(x: Var, src: str, shape: tuple[int, ...]) -> str:
        if x.aval.ndim:
            return f"{src}.reshape({_ints(shape)})"
        return f"np.reshape({src}, {_ints(shape)})"

    def reduction(self, eqn: JaxprEqn, ufunc: str) -> None:
        (x,), (out,) = eqn.invars, eqn.outvars
        (arg,) = self.operands(eqn, False)
        axes = eqn.params["axes"]
        args = [arg, "axis=None" if len(axes) == x.aval.ndim else f"axis={_axis(axes)}"]
        j = self.keepdims_reshape(eqn)
        if j is not None:
            args.append("keepdims=True")
            out = self.jaxpr.eqns[j].outvars[0]
            self.skip.add(j)
        self.lines.append(f"{self.bind(out)} = {ufunc}.reduce({', '.join(args)})")
        if out.aval.ndim:
            self.owned.add(out)

    def sigmoid(self, eqn: JaxprEqn, i: int) -> None:
        # 1 / (1 + exp(-x)) in place: as accurate as the primitive's impl and four times
        # faster. exp(-x) overflows to inf for very negative x, giving the correct 0, so
        # the function runs with overflow warnings off.
        (x,) = self.operands(eqn, False)
        (out,) = eqn.outvars
        self.needs_errstate = True
        if out.aval.ndim == 0:
            expr = f"np.reciprocal(np.add(np.exp(np.negative({x})), 1.0))"
            self.lines.append(f"{self.bind(out)} = {expr}")
            return
        buffer = self.take_buffer(eqn, "operand", i)
        o = self.bind(out)
        self.lines += [
            f"{o} = np.negative({x}{buffer})",
            f"np.exp({o}, out={o})",
            f"np.add({o}, 1.0, out={o})",
            f"np.reciprocal({o}, out={o})",
        ]
        self.owned.add(out)

    def convert(self, eqn: JaxprEqn) -> None:
        (x,), (out,) = eqn.invars, eqn.outvars
        dtype = _convert_lowering(eqn)
        new_dtype = np.dtype(eqn.params["new_dtype"])
        if type(x) is Literal or x in self.literal_of:
            lit = x if type(x) is Literal else self.literal_of[x]
            self.literal_of[out] = Literal(new_dtype.type(lit.val))
            return
        if x.aval.weak_type and x.aval.ndim == 0 and x.aval.dtype == new_dtype:
            # A Python scalar already converts to new_dtype wherever NumPy uses it.
            self.names[out] = self.names[x]
            self.python_scalar[out] = dtype
            return
        if x.aval.dtype == new_dtype:  # only weakness changes: nothing to compute
            self.alias(x, out)
            return
        if x in self.rt_shape:  # convert the small operand; stay a lazy broadcast
            self.lines.append(f"{self.bind(out)} = np.asarray({self.names[x]}, dtype={dtype})")
            self.rt_shape[out] = self.rt_shape[x]
        elif x.aval.ndim:
            self.lines.append(f"{self.bind(out)} = {self.names[x]}.astype({dtype})")
            self.owned.add(out)
        else:
            self.lines.append(f"{self.bind(out)} = np.asarray({self.names[x]}, dtype={dtype})")

    def fallback(self, eqn: JaxprEqn) -> None:
        prim = eqn.primitive
        self.fallbacks.add(prim.name)
        impl = functools.partial(prim.impl, **eqn.params) if eqn.params else prim.impl
        name = f"impl{self.num_fallbacks}"
        self.num_fallbacks += 1
        self.namespace[name] = impl
        args = [self.literal(a, False) if type(a) is Literal else self.full(a) for a in eqn.invars]
        for a in eqn.invars:  # an impl may return its operand itself: never reuse it
            if type(a) is Var:
                self.pinned.add(self.owner(a))
        outs = ", ".join(self.bind(v) for v in eqn.outvars)
        if prim.multiple_results:
            outs += "," if len(eqn.outvars) == 1 else ""
        self.lines.append(f"{outs} = {name}({', '.join(args)})")

    # --- the function -------------------------------------------------------------

    def output(self, a: Var | Literal) -> str:
        """An output's source: always a NumPy value (a weakly typed scalar, such as a
        Python number passed in or written in the function, comes out as a NumPy scalar)."""
        dtype_name = _DTYPE_NAMES.get(a.aval.dtype.name)
        if type(a) is Literal or a in self.literal_of:
            lit = a if type(a) is Literal else self.literal_of[a]
            value = self.literal(lit, True)
            if a.aval.ndim == 0:
                return f"{dtype_name}({value})" if dtype_name else self.literal(lit, False)
            dtype = _DTYPE_NAMES.get(a.aval.dtype.name) or self.constant(a.aval.dtype)
            return f"np.full({_ints(a.aval.shape)}, {value}, dtype={dtype})"
        if a in self.python_scalar:
            return f"{self.python_scalar[a]}({self.names[a]})"
        if a.aval.weak_type and a.aval.ndim == 0 and dtype_name:
            return f"{dtype_name}({self.full(a)})"
        if a.aval.ndim == 0:  # a NumPy scalar, as NumPy gives (never a view)
            return f"np.asarray({self.full(a)})[()]"
        root = self.owner(a)
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

    Call primitives in ``CALLS`` are inlined first; ``fn_name`` must be an identifier
    (it is not taken from user input).
    """
    if not fn_name.isidentifier() or keyword.iskeyword(fn_name):
        raise ValueError(f"compile_jaxpr: {fn_name!r} is not a valid function name")
    if any(e.primitive in CALLS for e in closed.jaxpr.eqns):
        from functrans.transforms.optimize import optimize

        closed = optimize(closed, inline=CALLS)
    emitter = _Emitter(closed.jaxpr, closed.consts)
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
