"""The IR: jaxprs, their evaluation, a type checker and the pretty-printer.

Grammar (as printed)::

    { lambda <constvars> ; <invars> . let
        <outvars> = <primitive>[<params>] <invars>
        ...
      in (<outvars>,) }

A ``Var`` is a typed binder (``a:f32[2,3]``); a ``Literal`` is a scalar constant
written inline (``2.0:f64[]``). Each equation applies one primitive.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from functrans.core import Primitive, ShapedArray, get_aval

__all__ = [
    "ClosedJaxpr",
    "Jaxpr",
    "JaxprEqn",
    "JaxprTypeError",
    "Literal",
    "Var",
    "eval_jaxpr",
    "pp_jaxpr",
    "typecheck_jaxpr",
]


class Var:
    """A variable of a jaxpr; its name is given when the jaxpr is printed."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval

    def __repr__(self) -> str:
        return f"Var<{self.aval.str_short()}>"


class Literal:
    """A scalar constant appearing inline in an equation."""

    __slots__ = ("val", "aval")

    def __init__(self, val: Any, aval: ShapedArray | None = None):
        self.val = val
        self.aval = get_aval(val) if aval is None else aval

    def __repr__(self) -> str:
        return f"Literal({self.val!r})"


Atom = Var | Literal


class JaxprEqn:
    """One primitive application: ``outvars = primitive[params] invars``."""

    __slots__ = ("primitive", "invars", "outvars", "params")

    def __init__(
        self,
        primitive: Primitive,
        invars: Sequence[Atom],
        outvars: Sequence[Var],
        params: dict[str, Any],
    ):
        self.primitive = primitive
        self.invars = list(invars)
        self.outvars = list(outvars)
        self.params = params

    def __repr__(self) -> str:
        return f"JaxprEqn({self.primitive.name})"


class Jaxpr:
    """A typed, first-order program: constvars and invars in, outvars out."""

    __slots__ = ("constvars", "invars", "outvars", "eqns")

    def __init__(
        self,
        constvars: Sequence[Var],
        invars: Sequence[Var],
        outvars: Sequence[Atom],
        eqns: Sequence[JaxprEqn],
    ):
        self.constvars = list(constvars)
        self.invars = list(invars)
        self.outvars = list(outvars)
        self.eqns = list(eqns)

    @property
    def in_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.invars]

    @property
    def out_avals(self) -> list[ShapedArray]:
        return [v.aval for v in self.outvars]

    def __str__(self) -> str:
        return pp_jaxpr(self)

    __repr__ = __str__


class ClosedJaxpr:
    """A jaxpr together with the values of its constvars."""

    __slots__ = ("jaxpr", "consts", "__weakref__")

    def __init__(self, jaxpr: Jaxpr, consts: Sequence[Any]):
        self.jaxpr = jaxpr
        self.consts = list(consts)

    @property
    def in_avals(self) -> list[ShapedArray]:
        return self.jaxpr.in_avals

    @property
    def out_avals(self) -> list[ShapedArray]:
        return self.jaxpr.out_avals

    @property
    def eqns(self) -> list[JaxprEqn]:
        return self.jaxpr.eqns

    def __call__(self, *args: Any) -> list[Any]:
        return eval_jaxpr(self.jaxpr, self.consts, *args)

    def __str__(self) -> str:
        return pp_jaxpr(self.jaxpr)

    __repr__ = __str__


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def eval_jaxpr(jaxpr: Jaxpr, consts: Sequence[Any], *args: Any) -> list[Any]:
    """Evaluate ``jaxpr`` on ``args`` under the current trace; returns the outputs.

    Every equation is applied with ``primitive.bind``, so evaluating a jaxpr inside
    another transform transforms it.
    """
    if len(args) != len(jaxpr.invars):
        raise TypeError(f"eval_jaxpr: expected {len(jaxpr.invars)} arguments, got {len(args)}")
    if len(consts) != len(jaxpr.constvars):
        raise TypeError(f"eval_jaxpr: expected {len(jaxpr.constvars)} consts, got {len(consts)}")
    env: dict[Var, Any] = dict(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        invals = [env[v] if type(v) is Var else v.val for v in eqn.invars]
        outs = eqn.primitive.bind(*invals, **eqn.params)
        if eqn.primitive.multiple_results:
            env.update(zip(eqn.outvars, outs, strict=True))
        else:
            env[eqn.outvars[0]] = outs
    return [env[v] if type(v) is Var else v.val for v in jaxpr.outvars]


# ---------------------------------------------------------------------------
# Type checking
# ---------------------------------------------------------------------------


class JaxprTypeError(TypeError):
    """A jaxpr is malformed: a variable used before definition or a wrong type."""


def _avals_equal(a: ShapedArray, b: ShapedArray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype


def typecheck_jaxpr(jaxpr: Jaxpr) -> None:
    """Check that every variable is bound once before use and that every equation's
    output types are what its primitive's shape rule computes. Raises
    ``JaxprTypeError``; returns ``None`` for a well-typed jaxpr."""
    defined: set[int] = set()

    def bind(v: Var, where: str) -> None:
        if id(v) in defined:
            raise JaxprTypeError(f"{where}: variable {v} is bound twice")
        defined.add(id(v))

    def read(x: Atom, where: str) -> ShapedArray:
        if type(x) is Literal:
            return x.aval
        if id(x) not in defined:
            raise JaxprTypeError(f"{where}: variable {x} is used before it is defined")
        return x.aval

    for v in jaxpr.constvars:
        bind(v, "constvars")
    for v in jaxpr.invars:
        bind(v, "invars")
    for i, eqn in enumerate(jaxpr.eqns):
        where = f"equation {i} ({eqn.primitive.name})"
        in_avals = [read(x, where) for x in eqn.invars]
        for sub in _sub_jaxprs(eqn.params):
            typecheck_jaxpr(sub)
        expected = eqn.primitive.abstract_eval(*in_avals, **eqn.params)
        if not eqn.primitive.multiple_results:
            expected = [expected]
        got = [v.aval for v in eqn.outvars]
        if len(expected) != len(got) or not all(map(_avals_equal, expected, got)):
            raise JaxprTypeError(
                f"{where}: outputs typed {[a.str_short() for a in got]} but the shape rule "
                f"gives {[a.str_short() for a in expected]}"
            )
        for v in eqn.outvars:
            bind(v, where)
    for x in jaxpr.outvars:
        read(x, "outvars")


def _sub_jaxprs(params: dict[str, Any]) -> Iterator[Jaxpr]:
    for value in params.values():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if isinstance(item, ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, Jaxpr):
                yield item


# ---------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------


def var_names() -> Iterator[str]:
    """``a, b, ..., z, ba, bb, ...``: the names the printer gives variables, in order."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    n = 0
    while True:
        name, k = "", n
        while True:
            name = letters[k % 26] + name
            k //= 26
            if k == 0:
                break
        yield name
        n += 1


class _Namer:
    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.fresh = var_names()

    def bind(self, v: Var) -> str:
        name = self.names[id(v)] = next(self.fresh)
        return f"{name}:{v.aval.str_short()}"

    def __call__(self, x: Atom) -> str:
        if type(x) is Literal:
            return _pp_literal(x)
        return self.names.get(id(x), "?")


def _pp_literal(lit: Literal) -> str:
    val = lit.val
    if isinstance(val, (bool, np.bool_)):
        text = str(bool(val))
    elif isinstance(val, (int, np.integer)):
        text = str(int(val))
    elif isinstance(val, (float, np.floating)):
        text = repr(float(val))
    else:
        text = repr(val)
    return f"{text}:{lit.aval.str_short()}"


def _pp_param(value: Any, namer: _Namer, indent: int) -> str:
    if isinstance(value, ClosedJaxpr):
        value = value.jaxpr
    if isinstance(value, Jaxpr):
        # Names stay unique across the whole printout, nested jaxprs included.
        return _pp_jaxpr(value, namer, indent + 4)
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    if isinstance(value, (tuple, list)) and any(isinstance(v, (Jaxpr, ClosedJaxpr)) for v in value):
        inner = " ".join(_pp_param(v, namer, indent) for v in value)
        return f"({inner})"
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return repr(value)


def _pp_jaxpr(jaxpr: Jaxpr, namer: _Namer, indent: int) -> str:
    pad = " " * indent
    constvars = " ".join(namer.bind(v) for v in jaxpr.constvars)
    invars = " ".join(namer.bind(v) for v in jaxpr.invars)
    lines = [f"{{ lambda {constvars}; {invars}. let"]
    for eqn in jaxpr.eqns:
        args = " ".join(namer(x) for x in eqn.invars)
        outs = " ".join(namer.bind(v) for v in eqn.outvars)
        params = ""
        if eqn.params:
            items = " ".join(
                f"{k}={_pp_param(v, namer, indent + 4)}" for k, v in sorted(eqn.params.items())
            )
            params = f"[{items}]"
        lines.append(f"{pad}    {outs} = {eqn.primitive.name}{params} {args}".rstrip())
    outs = ", ".join(namer(x) for x in jaxpr.outvars)
    comma = "," if len(jaxpr.outvars) == 1 else ""
    lines.append(f"{pad}  in ({outs}{comma}) }}")
    return "\n".join(lines)


def pp_jaxpr(jaxpr: Jaxpr) -> str:
    """Print a jaxpr in JAX's ``make_jaxpr`` style."""
    return _pp_jaxpr(jaxpr, _Namer(), 0)
