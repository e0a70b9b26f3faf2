"""``vmap``: vectorisation by batching rules.

A batch tracer carries a value with one extra axis, ``bdim``, holding the batch.
Each primitive's batching rule maps batched operands to one batched result,
moving the batch axis only when it must; the traced program has the same number
of equations for every batch size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import (
    Primitive,
    ShapedArray,
    Trace,
    Tracer,
    call_with_trace,
    get_aval,
    missing_rule,
    new_trace,
)
from functrans.errors import ConcretizationTypeError
from functrans.ir import ClosedJaxpr
from functrans.primitives.structural import broadcast_batched
from functrans.transforms.api_util import as_array_arg, fun_name
from functrans.transforms.staging import call_jaxpr, trace_derived
from functrans.tree_util import broadcast_prefix, leaf_paths, tree_flatten, tree_unflatten

__all__ = ["BatchTrace", "BatchTracer", "batch_jaxpr", "batched_aval", "vmap"]

not_mapped = None


class BatchTracer(Tracer):
    __slots__ = ("val", "bdim")

    def __init__(self, trace: BatchTrace, val: Any, bdim: int):
        self._trace = trace
        self.val = val
        self.bdim = bdim

    @property
    def aval(self) -> ShapedArray:
        aval = get_aval(self.val)
        shape = list(aval.shape)
        del shape[self.bdim]
        return ShapedArray(tuple(shape), aval.dtype, aval.weak_type)


class BatchTrace(Trace):
    __slots__ = ("axis_size",)

    def __init__(self, parent: Trace | None, name: str = "", axis_size: int = 0) -> None:
        super().__init__(parent, name)
        self.axis_size = axis_size

    def process_primitive(self, prim: Primitive, args: Sequence[Any], params: dict) -> Any:
        vals, dims, batched = [], [], False
        for x in args:
            if type(x) is BatchTracer and x._trace is self:
                vals.append(x.val)
                dims.append(x.bdim)
                batched = True
            else:
                vals.append(x)
                dims.append(not_mapped)
        if not batched:
            return self.parent.process_primitive(prim, vals, params)
        if prim.batch is None:
            raise missing_rule(prim, "vmap", "batching", "prim.def_batch(rule)")
        out, out_dim = call_with_trace(self.parent, prim.batch, vals, dims, **params)
        if prim.multiple_results:
            return [self._wrap(o, d) for o, d in zip(out, out_dim, strict=True)]
        return self._wrap(out, out_dim)

    def _wrap(self, val: Any, bdim: int | None) -> Any:
        return val if bdim is None else BatchTracer(self, val, bdim)

    def concretize(self, tracer: Tracer, conversion: str) -> Any:
        raise ConcretizationTypeError(
            f"{conversion}() was called on a batched value {tracer.aval.str_short()} inside "
            f"{self.name or 'vmap'}: it holds one value per batch element, so it has no "
            "single Python value. Use functrans.numpy.where for elementwise choices or "
            "functrans.lax.cond for branches."
        )


def vmap(
    fun: Callable,
    in_axes: Any = 0,
    out_axes: Any = 0,
    axis_size: int | None = None,
) -> Callable:
    """Vectorise ``fun`` over an axis of its inputs.

    ``in_axes``: an int, ``None`` (not mapped), or a tuple/list with one entry per
    positional argument, each an int, ``None`` or a pytree prefix of the argument.
    Negative axes count from the end. ``out_axes`` likewise for the output. Keyword
    arguments are mapped over axis 0.

    >>> import functrans.numpy as fnp
    >>> vmap(fnp.dot, in_axes=(0, None))(np.eye(3), np.arange(3.0))
    array([0., 1., 2.])
    """
    name = f"vmap({fun_name(fun)})"

    @functools.wraps(fun)
    def batched_fun(*args: Any, **kwargs: Any) -> Any:
        if isinstance(in_axes, list):
            axes_spec = tuple(in_axes)
        else:
            axes_spec = in_axes
        if isinstance(axes_spec, tuple):
            if len(axes_spec) != len(args):
                raise ValueError(
                    f"{name}: in_axes has {len(axes_spec)} entries but the function was "
                    f"called with {len(args)} positional arguments"
                )
            arg_axes = list(axes_spec)
        elif axes_spec is None or isinstance(axes_spec, int):
            arg_axes = [axes_spec] * len(args)
        else:
            raise TypeError(
                f"{name}: in_axes must be an int, None, or a tuple/list, got {in_axes!r}"
            )
        leaves, in_tree = tree_flatten((tuple(args), kwargs))
        leaf_axes = []
        for i, (a, ax) in enumerate(zip(args, arg_axes, strict=True)):
            leaf_axes += broadcast_prefix(ax, a, f"{name}: in_axes[{i}]")
        leaf_axes += [0] * (len(leaves) - len(leaf_axes))
        leaves = [as_array_arg(x, name) for x in leaves]
        size = _mapped_size(name, leaves, leaf_axes, lambda: _owners(args, kwargs), axis_size)

        with new_trace(BatchTrace, name, axis_size=size) as trace:
            inputs = []
            for x, ax in zip(leaves, leaf_axes, strict=True):
                if ax is None:
                    inputs.append(x)
                else:
                    ax = ax % get_aval(x).ndim
                    inputs.append(BatchTracer(trace, x, ax))
            a, kw = tree_unflatten(in_tree, inputs)
            out = fun(*a, **kw)
            out_leaves, out_tree = tree_flatten(out)
            try:
                out_leaf_axes = broadcast_prefix(out_axes, out, f"{name}: out_axes")
            except ValueError:
                # out_axes=(0,) for a function returning one array (not a sequence).
                single = not isinstance(out, (tuple, list))
                if single and isinstance(out_axes, (tuple, list)) and len(out_axes) == 1:
                    out_leaf_axes = broadcast_prefix(out_axes[0], out, f"{name}: out_axes")
                else:
                    raise
            results = [
                _finish_output(name, trace, o, ax, size)
                for o, ax in zip(out_leaves, out_leaf_axes, strict=True)
            ]
        given = {id(x) for x in leaves}  # an input passed straight through is copied
        results = [r.copy() if id(r) in given and type(r) is np.ndarray else r for r in results]
        return tree_unflatten(out_tree, results)

    return batched_fun


def _finish_output(name: str, trace: BatchTrace, out: Any, out_axis: int | None, size: int) -> Any:
    batched = type(out) is BatchTracer and out._trace is trace
    if out_axis is None:
        if batched:
            raise ValueError(
                f"{name}: an output with out_axes=None depends on the mapped axis "
                f"(shape {out.aval.shape}); only unmapped outputs may use out_axes=None"
            )
        return out
    ndim = get_aval(out).ndim + 1
    if not -ndim <= out_axis < ndim:
        raise ValueError(
            f"{name}: out_axes {out_axis} is out of range for an output of rank {ndim}"
        )
    out_axis %= ndim
    if batched:
        return broadcast_batched(out.val, out.bdim, size, out_axis)
    return broadcast_batched(out, None, size, out_axis)  # unmapped: broadcast along it


def _owners(args: tuple, kwargs: dict) -> list[str]:
    """How errors name each input leaf: ``argument 0``, or its path in a pytree
    (``argument 1['W']``), or the keyword argument's."""
    names = []
    for i, a in enumerate(args):
        names += leaf_paths(a, f"argument {i}")
    for k in sorted(kwargs):
        names += leaf_paths(kwargs[k], f"keyword argument {k!r}")
    return names


def _mapped_size(name, leaves, leaf_axes, owners_of, axis_size) -> int:
    sizes = []
    for i, (x, ax) in enumerate(zip(leaves, leaf_axes, strict=True)):
        if ax is None:
            continue
        if not isinstance(ax, (int, np.integer)):
            raise TypeError(f"{name}: in_axes entries must be int or None, got {ax!r}")
        shape = get_aval(x).shape
        if not -len(shape) <= ax < len(shape):
            raise ValueError(
                f"{name}: in_axes {ax} is out of range for {owners_of()[i]} of shape {shape} "
                f"(rank {len(shape)})"
            )
        sizes.append((i, shape[ax % len(shape)]))
    if not sizes:
        if axis_size is None:
            raise ValueError(
                f"{name}: no input is mapped (every in_axes entry is None); pass axis_size"
            )
        return int(axis_size)
    distinct = {s for _, s in sizes}
    if len(distinct) > 1 or (axis_size is not None and distinct != {axis_size}):
        owners = owners_of()
        listing = ", ".join(f"{owners[i]} has size {s}" for i, s in sizes)
        if axis_size is not None:
            listing += f", axis_size is {axis_size}"
        raise ValueError(f"{name}: mapped axes have different sizes: {listing}")
    return sizes[0][1]


# ---------------------------------------------------------------------------
# Batching a jaxpr
# ---------------------------------------------------------------------------


def batched_aval(aval: ShapedArray, size: int, axis: int = 0) -> ShapedArray:
    shape = list(aval.shape)
    shape.insert(axis, size)
    return ShapedArray(tuple(shape), aval.dtype, aval.weak_type)


def batch_jaxpr(
    closed: ClosedJaxpr,
    size: int,
    in_dims: Sequence[int | None],
    out_axis: int | None = None,
    force: Sequence[bool] | None = None,
    name: str = "vmap",
) -> tuple[ClosedJaxpr, list[int | None]]:
    """``closed`` vectorised over an axis of ``size``, which input ``i`` carries at
    ``in_dims[i]`` (``None``: not batched). Returns the jaxpr and each output's batch
    axis (``None``: not batched).

    With ``out_axis=None`` batched outputs stay where the batching rules leave them
    (no transposes are added); otherwise they are moved to ``out_axis``, and unbatched
    outputs in ``force`` get a broadcast batch axis there."""
    assert force is None or out_axis is not None
    box: list[list[int | None]] = []

    def fun(*args: Any) -> list[Any]:
        with new_trace(BatchTrace, name, axis_size=size) as trace:
            pairs = zip(args, in_dims, strict=True)
            ins = [a if d is None else BatchTracer(trace, a, d) for a, d in pairs]
            outs = call_jaxpr(closed, *ins)
            results, out_dims = [], []
            for k, o in enumerate(outs):
                d = o.bdim if type(o) is BatchTracer and o._trace is trace else None
                x = o if d is None else o.val
                if out_axis is not None and (d is not None or (force is not None and force[k])):
                    x, d = broadcast_batched(x, d, size, out_axis), out_axis
                results.append(x)
                out_dims.append(d)
        box.append(out_dims)
        return results

    avals = [
        a if d is None else batched_aval(a, size, d)
        for a, d in zip(closed.in_avals, in_dims, strict=True)
    ]
    jaxpr = trace_derived(fun, avals, name)
    return jaxpr, box[0]
