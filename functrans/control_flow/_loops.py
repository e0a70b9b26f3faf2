"""Loop bodies traced once: checking that a body keeps its carry's type.

A body is traced at the types of the initial carry. A Python scalar in the initial
carry is weakly typed: if the body turns it into another dtype (``0.0`` accumulating
``float32`` values), the carry takes that dtype and the body is traced again, as in
JAX. A weakly typed value returned for a carry leaf takes the carry's dtype.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from functrans.control_flow._common import Traced, cast, same_type, trace_fun
from functrans.core import PYTHON_SCALARS, ShapedArray, get_aval
from functrans.transforms.api_util import fun_name
from functrans.tree_util import PyTreeDef


@dataclasses.dataclass(frozen=True)
class LoopNames:
    """How errors name a loop: the API function (``what``), the argument holding the
    body (``label``), the user's body function, and a display path per carry leaf."""

    what: str
    label: str
    fun: Callable
    carry_paths: Sequence[str]


def trace_loop_body(
    fun: Callable,
    names: LoopNames,
    in_tree: PyTreeDef,
    carry_tree: PyTreeDef,
    carry_avals: Sequence[ShapedArray],
    other_avals: Sequence[ShapedArray],
    flatten_out: Callable[[Any], tuple[list[Any], Any]],
) -> tuple[Traced, list[ShapedArray]]:
    """Trace a loop body whose arguments (pytree ``in_tree``) are the carry leaves then
    ``other_avals``. ``flatten_out(out) -> (leaves, (out_carry_tree, ...))`` lists the
    carry leaves first. Returns the traced body and the carry types it was traced at.
    """
    what, label, carry_paths = names.what, names.label, names.carry_paths
    body_name = fun_name(names.fun)
    name = f"{what}:{body_name}"
    carry_avals = list(carry_avals)
    k = len(carry_avals)
    promoted = False
    while True:
        fix = _weak_carry_outputs(flatten_out, carry_avals)
        traced = trace_fun(fun, in_tree, [*carry_avals, *other_avals], name, fix)
        out_tree = traced.out_info[0]
        if out_tree != carry_tree:
            raise TypeError(
                f"{what}: {label} `{body_name}` must return a carry with the pytree "
                f"structure of its input carry {carry_tree}, but returns {out_tree}"
            )
        out_avals = traced.out_avals[:k]
        bad = [j for j in range(k) if not same_type(out_avals[j], carry_avals[j])]
        promotable = all(
            carry_avals[j].weak_type and carry_avals[j].shape == out_avals[j].shape for j in bad
        )
        if bad and (promoted or not promotable):
            j = bad[0]
            raise TypeError(
                f"{what}: {label} `{body_name}` must return a carry of the same shapes "
                f"and dtypes as its input, but carry leaf `{carry_paths[j]}` is "
                f"{carry_avals[j].str_short()} on input and {out_avals[j].str_short()} on "
                "output"
            )
        if not bad and not any(a.weak_type for a in carry_avals):
            return traced, carry_avals
        # Python scalars in the carry: their dtype is now settled, so trace the body
        # again at strongly typed carries (the loop's values are arrays, not scalars).
        carry_avals = [
            (out_avals[j] if j in bad else a).strip_weak_type() for j, a in enumerate(carry_avals)
        ]
        promoted = True


def _weak_carry_outputs(
    flatten_out: Callable[[Any], tuple[list[Any], Any]], carry_avals: Sequence[ShapedArray]
) -> Callable[[Any], tuple[list[Any], Any]]:
    def flatten(out: Any) -> tuple[list[Any], Any]:
        leaves, info = flatten_out(out)
        fixed = []
        for j, x in enumerate(leaves):
            if j < len(carry_avals):
                try:
                    aval = get_aval(x)
                except TypeError:
                    aval = None
                target = carry_avals[j]
                if (
                    aval is not None
                    and aval.weak_type
                    and aval.shape == target.shape
                    and aval.dtype != target.dtype
                ):
                    x = cast(x, target.dtype)
            fixed.append(x)
        return fixed, info

    return flatten


def promote_init(leaves: Sequence[Any], avals: Sequence[ShapedArray]) -> list[Any]:
    """Initial carry values cast to the carry types a body was traced at."""
    return [
        a.dtype.type(x) if isinstance(x, PYTHON_SCALARS) else cast(x, a.dtype)
        for x, a in zip(leaves, avals, strict=True)
    ]
