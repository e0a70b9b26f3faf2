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
from functrans.primitives._rules import def_linear

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


def reduction_primitive(name: str, impl: Any, keep_dtype: bool = False) -> Primitive:
    prim = Primitive(name)
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


def sorted_axes(axes: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted(int(a) for a in axes))


reduce_sum_p = reduction_primitive("reduce_sum", np.sum, keep_dtype=True)


def reduce_sum(x: Any, axes: Sequence[int]) -> Any:
    """Sum of ``x`` over ``axes`` (non-negative ints), which are removed."""
    return reduce_sum_p.bind(x, axes=sorted_axes(axes))


def _reduce_sum_jvp(primals, tangents, *, axes):
    (x,), (t,) = primals, tangents
    ans = reduce_sum(x, axes)
    return ans, Zero(get_aval(ans)) if type(t) is Zero else reduce_sum(t, axes)


reduce_sum_p.def_jvp(_reduce_sum_jvp)
reduce_sum_p.def_vjp(lambda g, ans, x, *, axes: expand_reduced(g, get_aval(x).shape, axes))


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
