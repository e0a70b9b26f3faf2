"""``scan``: a loop with a carry, over the leading axis of its inputs, stacking outputs.

``scan[jaxpr num_consts num_carry length reverse] *consts *init *xs`` applies the body
``jaxpr: (*consts, *carry, *x) -> (*carry, *y)`` ``length`` times.

Reverse mode splits the body into a forward part that also emits the values its
derivative needs (residuals) and a backward part that consumes them. The forward
loop stacks the per-iteration residuals along the scan axis (memory linear in the
number of steps); residuals that do not change between iterations are computed once,
outside the loop, and residuals that are slices of ``xs`` are read from ``xs``. The
backward loop runs in the opposite direction and carries the cotangents of the carry
and the running sums of the constants' cotangents.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from functrans.control_flow._common import (
    aval_of,
    batch_body,
    batch_operands,
    compiled,
    depends_on,
    same_type,
    split,
    tracked_outputs,
    with_invars,
    zeros,
)
from functrans.control_flow._loops import LoopNames, promote_init, trace_loop_body
from functrans.core import (
    Primitive,
    ShapedArray,
    Zero,
    call_with_trace,
    get_aval,
    instantiate,
    is_float,
)
from functrans.ir import ClosedJaxpr, Jaxpr
from functrans.primitives import add
from functrans.primitives.structural import move_axis
from functrans.transforms.api_util import as_array_arg, check_callable, fun_name
from functrans.transforms.derived import VJPSplit, jvp_jaxpr, vjp_split
from functrans.transforms.jaxpr_passes import dce
from functrans.transforms.staging import call_jaxpr, trace_derived
from functrans.tree_util import leaf_paths, tree_flatten, tree_unflatten

__all__ = ["scan", "scan_p"]

scan_p = Primitive("scan", multiple_results=True)


def scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any,
    length: int | None = None,
    reverse: bool = False,
) -> tuple[Any, Any]:
    """Loop ``carry, y = f(carry, x)`` over the leading axis of ``xs``, starting from
    ``init``; returns the final carry and the ``y`` values stacked along a new leading
    axis. As a Python loop::

        ys = []
        for x in (reversed(xs) if reverse else xs):
            carry, y = f(carry, x)
            ys.append(y)
        return carry, stack(ys[::-1] if reverse else ys)

    ``init``, ``xs`` and the outputs are pytrees (``xs=None`` with ``length=n`` loops
    ``n`` times). ``f`` is traced once, whatever the length, and must return a carry of
    the same structure, shapes and dtypes as ``init``. Works under every transform;
    reverse mode stores per-step residuals (memory linear in the length).

    >>> import numpy as np
    >>> total, ys = scan(lambda c, x: (c + x, c * x), 0.0, np.arange(1.0, 5.0))
    >>> float(total), ys
    (10.0, array([ 0.,  2.,  9., 24.]))
    """
    check_callable("scan", "f", f)
    return scan_with_names(f, init, xs, length, reverse, None)


def scan_with_names(
    f: Callable, init: Any, xs: Any, length: int | None, reverse: bool, names: LoopNames | None
) -> tuple[Any, Any]:
    """``scan``, with errors about the body named by ``names`` (for loops built on it)."""
    name = f"`{fun_name(f)}`"
    if names is None:
        names = LoopNames("scan", "f", f, leaf_paths(init, "carry"))
    init_leaves, carry_tree = tree_flatten(init)
    init_leaves = [as_array_arg(x, "scan: init") for x in init_leaves]
    xs_leaves, xs_tree = tree_flatten(xs)
    xs_leaves = [as_array_arg(x, "scan: xs") for x in xs_leaves]
    length = _scan_length(name, xs, xs_leaves, length)
    x_avals = []
    for x in xs_leaves:
        a = aval_of(x)
        x_avals.append(ShapedArray(a.shape[1:], a.dtype, a.weak_type))
    in_tree = tree_flatten((init, xs))[1]
    y_tree_box: list[Any] = []

    def flatten_out(out: Any) -> tuple[list[Any], Any]:
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(
                f"scan: f {name} must return a pair (carry, y), got {type(out).__name__}"
                + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
            )
        carry_leaves, tree = tree_flatten(out[0])
        y_leaves, y_tree = tree_flatten(out[1])
        y_tree_box.append(y_tree)
        return carry_leaves + y_leaves, (tree, y_tree)

    carry_avals = [aval_of(x) for x in init_leaves]
    body, carry_avals = trace_loop_body(
        f, names, in_tree, carry_tree, carry_avals, x_avals, flatten_out
    )
    init_leaves = promote_init(init_leaves, carry_avals)
    outs = scan_p.bind(
        *body.consts,
        *init_leaves,
        *xs_leaves,
        jaxpr=body.jaxpr,
        num_consts=body.num_consts,
        num_carry=len(init_leaves),
        length=length,
        reverse=bool(reverse),
    )
    k = len(init_leaves)
    return tree_unflatten(carry_tree, outs[:k]), tree_unflatten(body.out_info[1], outs[k:])


def _scan_length(name: str, xs: Any, leaves: list[Any], length: int | None) -> int:
    paths = leaf_paths(xs, "xs")
    sizes = []
    for path, x in zip(paths, leaves, strict=True):
        aval = get_aval(x)
        if aval.ndim == 0:
            raise TypeError(
                f"scan: xs leaf `{path}` is a scalar {aval.str_short()}; every xs leaf needs "
                f"a leading axis to scan over (f {name})"
            )
        sizes.append(aval.shape[0])
    if length is not None:
        try:
            length = operator.index(length)
        except TypeError:
            raise TypeError(f"scan: length must be a Python int, got {length!r:.60}") from None
        if length < 0:
            raise ValueError(f"scan: length must be non-negative, got {length}")
    for path, x, n in zip(paths, leaves, sizes, strict=True):
        first_path, first = paths[0], leaves[0]
        if n != sizes[0]:
            raise ValueError(
                f"scan: all xs leaves must have the same leading (scan) size, but leaf "
                f"`{first_path}` is {get_aval(first).str_short()} (size {sizes[0]}) and leaf "
                f"`{path}` is {get_aval(x).str_short()} (size {n}); f {name}"
            )
        if length is not None and n != length:
            raise ValueError(
                f"scan: length={length} but xs leaf `{path}` is {get_aval(x).str_short()} "
                f"(leading size {n}); f {name}"
            )
    if length is None:
        if not sizes:
            raise ValueError(f"scan: xs has no arrays, so pass length= (f {name})")
        length = sizes[0]
    return length


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------


def _split_args(args, num_consts, num_carry):
    return split(args, [num_consts, num_carry, len(args) - num_consts - num_carry])


@scan_p.def_impl
def _scan_impl(*args, jaxpr, num_consts, num_carry, length, reverse):
    consts, carry, xs = _split_args(args, num_consts, num_carry)
    ys = [np.empty((length, *a.shape), a.dtype) for a in jaxpr.out_avals[num_carry:]]
    body = compiled(jaxpr)
    for i in range(length - 1, -1, -1) if reverse else range(length):
        outs = body(*consts, *carry, *[x[i] for x in xs])
        carry = outs[:num_carry]
        for y, value in zip(ys, outs[num_carry:], strict=True):
            y[i] = value
    return [*carry, *ys]


@scan_p.def_abstract_eval
def _scan_abstract_eval(*avals, jaxpr, num_consts, num_carry, length, reverse):
    consts, carry, xs = _split_args(avals, num_consts, num_carry)
    for x in xs:
        if x.ndim == 0 or x.shape[0] != length:
            raise TypeError(f"scan: xs operand {x.str_short()} for a scan of length {length}")
    x_avals = [ShapedArray(x.shape[1:], x.dtype) for x in xs]
    checks = (
        ("body inputs", jaxpr.in_avals, [*consts, *carry, *x_avals]),
        ("body carry outputs", jaxpr.out_avals[:num_carry], carry),
    )
    for what, expected, got in checks:
        if len(expected) != len(got) or not all(map(same_type, expected, got)):
            raise TypeError(
                f"scan: {what} are {[a.str_short() for a in expected]}, expected "
                f"{[a.str_short() for a in got]}"
            )
    carry_out = [a.strip_weak_type() for a in jaxpr.out_avals[:num_carry]]
    ys = [ShapedArray((length, *a.shape), a.dtype) for a in jaxpr.out_avals[num_carry:]]
    return carry_out + ys


def _regroup(items, sizes, order):
    groups = split(items, sizes)
    return [x for g in order for x in groups[g]]


@scan_p.def_jvp
def _scan_jvp(primals, tangents, *, jaxpr, num_consts, num_carry, length, reverse):
    consts, carry, xs = _split_args(primals, num_consts, num_carry)
    const_t, carry_t, xs_t = _split_args(tangents, num_consts, num_carry)
    const_nz, carry_nz, xs_nz = (
        _nonzero(consts, const_t),
        _nonzero(carry, carry_t),
        _nonzero(xs, xs_t),
    )
    n_ys = len(jaxpr.out_avals) - num_carry
    while True:  # the carries with a tangent: a fixpoint over the body
        _, out_nz = jvp_jaxpr(jaxpr, const_nz + carry_nz + xs_nz, carry_nz + [False] * n_ys)
        grown = [a or b for a, b in zip(carry_nz, out_nz[:num_carry], strict=True)]
        if grown == carry_nz:
            break
        carry_nz = grown
    body, out_nz = jvp_jaxpr(jaxpr, const_nz + carry_nz + xs_nz, carry_nz + [False] * n_ys)
    ys_nz = out_nz[num_carry:]
    # (consts, carry, xs, their tangents) -> (consts, const tangents, carry, ..., xs, ...)
    in_sizes = [num_consts, num_carry, len(xs), sum(const_nz), sum(carry_nz), sum(xs_nz)]
    out_sizes = [num_carry, n_ys, sum(carry_nz), sum(ys_nz)]
    j = body.jaxpr
    body = with_invars(
        body,
        _regroup(j.invars, in_sizes, [0, 3, 1, 4, 2, 5]),
        _regroup(j.outvars, out_sizes, [0, 2, 1, 3]),
    )
    carry_avals = jaxpr.out_avals[:num_carry]
    carry_ts = [
        instantiate(t, a.strip_weak_type())
        for t, a, nz in zip(carry_t, carry_avals, carry_nz, strict=True)
        if nz
    ]
    outs = scan_p.bind(
        *consts,
        *[t for t, nz in zip(const_t, const_nz, strict=True) if nz],
        *carry,
        *carry_ts,
        *xs,
        *[t for t, nz in zip(xs_t, xs_nz, strict=True) if nz],
        jaxpr=body,
        num_consts=num_consts + sum(const_nz),
        num_carry=num_carry + sum(carry_nz),
        length=length,
        reverse=reverse,
    )
    carry_out, carry_t_out, ys, ys_t = split(outs, [num_carry, sum(carry_nz), n_ys, sum(ys_nz)])
    out_avals = scan_p.abstract_eval(
        *[get_aval(p) for p in primals],
        jaxpr=jaxpr,
        num_consts=num_consts,
        num_carry=num_carry,
        length=length,
        reverse=reverse,
    )
    has_tangent = carry_nz + ys_nz
    tangents_out = iter(carry_t_out + ys_t)
    return carry_out + ys, [
        next(tangents_out) if nz else Zero(a) for a, nz in zip(out_avals, has_tangent, strict=True)
    ]


def _nonzero(primals, tangents) -> list[bool]:
    return [
        type(t) is not Zero and is_float(get_aval(p))
        for p, t in zip(primals, tangents, strict=True)
    ]


@scan_p.def_batch
def _scan_batch(vals, dims, *, jaxpr, num_consts, num_carry, length, reverse):
    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims, strict=True) if d is not None)
    consts, carry, xs = _split_args(vals, num_consts, num_carry)
    const_dims, carry_dims, xs_dims = _split_args(dims, num_consts, num_carry)
    const_b = [d is not None for d in const_dims]
    carry_b = [d is not None for d in carry_dims]
    xs_b = [d is not None for d in xs_dims]
    n_ys = len(jaxpr.out_avals) - num_carry
    while True:  # the carries that become batched: a fixpoint over the body
        _, out_b = batch_body(jaxpr, size, const_b + carry_b + xs_b, carry_b + [False] * n_ys)
        grown = [a or b for a, b in zip(carry_b, out_b[:num_carry], strict=True)]
        if grown == carry_b:
            break
        carry_b = grown
    body, out_b = batch_body(jaxpr, size, const_b + carry_b + xs_b, carry_b + [False] * n_ys)
    # The body sees x slices batched on axis 0, so xs carry the batch on axis 1.
    xs = [x if d is None else move_axis(x, d, 1) for x, d in zip(xs, xs_dims, strict=True)]
    outs = scan_p.bind(
        *batch_operands(consts, const_dims, size),
        *batch_operands(carry, carry_dims, size, force=carry_b),
        *xs,
        jaxpr=body,
        num_consts=num_consts,
        num_carry=num_carry,
        length=length,
        reverse=reverse,
    )
    out_dims = [0 if b else None for b in carry_b] + [1 if b else None for b in out_b[num_carry:]]
    return outs, out_dims


def _scan_reverse(parent, primals, positions, params):
    jaxpr, num_consts, num_carry = params["jaxpr"], params["num_consts"], params["num_carry"]
    length, reverse = params["length"], params["reverse"]
    n_c, n_k = num_consts, num_carry
    n_x = len(primals) - n_c - n_k
    n_y = len(jaxpr.out_avals) - n_k
    in_avals = [a.strip_weak_type() for a in jaxpr.in_avals]
    out_avals = [a.strip_weak_type() for a in jaxpr.out_avals]
    tracked = [False] * len(primals)
    for p in positions:
        tracked[p] = is_float(get_aval(primals[p]))
    while True:  # the carries reverse mode tracks: a fixpoint over the body
        out_tracked = tracked_outputs(jaxpr.jaxpr, tracked)
        carry = tracked[n_c : n_c + n_k]
        grown = [a or b for a, b in zip(carry, out_tracked[:n_k], strict=True)]
        if grown == carry:
            break
        tracked[n_c : n_c + n_k] = grown
    if not any(tracked):
        outs = parent.process_primitive(scan_p, primals, params)
        return outs, lambda cts: [None] * len(positions)
    ct_mask = tracked[n_c : n_c + n_k] + [is_float(a) for a in out_avals[n_k:]]
    parts = vjp_split(jaxpr, tracked, ct_mask, "scan")
    fwd = parts.fwd.jaxpr
    res_vars = fwd.outvars[n_k + n_y :]

    # Classify the residuals: loop-invariant (computed once, before the loop), a slice
    # of an xs operand (read from it), or per-iteration (stacked by the forward loop).
    variant = depends_on(fwd, [False] * n_c + [True] * (n_k + n_x))[n_k + n_y :]
    xs_index = {id(v): j for j, v in enumerate(fwd.invars[n_c + n_k :])}
    kinds = []
    for v, var in zip(res_vars, variant, strict=True):
        if not var:
            kinds.append("invariant")
        elif id(v) in xs_index:
            kinds.append("xs")
        else:
            kinds.append("stacked")
    invariant = [v for v, k in zip(res_vars, kinds, strict=True) if k == "invariant"]
    stacked = [v for v, k in zip(res_vars, kinds, strict=True) if k == "stacked"]
    from_xs = [xs_index[id(v)] for v, k in zip(res_vars, kinds, strict=True) if k == "xs"]

    consts = primals[:n_c]
    invariant_vals: list[Any] = []
    if invariant:
        pre = dce(Jaxpr(fwd.constvars, fwd.invars[:n_c], invariant, fwd.eqns))
        invariant_vals = call_with_trace(
            parent, call_jaxpr, ClosedJaxpr(pre, parts.fwd.consts), *consts
        )
    fwd_body = dce(Jaxpr(fwd.constvars, fwd.invars, fwd.outvars[: n_k + n_y] + stacked, fwd.eqns))
    fwd_params = dict(params, jaxpr=ClosedJaxpr(fwd_body, parts.fwd.consts))
    outs = parent.process_primitive(scan_p, primals, fwd_params)
    primal_outs, stacked_vals = outs[: n_k + n_y], outs[n_k + n_y :]
    xs_vals = [primals[n_c + n_k + j] for j in from_xs]

    stacked_avals = [ShapedArray((length, *a.shape), a.dtype) for a in out_avals[n_k:]]
    body_box: list[ClosedJaxpr] = []  # the backward body, built on first use

    def backward(cts):
        ct_carry = [instantiate(cts[k], out_avals[k]) for k in range(n_k) if tracked[n_c + k]]
        ct_ys = [
            instantiate(cts[n_k + j], stacked_avals[j]) for j in range(n_y) if ct_mask[n_k + j]
        ]
        acc = [zeros(in_avals[i]) for i in range(n_c) if tracked[i]]
        if not body_box:
            body_box.append(
                _backward_body(
                    parts,
                    [a for a, t in zip(in_avals, tracked, strict=True) if t],
                    kinds,
                    [v.aval for v in invariant],
                    [get_aval(a) for a in acc],
                    [out_avals[k] for k in range(n_k) if tracked[n_c + k]],
                    [v.aval for v in stacked],
                    [fwd.invars[n_c + n_k + j].aval for j in from_xs],
                    [out_avals[n_k + j] for j in range(n_y) if ct_mask[n_k + j]],
                )
            )
        outs = scan_p.bind(
            *invariant_vals,
            *acc,
            *ct_carry,
            *stacked_vals,
            *xs_vals,
            *ct_ys,
            jaxpr=body_box[0],
            num_consts=len(invariant_vals),
            num_carry=len(acc) + len(ct_carry),
            length=length,
            reverse=not reverse,
        )
        grads = iter(outs)
        full = [next(grads) if t else None for t in tracked]
        return [full[p] for p in positions]

    return primal_outs, backward


def _backward_body(parts: VJPSplit, diff_avals, kinds, *group_avals) -> ClosedJaxpr:
    """The backward loop's body: ``(*invariant residuals, *sums of the consts'
    cotangents, *carry cotangents, *stacked residuals, *xs residuals, *y cotangents)
    -> (*new sums, *carry cotangents, *xs cotangents)``."""
    sizes = [len(g) for g in group_avals]

    def body(*args: Any) -> list[Any]:
        inv, sums, ct_c, st, xr, ct_y = split(args, sizes)
        pools = {"invariant": iter(inv), "stacked": iter(st), "xs": iter(xr)}
        residuals = [next(pools[k]) for k in kinds]
        nonzero = iter(call_jaxpr(parts.bwd, *residuals, *ct_c, *ct_y))
        grads = [
            next(nonzero) if nz else instantiate(None, a)
            for nz, a in zip(parts.ct_nonzero, diff_avals, strict=True)
        ]
        d_consts, rest = grads[: len(sums)], grads[len(sums) :]
        return [add(s, d) for s, d in zip(sums, d_consts, strict=True)] + rest

    avals = [a for group in group_avals for a in group]
    return trace_derived(body, avals, "scan")


scan_p.reverse = _scan_reverse
