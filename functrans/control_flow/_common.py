"""Machinery shared by the control-flow primitives.

* tracing user functions (over pytrees) into sub-jaxprs, with the values they close
  over hoisted into explicit leading operands;
* naming pytree leaves in error messages;
* running a sub-jaxpr fast on NumPy values (the implementations loop over it);
* transforming a sub-jaxpr: its JVP, its batched form and its reverse-mode split into
  a forward jaxpr that emits residuals and a backward jaxpr that consumes them. Each
  is built by running the ordinary transform (``JVPTrace``, ``BatchTrace``,
  ``ReverseTrace``) over the sub-jaxpr while staging the result, so control flow has
  no derivative or batching logic of its own beyond plumbing.
"""

from __future__ import annotations

import dataclasses
import functools
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import (
    EVAL_TRACE,
    Primitive,
    ShapedArray,
    Tracer,
    Zero,
    call_with_trace,
    current_trace,
    get_aval,
    new_trace,
)
from functrans.ir import ClosedJaxpr, Jaxpr, Literal, Var, eval_jaxpr
from functrans.primitives import add, broadcast_in_dim, convert_element_type, transpose
from functrans.transforms.staging import (
    DynamicJaxprTrace,
    JaxprTracer,
    as_array_arg,
    trace_to_jaxpr,
)
from functrans.tree_util import PyTreeDef, tree_flatten, tree_unflatten

# ---------------------------------------------------------------------------
# Values, avals and names
# ---------------------------------------------------------------------------


def fun_name(fun: Callable) -> str:
    return getattr(fun, "__name__", type(fun).__name__)


def check_callable(what: str, name: str, fun: Any) -> None:
    if not callable(fun):
        raise TypeError(f"{what}: {name} must be callable, got {type(fun).__name__} {fun!r:.60}")


def as_operand(x: Any, what: str) -> Any:
    """``x`` as an array operand (NumPy array, NumPy/Python scalar or tracer)."""
    return as_array_arg(x, what)


def is_float(aval: ShapedArray) -> bool:
    return aval.dtype.kind in "fc"


def same_type(a: ShapedArray, b: ShapedArray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype


def zeros(aval: ShapedArray) -> np.ndarray:
    return np.zeros(aval.shape, aval.dtype)


def instantiate(t: Any, aval: ShapedArray) -> Any:
    """A tangent or cotangent as an array: ``Zero`` and ``None`` become zeros."""
    return zeros(aval) if t is None or type(t) is Zero else t


def cast(x: Any, dtype: np.dtype) -> Any:
    if get_aval(x).dtype == dtype:
        return x
    if isinstance(x, Tracer):
        return convert_element_type(x, dtype)
    return np.asarray(x, dtype)[()] if np.ndim(x) == 0 else np.asarray(x, dtype)


def leaf_paths(tree: Any, root: str) -> list[str]:
    """A readable path for each leaf of ``tree`` (``xs['a'][0]``), in flattening order."""
    paths: list[str] = []

    def go(x: Any, path: str) -> None:
        if x is None:
            return
        if isinstance(x, tuple) and hasattr(type(x), "_fields"):
            for field, child in zip(x._fields, x, strict=True):
                go(child, f"{path}.{field}")
        elif type(x) in (tuple, list):
            for i, child in enumerate(x):
                go(child, f"{path}[{i}]")
        elif type(x) is dict:
            for key in sorted(x):
                go(x[key], f"{path}[{key!r}]")
        else:
            leaves, treedef = tree_flatten(x)
            if treedef.node_type is None:
                paths.append(path)
            else:
                kind = type(x).__name__
                paths.extend(f"{path}<{kind} leaf {j}>" for j in range(len(leaves)))

    go(tree, root)
    return paths


def aval_of(x: Any) -> ShapedArray:
    """The aval a control-flow operand is traced at (Python scalars stay weakly typed)."""
    return get_aval(x)


# ---------------------------------------------------------------------------
# Tracing user functions
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Traced:
    """A user function traced once: ``jaxpr`` takes ``consts`` (the values the function
    closes over, possibly tracers of enclosing transforms) followed by its arguments."""

    jaxpr: ClosedJaxpr
    consts: list[Any]
    out_info: Any

    @property
    def out_avals(self) -> list[ShapedArray]:
        return self.jaxpr.out_avals

    @property
    def num_consts(self) -> int:
        return len(self.consts)


def trace_fun(
    fun: Callable,
    in_tree: PyTreeDef,
    in_avals: Sequence[ShapedArray],
    name: str,
    flatten_out: Callable[[Any], tuple[list[Any], Any]],
) -> Traced:
    """Trace ``fun`` (called on the pytree ``in_tree`` of tracers at ``in_avals``).

    ``flatten_out(out) -> (leaves, info)`` flattens (and checks) the output; ``info``
    is returned as ``Traced.out_info``.
    """
    info_box: list[Any] = []

    def flat(*args: Any) -> list[Any]:
        leaves, info = flatten_out(fun(*tree_unflatten(in_tree, args)))
        info_box.append(info)
        return [as_operand(x, f"{name}: output") for x in leaves]

    jaxpr, consts = trace_to_jaxpr(flat, list(in_avals), name)
    hoisted = Jaxpr([], jaxpr.constvars + jaxpr.invars, jaxpr.outvars, jaxpr.eqns)
    return Traced(ClosedJaxpr(hoisted, []), consts, info_box[0])


def trace_derived(fun: Callable, in_avals: Sequence[ShapedArray], name: str) -> ClosedJaxpr:
    """Stage a function built by a rule over a sub-jaxpr. Such functions see only their
    arguments and concrete constants, so they are traced on top of evaluation, away
    from whatever transforms are active."""
    jaxpr, consts = call_with_trace(EVAL_TRACE, trace_to_jaxpr, fun, list(in_avals), name)
    assert not any(isinstance(c, Tracer) for c in consts), consts
    return ClosedJaxpr(jaxpr, consts)


def call_jaxpr(closed: ClosedJaxpr, *args: Any) -> list[Any]:
    """Apply a sub-jaxpr under the current trace (so that it is transformed)."""
    return eval_jaxpr(closed.jaxpr, closed.consts, *args)


def with_invars(closed: ClosedJaxpr, invars: Sequence[Var], outvars: Sequence[Any]) -> ClosedJaxpr:
    """The same program with its inputs and outputs listed as given (a permutation, or
    extra unused inputs)."""
    j = closed.jaxpr
    return ClosedJaxpr(Jaxpr(j.constvars, invars, outvars, j.eqns), closed.consts)


def split(items: Sequence[Any], sizes: Sequence[int]) -> list[list[Any]]:
    out, start = [], 0
    for n in sizes:
        out.append(list(items[start : start + n]))
        start += n
    assert start == len(items), (start, len(items))
    return out


# ---------------------------------------------------------------------------
# Fast evaluation of a sub-jaxpr on NumPy values
# ---------------------------------------------------------------------------

_compiled: weakref.WeakKeyDictionary[ClosedJaxpr, Callable[..., Sequence]] = (
    weakref.WeakKeyDictionary()
)


def run(closed: ClosedJaxpr, *args: Any) -> list[Any]:
    """Evaluate ``closed`` on concrete values with its compiled form (see ``compiled``)."""
    return list(compiled(closed)(*args))


def compiled(closed: ClosedJaxpr) -> Callable[..., Sequence]:
    """``closed`` compiled to a straight-line NumPy function by ``jit``'s code generator,
    once (cached on the jaxpr), so that a loop over it costs one call per iteration plus
    the NumPy work."""
    fn = _compiled.get(closed)
    if fn is None:
        from functrans.transforms.codegen import compile_jaxpr

        fn = compile_jaxpr(closed, "body").fn
        constant = [
            (k, x.aval.dtype) for k, x in enumerate(closed.jaxpr.outvars) if type(x) is Literal
        ]
        if constant:  # constant results as NumPy values of their type, not Python scalars
            fn = functools.partial(_typed_constants, fn, constant)
        _compiled[closed] = fn
    return fn


def _typed_constants(fn: Callable, constant: list, *args: Any) -> list[Any]:
    outs = list(fn(*args))
    for k, dtype in constant:
        outs[k] = np.asarray(outs[k], dtype)[()]
    return outs


# ---------------------------------------------------------------------------
# Dependence analysis
# ---------------------------------------------------------------------------


def depends_on(
    jaxpr: Jaxpr, flags: Sequence[bool], through: Callable[[Primitive], bool] = lambda p: True
) -> list[bool]:
    """For each output of ``jaxpr``, whether it depends on a flagged input (only through
    primitives for which ``through(primitive)`` holds)."""
    marked = {id(v) for v, f in zip(jaxpr.invars, flags, strict=True) if f}
    for eqn in jaxpr.eqns:
        if through(eqn.primitive) and any(type(x) is Var and id(x) in marked for x in eqn.invars):
            marked.update(id(v) for v in eqn.outvars)
    return [type(x) is Var and id(x) in marked for x in jaxpr.outvars]


def dce(jaxpr: Jaxpr) -> Jaxpr:
    from functrans.transforms.optimize import dce as _dce

    return _dce(jaxpr)


# ---------------------------------------------------------------------------
# Forward mode over a sub-jaxpr
# ---------------------------------------------------------------------------


def jvp_jaxpr(
    closed: ClosedJaxpr, nonzero: Sequence[bool], instantiate_out: Sequence[bool]
) -> tuple[ClosedJaxpr, list[bool]]:
    """The JVP of ``closed``: ``(*primals, *tangents) -> (*outs, *out_tangents)``, with a
    tangent input for each ``nonzero`` input and a tangent output for each output whose
    tangent is not symbolically zero or is in ``instantiate_out``. Returns the jaxpr
    and which outputs have a tangent."""
    from functrans.transforms.ad import JVPTrace, JVPTracer

    n = len(closed.in_avals)
    out_avals = closed.out_avals
    box: list[list[bool]] = []

    def fun(*args: Any) -> list[Any]:
        primals, tangents = args[:n], iter(args[n:])
        with new_trace(JVPTrace, "jvp") as trace:
            ins = [
                JVPTracer(trace, p, next(tangents)) if nz else p
                for p, nz in zip(primals, nonzero, strict=True)
            ]
            outs = call_jaxpr(closed, *ins)
            pairs = [
                (o.primal, o.tangent) if type(o) is JVPTracer and o._trace is trace else (o, None)
                for o in outs
            ]
        has_tangent = [
            (t is not None or inst) and is_float(a)
            for (_, t), inst, a in zip(pairs, instantiate_out, out_avals, strict=True)
        ]
        box.append(has_tangent)
        out_tangents = [
            instantiate(t, a.strip_weak_type())
            for (_, t), a, keep in zip(pairs, out_avals, has_tangent, strict=True)
            if keep
        ]
        return [p for p, _ in pairs] + out_tangents

    tangent_avals = [
        a.strip_weak_type() for a, nz in zip(closed.in_avals, nonzero, strict=True) if nz
    ]
    jaxpr = trace_derived(fun, [*closed.in_avals, *tangent_avals], "jvp")
    return jaxpr, box[0]


# ---------------------------------------------------------------------------
# Batching a sub-jaxpr
# ---------------------------------------------------------------------------


def move_axis(x: Any, src: int, dst: int) -> Any:
    if src == dst:
        return x
    ndim = get_aval(x).ndim
    perm = [i for i in range(ndim) if i != src]
    perm.insert(dst, src)
    if isinstance(x, (np.ndarray, np.generic)):
        return np.transpose(x, perm)
    return transpose(x, tuple(perm))


def broadcast_batch(x: Any, size: int, axis: int = 0) -> Any:
    """``x`` with a new axis of ``size`` at ``axis``: an unbatched value made batched."""
    aval = get_aval(x)
    shape = list(aval.shape)
    shape.insert(axis, size)
    dims = tuple(i if i < axis else i + 1 for i in range(aval.ndim))
    if not isinstance(x, Tracer):
        x = np.asarray(x, aval.dtype)
        return np.broadcast_to(np.expand_dims(x, axis), shape)
    return broadcast_in_dim(x, tuple(shape), dims)


def batched_aval(aval: ShapedArray, size: int, axis: int = 0) -> ShapedArray:
    shape = list(aval.shape)
    shape.insert(axis, size)
    return ShapedArray(tuple(shape), aval.dtype, aval.weak_type)


def batch_jaxpr(
    closed: ClosedJaxpr, size: int, batched: Sequence[bool], force: Sequence[bool]
) -> tuple[ClosedJaxpr, list[bool]]:
    """``closed`` vectorised over a leading axis of ``size`` on the ``batched`` inputs.
    Outputs are batched on axis 0 when they depend on a batched input or are in
    ``force``. Returns the jaxpr and which outputs are batched."""
    from functrans.transforms.batching import BatchTrace, BatchTracer

    box: list[list[bool]] = []

    def fun(*args: Any) -> list[Any]:
        with new_trace(BatchTrace, "vmap", axis_size=size) as trace:
            ins = [BatchTracer(trace, a, 0) if b else a for a, b in zip(args, batched, strict=True)]
            outs = call_jaxpr(closed, *ins)
            results, out_batched = [], []
            for o, forced in zip(outs, force, strict=True):
                if type(o) is BatchTracer and o._trace is trace:
                    results.append(move_axis(o.val, o.bdim, 0))
                    out_batched.append(True)
                elif forced:
                    results.append(broadcast_batch(o, size))
                    out_batched.append(True)
                else:
                    results.append(o)
                    out_batched.append(False)
        box.append(out_batched)
        return results

    avals = [
        batched_aval(a, size) if b else a for a, b in zip(closed.in_avals, batched, strict=True)
    ]
    jaxpr = trace_derived(fun, avals, "vmap")
    return jaxpr, box[0]


def batch_operands(
    vals: Sequence[Any], dims: Sequence[int | None], size: int, force: Sequence[bool] | None = None
) -> list[Any]:
    """Operands with their batch axis moved to 0; those in ``force`` that are unbatched
    get a broadcast batch axis."""
    out = []
    for i, (x, d) in enumerate(zip(vals, dims, strict=True)):
        if d is not None:
            out.append(move_axis(x, d, 0))
        elif force is not None and force[i]:
            out.append(broadcast_batch(x, size))
        else:
            out.append(x)
    return out


# ---------------------------------------------------------------------------
# Reverse mode over a sub-jaxpr
# ---------------------------------------------------------------------------


class BackwardTrace(DynamicJaxprTrace):
    """Stages a backward pass. Operations on cotangents (its own tracers) and on primal
    values of the forward jaxpr being staged (tracers of ``primal_trace``) are both
    recorded; the latter values become constvars of the backward jaxpr: its residuals.
    (Operations on primal values alone are recorded here too rather than in the forward
    jaxpr, so residuals are the primal values the derivative rules read, not larger
    values derived from them.)"""

    __slots__ = ("primal_trace",)

    def __init__(self, parent: Any, name: str = "", primal_trace: Any = None) -> None:
        super().__init__(parent, name)
        self.primal_trace = primal_trace

    def process_primitive(self, prim: Primitive, args: Sequence[Any], params: dict) -> Any:
        for x in args:
            if type(x) is JaxprTracer and (x._trace is self or x._trace is self.primal_trace):
                break
        else:
            return self.parent.process_primitive(prim, args, params)
        return self.record(prim, args, params)


@dataclasses.dataclass
class VJPSplit:
    """``fwd: (*args) -> (*outs, *residuals)`` and
    ``bwd: (*residuals, *cotangents of the ct_mask outputs) -> (*cotangents of the
    diff_in inputs)`` (cotangents always materialised)."""

    fwd: ClosedJaxpr
    bwd: ClosedJaxpr
    num_res: int


def vjp_split(
    closed: ClosedJaxpr, diff_in: Sequence[bool], ct_mask: Sequence[bool], name: str
) -> VJPSplit:
    """Split reverse mode of ``closed`` into a forward and a backward jaxpr, with the
    values the backward pass needs passed between them as residuals."""
    from functrans.transforms.ad import ReverseTrace, ReverseTracer

    in_avals, out_avals = closed.in_avals, closed.out_avals
    ct_avals = [a.strip_weak_type() for a, m in zip(out_avals, ct_mask, strict=True) if m]
    diff_avals = [a.strip_weak_type() for a, d in zip(in_avals, diff_in, strict=True) if d]
    box: list[ClosedJaxpr] = []

    def fwd(*args: Any) -> list[Any]:
        primal_trace = current_trace()
        with new_trace(ReverseTrace, name) as tape:
            ins = [tape.new_input(a) if d else a for a, d in zip(args, diff_in, strict=True)]
            outs = call_jaxpr(closed, *ins)
        in_slots = [x.slot for x, d in zip(ins, diff_in, strict=True) if d]

        def tracked(o: Any) -> bool:
            return type(o) is ReverseTracer and o._trace is tape

        def bwd(*cts: Any) -> list[Any]:
            seeds: dict[int, Any] = {}
            masked = [o for o, m in zip(outs, ct_mask, strict=True) if m]
            for o, ct in zip(masked, cts, strict=True):
                if tracked(o):
                    seeds[o.slot] = ct if o.slot not in seeds else add(seeds[o.slot], ct)
            got = tape.backward(seeds, in_slots) if seeds else [None] * len(in_slots)
            return [instantiate(g, a) for g, a in zip(got, diff_avals, strict=True)]

        with new_trace(BackwardTrace, name, primal_trace=primal_trace) as staging:
            ct_in = [staging.new_arg(a) for a in ct_avals]
            jaxpr, consts = staging.to_jaxpr(bwd(*ct_in))
        # Constvars holding primal values of the forward jaxpr become residual inputs;
        # the others are concrete constants of the backward jaxpr.
        res_vars, res_vals, const_vars, const_vals = [], [], [], []
        for v, c in zip(jaxpr.constvars, consts, strict=True):
            if type(c) is JaxprTracer and c._trace is primal_trace:
                res_vars.append(v)
                res_vals.append(c)
            else:
                assert not isinstance(c, Tracer), c
                const_vars.append(v)
                const_vals.append(c)
        bwd_jaxpr = Jaxpr(const_vars, res_vars + jaxpr.invars, jaxpr.outvars, jaxpr.eqns)
        box.append(ClosedJaxpr(bwd_jaxpr, const_vals))
        primal_outs = [o.primal if tracked(o) else o for o in outs]
        return primal_outs + res_vals

    fwd_jaxpr = trace_derived(fwd, in_avals, name)
    num_res = len(fwd_jaxpr.jaxpr.outvars) - len(out_avals)
    return VJPSplit(fwd_jaxpr, box[0], num_res)


def vjp_jaxpr(
    closed: ClosedJaxpr, diff_in: Sequence[bool], ct_mask: Sequence[bool], name: str
) -> ClosedJaxpr:
    """``(*args, *cotangents of the ct_mask outputs) -> (*cotangents of the diff_in
    inputs)``: the forward pass recomputed inside the backward one."""
    from functrans.transforms.ad import ReverseTrace, ReverseTracer

    n = len(closed.in_avals)
    ct_avals = [a.strip_weak_type() for a, m in zip(closed.out_avals, ct_mask, strict=True) if m]
    diff_avals = [a.strip_weak_type() for a, d in zip(closed.in_avals, diff_in, strict=True) if d]

    def fun(*args: Any) -> list[Any]:
        primals, cts = args[:n], args[n:]
        with new_trace(ReverseTrace, name) as tape:
            ins = [tape.new_input(a) if d else a for a, d in zip(primals, diff_in, strict=True)]
            outs = call_jaxpr(closed, *ins)
        seeds: dict[int, Any] = {}
        masked = [o for o, m in zip(outs, ct_mask, strict=True) if m]
        for o, ct in zip(masked, cts, strict=True):
            if type(o) is ReverseTracer and o._trace is tape:
                seeds[o.slot] = ct if o.slot not in seeds else add(seeds[o.slot], ct)
        slots = [x.slot for x, d in zip(ins, diff_in, strict=True) if d]
        got = tape.backward(seeds, slots) if seeds else [None] * len(slots)
        return [instantiate(g, a) for g, a in zip(got, diff_avals, strict=True)]

    return trace_derived(fun, [*closed.in_avals, *ct_avals], name)


def tracked_outputs(jaxpr: Jaxpr, tracked_in: Sequence[bool]) -> list[bool]:
    """Which outputs reverse mode may track, given the tracked inputs: those depending
    on one through differentiable primitives, with a floating dtype."""
    deps = depends_on(jaxpr, tracked_in, lambda p: p.differentiable)
    return [d and is_float(v.aval) for d, v in zip(deps, jaxpr.outvars, strict=True)]
