"""Machinery shared by the control-flow primitives.

* tracing user functions (over pytrees) into sub-jaxprs, with the values they close
  over hoisted into explicit leading operands;
* naming pytree leaves in error messages;
* running a sub-jaxpr fast on NumPy values (the implementations loop over it);
* the conventions of control flow over ``transforms/derived.py`` and
  ``batching.batch_jaxpr``, which derive the JVP, reverse-mode and batched jaxprs of a
  sub-jaxpr: batch axes at 0, and which outputs reverse mode may track.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import Primitive, ShapedArray, Tracer, get_aval, is_float
from functrans.ir import ClosedJaxpr, Jaxpr, Var
from functrans.primitives import convert_element_type
from functrans.primitives.structural import broadcast_batched
from functrans.transforms.api_util import as_array_arg
from functrans.transforms.batching import batch_jaxpr
from functrans.transforms.jit import codegen
from functrans.transforms.staging import trace_to_jaxpr
from functrans.tree_util import PyTreeDef, tree_unflatten

# ---------------------------------------------------------------------------
# Values, avals and names
# ---------------------------------------------------------------------------


def same_type(a: ShapedArray, b: ShapedArray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype


def zeros(aval: ShapedArray) -> np.ndarray:
    return np.zeros(aval.shape, aval.dtype)


def cast(x: Any, dtype: np.dtype) -> Any:
    if get_aval(x).dtype == dtype:
        return x
    if isinstance(x, Tracer):
        return convert_element_type(x, dtype)
    return np.asarray(x, dtype)[()] if np.ndim(x) == 0 else np.asarray(x, dtype)


def aval_of(x: Any) -> ShapedArray:
    """The aval a control-flow operand is traced at (Python scalars stay weakly typed)."""
    return get_aval(x)


# ---------------------------------------------------------------------------
# Tracing user functions
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Traced:
    """A user function traced once: ``jaxpr`` takes ``consts`` (the values the function
    closes over, possibly tracers of enclosing transforms) followed by its arguments."""

    jaxpr: ClosedJaxpr
    consts: list[Any]
    out_info: Any

    @property
    def out_avals(self) -> list[ShapedArray]:
        return self.jaxpr.out_avals

    @property
    def num_consts(self) -> int:
        return len(self.consts)


def trace_fun(
    fun: Callable,
    in_tree: PyTreeDef,
    in_avals: Sequence[ShapedArray],
    name: str,
    flatten_out: Callable[[Any], tuple[list[Any], Any]],
) -> Traced:
    """Trace ``fun`` (called on the pytree ``in_tree`` of tracers at ``in_avals``).

    ``flatten_out(out) -> (leaves, info)`` flattens (and checks) the output; ``info``
    is returned as ``Traced.out_info``.
    """
    info_box: list[Any] = []

    def flat(*args: Any) -> list[Any]:
        leaves, info = flatten_out(fun(*tree_unflatten(in_tree, args)))
        info_box.append(info)
        return [as_array_arg(x, f"{name}: output") for x in leaves]

    jaxpr, consts = trace_to_jaxpr(flat, list(in_avals), name)
    hoisted = Jaxpr([], jaxpr.constvars + jaxpr.invars, jaxpr.outvars, jaxpr.eqns)
    return Traced(ClosedJaxpr(hoisted, []), consts, info_box[0])


def with_invars(closed: ClosedJaxpr, invars: Sequence[Var], outvars: Sequence[Any]) -> ClosedJaxpr:
    """The same program with its inputs and outputs listed as given (a permutation, or
    extra unused inputs)."""
    j = closed.jaxpr
    return ClosedJaxpr(Jaxpr(j.constvars, invars, outvars, j.eqns), closed.consts)


def split(items: Sequence[Any], sizes: Sequence[int]) -> list[list[Any]]:
    out, start = [], 0
    for n in sizes:
        out.append(list(items[start : start + n]))
        start += n
    assert start == len(items), (start, len(items))
    return out


# ---------------------------------------------------------------------------
# Fast evaluation of a sub-jaxpr on NumPy values
# ---------------------------------------------------------------------------


def compiled(closed: ClosedJaxpr) -> Callable[..., Sequence]:
    """``closed`` compiled to a straight-line NumPy function by ``jit``'s code generator
    (once: ``codegen`` caches it on the jaxpr), so that a loop over it costs one call per
    iteration plus the NumPy work. Constant results are NumPy values of their type."""
    return codegen.compiled(closed).typed_fn


def run(closed: ClosedJaxpr, *args: Any) -> list[Any]:
    """Evaluate ``closed`` on concrete values with its compiled form."""
    return list(compiled(closed)(*args))


# ---------------------------------------------------------------------------
# Dependence analysis
# ---------------------------------------------------------------------------


def depends_on(
    jaxpr: Jaxpr, flags: Sequence[bool], through: Callable[[Primitive], bool] = lambda p: True
) -> list[bool]:
    """For each output of ``jaxpr``, whether it depends on a flagged input (only through
    primitives for which ``through(primitive)`` holds)."""
    marked = {id(v) for v, f in zip(jaxpr.invars, flags, strict=True) if f}
    for eqn in jaxpr.eqns:
        if through(eqn.primitive) and any(type(x) is Var and id(x) in marked for x in eqn.invars):
            marked.update(id(v) for v in eqn.outvars)
    return [type(x) is Var and id(x) in marked for x in jaxpr.outvars]


# ---------------------------------------------------------------------------
# Batching: control flow keeps batch axes at 0
# ---------------------------------------------------------------------------


def batch_body(
    closed: ClosedJaxpr, size: int, batched: Sequence[bool], force: Sequence[bool]
) -> tuple[ClosedJaxpr, list[bool]]:
    """``closed`` vectorised over a leading axis of ``size`` on the ``batched`` inputs.
    Outputs are batched on axis 0 when they depend on a batched input or are in
    ``force``. Returns the jaxpr and which outputs are batched."""
    in_dims = [0 if b else None for b in batched]
    jaxpr, out_dims = batch_jaxpr(closed, size, in_dims, out_axis=0, force=force)
    return jaxpr, [d is not None for d in out_dims]


def batch_operands(
    vals: Sequence[Any], dims: Sequence[int | None], size: int, force: Sequence[bool] | None = None
) -> list[Any]:
    """Operands with their batch axis moved to 0; those in ``force`` that are unbatched
    get a broadcast batch axis."""
    return [
        x if d is None and not (force is not None and force[i]) else broadcast_batched(x, d, size)
        for i, (x, d) in enumerate(zip(vals, dims, strict=True))
    ]


# ---------------------------------------------------------------------------
# Reverse mode
# ---------------------------------------------------------------------------


def tracked_outputs(jaxpr: Jaxpr, tracked_in: Sequence[bool]) -> list[bool]:
    """Which outputs reverse mode may track, given the tracked inputs: those depending
    on one through differentiable primitives, with a floating dtype."""
    deps = depends_on(jaxpr, tracked_in, lambda p: p.differentiable)
    return [d and is_float(v.aval) for d, v in zip(deps, jaxpr.outvars, strict=True)]
