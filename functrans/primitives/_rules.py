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

import functrans.primitives as _P
from functrans.core import PYTHON_SCALARS, Primitive, ShapedArray, Zero, get_aval

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


def add_tangents(a: Any, b: Any) -> Any:
    if type(a) is Zero:
        return b
    if type(b) is Zero:
        return a
    return _P.add_p.bind(a, b)


def scalar_like(x: Any, value: Any) -> Any:
    """A NumPy scalar of ``x``'s dtype: the typed constant rules combine with ``x``."""
    return get_aval(x).dtype.type(value)


def sum_to_shape(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``x`` down to a rank-0 ``shape``: the cotangent of a broadcast scalar operand."""
    x_shape = get_aval(x).shape
    if x_shape == shape:
        return x
    assert shape == (), (x_shape, shape)
    return _P.reduce_sum_p.bind(x, axes=tuple(range(len(x_shape))))


# ---------------------------------------------------------------------------
# Derivative rules
# ---------------------------------------------------------------------------


class Reciprocal(NamedTuple):
    """A partial derivative ``1 / denominator``: the chain rule divides by the
    denominator instead of multiplying by its reciprocal (one rounding, not two, so
    eager and compiled derivatives agree to the last bit)."""

    denominator: Any


def _times_partial(t: Any, partial: Any) -> Any:
    if type(partial) is Reciprocal:
        return _P.div_p.bind(t, partial.denominator)
    return _P.mul_p.bind(t, partial)


def def_elementwise_derivatives(prim: Primitive, *partials: Callable[..., Any] | None) -> None:
    """Derivative rules of an elementwise primitive from its partial derivatives.

    ``partials[i](ans, *primals, **params)`` is ∂out/∂primals[i], elementwise (``None``
    for an operand without a derivative; a ``Reciprocal(d)`` for ``1 / d``). Forward
    mode sums ``tangent_i * partial_i``; reverse mode gives operand ``i`` the cotangent
    ``g * partial_i``, summed over the broadcast if the operand was a rank-0 scalar.
    """

    def jvp(primals, tangents, **params):
        ans = prim.bind(*primals, **params)
        out = Zero(get_aval(ans))
        typed = _scalars_typed_like(primals, ans)
        for t, partial in zip(tangents, partials, strict=True):
            if partial is not None and type(t) is not Zero:
                term = _times_partial(t, partial(ans, *typed, **params))
                out = add_tangents(out, lift_to_shape(term, get_aval(ans).shape))
        return ans, out

    def make_vjp(i, partial):
        def vjp(g, ans, *primals, **params):
            typed = _scalars_typed_like(primals, ans)
            ct = _times_partial(g, partial(ans, *typed, **params))
            return sum_to_shape(ct, get_aval(primals[i]).shape)

        return vjp

    prim.def_jvp(jvp)
    prim.def_vjp(*[None if p is None else make_vjp(i, p) for i, p in enumerate(partials)])


def _scalars_typed_like(primals: Sequence[Any], ans: Any) -> list[Any]:
    """Python-scalar operands as NumPy scalars of the result's dtype. A partial
    derivative computes with its operands; a weakly typed ``2.0`` would come out of
    NumPy as a float64 scalar and promote a float32 derivative to float64."""
    dtype = get_aval(ans).dtype
    if dtype.kind not in "fc":
        return list(primals)
    return [dtype.type(p) if type(p) in PYTHON_SCALARS else p for p in primals]


def lift_to_shape(t: Any, shape: tuple[int, ...]) -> Any:
    """A rank-0 tangent of an operand that broadcast inside an elementwise primitive,
    lifted to the output's ``shape``."""
    if get_aval(t).shape == shape:
        return t
    return _P.broadcast_in_dim_p.bind(t, shape=shape, broadcast_dimensions=())


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


def def_bilinear(prim: Primitive, lhs_vjp: Callable[..., Any], rhs_vjp: Callable[..., Any]) -> None:
    """A primitive linear in each operand separately (mul, matmul): the tangent is
    ``f(dx, y) + f(x, dy)``. ``lhs_vjp(g, x, y, **params)`` and ``rhs_vjp`` give the
    cotangents."""

    def jvp(primals, tangents, **params):
        x, y = primals
        tx, ty = tangents
        ans = prim.bind(x, y, **params)
        out = Zero(get_aval(ans))
        if type(tx) is not Zero:
            out = prim.bind(tx, y, **params)
        if type(ty) is not Zero:
            out = add_tangents(out, prim.bind(x, ty, **params))
        return ans, out

    prim.def_jvp(jvp)
    prim.def_vjp(
        lambda g, ans, x, y, **params: lhs_vjp(g, x, y, **params),
        lambda g, ans, x, y, **params: rhs_vjp(g, x, y, **params),
    )


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


def move_axis(x: Any, src: int, dst: int) -> Any:
    if src == dst:
        return x
    ndim = get_aval(x).ndim
    perm = [i for i in range(ndim) if i != src]
    perm.insert(dst, src)
    return _P.transpose_p.bind(x, permutation=tuple(perm))


def batch_size(args: Sequence[Any], dims: Sequence[int | None]) -> int:
    for x, d in zip(args, dims, strict=True):
        if d is not None:
            return get_aval(x).shape[d]
    raise ValueError("batching rule called with no batched operand")


def broadcast_batched(x: Any, d: int | None, size: int, dst: int = 0) -> Any:
    """``x`` with its batch axis at ``dst``, materialising the axis if it is absent."""
    if d is not None:
        return move_axis(x, d, dst)
    shape = list(get_aval(x).shape)
    dims = tuple(i if i < dst else i + 1 for i in range(len(shape)))
    shape.insert(dst, size)
    return _P.broadcast_in_dim_p.bind(x, shape=tuple(shape), broadcast_dimensions=dims)


def batch_elementwise(prim: Primitive) -> None:
    """Batching rule of an elementwise primitive: operands batched on the same axis
    with full rank pass through untouched; others are moved or broadcast to match."""

    def rule(args, dims, **params):
        avals = [get_aval(x) for x in args]
        ranks = [a.ndim - (d is not None) for a, d in zip(avals, dims, strict=True)]
        rank = max(ranks)
        out_dim = next(
            (d for d, r in zip(dims, ranks, strict=True) if d is not None and r == rank),
            0,
        )
        size = batch_size(args, dims)
        new_args = []
        for x, d, r in zip(args, dims, ranks, strict=True):
            if d is None and r == 0:
                new_args.append(x)  # unbatched scalars broadcast inside the primitive
                continue
            if r == rank:
                new_args.append(broadcast_batched(x, d, size, out_dim))
                continue
            # A batched rank-0 operand against higher-rank ones: expand it to full rank.
            x = broadcast_batched(x, d, size, 0)
            full = list(_full_shape(avals, dims, rank))
            full.insert(out_dim, size)
            new_args.append(
                _P.broadcast_in_dim_p.bind(x, shape=tuple(full), broadcast_dimensions=(out_dim,))
            )
        return prim.bind(*new_args, **params), out_dim

    prim.def_batch(rule)


def _full_shape(avals, dims, rank):
    for a, d in zip(avals, dims, strict=True):
        shape = list(a.shape)
        if d is not None:
            del shape[d]
        if len(shape) == rank:
            return tuple(shape)
    raise AssertionError("no full-rank operand")


def batch_unary_passthrough(prim: Primitive) -> None:
    """Batching rule of a one-operand primitive that acts elementwise (no params
    that name axes): the batch axis just passes through."""

    def rule(args, dims, **params):
        (x,), (d,) = args, dims
        return prim.bind(x, **params), d

    prim.def_batch(rule)
