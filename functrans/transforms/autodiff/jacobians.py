"""Jacobians and Hessians: ``jvp`` / ``vjp`` mapped over a basis with ``vmap``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import get_aval
from functrans.transforms.api_util import (
    argnums_partial,
    argnums_tuple,
    differentiable_leaves,
)
from functrans.transforms.autodiff.forward import as_numpy_scalar, jvp
from functrans.transforms.autodiff.reverse import vjp
from functrans.transforms.batching import vmap
from functrans.tree_util import tree_flatten, tree_unflatten

__all__ = ["hessian", "jacfwd", "jacrev"]


def _ravel_leaves(leaves: Sequence[Any]) -> tuple[int, Callable[[Any], list]]:
    """Total size of ``leaves`` and a function splitting a flat vector back into them."""
    shapes = [get_aval(x).shape for x in leaves]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    offsets = np.cumsum([0, *sizes])

    def unravel(vec: Any) -> list:
        return [vec[offsets[i] : offsets[i + 1]].reshape(shape) for i, shape in enumerate(shapes)]

    return int(offsets[-1]), unravel


def _basis(size: int, dtype: np.dtype) -> np.ndarray:
    return np.eye(size, dtype=dtype)


def _split_rows(stacked: Sequence[Any], shapes: Sequence[tuple[int, ...]]) -> list[list[Any]]:
    """``stacked[j]`` has a leading basis axis covering every leaf of ``shapes``;
    cut it into one block per leaf, reshaped to that leaf's shape."""
    blocks = []
    offset = 0
    for shape in shapes:
        n = int(np.prod(shape, dtype=np.int64))
        blocks.append([s[offset : offset + n].reshape((*shape, *s.shape[1:])) for s in stacked])
        offset += n
    return blocks


def _diff_leaves(name: str, fun: Callable, args: tuple, argnums: tuple[int, ...]):
    """The leaves of the differentiated arguments (Python numbers kept as such: jvp and
    vjp treat them as weakly typed), their structure, and ``fun`` of those leaves."""
    positions, leaves, tree = differentiable_leaves(name, args, argnums, False)
    return leaves, tree, argnums_partial(fun, args, positions, tree)


def _nest(out_tree, out_shapes, in_tree, in_shapes, block, argnums) -> Any:
    """Build the Jacobian pytree: output structure outside, input structure inside."""

    def for_output(j: int) -> Any:
        blocks = [as_numpy_scalar(block(j, i)) for i in range(len(in_shapes))]
        inner = tree_unflatten(in_tree, blocks)
        return inner[0] if isinstance(argnums, int) else tuple(inner)

    return tree_unflatten(out_tree, [for_output(j) for j in range(len(out_shapes))])


def jacfwd(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """Jacobian by forward mode: one ``jvp`` per input direction, batched with ``vmap``.
    For array input and output the result has shape ``out.shape + in.shape``.

    >>> import functrans.numpy as fnp
    >>> jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    nums = argnums_tuple("jacfwd", "argnums", argnums)

    @functools.wraps(fun)
    def jac(*args: Any) -> Any:
        leaves, in_tree, partial_fun = _diff_leaves("jacfwd", fun, args, nums)
        size, unravel = _ravel_leaves(leaves)
        dtype = np.result_type(*[get_aval(x).dtype for x in leaves])
        out_tree_box = []

        def push(direction: Any) -> list:
            tangents = [
                t.astype(get_aval(x).dtype)
                for t, x in zip(unravel(direction), leaves, strict=False)
            ]
            _, out_t = jvp(partial_fun, tuple(leaves), tuple(tangents))
            out_leaves, out_tree = tree_flatten(out_t)
            out_tree_box.append(out_tree)
            return out_leaves

        columns = vmap(push, in_axes=1, out_axes=-1)(_basis(size, dtype))
        in_shapes = [get_aval(x).shape for x in leaves]
        out_shapes = [get_aval(c).shape[:-1] for c in columns]
        # columns[j]: out_j.shape + (size,) -> split the last axis per input leaf.
        offsets = np.cumsum([0, *[int(np.prod(s, dtype=np.int64)) for s in in_shapes]])

        def block(j: int, i: int) -> Any:
            c = columns[j][..., offsets[i] : offsets[i + 1]]
            return c.reshape((*out_shapes[j], *in_shapes[i]))

        return _nest(out_tree_box[0], out_shapes, in_tree, in_shapes, block, argnums)

    return jac


def jacrev(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """Jacobian by reverse mode: one ``vjp`` per output direction, batched with
    ``vmap``. For array input and output the result has shape ``out.shape + in.shape``.

    >>> import functrans.numpy as fnp
    >>> jacrev(lambda x: fnp.sum(x ** 2))(np.array([1.0, 2.0]))
    array([2., 4.])
    """
    nums = argnums_tuple("jacrev", "argnums", argnums)

    @functools.wraps(fun)
    def jac(*args: Any) -> Any:
        leaves, in_tree, partial_fun = _diff_leaves("jacrev", fun, args, nums)
        out, pullback = vjp(partial_fun, *leaves)
        out_leaves, out_tree = tree_flatten(out)
        out_shapes = [get_aval(o).shape for o in out_leaves]
        size, unravel = _ravel_leaves(out_leaves)
        dtype = np.result_type(*[get_aval(o).dtype for o in out_leaves])

        def pull(direction: Any) -> tuple:
            cts = [
                c.astype(get_aval(o).dtype)
                for c, o in zip(unravel(direction), out_leaves, strict=False)
            ]
            return pullback(tree_unflatten(out_tree, cts))

        rows = vmap(pull)(_basis(size, dtype))  # one (size, *in_shape) per input leaf
        in_shapes = [get_aval(x).shape for x in leaves]
        blocks = _split_rows(rows, out_shapes)

        def block(j: int, i: int) -> Any:
            return blocks[j][i]

        return _nest(out_tree, out_shapes, in_tree, in_shapes, block, argnums)

    return jac


def hessian(fun: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """The Hessian ``jacfwd(jacrev(fun))``.

    >>> import functrans.numpy as fnp
    >>> hessian(lambda x: fnp.sum(x ** 3))(np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacfwd(jacrev(fun, argnums), argnums)
