"""User-defined derivative rules: ``custom_jvp`` and ``custom_vjp``, and
``stop_gradient``.

A call of a decorated function inside a transform binds one primitive holding the
function's jaxpr (so staging, batching and evaluation see an ordinary program) and
the user's rule (so differentiation uses it). Under ``vmap`` the primitive is bound
again with its jaxpr batched and the rule vmapped, so ``grad(vmap(f))`` still uses
the rule.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import Primitive, Tracer, Zero, call_with_trace, get_aval, new_trace
from functrans.ir import ClosedJaxpr
from functrans.primitives import stop_gradient as _stop_gradient
from functrans.transforms import derived
from functrans.tree_util import tree_flatten, tree_map, tree_unflatten

__all__ = ["custom_jvp", "custom_vjp", "stop_gradient"]


def stop_gradient(x: Any) -> Any:
    """The identity on a pytree, with a zero derivative.

    >>> import functrans as ft
    >>> float(ft.grad(lambda x: x * ft.stop_gradient(x))(3.0))
    3.0
    """
    return tree_map(lambda leaf: _stop_gradient(leaf) if isinstance(leaf, Tracer) else leaf, x)


# ---------------------------------------------------------------------------
# Shared machinery: the call's jaxpr, inline evaluation under JVP and batching
# ---------------------------------------------------------------------------


def _trace_call(fun: Callable, leaves: Sequence[Any], in_tree, name: str):
    """Trace ``fun`` (over pytrees) at the avals of ``leaves``. Returns the closed jaxpr
    with its consts hoisted to leading arguments, the consts, and the output tree."""
    from functrans.transforms.staging import trace_to_jaxpr

    out_tree_box = []

    def flat(*xs):
        out = fun(*tree_unflatten(in_tree, xs))
        out_leaves, out_tree = tree_flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    jaxpr, consts = trace_to_jaxpr(flat, [get_aval(x).strip_weak_type() for x in leaves], name)
    from functrans.ir import Jaxpr

    hoisted = Jaxpr([], jaxpr.constvars + jaxpr.invars, jaxpr.outvars, jaxpr.eqns)
    return ClosedJaxpr(hoisted, []), consts, out_tree_box[0]


def _jvp_inline(call_jaxpr, primals, tangents):
    """Forward mode through the call's own program (its implementation)."""
    from functrans.transforms.ad import _jvp_flat

    call = functools.partial(derived.call_jaxpr, call_jaxpr)
    return _jvp_flat(call, list(primals), list(tangents), "jvp")


def _batch_inline(call_jaxpr, vals, dims):
    from functrans.transforms.batching import BatchTrace, BatchTracer

    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims, strict=True) if d is not None)
    with new_trace(BatchTrace, "vmap", axis_size=size) as trace:
        pairs = zip(vals, dims, strict=True)
        ins = [v if d is None else BatchTracer(trace, v, d) for v, d in pairs]
        outs = derived.call_jaxpr(call_jaxpr, *ins)
        results = [
            (o.val, o.bdim) if type(o) is BatchTracer and o._trace is trace else (o, None)
            for o in outs
        ]
    return [r[0] for r in results], [r[1] for r in results]


def _batch_call(prim: Primitive, vals, dims, params, batch_rules: Callable[..., dict]):
    """Batching rule of a custom call: bind ``prim`` again on the batched arguments
    (batch axis first), with its program batched and the user's rules vmapped by
    ``batch_rules(params, arg_axes)``, so that differentiating the batched call still
    uses them. A batched closed-over value would reach the rules only through their
    own closure, so then the call is inlined (its implementation is what gets
    differentiated)."""
    num_consts = params["num_consts"]
    if any(d is not None for d in dims[:num_consts]):
        return _batch_inline(params["call_jaxpr"], vals, dims)
    from functrans.primitives._rules import broadcast_batched

    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims, strict=True) if d is not None)
    in_dims = [None if d is None else 0 for d in dims]
    pairs = zip(vals, dims, strict=True)
    vals = [v if d is None else broadcast_batched(v, d, size, 0) for v, d in pairs]
    n_out = len(params["call_jaxpr"].out_avals)
    call, _ = derived.batch_jaxpr(
        params["call_jaxpr"], size, in_dims, out_axis=0, force=[True] * n_out
    )
    arg_axes = tree_unflatten(params["in_tree"], in_dims[num_consts:])
    new_params = {**params, "call_jaxpr": call, **batch_rules(params, arg_axes)}
    return prim.bind(*vals, **new_params), [0] * n_out


def _def_call_primitive(name: str) -> Primitive:
    prim = Primitive(name, multiple_results=True)
    prim.def_impl(lambda *args, call_jaxpr, **_: derived.call_jaxpr(call_jaxpr, *args))
    prim.def_abstract_eval(lambda *avals, call_jaxpr, **_: call_jaxpr.out_avals)
    prim.def_batch(lambda vals, dims, call_jaxpr, **_: _batch_inline(call_jaxpr, vals, dims))
    return prim


def _check_no_differentiated_closure(kind: str, name: str, closed_over: bool) -> None:
    # A closed-over value reaches the call as a const; the user's rule only produces
    # derivatives for the function's arguments, so a derivative with respect to it
    # would be silently lost (or the rule would use a dead tracer).
    if closed_over:
        raise TypeError(
            f"{kind}: {name} closes over a value that is being differentiated; the rule "
            f"gives no derivative for it. Pass the value to {name} as an argument instead."
        )


def _any_tracer(leaves: Sequence[Any]) -> bool:
    return any(isinstance(x, Tracer) for x in leaves)


# ---------------------------------------------------------------------------
# custom_vjp
# ---------------------------------------------------------------------------

custom_vjp_call_p = _def_call_primitive("custom_vjp_call")


def _custom_vjp_jvp(primals, tangents, *, call_jaxpr, **_):
    # Forward mode differentiates the function itself, so jacfwd and hessian of a
    # custom_vjp function work (JAX raises here).
    return _jvp_inline(call_jaxpr, primals, tangents)


def _custom_vjp_reverse(parent, primals, positions, params):
    num_consts, in_tree, out_tree = params["num_consts"], params["in_tree"], params["out_tree"]
    closed_over = any(i < num_consts for i in positions)
    _check_no_differentiated_closure("custom_vjp", params["name"], closed_over)
    args = tree_unflatten(in_tree, primals[num_consts:])
    fwd, bwd = params["fwd"], params["bwd"]
    result = call_with_trace(parent, fwd, *args)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise TypeError(f"custom_vjp: fwd of {params['name']} must return (out, residuals)")
    out, residuals = result
    out_leaves, fwd_tree = tree_flatten(out)
    if fwd_tree != out_tree:
        raise TypeError(
            f"custom_vjp: fwd of {params['name']} returned an output of structure {fwd_tree}, "
            f"but the function returns {out_tree}"
        )
    # fwd may compute with Python numbers; its outputs are typed as the function's are.
    out_leaves = [
        o if isinstance(o, Tracer) else np.asarray(o, aval.dtype)[()]
        for o, aval in zip(out_leaves, params["call_jaxpr"].out_avals, strict=True)
    ]

    def backward(g):
        g = [derived.instantiate(c, get_aval(o)) for c, o in zip(g, out_leaves, strict=True)]
        cts = bwd(residuals, tree_unflatten(out_tree, g))
        if not isinstance(cts, (tuple, list)):
            raise TypeError(f"custom_vjp: bwd of {params['name']} must return a tuple")
        ct_leaves, ct_tree = tree_flatten(tuple(cts), is_leaf=lambda x: x is None)
        arg_leaves = primals[num_consts:]
        if len(ct_leaves) != len(arg_leaves):
            raise TypeError(
                f"custom_vjp: bwd of {params['name']} returned {len(ct_leaves)} cotangents "
                f"for {len(arg_leaves)} inputs"
            )
        full = [None] * num_consts + list(ct_leaves)
        return [full[i] for i in positions]

    return out_leaves, backward


def _custom_vjp_batch_rules(params: dict, arg_axes: tuple) -> dict:
    from functrans import numpy as fnp
    from functrans.transforms.batching import vmap

    fwd, bwd = params["fwd"], params["bwd"]
    unbatched = [a is None for a in tree_flatten(arg_axes, is_leaf=lambda x: x is None)[0]]

    def batched_bwd(residuals, g):
        cts = vmap(lambda r, c: tuple(bwd(r, c)))(residuals, g)
        leaves, tree = tree_flatten(cts, is_leaf=lambda x: x is None)
        if len(leaves) == len(unbatched):  # else the reverse rule reports the mismatch
            # An argument shared by the whole batch gets the sum of its cotangents.
            leaves = [
                fnp.sum(c, axis=0) if c is not None and shared else c
                for c, shared in zip(leaves, unbatched, strict=True)
            ]
        return tree_unflatten(tree, leaves)

    return {"fwd": vmap(fwd, in_axes=arg_axes), "bwd": batched_bwd}


custom_vjp_call_p.def_jvp(_custom_vjp_jvp)
custom_vjp_call_p.reverse = _custom_vjp_reverse
custom_vjp_call_p.def_batch(
    lambda vals, dims, **params: _batch_call(
        custom_vjp_call_p, vals, dims, params, _custom_vjp_batch_rules
    )
)


class custom_vjp:
    """A function with a user-defined reverse-mode rule.

    >>> import functrans as ft, functrans.numpy as fnp
    >>> @custom_vjp
    ... def clipped_identity(x):
    ...     return x
    >>> clipped_identity.defvjp(lambda x: (x, None), lambda res, g: (fnp.clip(g, -1, 1),))
    >>> float(ft.grad(lambda x: 5.0 * clipped_identity(x))(2.0))
    1.0
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None
        if nondiff_argnums:
            raise NotImplementedError("custom_vjp: nondiff_argnums; close over the value instead")

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        """``fwd(*args) -> (out, residuals)``; ``bwd(residuals, g) -> tuple of
        cotangents, one per argument`` (``None`` for a zero cotangent)."""
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args: Any) -> Any:
        if self.fwd is None:
            raise TypeError(f"custom_vjp: call defvjp on {self.__name__} before using it")
        leaves, in_tree = tree_flatten(args)
        if not _any_tracer(leaves):
            return self.fun(*args)
        call_jaxpr, consts, out_tree = _trace_call(self.fun, leaves, in_tree, self.__name__)
        outs = custom_vjp_call_p.bind(
            *consts,
            *leaves,
            call_jaxpr=call_jaxpr,
            num_consts=len(consts),
            fwd=self.fwd,
            bwd=self.bwd,
            in_tree=in_tree,
            out_tree=out_tree,
            name=self.__name__,
        )
        return tree_unflatten(out_tree, outs)


# ---------------------------------------------------------------------------
# custom_jvp
# ---------------------------------------------------------------------------

custom_jvp_call_p = _def_call_primitive("custom_jvp_call")


def _custom_jvp_jvp(primals, tangents, *, num_consts, jvp, in_tree, out_tree, name, **_):
    args = tree_unflatten(in_tree, primals[num_consts:])
    tans = tree_unflatten(
        in_tree,
        [
            derived.instantiate(t, get_aval(p).strip_weak_type())
            for t, p in zip(tangents[num_consts:], primals[num_consts:], strict=True)
        ],
    )
    result = jvp(args, tans)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise TypeError(f"custom_jvp: the rule of {name} must return (out, tangent_out)")
    out, t_out = result
    out_leaves, tree = tree_flatten(out)
    t_leaves, t_tree = tree_flatten(t_out)
    if tree != out_tree or t_tree != out_tree:
        raise TypeError(
            f"custom_jvp: the rule of {name} returned structures {tree} and {t_tree}; the "
            f"function returns {out_tree}"
        )
    return out_leaves, t_leaves


def _custom_jvp_reverse(parent, primals, positions, params):
    from functrans.transforms.ad import _vjp_flat

    num_consts = params["num_consts"]
    closed_over = any(i < num_consts for i in positions)
    _check_no_differentiated_closure("custom_jvp", params["name"], closed_over)
    outs = call_with_trace(parent, derived.call_jaxpr, params["call_jaxpr"], *primals)
    args = primals[num_consts:]

    def backward(g):
        # The rule is linear in the tangents: its VJP at zero tangents is the transpose.
        def tangent_map(*tangents):
            zeros = [np.zeros(get_aval(x).shape, get_aval(x).dtype) for x in primals[:num_consts]]
            return _custom_jvp_jvp(primals, zeros + list(tangents), **params)[1]

        zeros = [np.zeros(get_aval(x).shape, get_aval(x).dtype) for x in args]
        t_outs, trace, slots = _vjp_flat(tangent_map, zeros, "custom_jvp")
        seeds = {}
        for o, c in zip(t_outs, g, strict=True):
            if c is not None and getattr(o, "_trace", None) is trace:
                seeds[o.slot] = c
        cts = trace.backward(seeds, slots) if seeds else [None] * len(slots)
        full = [None] * num_consts + cts
        return [full[i] for i in positions]

    return outs, backward


def _custom_jvp_rule(primals, tangents, **params):
    closed_over = any(type(t) is not Zero for t in tangents[: params["num_consts"]])
    _check_no_differentiated_closure("custom_jvp", params["name"], closed_over)
    return _custom_jvp_jvp(primals, tangents, **params)


def _custom_jvp_batch_rules(params: dict, arg_axes: tuple) -> dict:
    from functrans.transforms.batching import vmap

    # A tangent is batched exactly where its primal is (the rule receives both).
    return {"jvp": vmap(params["jvp"], in_axes=(arg_axes, arg_axes))}


custom_jvp_call_p.def_jvp(_custom_jvp_rule)
custom_jvp_call_p.reverse = _custom_jvp_reverse
custom_jvp_call_p.def_batch(
    lambda vals, dims, **params: _batch_call(
        custom_jvp_call_p, vals, dims, params, _custom_jvp_batch_rules
    )
)


class custom_jvp:
    """A function with a user-defined forward-mode rule (reverse mode transposes it).

    >>> import functrans as ft, functrans.numpy as fnp
    >>> @custom_jvp
    ... def f(x):
    ...     return fnp.sin(x)
    >>> @f.defjvp
    ... def f_jvp(primals, tangents):
    ...     return f(primals[0]), 2.0 * tangents[0]
    >>> float(ft.grad(f)(0.3))
    2.0
    """

    def __init__(self, fun: Callable, nondiff_argnums: Sequence[int] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.jvp: Callable | None = None
        if nondiff_argnums:
            raise NotImplementedError("custom_jvp: nondiff_argnums; close over the value instead")

    def defjvp(self, jvp: Callable) -> Callable:
        """``jvp(primals, tangents) -> (out, tangent_out)``; usable as a decorator."""
        self.jvp = jvp
        return jvp

    def __call__(self, *args: Any) -> Any:
        if self.jvp is None:
            raise TypeError(f"custom_jvp: call defjvp on {self.__name__} before using it")
        leaves, in_tree = tree_flatten(args)
        if not _any_tracer(leaves):
            return self.fun(*args)
        call_jaxpr, consts, out_tree = _trace_call(self.fun, leaves, in_tree, self.__name__)
        outs = custom_jvp_call_p.bind(
            *consts,
            *leaves,
            call_jaxpr=call_jaxpr,
            num_consts=len(consts),
            jvp=self.jvp,
            in_tree=in_tree,
            out_tree=out_tree,
            name=self.__name__,
        )
        return tree_unflatten(out_tree, outs)
