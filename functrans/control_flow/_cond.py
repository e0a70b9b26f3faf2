"""``cond`` and ``switch``: choose one of several functions by a traced index.

The branches are traced once into sub-jaxprs with one signature: every branch takes
the values all branches close over, then the operands. ``cond_p`` applies the branch
that its index operand selects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.control_flow._common import (
    Traced,
    aval_of,
    batch_body,
    batch_operands,
    cast,
    run,
    same_type,
    trace_fun,
    with_invars,
)
from functrans.core import (
    EVAL_TRACE,
    Primitive,
    ShapedArray,
    Tracer,
    Zero,
    current_trace,
    get_aval,
    instantiate,
    is_float,
)
from functrans.ir import ClosedJaxpr, Var
from functrans.primitives import (
    broadcast_in_dim,
    convert_element_type,
    eq,
    ne,
    select,
)
from functrans.primitives import max as lax_max
from functrans.primitives import min as lax_min
from functrans.transforms.api_util import as_array_arg, check_callable, fun_name
from functrans.transforms.derived import jvp_jaxpr, vjp_jaxpr
from functrans.transforms.staging import call_jaxpr
from functrans.tree_util import leaf_paths, tree_flatten, tree_unflatten

__all__ = ["cond", "cond_p", "switch"]

cond_p = Primitive("cond", multiple_results=True)


def cond(pred: Any, true_fun: Callable, false_fun: Callable, *operands: Any) -> Any:
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, with the choice
    made when the program runs: both functions are traced into the program, and must
    return the same pytree structure, shapes and dtypes.

    ``pred`` is a scalar (boolean, or a number compared with 0). Under ``vmap`` with a
    batched ``pred`` both branches run and their results are merged elementwise.

    >>> import numpy as np, functrans as ft
    >>> f = lambda x: cond(x > 0, lambda y: y * 2.0, lambda y: -y, x)
    >>> float(f(3.0)), float(f(-4.0)), float(ft.grad(f)(3.0))
    (6.0, 4.0, 2.0)
    >>> ft.vmap(f)(np.array([1.0, -1.0]))
    array([2., 1.])
    """
    check_callable("cond", "true_fun", true_fun)
    check_callable("cond", "false_fun", false_fun)
    pred = _scalar_operand("cond", "pred", pred)
    if pred.dtype != np.bool_:
        if pred.dtype.kind not in "biuf":
            raise TypeError(f"cond: pred must be a boolean or a number, got {pred.dtype.name}")
        pred = ne(pred, pred.dtype.type(0)) if isinstance(pred, Tracer) else pred != 0
    if not isinstance(pred, Tracer) and current_trace() is EVAL_TRACE:
        return true_fun(*operands) if pred else false_fun(*operands)
    if isinstance(pred, Tracer):
        index = convert_element_type(pred, np.int32)
    else:
        index = np.int32(bool(pred))
    funs, labels = [false_fun, true_fun], ["false_fun", "true_fun"]
    return _cond("cond", index, funs, labels, operands, order=[1, 0])


def switch(index: Any, branches: Sequence[Callable], *operands: Any) -> Any:
    """``branches[index](*operands)``, with ``index`` clamped to the valid range and the
    choice made when the program runs (see ``cond``).

    >>> import numpy as np
    >>> fs = [lambda x: x + 1.0, lambda x: x * 10.0, lambda x: -x]
    >>> [float(switch(i, fs, 2.0)) for i in (0, 1, 2, 7)]
    [3.0, 20.0, -2.0, -2.0]
    """
    if not isinstance(branches, (list, tuple)) or not branches:
        raise TypeError("switch: branches must be a non-empty list or tuple of functions")
    for i, b in enumerate(branches):
        check_callable("switch", f"branches[{i}]", b)
    index = _scalar_operand("switch", "index", index)
    if index.dtype.kind not in "iub":
        raise TypeError(f"switch: index must be an integer, got {index.dtype.name}")
    n = len(branches)
    if not isinstance(index, Tracer):
        index = np.int32(np.clip(int(index), 0, n - 1))
        if current_trace() is EVAL_TRACE or n == 1:
            return branches[int(index)](*operands)
    else:
        if index.dtype != np.int32:
            index = convert_element_type(index, np.int32)
        index = lax_max(lax_min(index, np.int32(n - 1)), np.int32(0))
    labels = [f"branches[{i}]" for i in range(n)]
    return _cond("switch", index, list(branches), labels, operands, order=list(range(n)))


def _scalar_operand(what: str, name: str, x: Any) -> Any:
    if not isinstance(x, Tracer):
        x = np.asarray(as_array_arg(x, f"{what}: {name}"))
    if get_aval(x).shape != ():
        raise TypeError(
            f"{what}: {name} must be a scalar, got {get_aval(x).str_short()}; for an "
            "elementwise choice use functrans.numpy.where, or vmap over the batch"
        )
    return x if isinstance(x, Tracer) else x[()]


def _cond(
    what: str,
    index: Any,
    funs: list[Callable],
    labels: list[str],
    operands: tuple,
    order: list[int],
) -> Any:
    leaves, in_tree = tree_flatten(operands)
    leaves = [as_array_arg(x, f"{what}: operand") for x in leaves]
    in_avals = [aval_of(x) for x in leaves]
    names = [f"{label} `{fun_name(f)}`" for label, f in zip(labels, funs, strict=True)]
    traced = [
        trace_fun(f, in_tree, in_avals, f"{what}:{fun_name(f)}", _flatten_with_paths) for f in funs
    ]
    _check_trees(what, [names[k] for k in order], [traced[k] for k in order])
    targets = _join_out_avals(what, names, traced, order)
    for i, t in enumerate(traced):
        if not all(map(same_type, t.out_avals, targets)):
            traced[i] = trace_fun(
                funs[i],
                in_tree,
                in_avals,
                f"{what}:{fun_name(funs[i])}",
                _cast_to(targets, _flatten_with_paths),
            )
    consts, branches = _join_consts(traced)
    outs = cond_p.bind(index, *consts, *leaves, branches=tuple(branches))
    return tree_unflatten(traced[0].out_info[0], outs)


def _flatten_with_paths(out: Any) -> tuple[list[Any], tuple]:
    leaves, tree = tree_flatten(out)
    return leaves, (tree, leaf_paths(out, "output"))


def _cast_to(targets: Sequence[ShapedArray], flatten: Callable) -> Callable:
    def flatten_and_cast(out: Any) -> tuple[list[Any], Any]:
        leaves, info = flatten(out)
        return [cast(x, a.dtype) for x, a in zip(leaves, targets, strict=True)], info

    return flatten_and_cast


def _check_trees(what: str, names: list[str], traced: list[Traced]) -> None:
    tree0 = traced[0].out_info[0]
    for name, t in zip(names[1:], traced[1:], strict=True):
        if t.out_info[0] != tree0:
            raise TypeError(
                f"{what}: the branches must return the same pytree structure, but "
                f"{names[0]} returns {tree0} and {name} returns {t.out_info[0]}"
            )


def _join_out_avals(
    what: str, names: list[str], traced: list[Traced], order: list[int]
) -> list[ShapedArray]:
    """The common output types. Outputs that differ only in dtype, where the odd ones
    out are weakly typed (Python scalars), take the strongly typed dtype, as in JAX.
    ``order`` is the order in which to name the branches in an error."""
    paths = traced[0].out_info[1]
    targets = []
    for j, path in enumerate(paths):
        avals = [t.out_avals[j] for t in traced]
        strong = {a.dtype for a in avals if not a.weak_type}
        target = avals[0]
        if len(strong) == 1 and all(a.shape == avals[0].shape for a in avals):
            target = next(a for a in avals if not a.weak_type)
        if not all(
            same_type(a, target) or (a.weak_type and a.shape == target.shape) for a in avals
        ):
            ref = order[0]
            other = next(k for k in order if not same_type(avals[k], avals[ref]))
            raise TypeError(
                f"{what}: the branches must return the same shapes and dtypes, but output "
                f"leaf `{path}` is {avals[ref].str_short()} in {names[ref]} and "
                f"{avals[other].str_short()} in {names[other]}"
            )
        targets.append(target)
    return targets


def _join_consts(traced: list[Traced]) -> tuple[list[Any], list[ClosedJaxpr]]:
    """One operand list for all branches: every value any branch closes over (once),
    then the operands. Each branch ignores the others' values."""
    consts: list[Any] = []
    index_of: dict[int, int] = {}
    for t in traced:
        for c in t.consts:
            if id(c) not in index_of:
                index_of[id(c)] = len(consts)
                consts.append(c)
    branches = []
    for t in traced:
        jaxpr = t.jaxpr.jaxpr
        own = {index_of[id(c)]: v for c, v in zip(t.consts, jaxpr.invars, strict=False)}
        const_vars = [
            own[i] if i in own else Var(get_aval(c).strip_weak_type()) for i, c in enumerate(consts)
        ]
        invars = const_vars + jaxpr.invars[t.num_consts :]
        branches.append(with_invars(t.jaxpr, invars, jaxpr.outvars))
    return consts, branches


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------


@cond_p.def_impl
def _cond_impl(index, *args, branches):
    i = min(max(int(index), 0), len(branches) - 1)
    return run(branches[i], *args)


@cond_p.def_abstract_eval
def _cond_abstract_eval(index, *avals, branches):
    if index.shape != () or index.dtype.kind not in "iu":
        raise TypeError(f"cond: the index must be an integer scalar, got {index.str_short()}")
    for k, branch in enumerate(branches):
        expected = branch.in_avals
        if len(expected) != len(avals) or not all(map(same_type, expected, avals)):
            raise TypeError(
                f"cond: branch {k} takes {[a.str_short() for a in expected]}, "
                f"got operands {[a.str_short() for a in avals]}"
            )
        if not all(map(same_type, branch.out_avals, branches[0].out_avals)):
            raise TypeError(
                f"cond: branch {k} returns {[a.str_short() for a in branch.out_avals]} but "
                f"branch 0 returns {[a.str_short() for a in branches[0].out_avals]}"
            )
    return [a.strip_weak_type() for a in branches[0].out_avals]


@cond_p.def_jvp
def _cond_jvp(primals, tangents, *, branches):
    index, ops = primals[0], primals[1:]
    nonzero = [
        type(t) is not Zero and is_float(get_aval(p))
        for p, t in zip(ops, tangents[1:], strict=True)
    ]
    n_out = len(branches[0].out_avals)
    has_tangent = [False] * n_out
    for b in branches:
        _, out_nz = jvp_jaxpr(b, nonzero, [False] * n_out)
        has_tangent = [x or y for x, y in zip(has_tangent, out_nz, strict=True)]
    new_branches = [jvp_jaxpr(b, nonzero, has_tangent)[0] for b in branches]
    ts = [t for t, nz in zip(tangents[1:], nonzero, strict=True) if nz]
    outs = cond_p.bind(index, *ops, *ts, branches=tuple(new_branches))
    primals_out, tangents_out = outs[:n_out], iter(outs[n_out:])
    return primals_out, [
        next(tangents_out) if nz else Zero(a.strip_weak_type())
        for nz, a in zip(has_tangent, branches[0].out_avals, strict=True)
    ]


def _cond_reverse(parent, primals, positions, params):
    branches = params["branches"]
    index, ops = primals[0], primals[1:]
    diff = [False] * len(ops)
    for p in positions:
        if p > 0 and is_float(get_aval(ops[p - 1])):
            diff[p - 1] = True
    outs = parent.process_primitive(cond_p, primals, params)
    out_avals = [a.strip_weak_type() for a in branches[0].out_avals]
    ct_mask = [is_float(a) for a in out_avals]

    vjp_branches: list[ClosedJaxpr] = []  # built on first use

    def backward(cts):
        if not any(diff):
            return [None] * len(positions)
        cts = [instantiate(c, a) for c, a, m in zip(cts, out_avals, ct_mask, strict=True) if m]
        # The branch taken is re-run in the backward pass (its operands are the residuals).
        if not vjp_branches:
            vjp_branches.extend(vjp_jaxpr(b, diff, ct_mask, "cond") for b in branches)
        grads = iter(cond_p.bind(index, *ops, *cts, branches=tuple(vjp_branches)))
        full = [None] + [next(grads) if d else None for d in diff]
        return [full[p] for p in positions]

    return outs, backward


cond_p.reverse = _cond_reverse


@cond_p.def_batch
def _cond_batch(vals, dims, *, branches):
    index, ops = vals[0], vals[1:]
    index_dim, op_dims = dims[0], dims[1:]
    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims, strict=True) if d is not None)
    ops = batch_operands(ops, op_dims, size)
    batched = [d is not None for d in op_dims]
    n_out = len(branches[0].out_avals)
    if index_dim is None:
        out_batched = [False] * n_out
        for b in branches:
            _, ob = batch_body(b, size, batched, [False] * n_out)
            out_batched = [x or y for x, y in zip(out_batched, ob, strict=True)]
        new_branches = tuple(batch_body(b, size, batched, out_batched)[0] for b in branches)
        outs = cond_p.bind(index, *ops, branches=new_branches)
        return outs, [0 if b else None for b in out_batched]
    # A batched index: every branch runs on the whole batch and each lane keeps the
    # result of its own branch.
    index = batch_operands([index], [index_dim], size)[0]
    index = lax_max(lax_min(index, np.int32(len(branches) - 1)), np.int32(0))
    results = [call_jaxpr(batch_body(b, size, batched, [True] * n_out)[0], *ops) for b in branches]
    outs = results[0]
    for k in range(1, len(branches)):
        chosen = eq(index, np.int32(k))
        outs = [
            select(broadcast_in_dim(chosen, get_aval(new).shape, (0,)), new, old)
            for new, old in zip(results[k], outs, strict=True)
        ]
    return outs, [0] * n_out
