"""Elementwise arithmetic: ``add``, ``sub``, ``neg``, ``mul``, ``div`` and floor division
with its remainder, with the helpers that build elementwise primitives and their rules (every
other elementwise family uses them, and their rules use these very primitives).
Operands have one shape (rank-0 operands broadcast) and one dtype; the NumPy layer
promotes and broadcasts before it binds them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import PYTHON_SCALARS, Primitive, Zero, get_aval
from functrans.primitives._lowering import ufunc
from functrans.primitives._rules import (
    Reciprocal,
    batch_size,
    batch_unary_passthrough,
    def_linear,
    def_zero_derivative,
    elementwise_abstract_eval,
    scalar_like,
)
from functrans.primitives._simplify import SIGN_INTO_LITERAL, NegationSink, new_eqn
from functrans.primitives.structural import (
    broadcast_batched,
    broadcast_in_dim_p,
    forward,
    is_value,
    lift_to_shape,
    sum_to_shape,
)

# --- constructors and rule helpers ---------------------------------------------------


def unary_primitive(
    name: str,
    impl: Any,
    partial: Any = None,
    *,
    kinds: str | None = "fc",
    zero_derivative: bool = False,
    out_dtype: Any = None,
    doc: str = "",
) -> tuple[Primitive, Any]:
    prim = Primitive(name)
    prim.def_impl(impl)
    prim.def_abstract_eval(elementwise_abstract_eval(name, kinds, out_dtype))
    if zero_derivative:
        def_zero_derivative(prim, 1)
    else:
        def_elementwise_derivatives(prim, partial)
    batch_unary_passthrough(prim)

    def apply(x: Any) -> Any:
        return prim.bind(x)

    apply.__name__ = name
    apply.__doc__ = doc or f"Elementwise ``{name}`` primitive."
    return prim, apply


def checked_binary(prim: Primitive, impl: Any, kinds: str | None) -> Any:
    """``impl`` of a binary elementwise primitive that applies its shape and dtype rule
    eagerly too, as tracing does: what NumPy would broadcast or promote beyond it
    (operands of two shapes or dtypes, a dtype kind it does not take) is an error. The
    common case (one dtype, one shape or a rank-0 operand) is checked inline."""
    allowed = kinds or "biufc"

    def checked(x: Any, y: Any) -> Any:
        if not same_type(x, y, allowed):
            prim.abstract_eval(get_aval(x), get_aval(y))  # raises the rule's own error
        return impl(x, y)

    return checked


def same_type(x: Any, y: Any, kinds: str) -> bool:
    """One dtype of an allowed kind, and one shape or a rank-0 operand (NumPy values;
    a Python number is left to the rule)."""
    try:
        dtype = x.dtype
        if (dtype is y.dtype or dtype == y.dtype) and dtype.kind in kinds:
            xs = x.shape
            if not xs:
                return True
            ys = y.shape
            return not ys or xs == ys
    except AttributeError:
        pass
    return False


def binary_primitive(
    name: str, impl: Any, *partials: Any, kinds: str | None = None, doc: str = ""
) -> tuple[Primitive, Any]:
    prim = Primitive(name)
    prim.def_impl(checked_binary(prim, impl, kinds))
    prim.def_abstract_eval(elementwise_abstract_eval(name, kinds))
    if partials:
        def_elementwise_derivatives(prim, *partials)
    batch_elementwise(prim)

    def apply(x: Any, y: Any) -> Any:
        return prim.bind(x, y)

    apply.__name__ = name
    apply.__doc__ = doc or f"Elementwise ``{name}`` primitive."
    return prim, apply


def add_tangents(a: Any, b: Any) -> Any:
    if type(a) is Zero:
        return b
    if type(b) is Zero:
        return a
    return add(a, b)


def _times_partial(t: Any, partial: Any) -> Any:
    if type(partial) is Reciprocal:
        return div(t, partial.denominator)
    return mul(t, partial)


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
                broadcast_in_dim_p.bind(x, shape=tuple(full), broadcast_dimensions=(out_dim,))
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


# --- linear and bilinear arithmetic ---------------------------------------------

add_p, add = binary_primitive("add", np.add, doc="``x + y`` for operands of one shape (or rank 0).")
def_linear(
    add_p,
    lambda g, x, y: sum_to_shape(g, get_aval(x).shape),
    lambda g, x, y: sum_to_shape(g, get_aval(y).shape),
)
add_p.def_lowering(ufunc("add", operator="+"))


def drop_identity(identity: int):
    """The simplify rule of a commutative operation with the identity element
    ``identity``: ``x + 0`` and ``0 + x`` are ``x``."""

    def rule(eqn, producers):
        (x, y), (out,) = eqn.invars, eqn.outvars
        if is_value(y, producers, identity):
            return forward(x, out)
        if is_value(x, producers, identity):
            return forward(y, out)
        return None

    return rule


add_p.def_simplify(drop_identity(0))


def _always(eqn):
    return True


def _signed_sum(eqn, operands, negated):
    # x - y as x + (-y): the negations combine into one (or none).
    x, y = operands
    neg_x, neg_y = negated[0], negated[1] != (eqn.primitive is sub_p)
    if neg_x and neg_y:
        return add_p, [x, y], True  # -x - y = -(x + y)
    if neg_x:
        return sub_p, [y, x], False  # -x + y = y - x
    return (sub_p if neg_y else add_p), [x, y], False


add_p.def_rule("negation_sink", NegationSink(_always, _signed_sum))

sub_p, sub = binary_primitive("sub", np.subtract, doc="``x - y``.")


def _sub_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    ans = sub(x, y)
    if type(tx) is Zero and type(ty) is Zero:
        return ans, Zero(get_aval(ans))
    shape = get_aval(ans).shape
    out = neg(lift_to_shape(ty, shape)) if type(tx) is Zero else lift_to_shape(tx, shape)
    if type(tx) is not Zero and type(ty) is not Zero:
        out = sub(out, ty)
    return ans, out


sub_p.def_jvp(_sub_jvp)
sub_p.def_vjp(
    lambda g, ans, x, y: sum_to_shape(g, get_aval(x).shape),
    lambda g, ans, x, y: sum_to_shape(neg(g), get_aval(y).shape),
)
sub_p.def_lowering(ufunc("subtract", operator="-"))


@sub_p.def_simplify
def _sub_simplify(eqn, producers):
    (x, y), (out,) = eqn.invars, eqn.outvars
    if is_value(y, producers, 0):
        return forward(x, out)
    if is_value(x, producers, 0) and y.aval.shape == out.aval.shape:
        return [new_eqn(neg_p, [y], {}, out)]
    return None


sub_p.def_rule("negation_sink", NegationSink(_always, _signed_sum))

neg_p, neg = unary_primitive("neg", np.negative, kinds=None, doc="``-x``.")
def_linear(neg_p, lambda g, x: neg(g))
neg_p.def_lowering(ufunc("negative", operator="-"))


@neg_p.def_simplify
def _neg_simplify(eqn, producers):
    (x,), (out,) = eqn.invars, eqn.outvars
    inner = producers.get(x)
    if inner is not None and inner.primitive is neg_p:
        return forward(inner.invars[0], out)
    return None


# -(-x) is x: a negation cancels the one it meets.
neg_p.def_rule(
    "negation_sink", NegationSink(_always, lambda eqn, operands, negated: operands[0], True)
)


mul_p, mul = binary_primitive("mul", np.multiply, doc="``x * y``.")


def _mul_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    ans = mul(x, y)
    out = Zero(get_aval(ans))
    if type(tx) is not Zero:
        out = lift_to_shape(mul(tx, y), get_aval(ans).shape)
    if type(ty) is not Zero:
        out = add_tangents(out, lift_to_shape(mul(x, ty), get_aval(ans).shape))
    return ans, out


mul_p.def_jvp(_mul_jvp)
mul_p.def_vjp(
    lambda g, ans, x, y: sum_to_shape(mul(g, y), get_aval(x).shape),
    lambda g, ans, x, y: sum_to_shape(mul(x, g), get_aval(y).shape),
)
mul_p.def_lowering(ufunc("multiply", operator="*"))
mul_p.def_simplify(drop_identity(1))


mul_p.def_rule("negation_sink", SIGN_INTO_LITERAL)

div_p, div = binary_primitive(
    "div",
    np.true_divide,
    lambda ans, x, y: Reciprocal(y),
    lambda ans, x, y: neg(div(ans, y)),
    kinds="fc",
    doc="``x / y`` for inexact operands.",
)
div_p.def_lowering(ufunc("divide", operator="/"))


@div_p.def_simplify
def _div_simplify(eqn, producers):
    (x, y), (out,) = eqn.invars, eqn.outvars
    return forward(x, out) if is_value(y, producers, 1) else None


div_p.def_rule("negation_sink", SIGN_INTO_LITERAL)

# --- floor division and remainders ----------------------------------------------------
# NumPy's own loops, so integers and floats divide exactly as in NumPy, division by
# zero included (integers give 0, floats inf or nan, each with NumPy's warning).

floor_divide_p, floor_divide = binary_primitive(
    "floor_divide",
    np.floor_divide,
    kinds="iuf",
    doc="``x // y``: the quotient rounded towards minus infinity (``numpy.floor_divide``).",
)
def_zero_derivative(floor_divide_p, 2)
floor_divide_p.def_lowering(ufunc("floor_divide", operator="//"))


remainder_p, remainder = binary_primitive(
    "remainder",
    np.remainder,
    # x % y = x - y * (x // y), with x // y piecewise constant.
    lambda ans, x, y: scalar_like(ans, 1),
    lambda ans, x, y: neg(floor_divide(x, y)),
    kinds="iuf",
    doc="``x % y``, with the sign of ``y`` (``numpy.remainder``).",
)
remainder_p.def_lowering(ufunc("remainder", operator="%"))


__all__ = [
    "add",
    "add_p",
    "div",
    "div_p",
    "floor_divide",
    "floor_divide_p",
    "mul",
    "mul_p",
    "neg",
    "neg_p",
    "remainder",
    "remainder_p",
    "sub",
    "sub_p",
]
