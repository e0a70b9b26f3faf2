"""Reductions over static axes: max, min, prod, argmax and argmin (``reduce_sum``, the
transpose of ``broadcast_in_dim``, is defined with it in ``structural.py``).

Reductions drop the reduced axes; the NumPy layer adds ``keepdims`` with a reshape
and turns ``axis=None`` into all axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from functrans.core import Primitive, ShapedArray, Zero, get_aval
from functrans.ir import JaxprEqn, Literal
from functrans.primitives._lowering import dtype_source, expression
from functrans.primitives._simplify import new_eqn
from functrans.primitives.arithmetic import div, mul, mul_p
from functrans.primitives.elementwise import convert_element_type, eq
from functrans.primitives.indexing import concatenate, rev, slice
from functrans.primitives.structural import (
    broadcast_in_dim_p,
    check_axes,
    expand_reduced,
    forward,
    kept_dims,
    reduce_sum,
    reduce_sum_p,
    reduced_shape,
    reduction_primitive,
    reshape,
    sorted_axes,
    transpose,
)

# --- reduce_sum of a broadcast ---------------------------------------------------------------
# A rule of reduce_sum (defined in structural.py, below the arithmetic it needs here).


@reduce_sum_p.def_simplify
def _reduce_sum_simplify(eqn, producers):
    """``reduce_sum`` of a broadcast sums the small operand and scales it by the number
    of copies, instead of summing the materialised broadcast."""
    (x,), (out,) = eqn.invars, eqn.outvars
    axes = eqn.params["axes"]
    if not axes:
        return forward(x, out)
    bcast = producers.get(x)
    if bcast is None or bcast.primitive is not broadcast_in_dim_p:
        return None
    src = bcast.invars[0]
    shape, dims = bcast.params["shape"], bcast.params["broadcast_dimensions"]
    dtype = out.aval.dtype
    if dtype.kind not in "iufc":
        return None
    src_axis = {d: i for i, d in enumerate(dims)}
    factor, src_axes = 1, []
    for a in axes:
        i = src_axis.get(a)
        if i is not None:
            src_axes.append(i)
        if i is None or src.aval.shape[i] != shape[a]:
            factor *= shape[a]
    eqns = []
    y = src
    if src_axes:
        eqns.append(new_eqn(reduce_sum_p, [y], dict(axes=tuple(sorted(src_axes)))))
        y = eqns[-1].outvars[0]
    kept_out = [d for d in range(len(shape)) if d not in axes]
    new_dims = tuple(kept_out.index(d) for i, d in enumerate(dims) if i not in src_axes)
    out_shape = out.aval.shape
    if y.aval.shape != out_shape or new_dims != tuple(range(len(new_dims))):
        params = dict(shape=out_shape, broadcast_dimensions=new_dims)
        eqns.append(new_eqn(broadcast_in_dim_p, [y], params))
        y = eqns[-1].outvars[0]
    if factor != 1:
        scale = Literal(dtype.type(factor), ShapedArray((), dtype, out.aval.weak_type))
        eqns.append(new_eqn(mul_p, [y, scale], {}))
    if not eqns:
        return forward(y, out)
    last = eqns[-1]
    eqns[-1] = JaxprEqn(last.primitive, last.invars, [out], last.params)
    return eqns


# --- reduce_max / reduce_min ---------------------------------------------------------------


def _extremum_weights(x: Any, ans: Any, axes: tuple[int, ...]) -> Any:
    # The derivative flows to the positions that attain the extremum, split evenly
    # between ties (as JAX does).
    shape = get_aval(x).shape
    hits = convert_element_type(eq(x, expand_reduced(ans, shape, axes)), get_aval(x).dtype)
    count = reduce_sum(hits, axes)
    return div(hits, expand_reduced(count, shape, axes))


def _def_extremum(prim: Primitive) -> None:
    def jvp(primals, tangents, *, axes):
        (x,), (t,) = primals, tangents
        ans = prim.bind(x, axes=axes)
        if type(t) is Zero:
            return ans, Zero(get_aval(ans))
        return ans, reduce_sum(mul(t, _extremum_weights(x, ans, axes)), axes)

    def vjp(g, ans, x, *, axes):
        weights = _extremum_weights(x, ans, axes)
        return mul(expand_reduced(g, get_aval(x).shape, axes), weights)

    prim.def_jvp(jvp)
    prim.def_vjp(vjp)


reduce_max_p = reduction_primitive("reduce_max", np.max, "maximum")
reduce_min_p = reduction_primitive("reduce_min", np.min, "minimum")
_def_extremum(reduce_max_p)
_def_extremum(reduce_min_p)


def reduce_max(x: Any, axes: Sequence[int]) -> Any:
    """Maximum of ``x`` over ``axes``."""
    return reduce_max_p.bind(x, axes=sorted_axes(axes))


def reduce_min(x: Any, axes: Sequence[int]) -> Any:
    """Minimum of ``x`` over ``axes``."""
    return reduce_min_p.bind(x, axes=sorted_axes(axes))


# --- reduce_prod ---------------------------------------------------------------------------

reduce_prod_p = reduction_primitive("reduce_prod", np.prod, "multiply", keep_dtype=True)


def reduce_prod(x: Any, axes: Sequence[int]) -> Any:
    """Product of ``x`` over ``axes``."""
    return reduce_prod_p.bind(x, axes=sorted_axes(axes))


def _product_of_others(x: Any, axes: tuple[int, ...]) -> Any:
    """For each element, the product of the other elements of its reduction group.

    Computed as (product of the elements before it) * (product of those after it) in
    the flattened group, both by exclusive cumulative products. Unlike ``prod / x``
    this is exact where ``x`` has zeros, and it is a polynomial in ``x`` built from
    differentiable primitives, so second derivatives are right there too.
    """
    shape = get_aval(x).shape
    kept = kept_dims(len(shape), axes)
    n = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    grouped = reshape(transpose(x, (*kept, *axes)), (*[shape[k] for k in kept], n))
    last = len(kept)
    before = _shift_in_ones(_cumprod_last(grouped), 1)
    after = rev(_shift_in_ones(_cumprod_last(rev(grouped, (last,))), 1), (last,))
    others = mul(before, after)
    permuted = reshape(others, (*[shape[k] for k in kept], *[shape[a] for a in axes]))
    return transpose(permuted, tuple(np.argsort((*kept, *axes))))


def _shift_in_ones(y: Any, k: int) -> Any:
    """``y`` moved ``k`` places along its last axis, ones shifted in at the front."""
    aval = get_aval(y)
    *lead, n = aval.shape
    k = min(k, n)
    ones = np.ones((*lead, k), aval.dtype)
    kept = slice(y, (0,) * aval.ndim, (*lead, n - k))
    return concatenate([ones, kept], aval.ndim - 1)


def _cumprod_last(y: Any) -> Any:
    """Inclusive cumulative product along the last axis, in log2(n) doubling steps."""
    n = get_aval(y).shape[-1]
    k = 1
    while k < n:
        y = mul(y, _shift_in_ones(y, k))
        k *= 2
    return y


def _reduce_prod_jvp(primals, tangents, *, axes):
    (x,), (t,) = primals, tangents
    ans = reduce_prod(x, axes)
    if type(t) is Zero:
        return ans, Zero(get_aval(ans))
    return ans, reduce_sum(mul(t, _product_of_others(x, axes)), axes)


reduce_prod_p.def_jvp(_reduce_prod_jvp)
reduce_prod_p.def_vjp(
    lambda g, ans, x, *, axes: mul(
        expand_reduced(g, get_aval(x).shape, axes), _product_of_others(x, axes)
    )
)


# --- argmax / argmin -----------------------------------------------------------------------


def _arg_reduction(name: str, impl: Any) -> Primitive:
    prim = Primitive(name)
    prim.def_impl(lambda x, *, axis, index_dtype: impl(x, axis=axis).astype(index_dtype))

    @prim.def_abstract_eval
    def _abstract_eval(x, *, axis, index_dtype):
        check_axes(name, x, (axis,))
        if x.shape[axis] == 0:
            raise ValueError(f"{name}: attempt to get {name} of an empty axis (shape {x.shape})")
        return ShapedArray(reduced_shape(x.shape, (axis,)), index_dtype)

    def jvp(primals, tangents, **params):
        ans = prim.bind(*primals, **params)
        return ans, Zero(get_aval(ans))

    prim.def_jvp(jvp)
    prim.def_vjp(None)
    prim.differentiable = False
    prim.def_lowering(expression(_arg_reduction_source(name)))

    @prim.def_batch
    def _batch(args, dims, *, axis, index_dtype):
        (x,), (d,) = args, dims
        new_axis = axis if axis < d else axis + 1
        out_dim = d - (new_axis < d)
        return prim.bind(x, axis=new_axis, index_dtype=index_dtype), out_dim

    return prim


def _arg_reduction_source(name: str):
    def emit(args, eqn, out):
        expr = f"{args[0]}.{name}(axis={int(eqn.params['axis'])})"
        dtype = np.dtype(eqn.params["index_dtype"])
        if dtype != np.dtype(np.intp):
            expr += f".astype({dtype_source(dtype)})"
        return expr

    return emit


argmax_p = _arg_reduction("argmax", np.argmax)
argmin_p = _arg_reduction("argmin", np.argmin)


def argmax(x: Any, axis: int, index_dtype: Any = np.int64) -> Any:
    """Index of the first maximum along ``axis``."""
    return argmax_p.bind(x, axis=int(axis), index_dtype=np.dtype(index_dtype))


def argmin(x: Any, axis: int, index_dtype: Any = np.int64) -> Any:
    """Index of the first minimum along ``axis``."""
    return argmin_p.bind(x, axis=int(axis), index_dtype=np.dtype(index_dtype))


__all__ = [
    "argmax",
    "argmax_p",
    "argmin",
    "argmin_p",
    "reduce_max",
    "reduce_max_p",
    "reduce_min",
    "reduce_min_p",
    "reduce_prod",
    "reduce_prod_p",
]
