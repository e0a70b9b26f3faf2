"""How a primitive is written in NumPy by ``jit``: the ``lowering`` slot and its helpers.

A lowering is a function ``lower(ctx, eqn)`` that writes one equation into the
generated function through the code generator's API (``LoweringContext``). Most
primitives are one NumPy expression; for them a ``Lowering`` record (itself such a
function) says how to spell it, and one-line helpers make the common cases:

    add_p.def_lowering(ufunc("add", operator="+"))
    transpose_p.def_lowering(view(_transpose_source))

A primitive without a lowering is called through its ``impl``. Generated code
contains no text from the user's program: a lowering writes identifiers the context
gives it, and numbers and dtype names through ``repr`` and ``dtype_source``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

import numpy as np

from functrans.ir import Atom, JaxprEqn, Literal, Var

__all__ = [
    "Lowering",
    "LoweringContext",
    "alias",
    "axis_source",
    "call_impl",
    "dtype_source",
    "expression",
    "ints_source",
    "ufunc",
    "view",
]


class LoweringContext(Protocol):
    """What a lowering may call: the code generator writing the current equation.

    Three things besides plain statements make the generated code fast, and a
    lowering keeps them true. A *lazy broadcast* is a variable held with a smaller
    runtime shape (``lazy_shape``) that NumPy broadcasts wherever it is used; a
    variable may stand for a scalar *literal* filling its shape; and the result of an
    elementwise operation may be written (``out=``) into the buffer of an array the
    function *owns* (allocated itself, shared by no view) once that array is dead.
    """

    def operands(self, eqn: JaxprEqn, elementwise: bool = False) -> list[str]:
        """The source of each operand. ``elementwise``: operands may keep their lazy
        broadcasts (NumPy broadcasts them against each other); otherwise each has
        its full shape."""

    def name(self, v: Var) -> str:
        """The name holding ``v`` (with its lazy shape, if any)."""

    def full(self, v: Var) -> str:
        """The source of ``v`` with its full shape."""

    def literal(self, a: Atom) -> Literal | None:
        """The scalar literal ``a`` stands for (a literal or a broadcast of one)."""

    def lazy_shape(self, v: Var) -> tuple[int, ...] | None:
        """The runtime shape of a lazy broadcast; None for a variable of full shape."""

    def python_scalar(self, v: Var) -> str | None:
        """For a strongly typed scalar held as a Python number, its dtype's source."""

    def holds_numpy_value(self, eqn: JaxprEqn) -> bool:
        """Whether an operand is surely a NumPy array or scalar at run time."""

    def out_buffer(self, eqn: JaxprEqn, operand: bool = True) -> str:
        """``""`` or ``", out=<name>"``: the buffer of a dead owned array of the
        result's type to write into; one of the operands dying here if ``operand``,
        else only one that died before."""

    def assign(self, out: Var, expr: str) -> str:
        """Write ``out = expr``; returns the name given to ``out``."""

    def statement(self, line: str) -> None:
        """Write a statement that defines no variable (an in-place update)."""

    def share(self, out: Var, name: str) -> None:
        """``out`` is held by an existing ``name``: no statement."""

    def own(self, out: Var) -> None:
        """``out`` is a new array this function allocated (its buffer may be reused)."""

    def view_of(self, out: Var, x: Atom) -> None:
        """``out`` shares the memory of operand ``x`` (neither is reused while both live)."""

    def set_lazy_shape(self, out: Var, shape: tuple[int, ...]) -> None:
        """``out`` is a lazy broadcast held with runtime ``shape``."""

    def set_literal(self, out: Var, lit: Literal) -> None:
        """``out`` stands for ``lit`` filling its shape: no statement."""

    def set_python_scalar(self, out: Var, dtype: str | None) -> None:
        """``out`` is held as a Python number standing for a scalar of ``dtype``."""

    def alias(self, src: Atom, out: Var) -> None:
        """``out`` is ``src`` itself: the same name (or literal), no statement."""

    def only_use(self, v: Var) -> JaxprEqn | None:
        """The equation that is the only use of ``v`` (None if ``v`` has others or is
        an output)."""

    def skip(self, eqn: JaxprEqn) -> None:
        """A later equation is written by this one (its output is this statement's)."""

    def ignore_overflow(self) -> None:
        """Run the generated function with floating-point overflow warnings off."""

    def fallback(self, eqn: JaxprEqn) -> None:
        """Write the equation as a call of the primitive's ``impl``."""


class Lowering(NamedTuple):
    """A lowering that is one NumPy expression.

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

    def __call__(self, ctx: LoweringContext, eqn: JaxprEqn) -> None:
        (out,) = eqn.outvars
        if self.result == "alias":
            return ctx.alias(eqn.invars[0], out)
        args = ctx.operands(eqn, self.elementwise)
        buffer = ctx.out_buffer(eqn, self.out == "operand") if self.out else ""
        if self.operator and not buffer and ctx.holds_numpy_value(eqn):
            op = self.operator
            expr = f"{op}{args[0]}" if len(args) == 1 else f" {op} ".join(args)
        else:
            expr = self.emit(args, eqn, buffer)
        ctx.assign(out, expr)
        if self.result == "view":
            ctx.view_of(out, eqn.invars[0])
        else:
            ctx.own(out)
        return None


def ufunc(name: str, operator: str | None = None) -> Lowering:
    """The NumPy ufunc ``np.<name>``, elementwise, writing into a dying operand;
    ``operator`` is the Python operator with the same meaning."""
    return Lowering(
        lambda args, e, out: f"np.{name}({', '.join(args)}{out})",
        elementwise=True,
        out="operand",
        operator=operator,
    )


def expression(emit: Callable[[list[str], JaxprEqn, str], str]) -> Lowering:
    """A new array computed by the expression ``emit(args, eqn, out)`` returns."""
    return Lowering(emit)


def view(emit: Callable[[list[str], JaxprEqn, str], str]) -> Lowering:
    """An expression whose result shares operand 0's memory (``x.T``, ``x[1:3]``)."""
    return Lowering(emit, result="view")


def call_impl(ctx: LoweringContext, eqn: JaxprEqn) -> None:
    """The lowering of a primitive whose ``impl`` is already one vectorised NumPy
    kernel with no shorter spelling (``erf``): the generated code calls the impl."""
    ctx.fallback(eqn)


# The identity (``stop_gradient``): the result is the operand, under the same name.
alias = Lowering(lambda args, e, out: args[0], result="alias")


def ints_source(values: Iterable[Any]) -> str:
    """A tuple of ints as source: ``(2, 3)``."""
    return repr(tuple(int(v) for v in values))


def axis_source(axes: Iterable[Any]) -> str:
    """An ``axis=`` argument: one int, or a tuple of them."""
    axes = tuple(int(a) for a in axes)
    return str(axes[0]) if len(axes) == 1 else repr(axes)


# dtype name -> how generated code spells it (only these names are ever written out)
_DTYPE_SOURCE = {"bool": "np.bool_"} | {
    name: f"np.{name}"
    for name in [
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64", "complex64", "complex128",
    ]
}  # fmt: skip


def dtype_source(dtype: np.dtype) -> str | None:
    """How generated code spells ``dtype`` (``np.float32``); None for a dtype it
    cannot name."""
    return _DTYPE_SOURCE.get(dtype.name)
