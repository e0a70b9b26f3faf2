"""``matmul``: NumPy's matrix product, for 1-D operands and for stacks of matrices
with equal leading (batch) dimensions. The NumPy layer broadcasts batch dimensions
before it binds, so the rules never un-broadcast.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from functrans.core import Primitive, ShapedArray, get_aval
from functrans.primitives._lowering import Lowering
from functrans.primitives.arithmetic import def_bilinear, mul
from functrans.primitives.structural import (
    broadcast_in_dim,
    move_axis,
    reduce_sum,
    reshape,
    transpose,
)

matmul_p = Primitive("matmul")


def matmul(x: Any, y: Any) -> Any:
    """Matrix product ``x @ y`` (operands of rank 1, 2, or equal batch dimensions).

    >>> matmul(np.eye(2), np.array([1.0, 2.0]))
    array([1., 2.])
    """
    return matmul_p.bind(x, y)


matmul_p.def_impl(np.matmul)


@matmul_p.def_abstract_eval
def _matmul_abstract_eval(x: ShapedArray, y: ShapedArray) -> ShapedArray:
    error = ValueError(f"matmul: incompatible shapes {x.shape} and {y.shape}")
    if x.ndim == 0 or y.ndim == 0:
        raise error
    if x.dtype != y.dtype:
        raise TypeError(
            f"matmul: operands must have one dtype, got {x.dtype.name} and {y.dtype.name}"
        )
    contract_x = x.shape[-1]
    contract_y = y.shape[0] if y.ndim == 1 else y.shape[-2]
    if contract_x != contract_y:
        raise error
    if x.ndim == 1 and y.ndim == 1:
        shape: tuple[int, ...] = ()
    elif x.ndim == 1 and y.ndim == 2:
        shape = (y.shape[1],)
    elif x.ndim == 2 and y.ndim == 1:
        shape = (x.shape[0],)
    elif x.ndim >= 2 and y.ndim >= 2 and x.shape[:-2] == y.shape[:-2]:
        shape = (*x.shape[:-2], x.shape[-2], y.shape[-1])
    else:
        raise error
    return ShapedArray(shape, x.dtype, x.weak_type and y.weak_type)


def _swap_last(x: Any) -> Any:
    ndim = get_aval(x).ndim
    return transpose(x, (*range(ndim - 2), ndim - 1, ndim - 2))


def _outer(a: Any, b: Any) -> Any:
    (n,), (m,) = get_aval(a).shape, get_aval(b).shape
    return mul(broadcast_in_dim(a, (n, m), (0,)), broadcast_in_dim(b, (n, m), (1,)))


def _scale(g: Any, v: Any) -> Any:
    return mul(broadcast_in_dim(g, get_aval(v).shape, ()), v)


def _matmul_vjp_lhs(g: Any, x: Any, y: Any) -> Any:
    rx, ry = get_aval(x).ndim, get_aval(y).ndim
    if rx == 1 and ry == 1:
        return _scale(g, y)
    if rx == 1:
        return matmul(y, g)
    if ry == 1:
        return _outer(g, y)
    return matmul(g, _swap_last(y))


def _matmul_vjp_rhs(g: Any, x: Any, y: Any) -> Any:
    rx, ry = get_aval(x).ndim, get_aval(y).ndim
    if rx == 1 and ry == 1:
        return _scale(g, x)
    if rx == 1:
        return _outer(x, g)
    if ry == 1:
        return matmul(g, x)
    return matmul(_swap_last(x), g)


def_bilinear(matmul_p, _matmul_vjp_lhs, _matmul_vjp_rhs)
# Written into a dead temporary of the result's type, never into an operand.
matmul_p.def_lowering(
    Lowering(
        lambda args, eqn, out: f"np.matmul({args[0]}, {args[1]}{out})", out="fresh", operator="@"
    )
)


@matmul_p.def_batch
def _matmul_batch(args, dims):
    (x, y), (xd, yd) = args, dims
    if xd is not None and yd is not None:
        return _matmul_both_batched(move_axis(x, xd, 0), move_axis(y, yd, 0))
    if yd is None:
        return _matmul_lhs_batched(move_axis(x, xd, 0), y)
    return _matmul_rhs_batched(x, move_axis(y, yd, 0))


def _matmul_both_batched(x: Any, y: Any) -> tuple[Any, int]:
    (size, *xs), (_, *ys) = get_aval(x).shape, get_aval(y).shape
    if len(xs) == 1 and len(ys) == 1:
        return reduce_sum(mul(x, y), (1,)), 0
    if len(xs) == 1:  # (B,k) @ (B,k,m): a stack of row vectors
        out = matmul(reshape(x, (size, 1, xs[0])), y)
        return reshape(out, (size, ys[-1])), 0
    if len(ys) == 1:  # (B,n,k) @ (B,k)
        out = matmul(x, reshape(y, (size, ys[0], 1)))
        return reshape(out, (size, xs[-2])), 0
    return matmul(x, y), 0


def _matmul_lhs_batched(x: Any, y: Any) -> tuple[Any, int]:
    (size, *xs), ys = get_aval(x).shape, get_aval(y).shape
    if len(xs) == 1:  # (B,k) @ (k,) or (B,k) @ (k,m): already a matrix product
        return matmul(x, y), 0
    if len(ys) == 1:  # (B,n,k) @ (k,): one GEMV on (B*n, k)
        out = matmul(reshape(x, (size * xs[0], xs[1])), y)
        return reshape(out, (size, xs[0])), 0
    # (B,*batch,n,k) @ (*batch,k,m): fold B into the rows, one GEMM per batch entry.
    nb = len(xs) - 2
    x = move_axis(x, 0, nb)
    n, k = xs[-2], xs[-1]
    out = matmul(reshape(x, (*xs[:-2], size * n, k)), y)
    return reshape(out, (*xs[:-2], size, n, ys[-1])), nb


def _matmul_rhs_batched(x: Any, y: Any) -> tuple[Any, int]:
    xs, (size, *ys) = get_aval(x).shape, get_aval(y).shape
    if len(ys) == 1:  # x @ y_b for each row y_b of (B,k)
        return matmul(y, x if len(xs) == 1 else _swap_last(x)), 0
    # (*batch,n,k) @ (B,*batch,k,m): fold B into the columns.
    nb = len(ys) - 2
    k, m = ys[-2], ys[-1]
    y = move_axis(y, 0, nb + 1)  # (*batch, k, B, m)
    out = matmul(x, reshape(y, (*ys[:-2], k, size * m)))
    if len(xs) == 1:
        return reshape(out, (size, m)), 0
    return reshape(out, (*ys[:-2], xs[-2], size, m)), nb + 1


__all__ = ["matmul", "matmul_p"]
