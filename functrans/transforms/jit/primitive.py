"""The ``jit`` primitive: one equation holding an optimized ``ClosedJaxpr``, bound when
a jitted function is called with tracers of another transform.

Its impl runs the compiled jaxpr. Its rules recurse into the jaxpr: JVP and batching
derive the JVP / batched jaxpr once per jaxpr (``derived.cached``) and bind ``jit``
again; reverse mode splits the VJP into a forward jaxpr (outputs and residuals) and
a backward jaxpr (residuals and cotangents to input cotangents), so ``grad(jit(f))``
runs compiled code both ways. When an enclosing ``jit`` is staged, or compiled, the
inner ``jit`` equations are inlined into it (``call_param``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from functrans.config import config
from functrans.core import Primitive, ShapedArray, Zero, get_aval, is_float
from functrans.ir import ClosedJaxpr
from functrans.primitives import convert_element_type
from functrans.transforms.batching import batch_jaxpr
from functrans.transforms.derived import VJPSplit, cached, jvp_jaxpr, vjp_partition
from functrans.transforms.jit.codegen import compiled
from functrans.transforms.jit.passes import inline_calls, optimize

__all__ = ["jit_p", "optimized"]

jit_p = Primitive("jit", multiple_results=True)
jit_p.call_param = "jaxpr"  # the generated code of an enclosing jit inlines the call


def optimized(closed: ClosedJaxpr) -> ClosedJaxpr:
    """What a ``jit`` equation holds: ``closed`` with the ``jit`` calls in it inlined
    and, unless ``config.jit_optimize`` is off, optimized."""
    closed = inline_calls(closed, (jit_p,))
    return optimize(closed) if config.jit_optimize else closed


@jit_p.def_impl
def _jit_impl(*args: Any, jaxpr: ClosedJaxpr, name: str) -> tuple:
    return compiled(jaxpr).fn(*args)


@jit_p.def_abstract_eval
def _jit_abstract_eval(*avals: ShapedArray, jaxpr: ClosedJaxpr, name: str) -> list[ShapedArray]:
    expected = jaxpr.in_avals
    if len(avals) != len(expected) or any(
        a.shape != b.shape or a.dtype != b.dtype for a, b in zip(avals, expected, strict=True)
    ):
        got = ", ".join(a.str_short() for a in avals)
        want = ", ".join(a.str_short() for a in expected)
        raise TypeError(f"jit({name}): called with ({got}) but staged for ({want})")
    return jaxpr.out_avals


def _jit_jvp(primals, tangents, *, jaxpr: ClosedJaxpr, name: str):
    nonzero = tuple(type(t) is not Zero for t in tangents)
    jvp_closed, out_nonzero = cached(
        jaxpr, ("jvp", nonzero), lambda: _derive(jvp_jaxpr, jaxpr, nonzero, name=f"jvp({name})")
    )
    tans = [t for t in tangents if type(t) is not Zero]
    outs = jit_p.bind(*primals, *tans, jaxpr=jvp_closed, name=f"jvp({name})")
    n = len(jaxpr.out_avals)
    rest = iter(outs[n:])
    tangents_out = [
        next(rest) if nz else Zero(aval.strip_weak_type())
        for nz, aval in zip(out_nonzero, jaxpr.out_avals, strict=True)
    ]
    return list(outs[:n]), tangents_out


def _jit_batch(vals, dims, *, jaxpr: ClosedJaxpr, name: str):
    dims = tuple(dims)
    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims, strict=True) if d is not None)
    batched, out_dims = cached(
        jaxpr,
        ("batch", size, dims),
        lambda: _derive(batch_jaxpr, jaxpr, size, dims, name=f"vmap({name})"),
    )
    return jit_p.bind(*vals, jaxpr=batched, name=f"vmap({name})"), list(out_dims)


def _derive(transform: Callable, closed: ClosedJaxpr, *args: Any, name: str):
    derived, info = transform(closed, *args, name=name)
    return optimized(derived), tuple(info)


def _jit_reverse(parent, primals, positions, params):
    closed, name = params["jaxpr"], params["name"]
    split = cached(closed, ("vjp", positions), lambda: _vjp_split(closed, positions, name))
    n = len(closed.out_avals)
    fwd_params = dict(jaxpr=split.fwd, name=f"{name}_fwd")
    outs_and_res = parent.process_primitive(jit_p, primals, fwd_params)
    outs, residuals = list(outs_and_res[:n]), list(outs_and_res[n:])
    out_avals = closed.out_avals

    def backward(g):  # one cotangent (or None) per output
        cts = [_as_cotangent(c, a) for c, a in zip(g, out_avals, strict=True) if is_float(a)]
        in_cts = iter(jit_p.bind(*residuals, *cts, jaxpr=split.bwd, name=f"{name}_bwd"))
        return [next(in_cts) if nz else None for nz in split.ct_nonzero]

    return outs, backward


def _as_cotangent(ct: Any, aval: ShapedArray) -> Any:
    """The cotangent of an output of type ``aval``, as the backward jaxpr takes it."""
    if ct is None:
        return np.zeros(aval.shape, aval.dtype)
    if get_aval(ct).dtype != aval.dtype:
        return convert_element_type(ct, aval.dtype)
    return ct


def _vjp_split(closed: ClosedJaxpr, positions: tuple[int, ...], name: str) -> VJPSplit:
    """The forward and backward jaxprs of reverse mode with respect to the inputs at
    ``positions`` (cotangents flow from the floating outputs)."""
    diff_in = [i in positions for i in range(len(closed.in_avals))]
    ct_mask = [is_float(a) for a in closed.out_avals]
    split = vjp_partition(closed, diff_in, ct_mask, f"vjp({name})")
    if config.jit_optimize:
        split = split._replace(fwd=optimize(split.fwd), bwd=optimize(split.bwd))
    return split


jit_p.def_jvp(_jit_jvp)
jit_p.def_batch(_jit_batch)
jit_p.def_reverse(_jit_reverse)
