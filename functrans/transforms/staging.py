"""Staging: record primitive applications into a jaxpr (``make_jaxpr``, and the front
end of ``jit`` and the control-flow primitives).

The staging trace records an equation only when an operand is one of its own
tracers. Operations on constants are handed to the parent trace and evaluated
there, so a jaxpr contains exactly the computation that depends on its inputs,
and concrete values stay concrete (this is how ``linearize`` keeps the primal
computation out of the linear jaxpr).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import (
    EVAL_TRACE,
    KIND_RANK,
    Primitive,
    ShapedArray,
    Trace,
    Tracer,
    call_with_trace,
    get_aval,
    missing_rule,
    new_trace,
)
from functrans.errors import ConcretizationTypeError
from functrans.ir import ClosedJaxpr, Jaxpr, JaxprEqn, Literal, Var, eval_jaxpr
from functrans.transforms.api_util import (
    abstractify,
    argnum_positions,
    flatten_fun,
    fun_name,
    static_argnums_tuple,
    substitute,
)
from functrans.transforms.jaxpr_passes import simplify_for_display
from functrans.tree_util import tree_flatten

__all__ = [
    "DynamicJaxprTrace",
    "call_jaxpr",
    "make_jaxpr",
    "trace_derived",
    "trace_to_jaxpr",
]


class JaxprTracer(Tracer):
    __slots__ = ("aval", "ir_var")

    def __init__(self, trace: DynamicJaxprTrace, aval: ShapedArray):
        self._trace = trace
        self.aval = aval
        # Not ``var``: that name is the array method ``x.var()``.
        self.ir_var = Var(aval)


def _is_literal(x: Any) -> bool:
    return isinstance(x, (bool, int, float, complex, np.generic)) or (
        isinstance(x, np.ndarray) and x.ndim == 0
    )


def _typed_literal(atom: Var | Literal, aval: ShapedArray) -> Var | Literal:
    """A weakly typed Python-scalar literal takes the dtype its equation computes in
    (NEP 50), as the evaluation does: ``mul b 2.0:f32[]`` for a float32 ``b``."""
    dtype = aval.dtype
    if (
        type(atom) is Literal
        and atom.aval.weak_type
        and atom.aval.dtype.kind != "b"  # a Python bool is a predicate, not a number
        and KIND_RANK[atom.aval.dtype.kind] <= KIND_RANK[dtype.kind]
    ):
        return Literal(dtype.type(atom.val), ShapedArray((), dtype, aval.weak_type))
    return atom


def _computes_in(invars: Sequence[Var | Literal], out: ShapedArray) -> ShapedArray | None:
    """The type an equation computes in: its output's, or for a comparison (boolean
    result) its operands'."""
    if out.dtype.kind in "iufc":
        return out
    if out.dtype.kind == "b" and len(invars) == 2:
        operand = next((v.aval for v in invars if type(v) is Var), None)
        if operand is not None and operand.dtype.kind in "iufc":
            return operand
    return None


class DynamicJaxprTrace(Trace):
    """Records equations. Constants are literals (scalars) or constvars (arrays and
    tracers of enclosing transforms, which callers pass in as explicit arguments)."""

    __slots__ = ("eqns", "invars", "constvars", "consts", "_const_ids")

    def __init__(self, parent: Trace | None, name: str = "") -> None:
        super().__init__(parent, name)
        self.eqns: list[JaxprEqn] = []
        self.invars: list[Var] = []
        self.constvars: list[Var] = []
        self.consts: list[Any] = []
        self._const_ids: dict[int, Var] = {}

    def new_arg(self, aval: ShapedArray) -> JaxprTracer:
        tracer = JaxprTracer(self, aval)
        self.invars.append(tracer.ir_var)
        return tracer

    def _atom(self, x: Any) -> Var | Literal:
        if type(x) is JaxprTracer and x._trace is self:
            return x.ir_var
        if _is_literal(x):
            if isinstance(x, np.ndarray):
                x = x[()]
            return Literal(x)
        var = self._const_ids.get(id(x))
        if var is None:
            # A closed-over tracer keeps its weak type (a Python number traced outside).
            var = self._const_ids[id(x)] = Var(get_aval(x))
            self.constvars.append(var)
            self.consts.append(x)
        return var

    def process_primitive(self, prim: Primitive, args: Sequence[Any], params: dict) -> Any:
        for x in args:
            if type(x) is JaxprTracer and x._trace is self:
                break
        else:
            return self.parent.process_primitive(prim, args, params)
        return self.record(prim, args, params)

    def record(self, prim: Primitive, args: Sequence[Any], params: dict) -> Any:
        """Append the equation ``prim(*args)`` and return tracers for its outputs."""
        invars = [self._atom(x) for x in args]
        if prim.abstract_eval is None:
            raise missing_rule(
                prim, "staging (jit, make_jaxpr)", "shape", "prim.def_abstract_eval(rule)"
            )
        out_avals = prim.abstract_eval(*[v.aval for v in invars], **params)
        if prim.multiple_results:
            outs = [JaxprTracer(self, a) for a in out_avals]
        else:
            outs = [JaxprTracer(self, out_avals)]
            computes_in = _computes_in(invars, out_avals)
            if computes_in is not None:
                invars = [_typed_literal(v, computes_in) for v in invars]
        self.eqns.append(JaxprEqn(prim, invars, [t.ir_var for t in outs], params))
        return outs if prim.multiple_results else outs[0]

    def concretize(self, tracer: Tracer, conversion: str) -> Any:
        raise ConcretizationTypeError(
            f"{conversion}() needs a concrete value, but got a traced value "
            f"{tracer.aval.str_short()} while tracing {self.name or 'a function'}: its "
            "value is not known until the staged program runs. Branch on data with "
            "functrans.numpy.where or functrans.lax.cond (loops: lax.fori_loop / "
            "while_loop / scan); if the value is a configuration constant, pass it as a "
            "static argument (jit(f, static_argnums=...))."
        )

    def to_jaxpr(self, outs: Sequence[Any]) -> tuple[Jaxpr, list[Any]]:
        outvars = [self._atom(x) for x in outs]
        jaxpr = Jaxpr(self.constvars, self.invars, outvars, self.eqns)
        return jaxpr, list(self.consts)


def trace_to_jaxpr(
    fun: Callable[..., Sequence[Any]], in_avals: Sequence[ShapedArray], name: str = ""
) -> tuple[Jaxpr, list[Any]]:
    """Trace ``fun`` (flat arrays in, a flat sequence out) at ``in_avals``.

    Returns the jaxpr and its consts (values of its constvars), which may include
    tracers of enclosing transforms.
    """
    with new_trace(DynamicJaxprTrace, name) as trace:
        args = [trace.new_arg(a) for a in in_avals]
        outs = fun(*args)
        return trace.to_jaxpr(outs)


def trace_derived(fun: Callable, in_avals: Sequence[ShapedArray], name: str) -> ClosedJaxpr:
    """Stage a function built by a rule over a jaxpr. Such functions see only their
    arguments and concrete constants, so they are traced on top of evaluation, away
    from whatever transforms are active."""
    jaxpr, consts = call_with_trace(EVAL_TRACE, trace_to_jaxpr, fun, list(in_avals), name)
    assert not any(isinstance(c, Tracer) for c in consts), "a rule's jaxpr captured a tracer"
    return ClosedJaxpr(jaxpr, consts)


def call_jaxpr(closed: ClosedJaxpr, *args: Any) -> list[Any]:
    """Apply a jaxpr under the current trace (so that it is transformed)."""
    return eval_jaxpr(closed.jaxpr, closed.consts, *args)


def make_jaxpr(fun: Callable[..., Any], static_argnums: int | Sequence[int] = ()):
    """A function that traces ``fun`` and returns its program as a ``ClosedJaxpr``.

    >>> import functrans as ft
    >>> print(ft.make_jaxpr(lambda x: ft.numpy.tanh(x) * 2.0)(np.ones(3)))
    { lambda ; a:f64[3]. let
        b:f64[3] = tanh a
        c:f64[3] = mul b 2.0:f64[]
      in (c,) }
    """
    name = f"make_jaxpr({fun_name(fun)})"
    static_nums = static_argnums_tuple(name, static_argnums)

    def traced(*args: Any, **kwargs: Any) -> ClosedJaxpr:
        # Negative numbers count from the end, as in argnums.
        static = set(argnum_positions(name, "static_argnums", static_nums, len(args)))
        positions = [i for i in range(len(args)) if i not in static]
        leaves, in_tree = tree_flatten(([args[i] for i in positions], kwargs))

        def with_kwargs(dynamic: list, kw: dict) -> Any:
            return fun(*substitute(args, positions, dynamic), **kw)

        flat_fun, _ = flatten_fun(with_kwargs, in_tree)
        jaxpr, consts = trace_to_jaxpr(flat_fun, [abstractify(x) for x in leaves], name)
        return simplify_for_display(ClosedJaxpr(jaxpr, consts))

    traced.__name__ = name
    return traced
