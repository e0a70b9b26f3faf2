"""Forward mode: a ``JVPTracer`` carries a primal value and its tangent through every
primitive's JVP rule; ``jvp`` and ``linearize``.

Rules run under the trace that was current when the transform started (the parent),
so a derivative is itself differentiable, batchable and stageable. A tracer also
records whether its input was a Python number (``weak``): such a value takes the
dtype of the arrays it meets, as the Python number would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import (
    Primitive,
    ShapedArray,
    Trace,
    Tracer,
    Zero,
    call_with_trace,
    get_aval,
    is_float,
    missing_rule,
    new_trace,
)
from functrans.ir import ClosedJaxpr, Jaxpr, eval_jaxpr
from functrans.transforms.api_util import as_input, flatten_fun, fun_name, weak_inputs
from functrans.transforms.jaxpr_passes import dce
from functrans.transforms.staging import DynamicJaxprTrace
from functrans.tree_util import tree_flatten, tree_unflatten

__all__ = [
    "JVPTrace",
    "JVPTracer",
    "PrimalTracer",
    "as_numpy_scalar",
    "jvp",
    "jvp_flat",
    "keep_weak",
    "linearize",
    "weak_outputs",
    "zeros_of",
]


class PrimalTracer(Tracer):
    """A tracer whose value is a concrete-or-outer ``primal`` (forward and reverse mode).

    The NumPy layer asks for shapes and dtypes on every operation: they are read from
    the primal directly instead of building an aval.
    """

    __slots__ = ("primal", "weak")

    @property
    def aval(self) -> ShapedArray:
        aval = get_aval(self.primal)
        return aval.update(weak_type=True) if self.weak else aval

    @property
    def shape(self) -> tuple[int, ...]:
        return self.primal.shape

    @property
    def dtype(self) -> np.dtype:
        return self.primal.dtype

    @property
    def weak_type(self) -> bool:
        # ``weak``: an input given as a Python scalar. Its primal is a NumPy scalar,
        # but like the Python number it takes the dtype of the arrays it meets.
        primal = self.primal
        return self.weak or (isinstance(primal, Tracer) and primal.weak_type)


class JVPTracer(PrimalTracer):
    __slots__ = ("tangent",)

    def __init__(self, trace: JVPTrace, primal: Any, tangent: Any, weak: bool = False):
        self._trace = trace
        self.primal = primal
        self.tangent = tangent
        self.weak = weak


class JVPTrace(Trace):
    __slots__ = ()

    def process_primitive(self, prim: Primitive, args: Sequence[Any], params: dict) -> Any:
        primals, tangents, any_tangent, any_weak = [], [], False, False
        for x in args:
            if type(x) is JVPTracer and x._trace is self:
                primals.append(x.primal)
                tangents.append(x.tangent)
                any_tangent = True
                any_weak |= x.weak
            else:
                primals.append(x)
                tangents.append(Zero(get_aval(x)))
        if not any_tangent or not prim.differentiable:
            out = self.parent.process_primitive(prim, primals, params)
            return keep_weak(prim, args, params, out) if any_weak else out
        if prim.jvp is None:
            raise missing_rule(prim, "jvp", "forward-mode (JVP)", "prim.def_jvp(rule)")
        out, tangent = call_with_trace(self.parent, prim.jvp, primals, tangents, **params)
        if prim.multiple_results:
            weak = weak_outputs(prim, args, params) if any_weak else [False] * len(out)
            return [self._wrap(*ptw) for ptw in zip(out, tangent, weak, strict=True)]
        return self._wrap(out, tangent, any_weak and weak_outputs(prim, args, params)[0])

    def _wrap(self, primal: Any, tangent: Any, weak: bool = False) -> Any:
        if type(tangent) is Zero:
            return python_number(primal) if weak else primal
        return JVPTracer(self, primal, tangent, weak)

    def concretize(self, tracer: Tracer, conversion: str) -> Any:
        return tracer.primal


def python_number(value: Any) -> Any:
    """A weakly typed concrete scalar as the Python number that behaves so in NumPy."""
    if isinstance(value, (np.ndarray, np.generic)) and value.ndim == 0:
        return value.item()
    return value


def keep_weak(prim: Primitive, args: Sequence[Any], params: dict, out: Any) -> Any:
    """``out`` of a primitive computed without derivative (no tangent, or none
    defined), with its weakly typed scalars as Python numbers."""
    weak = weak_outputs(prim, args, params)
    if prim.multiple_results:
        return [python_number(o) if w else o for o, w in zip(out, weak, strict=True)]
    return python_number(out) if weak[0] else out


def weak_outputs(prim: Primitive, args: Sequence[Any], params: dict) -> list[bool]:
    """Which outputs are weakly typed, by the primitive's own type rule, as staging
    types them (``s * 2.0`` of a Python number ``s`` is weak, ``x32 * s`` is not).
    Asked only when a weakly typed value is among the operands."""
    out = prim.abstract_eval(*[get_aval(x) for x in args], **params)
    return [a.weak_type for a in out] if prim.multiple_results else [out.weak_type]


def as_numpy_scalar(x: Any) -> Any:
    """A 0-d array as the NumPy scalar NumPy itself would give."""
    return x[()] if type(x) is np.ndarray and x.ndim == 0 else x


def zeros_of(aval: ShapedArray) -> Any:
    """Zeros of ``aval``: a NumPy scalar for shape ``()``, as NumPy gives for scalars."""
    return np.zeros(aval.shape, aval.dtype)[()]


def jvp_flat(
    fun: Callable, primals: list, tangents: list, name: str, weak: Sequence[bool] = ()
) -> tuple[list, list]:
    weak = weak or [False] * len(primals)
    with new_trace(JVPTrace, name) as trace:
        inputs = [
            JVPTracer(trace, p, t, w) for p, t, w in zip(primals, tangents, weak, strict=True)
        ]
        outs = fun(*inputs)
        primals_out, tangents_out = [], []
        for x in outs:
            if type(x) is JVPTracer and x._trace is trace:
                primals_out.append(x.primal)
                tangents_out.append(x.tangent)
            else:
                primals_out.append(x)
                tangents_out.append(Zero(get_aval(x)))
    return primals_out, tangents_out


def _zero_for_integers(primals: Sequence[Any], tangents: Sequence[Any]) -> list[Any]:
    """Integer inputs have no derivative: whatever their tangent, it is zero."""
    return [
        t if is_float(get_aval(p)) else Zero(get_aval(p).strip_weak_type())
        for p, t in zip(primals, tangents, strict=True)
    ]


def _check_tangent(p: Any, t: Any, what: str) -> Any:
    weak = type(t) in (int, float, complex)  # a Python scalar adopts the primal's dtype
    t = as_input(t, what)
    pa, ta = get_aval(p), get_aval(t)
    if pa.shape != ta.shape:
        raise ValueError(f"{what}: tangent of shape {ta.shape} for a primal of shape {pa.shape}")
    if is_float(pa) and ta.dtype != pa.dtype:
        if weak:
            return pa.dtype.type(t)
        raise TypeError(
            f"{what}: tangent of dtype {ta.dtype.name} for a primal of dtype {pa.dtype.name}; "
            "a tangent has its primal's dtype"
        )
    return t


def jvp(fun: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward-mode derivative: ``(fun(*primals), J @ tangents)``.

    >>> import functrans.numpy as fnp
    >>> y, t = jvp(fnp.sin, (0.0,), (2.0,))
    >>> float(y), float(t)
    (0.0, 2.0)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples or lists")
    p_leaves, p_tree = tree_flatten(tuple(primals))
    t_leaves, t_tree = tree_flatten(tuple(tangents))
    if p_tree != t_tree:
        raise ValueError(f"jvp: primals {p_tree} and tangents {t_tree} differ in structure")
    weak = weak_inputs(p_leaves)
    p_leaves = [as_input(x, "jvp") for x in p_leaves]
    t_leaves = [_check_tangent(p, t, "jvp") for p, t in zip(p_leaves, t_leaves, strict=True)]
    t_leaves = _zero_for_integers(p_leaves, t_leaves)
    flat, out_tree_of = flatten_fun(fun, p_tree)
    out_p, out_t = jvp_flat(flat, p_leaves, t_leaves, f"jvp({fun_name(fun)})", weak)
    out_t = [zeros_of(t.aval) if type(t) is Zero else as_numpy_scalar(t) for t in out_t]
    out_tree = out_tree_of()
    out = tree_unflatten(out_tree, [as_numpy_scalar(p) for p in out_p])
    return out, tree_unflatten(out_tree, out_t)


def linearize(fun: Callable, *primals: Any) -> tuple[Any, Callable]:
    """``(fun(*primals), f_jvp)`` where ``f_jvp(*tangents)`` applies the Jacobian at
    ``primals`` without re-running ``fun``: its tangent computation is staged once.

    >>> import functrans.numpy as fnp
    >>> y, f_jvp = linearize(fnp.exp, 0.0)
    >>> float(f_jvp(3.0))
    3.0
    """
    p_leaves, p_tree = tree_flatten(tuple(primals))
    weak = weak_inputs(p_leaves)
    p_leaves = [as_input(x, "linearize") for x in p_leaves]
    flat, out_tree_of = flatten_fun(fun, p_tree)
    name = f"linearize({fun_name(fun)})"
    with new_trace(DynamicJaxprTrace, name) as staging:
        tangent_in = [staging.new_arg(get_aval(p).strip_weak_type()) for p in p_leaves]
        out_p, out_t = jvp_flat(
            flat, p_leaves, _zero_for_integers(p_leaves, tangent_in), name, weak
        )
        out_t = [zeros_of(t.aval) if type(t) is Zero else t for t in out_t]
        # A call primitive (jit, cond, scan...) computes primal and tangent outputs in
        # one staged equation, so its primal outputs are staged too.
        staged = [i for i, p in enumerate(out_p) if isinstance(p, Tracer)]
        jaxpr, consts = staging.to_jaxpr(out_t + [out_p[i] for i in staged])
    if staged:  # evaluate them once (they do not depend on the tangents)
        zeros = [zeros_of(v.aval) for v in jaxpr.invars]
        values = eval_jaxpr(jaxpr, consts, *zeros)[len(out_t) :]
        for i, v in zip(staged, values, strict=True):
            out_p[i] = v
        jaxpr = dce(Jaxpr(jaxpr.constvars, jaxpr.invars, jaxpr.outvars[: len(out_t)], jaxpr.eqns))
    linear = ClosedJaxpr(jaxpr, consts)
    out_tree = out_tree_of()

    def f_jvp(*tangents: Any) -> Any:
        t_leaves, t_tree = tree_flatten(tuple(tangents))
        if t_tree != p_tree:
            raise ValueError(f"linearize: tangents {t_tree} do not match primals {p_tree}")
        pairs = zip(p_leaves, t_leaves, strict=True)
        t_leaves = [_check_tangent(p, t, "linearize") for p, t in pairs]
        outs = eval_jaxpr(linear.jaxpr, linear.consts, *t_leaves)
        return tree_unflatten(out_tree, [as_numpy_scalar(o) for o in outs])

    f_jvp.jaxpr = linear  # type: ignore[attr-defined]
    return tree_unflatten(out_tree, [as_numpy_scalar(p) for p in out_p]), f_jvp
