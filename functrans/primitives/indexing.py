"""Primitives that select and place data: reversing, slicing, padding, concatenation,
and integer-array gather with its scatter-add counterpart. All are linear; each one's
transpose is another of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from functrans.core import Primitive, ShapedArray, Zero, get_aval
from functrans.ir import JaxprEqn
from functrans.primitives._lowering import LoweringContext, expression, ints_source, view
from functrans.primitives._rules import OperandRules, batch_size, def_linear, instantiate
from functrans.primitives.structural import broadcast_batched, move_axis

# --- rev ---------------------------------------------------------------------------------

rev_p = Primitive("rev")


def rev(x: Any, dimensions: Sequence[int]) -> Any:
    """``x`` reversed along ``dimensions``."""
    return rev_p.bind(x, dimensions=tuple(dimensions))


rev_p.def_impl(lambda x, *, dimensions: np.flip(x, dimensions))
rev_p.def_abstract_eval(lambda x, *, dimensions: x)
def_linear(rev_p, lambda g, x, *, dimensions: rev(g, dimensions))


@rev_p.def_batch
def _rev_batch(args, dims, *, dimensions):
    (x,), (d,) = args, dims
    return rev(x, tuple(a if a < d else a + 1 for a in dimensions)), d


rev_p.def_lowering(
    view(lambda args, eqn, out: f"np.flip({args[0]}, axis={ints_source(eqn.params['dimensions'])})")
)


# --- slice and pad -------------------------------------------------------------------------

slice_p = Primitive("slice")


def slice(
    x: Any,
    start_indices: Sequence[int],
    limit_indices: Sequence[int],
    strides: Sequence[int] | None = None,
) -> Any:
    """``x[start:limit:stride, ...]`` with static, non-negative bounds per axis."""
    return slice_p.bind(
        x,
        start_indices=tuple(start_indices),
        limit_indices=tuple(limit_indices),
        strides=None if strides is None else tuple(strides),
    )


def _slice_index(start_indices, limit_indices, strides):
    strides = strides or (1,) * len(start_indices)
    return tuple(
        np.s_[a:b:s] for a, b, s in zip(start_indices, limit_indices, strides, strict=True)
    )


slice_p.def_impl(
    lambda x, *, start_indices, limit_indices, strides: x[
        _slice_index(start_indices, limit_indices, strides)
    ]
)


@slice_p.def_abstract_eval
def _slice_abstract_eval(x, *, start_indices, limit_indices, strides):
    strides_ = strides or (1,) * x.ndim
    ok = len(start_indices) == len(limit_indices) == len(strides_) == x.ndim and all(
        0 <= a <= b <= n and s >= 1
        for a, b, s, n in zip(start_indices, limit_indices, strides_, x.shape, strict=True)
    )
    if not ok:
        raise ValueError(
            f"slice: start {start_indices}, limit {limit_indices} and strides {strides} do "
            f"not fit an operand of shape {x.shape}"
        )
    shape = tuple(
        (b - a + s - 1) // s
        for a, b, s in zip(start_indices, limit_indices, strides_, strict=False)
    )
    return ShapedArray(shape, x.dtype, x.weak_type)


def _slice_transpose(g, x, *, start_indices, limit_indices, strides):
    in_shape = get_aval(x).shape
    out_shape = get_aval(g).shape
    strides_ = strides or (1,) * len(in_shape)
    config = []
    for a, s, n, m in zip(start_indices, strides_, in_shape, out_shape, strict=True):
        used = a + (m - 1) * s + 1 if m else a
        config.append((a, n - used, s - 1 if m else 0))
    return pad(g, tuple(config))


def_linear(slice_p, _slice_transpose)


@slice_p.def_batch
def _slice_batch(args, dims, *, start_indices, limit_indices, strides):
    (x,), (d,) = args, dims
    n = get_aval(x).shape[d]
    start, limit = list(start_indices), list(limit_indices)
    start.insert(d, 0)
    limit.insert(d, n)
    new_strides = None if strides is None else (*strides[:d], 1, *strides[d:])
    return slice(x, start, limit, new_strides), d


@slice_p.def_lowering
@view
def _slice_lowering(args, eqn, out):
    p = eqn.params
    strides = p["strides"] or (1,) * len(p["start_indices"])
    parts = []
    for a, b, s in zip(p["start_indices"], p["limit_indices"], strides, strict=True):
        a, b, s = int(a), int(b), int(s)
        parts.append(f"{a}:{b}" if s == 1 else f"{a}:{b}:{s}")
    return f"{args[0]}[{', '.join(parts)}]"


pad_p = Primitive("pad")


def pad(x: Any, padding_config: Sequence[tuple[int, int, int]]) -> Any:
    """Pad ``x`` with zeros: ``(low, high, interior)`` zeros per axis (non-negative)."""
    return pad_p.bind(x, padding_config=tuple(tuple(map(int, c)) for c in padding_config))


@pad_p.def_impl
def _pad_impl(x, *, padding_config):
    x = np.asarray(x)
    shape = _padded_shape(x.shape, padding_config)
    out = np.zeros(shape, x.dtype)
    index = tuple(
        np.s_[lo : lo + (n - 1) * (i + 1) + 1 : i + 1] if n else np.s_[lo:lo]
        for n, (lo, _, i) in zip(x.shape, padding_config, strict=True)
    )
    out[index] = x
    return out


def _padded_shape(shape, config):
    return tuple(
        lo + hi + n + max(n - 1, 0) * i for n, (lo, hi, i) in zip(shape, config, strict=True)
    )


@pad_p.def_abstract_eval
def _pad_abstract_eval(x, *, padding_config):
    if len(padding_config) != x.ndim or any(v < 0 for c in padding_config for v in c):
        raise ValueError(f"pad: padding_config {padding_config} does not fit shape {x.shape}")
    return ShapedArray(_padded_shape(x.shape, padding_config), x.dtype, x.weak_type)


def _pad_transpose(g, x, *, padding_config):
    in_shape = get_aval(x).shape
    start = [lo for lo, _, _ in padding_config]
    stride = [i + 1 for _, _, i in padding_config]
    limit = [
        lo + (n - 1) * s + 1 if n else lo for n, lo, s in zip(in_shape, start, stride, strict=False)
    ]
    return slice(g, start, limit, stride)


def_linear(pad_p, _pad_transpose)


@pad_p.def_batch
def _pad_batch(args, dims, *, padding_config):
    (x,), (d,) = args, dims
    config = list(padding_config)
    config.insert(d, (0, 0, 0))
    return pad(x, config), d


@expression
def _np_pad(args, eqn, out):
    widths = tuple((int(lo), int(hi)) for lo, hi, _ in eqn.params["padding_config"])
    return f"np.pad({args[0]}, {widths!r})"


@pad_p.def_lowering
def _pad_lowering(ctx: LoweringContext, eqn: JaxprEqn) -> None:
    # np.pad takes neither interior nor negative (cropping) padding, nor a scalar (no
    # axes to pad): those call the impl.
    config = eqn.params["padding_config"]
    if not config or any(i or lo < 0 or hi < 0 for lo, hi, i in config):
        return ctx.fallback(eqn)
    return _np_pad(ctx, eqn)


# --- concatenate ----------------------------------------------------------------------------

concatenate_p = Primitive("concatenate")


def concatenate(operands: Sequence[Any], dimension: int) -> Any:
    """Join arrays of equal rank and dtype along ``dimension``."""
    return concatenate_p.bind(*operands, dimension=int(dimension))


concatenate_p.def_impl(lambda *xs, dimension: np.concatenate(xs, axis=dimension))


@concatenate_p.def_abstract_eval
def _concatenate_abstract_eval(*avals, dimension):
    if not avals:
        raise ValueError("concatenate: needs at least one operand")
    first = avals[0]
    ok = 0 <= dimension < first.ndim and all(
        a.ndim == first.ndim
        and all(a.shape[i] == first.shape[i] for i in range(a.ndim) if i != dimension)
        for a in avals
    )
    if not ok:
        shapes = ", ".join(str(a.shape) for a in avals)
        raise ValueError(f"concatenate: incompatible shapes {shapes} along axis {dimension}")
    dtypes = {a.dtype for a in avals}
    if len(dtypes) > 1:
        raise TypeError(
            f"concatenate: operands must have one dtype, got {sorted(map(str, dtypes))}"
        )
    shape = list(first.shape)
    shape[dimension] = sum(a.shape[dimension] for a in avals)
    return ShapedArray(tuple(shape), first.dtype, all(a.weak_type for a in avals))


def _concatenate_vjp_for(i: int):
    def vjp(g, ans, *operands, dimension):
        offset = sum(get_aval(x).shape[dimension] for x in operands[:i])
        shape = get_aval(operands[i]).shape
        start = [0] * len(shape)
        limit = list(get_aval(g).shape)
        start[dimension] = offset
        limit[dimension] = offset + shape[dimension]
        return slice(g, start, limit)

    return vjp


def _concatenate_jvp(primals, tangents, *, dimension):
    ans = concatenate(primals, dimension)
    if all(type(t) is Zero for t in tangents):
        return ans, Zero(get_aval(ans))
    return ans, concatenate([instantiate(t) for t in tangents], dimension)


concatenate_p.def_jvp(_concatenate_jvp)
concatenate_p.vjp = OperandRules(_concatenate_vjp_for)
concatenate_p.def_lowering(
    expression(
        lambda args, eqn, out: (
            f"np.concatenate(({', '.join(args)},), axis={int(eqn.params['dimension'])})"
        )
    )
)


@concatenate_p.def_batch
def _concatenate_batch(args, dims, *, dimension):
    size = batch_size(args, dims)
    moved = [broadcast_batched(x, d, size, 0) for x, d in zip(args, dims, strict=True)]
    return concatenate(moved, dimension + 1), 0


# --- gather and scatter_add ------------------------------------------------------------------

gather_p = Primitive("gather")


def gather(x: Any, indices: Sequence[Any]) -> Any:
    """``x[indices[0], ..., indices[k-1]]``: integer arrays of one shape ``B`` index the
    leading ``k`` axes of ``x``; the result has shape ``B + x.shape[k:]``."""
    return gather_p.bind(x, *indices)


gather_p.def_impl(lambda x, *indices: np.asarray(x)[tuple(indices)])


def _check_indices(name, x, indices):
    if not indices or len(indices) > x.ndim:
        raise ValueError(f"{name}: {len(indices)} index arrays for an operand of shape {x.shape}")
    shape = indices[0].shape
    for i in indices:
        if i.dtype.kind not in "iu":
            raise TypeError(f"{name}: indices must be integers, got {i.dtype.name}")
        if i.shape != shape:
            shapes = ", ".join(str(i.shape) for i in indices)
            raise ValueError(f"{name}: index arrays must have one shape, got {shapes}")
    return shape


@gather_p.def_abstract_eval
def _gather_abstract_eval(x, *indices):
    shape = _check_indices("gather", x, indices)
    return ShapedArray(shape + x.shape[len(indices) :], x.dtype, x.weak_type)


def _gather_jvp(primals, tangents):
    x, *indices = primals
    ans = gather(x, indices)
    if type(tangents[0]) is Zero:
        return ans, Zero(get_aval(ans))
    return ans, gather(tangents[0], indices)


def _gather_vjp(g, ans, x, *indices):
    aval = get_aval(x)
    return scatter_add(np.zeros(aval.shape, aval.dtype), g, indices)


gather_p.def_jvp(_gather_jvp)
gather_p.vjp = OperandRules(lambda i: _gather_vjp if i == 0 else None)
gather_p.def_lowering(view(lambda args, eqn, out: f"{args[0]}[{', '.join(args[1:])}]"))


def _batch_iota(size: int, index_shape: tuple[int, ...]) -> np.ndarray:
    """Indices 0..size-1 along a new leading axis, broadcast to ``(size, *index_shape)``."""
    iota = np.arange(size).reshape((size,) + (1,) * len(index_shape))
    return np.broadcast_to(iota, (size, *index_shape))


def _batch_indices(indices, dims, size):
    """Index arrays with a leading batch axis, or unchanged if none is batched."""
    if all(d is None for d in dims):
        return list(indices), False
    return [broadcast_batched(i, d, size, 0) for i, d in zip(indices, dims, strict=True)], True


@gather_p.def_batch
def _gather_batch(args, dims):
    x, *indices = args
    xd, *idims = dims
    size = batch_size(args, dims)
    k = len(indices)
    indices, idx_batched = _batch_indices(indices, idims, size)
    if xd is None:
        return gather(x, indices), 0 if idx_batched else None
    if not idx_batched:
        # Put the batch axis right after the indexed axes: it lands after the index shape.
        x = move_axis(x, xd, k)
        out = gather(x, indices)
        return out, len(get_aval(indices[0]).shape)
    x = move_axis(x, xd, 0)
    iota = _batch_iota(size, get_aval(indices[0]).shape[1:])
    return gather(x, [iota, *indices]), 0


scatter_add_p = Primitive("scatter_add")


def scatter_add(operand: Any, updates: Any, indices: Sequence[Any]) -> Any:
    """A copy of ``operand`` with ``updates`` added at ``operand[indices]``; repeated
    indices accumulate (``numpy.add.at``). The transpose of ``gather``."""
    return scatter_add_p.bind(operand, updates, *indices)


@scatter_add_p.def_impl
def _scatter_add_impl(operand, updates, *indices):
    out = np.array(operand, copy=True)
    np.add.at(out, tuple(indices), updates)
    return out


@scatter_add_p.def_abstract_eval
def _scatter_add_abstract_eval(operand, updates, *indices):
    shape = _check_indices("scatter_add", operand, indices)
    expected = shape + operand.shape[len(indices) :]
    if updates.shape != expected:
        raise ValueError(
            f"scatter_add: updates of shape {updates.shape} do not fit operand "
            f"{operand.shape} indexed by arrays of shape {shape} (expected {expected})"
        )
    if updates.dtype != operand.dtype:
        raise TypeError(
            f"scatter_add: updates dtype {updates.dtype.name} differs from operand "
            f"dtype {operand.dtype.name}"
        )
    return operand.strip_weak_type()


@scatter_add_p.def_jvp
def _scatter_add_jvp(primals, tangents):
    operand, updates, *indices = primals
    ans = scatter_add(operand, updates, indices)
    t_operand, t_updates = tangents[:2]
    if type(t_operand) is Zero and type(t_updates) is Zero:
        return ans, Zero(get_aval(ans))
    return ans, scatter_add(instantiate(t_operand), instantiate(t_updates), indices)


_scatter_add_vjps = (
    lambda g, ans, operand, updates, *indices: g,
    lambda g, ans, operand, updates, *indices: gather(g, indices),
)
scatter_add_p.vjp = OperandRules(lambda i: _scatter_add_vjps[i] if i < 2 else None)


@scatter_add_p.def_batch
def _scatter_add_batch(args, dims):
    operand, updates, *indices = args
    od, ud, *idims = dims
    size = batch_size(args, dims)
    indices, _ = _batch_indices(indices, idims, size)
    operand = broadcast_batched(operand, od, size, 0)
    if not any(d is not None for d in idims):
        # Index the axes after the batch axis: move it behind the indexed ones.
        k = len(indices)
        operand = move_axis(operand, 0, k)
        n_idx = len(get_aval(indices[0]).shape)
        updates = broadcast_batched(updates, ud, size, n_idx)
        return scatter_add(operand, updates, indices), k
    iota = _batch_iota(size, get_aval(indices[0]).shape[1:])
    updates = broadcast_batched(updates, ud, size, 0)
    return scatter_add(operand, updates, [iota, *indices]), 0


__all__ = [
    "concatenate",
    "concatenate_p",
    "gather",
    "gather_p",
    "pad",
    "pad_p",
    "rev",
    "rev_p",
    "scatter_add",
    "scatter_add_p",
    "slice",
    "slice_p",
]
