"""``while_loop`` and ``fori_loop``.

``while_p`` carries its predicate and its body as sub-jaxprs, each with the values it
closes over as leading operands: ``while[cond_jaxpr body_jaxpr cond_nconsts
body_nconsts] *cond_consts *body_consts *carry``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from functrans.control_flow._common import (
    aval_of,
    batch_body,
    batch_operands,
    cast,
    run,
    same_type,
    split,
    trace_fun,
    with_invars,
)
from functrans.control_flow._loops import LoopNames, promote_init, trace_loop_body
from functrans.control_flow._scan import scan_with_names
from functrans.core import Primitive, ShapedArray, Tracer, Zero, get_aval, instantiate, is_float
from functrans.ir import Var
from functrans.primitives import add, broadcast_in_dim, convert_element_type, lt, reduce_max, select
from functrans.transforms.api_util import as_array_arg, check_callable, fun_name
from functrans.transforms.derived import jvp_jaxpr
from functrans.transforms.staging import call_jaxpr, trace_derived
from functrans.tree_util import leaf_paths, tree_flatten, tree_unflatten

__all__ = ["fori_loop", "while_loop", "while_p"]

while_p = Primitive("while", multiple_results=True)


def while_loop(
    cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any], init_val: Any
) -> Any:
    """Repeat ``val = body_fun(val)`` while ``cond_fun(val)`` is true, starting from
    ``init_val``; returns the final ``val``. The carry ``val`` is any pytree; the body
    must keep its structure, shapes and dtypes. Both functions are traced once.

    Works under ``jit``, ``vmap`` (a batched predicate runs until every element is done,
    each element keeping its own final value) and ``jvp``. Reverse mode is not
    supported (the number of iterations is unknown until the loop runs): use ``scan``
    or ``fori_loop`` with fixed bounds.

    >>> i, x = while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 2.0), (0, 1.0))
    >>> int(i), float(x)
    (5, 32.0)
    """
    check_callable("while_loop", "cond_fun", cond_fun)
    check_callable("while_loop", "body_fun", body_fun)
    return _while_loop(cond_fun, body_fun, init_val, None)


def _while_loop(
    cond_fun: Callable, body_fun: Callable, init_val: Any, names: LoopNames | None
) -> Any:
    if names is None:
        names = LoopNames("while_loop", "body_fun", body_fun, leaf_paths(init_val, "init_val"))
    leaves, tree = tree_flatten(init_val)
    leaves = [as_array_arg(x, f"{names.what}: init_val") for x in leaves]
    args_tree = tree_flatten((init_val,))[1]
    body, carry_avals = trace_loop_body(
        body_fun, names, args_tree, tree, [aval_of(x) for x in leaves], [], _flatten_carry
    )
    leaves = promote_init(leaves, carry_avals)
    name = f"while_loop:{fun_name(cond_fun)}"
    pred = trace_fun(cond_fun, args_tree, carry_avals, name, tree_flatten)
    pred_avals = pred.out_avals
    if len(pred_avals) != 1 or pred_avals[0].shape != () or pred_avals[0].dtype != np.bool_:
        got = ", ".join(a.str_short() for a in pred_avals) or "nothing"
        raise TypeError(
            f"while_loop: cond_fun `{fun_name(cond_fun)}` must return a boolean scalar, got {got}"
        )
    outs = while_p.bind(
        *pred.consts,
        *body.consts,
        *leaves,
        cond_jaxpr=pred.jaxpr,
        body_jaxpr=body.jaxpr,
        cond_nconsts=pred.num_consts,
        body_nconsts=body.num_consts,
    )
    return tree_unflatten(tree, outs)


def _flatten_carry(out: Any) -> tuple[list[Any], tuple]:
    leaves, tree = tree_flatten(out)
    return leaves, (tree,)


def fori_loop(lower: Any, upper: Any, body_fun: Callable[[Any, Any], Any], init_val: Any) -> Any:
    """``val = body_fun(i, val)`` for ``i`` in ``range(lower, upper)``; returns ``val``.

    With concrete bounds (Python or NumPy integers) this is a ``scan`` of
    ``upper - lower`` steps, so reverse mode works; with traced bounds it is a
    ``while_loop``.

    >>> import functrans as ft
    >>> float(fori_loop(0, 4, lambda i, x: x + i, 0.0))
    6.0
    >>> float(ft.grad(lambda x: fori_loop(0, 3, lambda i, y: y * x, 1.0))(2.0))
    12.0
    """
    check_callable("fori_loop", "body_fun", body_fun)
    lower = as_array_arg(lower, "fori_loop: lower")
    upper = as_array_arg(upper, "fori_loop: upper")
    lo_aval, hi_aval = get_aval(lower), get_aval(upper)
    for name, aval in (("lower", lo_aval), ("upper", hi_aval)):
        if aval.shape != () or aval.dtype.kind not in "iu":
            raise TypeError(f"fori_loop: {name} must be an integer scalar, got {aval.str_short()}")
    dtype = _index_dtype(lo_aval, hi_aval)
    one = dtype.type(1)
    tree = tree_flatten(init_val)[1]
    paths = leaf_paths(init_val, "init_val")

    def apply_body(i: Any, val: Any) -> Any:
        new = body_fun(i, val)
        if tree_flatten(new)[1] != tree:
            raise TypeError(
                f"fori_loop: body_fun `{fun_name(body_fun)}` must return a value with the "
                f"pytree structure of init_val {tree}, but returns {tree_flatten(new)[1]}"
            )
        return new

    # With Python-int bounds (also traced ones: a jitted function's int argument) the
    # body sees the index as range() gives it, weakly typed: a float32 carry plus the
    # index stays float32.
    weak = lo_aval.weak_type and hi_aval.weak_type
    if not isinstance(lower, Tracer) and not isinstance(upper, Tracer):
        lo, hi = int(lower), int(upper)

        def step(carry: Any, _: Any) -> Any:
            i, val = carry
            index = convert_element_type(i, dtype, weak_type=True) if weak else i
            return (add(i, one), apply_body(index, val)), None

        names = LoopNames("fori_loop", "body_fun", body_fun, ["the loop index", *paths])
        init = (dtype.type(lo), init_val)
        (_, out), _ = scan_with_names(step, init, None, max(0, hi - lo), False, names)
        return out

    def keep_going(carry: Any) -> Any:
        return lt(carry[0], carry[1])

    def body(carry: Any) -> Any:
        i, hi, val = carry
        index = convert_element_type(i, dtype, weak_type=True) if weak else i
        return add(i, one), hi, apply_body(index, val)

    lower, upper = cast(lower, dtype), cast(upper, dtype)
    names = LoopNames("fori_loop", "body_fun", body_fun, ["the loop index", "upper", *paths])
    return _while_loop(keep_going, body, (lower, upper, init_val), names)[2]


def _index_dtype(a: ShapedArray, b: ShapedArray) -> np.dtype:
    if a.weak_type and not b.weak_type:
        return b.dtype
    if b.weak_type and not a.weak_type:
        return a.dtype
    return np.promote_types(a.dtype, b.dtype)


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------


def _split_args(args, cond_nconsts, body_nconsts):
    n_carry = len(args) - cond_nconsts - body_nconsts
    return split(args, [cond_nconsts, body_nconsts, n_carry])


@while_p.def_impl
def _while_impl(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cond_consts, body_consts, carry = _split_args(args, cond_nconsts, body_nconsts)
    while run(cond_jaxpr, *cond_consts, *carry)[0]:
        carry = run(body_jaxpr, *body_consts, *carry)
    return carry


@while_p.def_abstract_eval
def _while_abstract_eval(*avals, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cond_consts, body_consts, carry = _split_args(avals, cond_nconsts, body_nconsts)
    checks = (
        ("cond_jaxpr inputs", cond_jaxpr.in_avals, [*cond_consts, *carry]),
        ("body_jaxpr inputs", body_jaxpr.in_avals, [*body_consts, *carry]),
        ("body_jaxpr outputs", body_jaxpr.out_avals, carry),
    )
    for what, expected, got in checks:
        if len(expected) != len(got) or not all(map(same_type, expected, got)):
            raise TypeError(
                f"while: {what} are {[a.str_short() for a in expected]}, expected "
                f"{[a.str_short() for a in got]}"
            )
    (pred,) = cond_jaxpr.out_avals
    if pred.shape != () or pred.dtype != np.bool_:
        raise TypeError(f"while: the predicate must be a boolean scalar, got {pred.str_short()}")
    return [a.strip_weak_type() for a in body_jaxpr.out_avals]


@while_p.def_jvp
def _while_jvp(primals, tangents, *, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cond_consts, body_consts, carry = _split_args(primals, cond_nconsts, body_nconsts)
    _, body_tangents, carry_tangents = _split_args(tangents, cond_nconsts, body_nconsts)
    body_nz = _nonzero(body_consts, body_tangents)
    carry_nz = _nonzero(carry, carry_tangents)
    while True:  # the carries with a tangent: a fixpoint over the body
        _, out_nz = jvp_jaxpr(body_jaxpr, body_nz + carry_nz, carry_nz)
        grown = [a or b for a, b in zip(carry_nz, out_nz, strict=True)]
        if grown == carry_nz:
            break
        carry_nz = grown
    body_jvp, _ = jvp_jaxpr(body_jaxpr, body_nz + carry_nz, carry_nz)
    # Reorder its inputs (consts, carry, const tangents, carry tangents) to the loop's
    # layout: (consts, const tangents) are the body's constants, (carry, tangents) its carry.
    nb, nc, nbt = len(body_consts), len(carry), sum(body_nz)
    v = body_jvp.jaxpr.invars
    invars = [*v[:nb], *v[nb + nc : nb + nc + nbt], *v[nb : nb + nc], *v[nb + nc + nbt :]]
    body_jvp = with_invars(body_jvp, invars, body_jvp.jaxpr.outvars)
    carry_avals = body_jaxpr.out_avals
    tangent_vars = [
        Var(a.strip_weak_type()) for a, nz in zip(carry_avals, carry_nz, strict=True) if nz
    ]
    cond_jvp = with_invars(
        cond_jaxpr, [*cond_jaxpr.jaxpr.invars, *tangent_vars], cond_jaxpr.jaxpr.outvars
    )
    body_ts = [t for t, nz in zip(body_tangents, body_nz, strict=True) if nz]
    carry_ts = [
        instantiate(t, a.strip_weak_type())
        for t, a, nz in zip(carry_tangents, carry_avals, carry_nz, strict=True)
        if nz
    ]
    outs = while_p.bind(
        *cond_consts,
        *body_consts,
        *body_ts,
        *carry,
        *carry_ts,
        cond_jaxpr=cond_jvp,
        body_jaxpr=body_jvp,
        cond_nconsts=cond_nconsts,
        body_nconsts=nb + nbt,
    )
    primals_out, tangents_out = outs[:nc], iter(outs[nc:])
    return primals_out, [
        next(tangents_out) if nz else Zero(a.strip_weak_type())
        for a, nz in zip(carry_avals, carry_nz, strict=True)
    ]


def _nonzero(primals, tangents) -> list[bool]:
    return [
        type(t) is not Zero and is_float(get_aval(p))
        for p, t in zip(primals, tangents, strict=True)
    ]


def _while_reverse(parent, primals, positions, params):
    cond_nconsts = params["cond_nconsts"]
    if all(p < cond_nconsts or not is_float(get_aval(primals[p])) for p in positions):
        # Only the predicate's constants are tracked: no derivative flows through.
        outs = parent.process_primitive(while_p, primals, params)
        return outs, lambda cts: [None] * len(positions)
    raise ValueError(
        "Reverse-mode differentiation (grad, vjp) of while_loop is not supported: the "
        "number of iterations is only known once the loop has run, so there is no fixed "
        "place to keep each iteration's values for the backward pass. Use "
        "functrans.lax.scan (fixed length; memory grows with the number of steps), or "
        "fori_loop with concrete Python-integer bounds (it then runs as a scan; under jit "
        "pass the bounds as static arguments). Forward mode (jvp, jacfwd) works."
    )


while_p.reverse = _while_reverse


@while_p.def_batch
def _while_batch(vals, dims, *, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims, strict=True) if d is not None)
    cond_consts, body_consts, carry = _split_args(vals, cond_nconsts, body_nconsts)
    cc_dims, bc_dims, carry_dims = _split_args(dims, cond_nconsts, body_nconsts)
    cc_b = [d is not None for d in cc_dims]
    bc_b = [d is not None for d in bc_dims]
    carry_b = [d is not None for d in carry_dims]
    while True:  # the carries that become batched: a fixpoint over the body
        _, out_b = batch_body(body_jaxpr, size, bc_b + carry_b, carry_b)
        grown = [a or b for a, b in zip(carry_b, out_b, strict=True)]
        if grown == carry_b:
            break
        carry_b = grown
    _, (pred_b,) = batch_body(cond_jaxpr, size, cc_b + carry_b, [False])
    if pred_b:
        # Elements finish at different iterations, so every carry differs per element.
        carry_b = [True] * len(carry)
    cond_batched, _ = batch_body(cond_jaxpr, size, cc_b + carry_b, [False])
    body_batched, _ = batch_body(body_jaxpr, size, bc_b + carry_b, carry_b)
    cond_consts = batch_operands(cond_consts, cc_dims, size)
    body_consts = batch_operands(body_consts, bc_dims, size)
    carry = batch_operands(carry, carry_dims, size, force=carry_b)
    if not pred_b:
        outs = while_p.bind(
            *cond_consts,
            *body_consts,
            *carry,
            cond_jaxpr=cond_batched,
            body_jaxpr=body_batched,
            cond_nconsts=cond_nconsts,
            body_nconsts=body_nconsts,
        )
        return outs, [0 if b else None for b in carry_b]
    # A batched predicate: loop while any element is still running; finished elements
    # keep their carry (the body's result is discarded for them).
    if size == 0:
        return carry, [0] * len(carry)
    nc, nb = cond_nconsts, body_nconsts

    def any_running(*args: Any) -> list[Any]:
        return [reduce_max(call_jaxpr(cond_batched, *args)[0], (0,))]

    def step(*args: Any) -> list[Any]:
        cc, bc, old = split(args, [nc, nb, len(carry)])
        running = call_jaxpr(cond_batched, *cc, *old)[0]
        new = call_jaxpr(body_batched, *bc, *old)
        return [select(_lanes(running, n), n, o) for n, o in zip(new, old, strict=True)]

    cond_any = trace_derived(any_running, cond_batched.in_avals, "while")
    step_avals = [*cond_batched.in_avals[:nc], *body_batched.in_avals]
    body_select = trace_derived(step, step_avals, "while")
    outs = while_p.bind(
        *cond_consts,
        *cond_consts,
        *body_consts,
        *carry,
        cond_jaxpr=cond_any,
        body_jaxpr=body_select,
        cond_nconsts=nc,
        body_nconsts=nc + nb,
    )
    return outs, [0] * len(carry)


def _lanes(pred: Any, like: Any) -> Any:
    """A per-element predicate of shape ``(B,)`` broadcast against ``like`` ``(B, ...)``."""
    shape = get_aval(like).shape
    if shape == get_aval(pred).shape:
        return pred
    return broadcast_in_dim(pred, shape, (0,))
