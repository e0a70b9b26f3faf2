"""One-line helpers for the common shapes of primitive rules.

Shape rules, derivative rules and batching rules for elementwise, linear and
zero-derivative primitives all look alike; these helpers write them once. Every
rule is written with functrans operations (``prim.bind``), never raw NumPy, so
that derivatives of derivatives and batches of derivatives need no extra code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from functrans.core import Primitive, ShapedArray, Zero, get_aval

# The helpers apply primitives (add, mul, broadcast_in_dim...) that the family modules
# define with these very helpers; they are looked up on the package when a rule runs.

# ---------------------------------------------------------------------------
# Shape and dtype rules
# ---------------------------------------------------------------------------


def fmt_shapes(avals: Sequence[ShapedArray]) -> str:
    return " and ".join(str(a.shape) for a in avals)


def elementwise_shape(name: str, avals: Sequence[ShapedArray]) -> tuple[int, ...]:
    """Operands of an elementwise primitive have one shape; rank-0 operands broadcast."""
    shape: tuple[int, ...] = ()
    for aval in avals:
        if aval.shape and shape and aval.shape != shape:
            raise ValueError(f"{name}: incompatible shapes {fmt_shapes(avals)}")
        if aval.shape:
            shape = aval.shape
    return shape


_KIND_ORDER = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def elementwise_dtype(name: str, avals: Sequence[ShapedArray]) -> tuple[np.dtype, bool]:
    """The common dtype of elementwise operands; weakly typed operands follow the rest."""
    strong = [a.dtype for a in avals if not a.weak_type]
    if strong:
        dtype = strong[0]
        # A weakly typed operand takes the dtype of the others, so it may not be of a
        # higher kind (a Python 2.5 with an int32 array: NumPy would compute float64).
        if any(d != dtype for d in strong) or any(
            a.weak_type and _KIND_ORDER[a.dtype.kind] > _KIND_ORDER[dtype.kind] for a in avals
        ):
            raise TypeError(
                f"{name}: operands must have one dtype, got "
                f"{' and '.join(a.dtype.name for a in avals)}"
            )
        return dtype, False
    return np.result_type(*[a.dtype for a in avals]), True


def elementwise_abstract_eval(
    name: str, kinds: str | None = None, out_dtype: Any = None
) -> Callable[..., ShapedArray]:
    """Shape rule of an elementwise primitive. ``kinds`` restricts the operand dtype
    kinds (``"fc"`` for floating functions); ``out_dtype`` fixes the result dtype."""

    def rule(*avals: ShapedArray, **params: Any) -> ShapedArray:
        shape = elementwise_shape(name, avals)
        dtype, weak = elementwise_dtype(name, avals)
        if kinds is not None and dtype.kind not in kinds:
            raise TypeError(f"{name}: operands of dtype {dtype.name} are not supported")
        if out_dtype is not None:
            return ShapedArray(shape, out_dtype)
        return ShapedArray(shape, dtype, weak)

    return rule


# ---------------------------------------------------------------------------
# Symbolic-zero arithmetic for tangents and cotangents
# ---------------------------------------------------------------------------


def is_zero(t: Any) -> bool:
    return type(t) is Zero


def zeros_like_aval(aval: ShapedArray) -> Any:
    return np.zeros(aval.shape, aval.dtype)


def instantiate(t: Any) -> Any:
    return zeros_like_aval(t.aval) if type(t) is Zero else t


def scalar_like(x: Any, value: Any) -> Any:
    """A NumPy scalar of ``x``'s dtype: the typed constant rules combine with ``x``."""
    return get_aval(x).dtype.type(value)


# ---------------------------------------------------------------------------
# Derivative rules
# ---------------------------------------------------------------------------


class Reciprocal(NamedTuple):
    """A partial derivative ``1 / denominator``: the chain rule divides by the
    denominator instead of multiplying by its reciprocal (one rounding, not two, so
    eager and compiled derivatives agree to the last bit)."""

    denominator: Any


def def_zero_derivative(prim: Primitive, num_operands: int) -> None:
    """The output never carries a derivative (comparisons, argmax, sign...)."""
    prim.differentiable = False

    def jvp(primals, tangents, **params):
        ans = prim.bind(*primals, **params)
        return ans, Zero(get_aval(ans))

    prim.def_jvp(jvp)
    prim.def_vjp(*[None] * num_operands)


def def_linear(prim: Primitive, *transposes: Callable[..., Any] | None) -> None:
    """A primitive linear in each of its differentiable operands (others are static
    data such as indices). ``transposes[i](g, *primals, **params)`` is the transpose
    of the map ``operand_i -> out``: the cotangent of operand ``i``.
    """
    linear = [t is not None for t in transposes]

    def jvp(primals, tangents, **params):
        ans = prim.bind(*primals, **params)
        if all(type(t) is Zero for t, lin in zip(tangents, linear, strict=True) if lin):
            return ans, Zero(get_aval(ans))
        ans_dtype = get_aval(ans).dtype
        args = [
            _instantiate_as(t, ans_dtype) if lin else p
            for p, t, lin in zip(primals, tangents, linear, strict=True)
        ]
        return ans, prim.bind(*args, **params)

    def make_vjp(transpose):
        def vjp(g, ans, *primals, **params):
            return transpose(g, *primals, **params)

        return vjp

    prim.def_jvp(jvp)
    prim.def_vjp(*[None if t is None else make_vjp(t) for t in transposes])


def _instantiate_as(t: Any, dtype: np.dtype) -> Any:
    """A tangent, with a symbolic zero materialised; the zero tangent of a weakly typed
    operand (a Python scalar) takes the result's dtype, as the operand itself did."""
    if type(t) is not Zero:
        return t
    return np.zeros(t.aval.shape, dtype if t.aval.weak_type else t.aval.dtype)


class OperandRules:
    """The reverse-mode rules of a variadic primitive: ``rule_for(i)`` is operand
    ``i``'s rule (``None`` for an operand without a derivative, such as indices)."""

    __slots__ = ("rule_for",)

    def __init__(self, rule_for: Callable[[int], Callable[..., Any] | None]):
        self.rule_for = rule_for

    def __getitem__(self, i: int) -> Callable[..., Any] | None:
        return self.rule_for(i)


# ---------------------------------------------------------------------------
# Batching rules
# ---------------------------------------------------------------------------


def batch_size(args: Sequence[Any], dims: Sequence[int | None]) -> int:
    for x, d in zip(args, dims, strict=True):
        if d is not None:
            return get_aval(x).shape[d]
    raise ValueError("batching rule called with no batched operand")


def batch_unary_passthrough(prim: Primitive) -> None:
    """Batching rule of a one-operand primitive that acts elementwise (no params
    that name axes): the batch axis just passes through."""

    def rule(args, dims, **params):
        (x,), (d,) = args, dims
        return prim.bind(x, **params), d

    prim.def_batch(rule)
