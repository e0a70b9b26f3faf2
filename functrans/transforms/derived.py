"""Programs derived from a closed jaxpr for differentiation: its JVP, and its reverse
mode, whole or split into a forward and a backward jaxpr (its batched form,
``batching.batch_jaxpr``, sits with batching).

Each is built by running the ordinary interpreter (``JVPTrace``, the reverse-mode
tape) over the jaxpr while staging the result, so the call-like primitives that use
them (``jit``, ``cond``, ``while``, ``scan``) have no derivative or batching logic of
their own beyond plumbing. ``cached`` keeps a derived program for as long as the
jaxpr it was derived from lives.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from functrans.core import ShapedArray, Tracer, current_trace, instantiate, is_float, new_trace
from functrans.ir import ClosedJaxpr, Jaxpr
from functrans.transforms.autodiff.forward import JVPTrace, JVPTracer
from functrans.transforms.autodiff.reverse import run_on_tape
from functrans.transforms.jaxpr_passes import partition_known
from functrans.transforms.staging import (
    DynamicJaxprTrace,
    JaxprTracer,
    call_jaxpr,
    trace_derived,
)

__all__ = [
    "BackwardTrace",
    "VJPSplit",
    "cached",
    "jvp_jaxpr",
    "vjp_jaxpr",
    "vjp_partition",
    "vjp_split",
]


# ---------------------------------------------------------------------------
# Caching and staging
# ---------------------------------------------------------------------------

_derived: weakref.WeakKeyDictionary[ClosedJaxpr, dict] = weakref.WeakKeyDictionary()
_derived_lock = threading.RLock()


def cached(closed: ClosedJaxpr, key: Any, build: Callable[[], Any]) -> Any:
    """``build()``, once per ``(closed, key)`` for as long as ``closed`` lives."""
    table = _derived.get(closed)
    if table is not None:
        value = table.get(key)
        if value is not None:
            return value
    with _derived_lock:  # reentrant: building may trace and derive again
        table = _derived.get(closed)
        if table is None:
            table = _derived[closed] = {}
        value = table.get(key)
        if value is None:
            value = table[key] = build()
        return value


# ---------------------------------------------------------------------------
# Forward mode
# ---------------------------------------------------------------------------


def jvp_jaxpr(
    closed: ClosedJaxpr,
    nonzero: Sequence[bool],
    instantiate_out: Sequence[bool] | None = None,
    name: str = "jvp",
) -> tuple[ClosedJaxpr, list[bool]]:
    """The JVP of ``closed``: ``(*primals, *tangents) -> (*outs, *out_tangents)``, with a
    tangent input for each ``nonzero`` input and a tangent output for each output whose
    tangent is not symbolically zero or is in ``instantiate_out`` (only floating outputs
    are instantiated). Returns the jaxpr and which outputs have a tangent."""
    n = len(closed.in_avals)
    out_avals = closed.out_avals
    if instantiate_out is None:
        instantiate_out = [False] * len(out_avals)
    box: list[list[bool]] = []

    def fun(*args: Any) -> list[Any]:
        primals, tangents = args[:n], iter(args[n:])
        with new_trace(JVPTrace, name) as trace:
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
            t is not None or (inst and is_float(a))
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
    jaxpr = trace_derived(fun, [*closed.in_avals, *tangent_avals], name)
    return jaxpr, box[0]


# ---------------------------------------------------------------------------
# Reverse mode
# ---------------------------------------------------------------------------


def _run_on_tape(closed: ClosedJaxpr, args: Sequence[Any], diff_in: Sequence[bool], name: str):
    """Run ``closed`` under a new ``ReverseTrace`` tracking the ``diff_in`` inputs.
    Returns the primal outputs and ``pull(cts)``: from one cotangent (or ``None``) per
    output to one cotangent (or ``None``, symbolically zero) per ``diff_in`` input."""
    outs, tape, in_slots = run_on_tape(
        lambda *ins: call_jaxpr(closed, *ins), args, name, tracked=diff_in
    )

    def pull(cts: Sequence[Any]) -> list[Any]:
        return tape.pull(outs, cts, in_slots)

    return [tape.primal(o) for o in outs], pull


def _masked_cts(ct_mask: Sequence[bool], cts: Sequence[Any]) -> list[Any]:
    """One cotangent per output: those of the ``ct_mask`` outputs, ``None`` elsewhere."""
    given = iter(cts)
    return [next(given) if m else None for m in ct_mask]


def _ct_avals(avals: Sequence[ShapedArray], mask: Sequence[bool]) -> list[ShapedArray]:
    return [a.strip_weak_type() for a, m in zip(avals, mask, strict=True) if m]


def vjp_jaxpr(
    closed: ClosedJaxpr, diff_in: Sequence[bool], ct_mask: Sequence[bool], name: str
) -> ClosedJaxpr:
    """``(*args, *cotangents of the ct_mask outputs) -> (*cotangents of the diff_in
    inputs)`` (cotangents always materialised): the forward pass recomputed inside the
    backward one."""
    n = len(closed.in_avals)
    diff_avals = _ct_avals(closed.in_avals, diff_in)

    def fun(*args: Any) -> list[Any]:
        _, pull = _run_on_tape(closed, args[:n], diff_in, name)
        got = pull(_masked_cts(ct_mask, args[n:]))
        return [instantiate(g, a) for g, a in zip(got, diff_avals, strict=True)]

    return trace_derived(fun, [*closed.in_avals, *_ct_avals(closed.out_avals, ct_mask)], name)


class VJPSplit(NamedTuple):
    """``fwd: (*args) -> (*outs, *residuals)`` and ``bwd: (*residuals, *cotangents of the
    ct_mask outputs) -> (*cotangents of the diff_in inputs that ct_nonzero marks)``; the
    other inputs' cotangents are symbolically zero."""

    fwd: ClosedJaxpr
    bwd: ClosedJaxpr
    num_res: int
    ct_nonzero: tuple[bool, ...]


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

    def process_primitive(self, prim, args, params):
        for x in args:
            if type(x) is JaxprTracer and (x._trace is self or x._trace is self.primal_trace):
                break
        else:
            return self.parent.process_primitive(prim, args, params)
        return self.record(prim, args, params)


def vjp_split(
    closed: ClosedJaxpr, diff_in: Sequence[bool], ct_mask: Sequence[bool], name: str
) -> VJPSplit:
    """Split reverse mode of ``closed`` into a forward and a backward jaxpr whose
    residuals are the primal values the derivative rules read (what a loop stacks per
    iteration); all other work of the backward pass stays in ``bwd``."""
    ct_avals = _ct_avals(closed.out_avals, ct_mask)
    box: list[tuple[ClosedJaxpr, tuple[bool, ...]]] = []

    def fwd(*args: Any) -> list[Any]:
        primal_trace = current_trace()
        primal_outs, pull = _run_on_tape(closed, args, diff_in, name)
        with new_trace(BackwardTrace, name, primal_trace=primal_trace) as staging:
            ct_in = [staging.new_arg(a) for a in ct_avals]
            got = pull(_masked_cts(ct_mask, ct_in))
            jaxpr, consts = staging.to_jaxpr([g for g in got if g is not None])
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
        box.append((ClosedJaxpr(bwd_jaxpr, const_vals), tuple(g is not None for g in got)))
        return primal_outs + res_vals

    fwd_jaxpr = trace_derived(fwd, closed.in_avals, name)
    num_res = len(fwd_jaxpr.jaxpr.outvars) - len(closed.out_avals)
    bwd, ct_nonzero = box[0]
    return VJPSplit(fwd_jaxpr, bwd, num_res, ct_nonzero)


def vjp_partition(
    closed: ClosedJaxpr, diff_in: Sequence[bool], ct_mask: Sequence[bool], name: str
) -> VJPSplit:
    """Split reverse mode of ``closed`` by tracing the whole VJP into one jaxpr and
    partitioning it (``optimize.partition_known``): everything computable from the
    primals runs in ``fwd``, so ``bwd`` does only the work that needs cotangents
    (what ``jit`` wants: both halves run compiled)."""
    n_in, n_out = len(closed.in_avals), len(closed.out_avals)
    ct_avals = _ct_avals(closed.out_avals, ct_mask)
    box: list[tuple[bool, ...]] = []

    def vjp_fun(*args: Any) -> list[Any]:
        primal_outs, pull = _run_on_tape(closed, args[:n_in], diff_in, name)
        got = pull(_masked_cts(ct_mask, args[n_in:]))
        box.append(tuple(c is not None for c in got))
        return primal_outs + [c for c in got if c is not None]

    joint = trace_derived(vjp_fun, [*closed.in_avals, *ct_avals], name)
    ct_nonzero = box[0]
    unknown_ins = [False] * n_in + [True] * len(ct_avals)
    unknown_outs = [False] * n_out + [True] * sum(ct_nonzero)
    known, unknown, num_res = partition_known(joint.jaxpr, unknown_ins, unknown_outs)
    fwd, bwd = ClosedJaxpr(known, joint.consts), ClosedJaxpr(unknown, joint.consts)
    return VJPSplit(fwd, bwd, num_res, ct_nonzero)
