"""The linear core of the primitive table: broadcasting, reshaping, transposing and
summing over axes. ``broadcast_in_dim`` and ``reduce_sum`` are each other's transposes,
so they are defined together, with the rule helpers that move, insert and sum away
axes, which every other family builds on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from functrans.core import Primitive, ShapedArray, Zero, get_aval
from functrans.ir import Atom, JaxprEqn, Literal, Var
from functrans.primitives._lowering import LoweringContext, axis_source, ints_source, view
from functrans.primitives._rules import def_linear
from functrans.primitives._simplify import SIGN_PASSES_THROUGH, Producers, new_eqn

# --- broadcast_in_dim -----------------------------------------------------------------

broadcast_in_dim_p = Primitive("broadcast_in_dim")


def broadcast_in_dim(x: Any, shape: Sequence[int], broadcast_dimensions: Sequence[int]) -> Any:
    """Broadcast ``x`` to ``shape``; operand axis ``i`` becomes output axis
    ``broadcast_dimensions[i]`` (size 1 or equal), every other output axis is new.

    >>> broadcast_in_dim(np.array([1.0, 2.0]), (3, 2), (1,)).shape
    (3, 2)
    """
    return broadcast_in_dim_p.bind(
        x, shape=tuple(shape), broadcast_dimensions=tuple(broadcast_dimensions)
    )


def _expanded_shape(ndim_out: int, in_shape: tuple[int, ...], dims: tuple[int, ...]) -> list[int]:
    expanded = [1] * ndim_out
    for size, d in zip(in_shape, dims, strict=True):
        expanded[d] = size
    return expanded


@broadcast_in_dim_p.def_impl
def _broadcast_in_dim_impl(x, *, shape, broadcast_dimensions):
    x = np.asarray(x)
    return np.broadcast_to(
        x.reshape(_expanded_shape(len(shape), x.shape, broadcast_dimensions)), shape
    )


@broadcast_in_dim_p.def_abstract_eval
def _broadcast_in_dim_abstract_eval(x, *, shape, broadcast_dimensions):
    ok = len(broadcast_dimensions) == x.ndim and all(
        0 <= d < len(shape) for d in broadcast_dimensions
    )
    ok = ok and all(
        a < b for a, b in zip(broadcast_dimensions, broadcast_dimensions[1:], strict=False)
    )
    ok = ok and all(x.shape[i] in (1, shape[d]) for i, d in enumerate(broadcast_dimensions))
    if not ok:
        raise ValueError(
            f"broadcast_in_dim: cannot broadcast shape {x.shape} to {tuple(shape)} "
            f"with broadcast_dimensions={tuple(broadcast_dimensions)}"
        )
    return ShapedArray(shape, x.dtype, x.weak_type)


def _broadcast_in_dim_transpose(g, x, *, shape, broadcast_dimensions):
    in_shape = get_aval(x).shape
    kept = set(broadcast_dimensions)
    summed = [d for d in range(len(shape)) if d not in kept]
    summed += [d for i, d in enumerate(broadcast_dimensions) if in_shape[i] == 1 and shape[d] != 1]
    if summed:
        g = reduce_sum_p.bind(g, axes=tuple(sorted(summed)))
    return reshape(g, in_shape)


def_linear(broadcast_in_dim_p, _broadcast_in_dim_transpose)


@broadcast_in_dim_p.def_batch
def _broadcast_in_dim_batch(args, dims, *, shape, broadcast_dimensions):
    (x,), (d,) = args, dims
    x = move_axis(x, d, 0)
    size = get_aval(x).shape[0]
    out_dims = (0, *(b + 1 for b in broadcast_dimensions))
    return broadcast_in_dim(x, (size, *shape), out_dims), 0


@broadcast_in_dim_p.def_lowering
def _broadcast_in_dim_lowering(ctx: LoweringContext, eqn: JaxprEqn) -> None:
    # NumPy broadcasts by itself: the result is a lazy broadcast, a reshape view of
    # the operand (or the operand itself), until an operation needs its full shape.
    (x,), (out,) = eqn.invars, eqn.outvars
    shape, dims = eqn.params["shape"], eqn.params["broadcast_dimensions"]
    lit = ctx.literal(x)
    if lit is not None:
        return ctx.set_literal(out, lit)
    src = ctx.full(x)
    ctx.view_of(out, x)
    expanded = _expanded_shape(len(shape), x.aval.shape, dims)
    lead = next((k for k, n in enumerate(expanded) if n != 1), len(expanded))
    lazy = tuple(expanded[lead:])
    if tuple(expanded) == tuple(shape):  # no new data: a reshape
        if x.aval.shape == tuple(shape):
            return ctx.share(out, src)
        ctx.assign(out, _reshape_source(x, src, shape))
        return None
    if lazy == x.aval.shape:  # NumPy broadcasts leading axes by itself
        ctx.share(out, src)
        ctx.set_python_scalar(out, ctx.python_scalar(x))
    else:
        ctx.assign(out, _reshape_source(x, src, lazy))
    return ctx.set_lazy_shape(out, lazy)


# --- rewrites that see through broadcasts of scalars -------------------------------------


def scalar_value(a: Atom, producers: Producers) -> Any:
    """The value of a scalar literal or of a broadcast of one; otherwise None."""
    if type(a) is Literal:
        return a.val
    eqn = producers.get(a)
    if eqn is not None and eqn.primitive is broadcast_in_dim_p and type(eqn.invars[0]) is Literal:
        return eqn.invars[0].val
    return None


def is_value(a: Atom, producers: Producers, target: int) -> bool:
    """Whether ``a`` is the real number ``target`` everywhere (``x * 1``, ``x + 0``)."""
    value = scalar_value(a, producers)
    return value is not None and not isinstance(value, complex) and value == target


def forward(x: Atom, out: Var) -> Atom | list[JaxprEqn] | None:
    """Make ``out`` be ``x``: the atom itself when the types agree, a broadcast when ``x``
    is a scalar standing for a full array, else None (leave the equation alone)."""
    xa, oa = x.aval, out.aval
    if xa.dtype != oa.dtype or (xa.weak_type and not oa.weak_type):
        return None
    if xa.shape == oa.shape:
        return x
    if xa.shape == ():
        params = dict(shape=oa.shape, broadcast_dimensions=())
        return [new_eqn(broadcast_in_dim_p, [x], params, out)]
    return None


@broadcast_in_dim_p.def_simplify
def _broadcast_in_dim_simplify(eqn, producers):
    (x,), (out,) = eqn.invars, eqn.outvars
    dims = eqn.params["broadcast_dimensions"]
    if x.aval.shape == out.aval.shape and dims == tuple(range(len(dims))):
        return forward(x, out)
    inner = producers.get(x)
    if inner is not None and inner.primitive is reshape_p:
        src = inner.invars[0]
        new_dims = _unit_reshape_dims(src.aval.shape, x.aval.shape, dims, len(out.aval.shape))
        if new_dims is not None:
            params = dict(shape=out.aval.shape, broadcast_dimensions=new_dims)
            return [new_eqn(broadcast_in_dim_p, [src], params, out)]
    return None


def _unit_reshape_dims(src_shape, mid_shape, dims, out_rank) -> tuple[int, ...] | None:
    """Broadcast dimensions for ``src`` when ``mid = reshape(src)`` only adds or drops
    axes of size 1 and ``mid`` is broadcast with ``dims``; None if there are none."""
    if [n for n in src_shape if n != 1] != [n for n in mid_shape if n != 1]:
        return None
    targets = iter(dims[j] for j, n in enumerate(mid_shape) if n != 1)
    big = [next(targets) if n != 1 else None for n in src_shape]
    result, prev = [], -1
    for i, t in enumerate(big):
        if t is None:  # a unit axis of src: any free output axis in order will do
            limit = next((u for u in big[i + 1 :] if u is not None), out_rank)
            t = prev + 1
            if t >= limit:
                return None
        result.append(t)
        prev = t
    return tuple(result)


broadcast_in_dim_p.def_rule("negation_sink", SIGN_PASSES_THROUGH)
# Never folded into a constant: a broadcast costs nothing at run time, and its result
# may be big.
broadcast_in_dim_p.def_rule("foldable", False)


# --- reshape ---------------------------------------------------------------------------

reshape_p = Primitive("reshape")


def reshape(x: Any, new_sizes: Sequence[int]) -> Any:
    """``x`` with shape ``new_sizes`` (same number of elements, C order)."""
    new_sizes = tuple(int(s) for s in new_sizes)
    if get_aval(x).shape == new_sizes:
        return x
    return reshape_p.bind(x, new_sizes=new_sizes)


reshape_p.def_impl(lambda x, *, new_sizes: np.reshape(x, new_sizes))


@reshape_p.def_abstract_eval
def _reshape_abstract_eval(x, *, new_sizes):
    if int(np.prod(new_sizes, dtype=np.int64)) != x.size or any(s < 0 for s in new_sizes):
        raise ValueError(f"reshape: cannot reshape an array of shape {x.shape} into {new_sizes}")
    return ShapedArray(new_sizes, x.dtype, x.weak_type)


def_linear(reshape_p, lambda g, x, *, new_sizes: reshape(g, get_aval(x).shape))


@reshape_p.def_batch
def _reshape_batch(args, dims, *, new_sizes):
    (x,), (d,) = args, dims
    x = move_axis(x, d, 0)
    return reshape(x, (get_aval(x).shape[0], *new_sizes)), 0


def _reshape_source(x: Atom, src: str, shape: Sequence[int]) -> str:
    # Operands of rank >= 1 are always ndarrays, so methods (faster than the np.*
    # functions on small arrays) are safe; a rank-0 operand may be a Python scalar.
    if x.aval.ndim:
        return f"{src}.reshape({ints_source(shape)})"
    return f"np.reshape({src}, {ints_source(shape)})"


reshape_p.def_lowering(
    view(lambda args, eqn, out: _reshape_source(eqn.invars[0], args[0], eqn.params["new_sizes"]))
)


@reshape_p.def_simplify
def _reshape_simplify(eqn, producers):
    (x,), (out,) = eqn.invars, eqn.outvars
    inner = producers.get(x)
    if inner is not None and inner.primitive is reshape_p:
        x = inner.invars[0]
    if x.aval.shape == out.aval.shape:
        return forward(x, out)
    if x is not eqn.invars[0]:
        return [new_eqn(reshape_p, [x], dict(new_sizes=out.aval.shape), out)]
    return None


reshape_p.def_rule("negation_sink", SIGN_PASSES_THROUGH)


# --- transpose -------------------------------------------------------------------------

transpose_p = Primitive("transpose")


def transpose(x: Any, permutation: Sequence[int]) -> Any:
    """Permute the axes of ``x``: output axis ``i`` is input axis ``permutation[i]``."""
    permutation = tuple(int(p) for p in permutation)
    if permutation == tuple(range(len(permutation))):
        return x
    return transpose_p.bind(x, permutation=permutation)


transpose_p.def_impl(lambda x, *, permutation: np.transpose(x, permutation))


@transpose_p.def_abstract_eval
def _transpose_abstract_eval(x, *, permutation):
    if sorted(permutation) != list(range(x.ndim)):
        raise ValueError(
            f"transpose: permutation {permutation} is not a permutation of the axes of "
            f"shape {x.shape}"
        )
    return ShapedArray(tuple(x.shape[p] for p in permutation), x.dtype, x.weak_type)


def_linear(
    transpose_p,
    lambda g, x, *, permutation: transpose(g, tuple(np.argsort(permutation))),
)


@transpose_p.def_batch
def _transpose_batch(args, dims, *, permutation):
    (x,), (d,) = args, dims
    shifted = [p if p < d else p + 1 for p in permutation]
    return transpose(x, (d, *shifted)), 0


@transpose_p.def_lowering
@view
def _transpose_lowering(args, eqn, out):
    perm = tuple(int(p) for p in eqn.params["permutation"])
    return f"{args[0]}.T" if perm == (1, 0) else f"{args[0]}.transpose({ints_source(perm)})"


@transpose_p.def_simplify
def _transpose_simplify(eqn, producers):
    (x,), (out,) = eqn.invars, eqn.outvars
    perm = eqn.params["permutation"]
    inner = producers.get(x)
    if inner is not None and inner.primitive is transpose_p:
        first = inner.params["permutation"]
        x, perm = inner.invars[0], tuple(first[p] for p in perm)
    if perm == tuple(range(len(perm))):
        return forward(x, out)
    if x is not eqn.invars[0]:
        return [new_eqn(transpose_p, [x], dict(permutation=perm), out)]
    return None


transpose_p.def_rule("negation_sink", SIGN_PASSES_THROUGH)


# --- rule helpers: batch axes, rank-0 operands -------------------------------------


def sum_to_shape(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``x`` down to a rank-0 ``shape``: the cotangent of a broadcast scalar operand."""
    x_shape = get_aval(x).shape
    if x_shape == shape:
        return x
    assert shape == (), (x_shape, shape)
    return reduce_sum_p.bind(x, axes=tuple(range(len(x_shape))))


def lift_to_shape(t: Any, shape: tuple[int, ...]) -> Any:
    """A rank-0 tangent of an operand that broadcast inside an elementwise primitive,
    lifted to the output's ``shape``."""
    if get_aval(t).shape == shape:
        return t
    return broadcast_in_dim_p.bind(t, shape=shape, broadcast_dimensions=())


def move_axis(x: Any, src: int, dst: int) -> Any:
    if src == dst:
        return x
    ndim = get_aval(x).ndim
    perm = [i for i in range(ndim) if i != src]
    perm.insert(dst, src)
    return transpose_p.bind(x, permutation=tuple(perm))


def broadcast_batched(x: Any, d: int | None, size: int, dst: int = 0) -> Any:
    """``x`` with its batch axis at ``dst``, materialising the axis if it is absent."""
    if d is not None:
        return move_axis(x, d, dst)
    shape = list(get_aval(x).shape)
    dims = tuple(i if i < dst else i + 1 for i in range(len(shape)))
    shape.insert(dst, size)
    return broadcast_in_dim_p.bind(x, shape=tuple(shape), broadcast_dimensions=dims)


# --- reduce_sum, and what every reduction shares --------------------------------------


def check_axes(name: str, aval: ShapedArray, axes: tuple[int, ...]) -> None:
    if len(set(axes)) != len(axes) or any(not 0 <= a < aval.ndim for a in axes):
        raise ValueError(f"{name}: axes {axes} are out of range for shape {aval.shape}")


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def kept_dims(ndim: int, axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(i for i in range(ndim) if i not in axes)


def expand_reduced(y: Any, x_shape: tuple[int, ...], axes: tuple[int, ...]) -> Any:
    """Broadcast a reduction's result back over the reduced axes of ``x_shape``."""
    return broadcast_in_dim(y, x_shape, kept_dims(len(x_shape), axes))


def reduction_primitive(name: str, impl: Any, ufunc: str, keep_dtype: bool = False) -> Primitive:
    """A reduction over static ``axes``, written in generated code as the ``reduce`` of
    the NumPy ufunc ``np.<ufunc>``."""
    prim = Primitive(name)
    prim.def_lowering(reduction_lowering(ufunc))
    if keep_dtype:  # np.sum and np.prod widen small integers; the shape rule does not
        prim.def_impl(lambda x, *, axes: impl(x, axis=axes, dtype=x.dtype))
    else:
        prim.def_impl(lambda x, *, axes: impl(x, axis=axes))

    @prim.def_abstract_eval
    def _abstract_eval(x, *, axes):
        check_axes(name, x, axes)
        return ShapedArray(reduced_shape(x.shape, axes), x.dtype, x.weak_type)

    @prim.def_batch
    def _batch(args, dims, *, axes):
        (x,), (d,) = args, dims
        new_axes = tuple(a if a < d else a + 1 for a in axes)
        out_dim = d - sum(a < d for a in new_axes)
        return prim.bind(x, axes=new_axes), out_dim

    return prim


def reduction_lowering(ufunc: str):
    """``np.<ufunc>.reduce(x, axis=...)``: what ``ndarray.sum`` and friends call, minus
    a Python layer. A reshape that only restores the reduced axes as size 1, and is the
    result's only use, becomes ``keepdims=True``."""

    def lower(ctx: LoweringContext, eqn: JaxprEqn) -> None:
        (x,), (out,) = eqn.invars, eqn.outvars
        (arg,) = ctx.operands(eqn)
        axes = eqn.params["axes"]
        args = [arg, "axis=None" if len(axes) == x.aval.ndim else f"axis={axis_source(axes)}"]
        user = ctx.only_use(out)
        kept = tuple(1 if i in axes else n for i, n in enumerate(x.aval.shape))
        if user is not None and user.primitive is reshape_p and user.outvars[0].aval.shape == kept:
            args.append("keepdims=True")
            out = user.outvars[0]
            ctx.skip(user)
        ctx.assign(out, f"np.{ufunc}.reduce({', '.join(args)})")
        ctx.own(out)

    return lower


def sorted_axes(axes: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted(int(a) for a in axes))


reduce_sum_p = reduction_primitive("reduce_sum", np.sum, "add", keep_dtype=True)


def reduce_sum(x: Any, axes: Sequence[int]) -> Any:
    """Sum of ``x`` over ``axes`` (non-negative ints), which are removed."""
    return reduce_sum_p.bind(x, axes=sorted_axes(axes))


def _reduce_sum_jvp(primals, tangents, *, axes):
    (x,), (t,) = primals, tangents
    ans = reduce_sum(x, axes)
    return ans, Zero(get_aval(ans)) if type(t) is Zero else reduce_sum(t, axes)


reduce_sum_p.def_jvp(_reduce_sum_jvp)
reduce_sum_p.def_vjp(lambda g, ans, x, *, axes: expand_reduced(g, get_aval(x).shape, axes))
reduce_sum_p.def_rule("negation_sink", SIGN_PASSES_THROUGH)
# Its rewrite of a sum of a broadcast into a product is with ``mul``, in reductions.py.


__all__ = [
    "broadcast_in_dim",
    "broadcast_in_dim_p",
    "expand_reduced",
    "reduce_sum",
    "reduce_sum_p",
    "reshape",
    "reshape_p",
    "transpose",
    "transpose_p",
]
