"""Elementwise primitives: transcendental functions, powers, extrema, comparisons,
select, ``fmod`` and dtype conversion (arithmetic is in ``arithmetic.py``). Operands
have one shape (rank-0 operands broadcast) and one dtype; the NumPy layer promotes and
broadcasts before it binds them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from functrans.core import Primitive, ShapedArray, Zero, get_aval
from functrans.ir import JaxprEqn, Literal
from functrans.primitives._lowering import (
    Lowering,
    LoweringContext,
    alias,
    dtype_source,
    ufunc,
)
from functrans.primitives._rules import (
    Reciprocal,
    batch_unary_passthrough,
    def_zero_derivative,
    elementwise_abstract_eval,
    elementwise_dtype,
    elementwise_shape,
    scalar_like,
)
from functrans.primitives.arithmetic import (
    add,
    batch_elementwise,
    binary_primitive,
    checked_binary,
    def_elementwise_derivatives,
    div,
    floor_divide,
    mul,
    neg,
    same_type,
    sub,
    unary_primitive,
)
from functrans.primitives.structural import forward, sum_to_shape


def _checked_select(pred: Any, x: Any, y: Any) -> Any:
    if not (
        getattr(pred, "dtype", None) == np.bool_
        and same_type(x, y, "biufc")
        and (not pred.shape or pred.shape == (x.shape or y.shape))
    ):
        select_p.abstract_eval(get_aval(pred), get_aval(x), get_aval(y))
    return np.where(pred, x, y)


# --- transcendental and other unary functions -------------------------------------


def _sigmoid_impl(x: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-x)) in one buffer: exp(-x) overflows to inf for very negative x,
    # which gives the correct 0 (relative accuracy is kept: no cancellation happens), so
    # the overflow is silenced. np.logaddexp would be stable too, but ~25x slower.
    with np.errstate(over="ignore"):
        if np.ndim(x) == 0:
            return np.reciprocal(np.exp(np.negative(x)) + x.dtype.type(1))
        out = np.negative(x)
        np.exp(out, out=out)
        np.add(out, 1, out=out)
        return np.reciprocal(out, out=out)


def _one(x: Any) -> Any:
    return scalar_like(x, 1)


exp_p, exp = unary_primitive("exp", np.exp, lambda ans, x: ans)
log_p, log = unary_primitive("log", np.log, lambda ans, x: Reciprocal(x))
log1p_p, log1p = unary_primitive("log1p", np.log1p, lambda ans, x: Reciprocal(add(_one(x), x)))
expm1_p, expm1 = unary_primitive("expm1", np.expm1, lambda ans, x: add(ans, _one(x)))
tanh_p, tanh = unary_primitive("tanh", np.tanh, lambda ans, x: sub(_one(ans), mul(ans, ans)))
sigmoid_p, sigmoid = unary_primitive(
    "sigmoid",
    _sigmoid_impl,
    lambda ans, x: mul(ans, sub(_one(ans), ans)),
    doc="Logistic function ``1 / (1 + exp(-x))``, stable for large ``|x|``.",
)
sin_p, sin = unary_primitive("sin", np.sin, lambda ans, x: cos(x))
cos_p, cos = unary_primitive("cos", np.cos, lambda ans, x: neg(sin(x)))
tan_p, tan = unary_primitive("tan", np.tan, lambda ans, x: add(_one(ans), mul(ans, ans)))
atan_p, atan = unary_primitive(
    "atan", np.arctan, lambda ans, x: Reciprocal(add(_one(x), mul(x, x)))
)
sqrt_p, sqrt = unary_primitive("sqrt", np.sqrt, lambda ans, x: div(scalar_like(ans, 0.5), ans))
abs_p, abs = unary_primitive("abs", np.abs, lambda ans, x: sign(x), kinds=None)
sign_p, sign = unary_primitive("sign", np.sign, kinds=None, zero_derivative=True)
floor_p, floor = unary_primitive("floor", np.floor, zero_derivative=True)
exp_p.def_lowering(ufunc("exp"))
log_p.def_lowering(ufunc("log"))
log1p_p.def_lowering(ufunc("log1p"))
expm1_p.def_lowering(ufunc("expm1"))
tanh_p.def_lowering(ufunc("tanh"))
sin_p.def_lowering(ufunc("sin"))
cos_p.def_lowering(ufunc("cos"))
tan_p.def_lowering(ufunc("tan"))
atan_p.def_lowering(ufunc("arctan"))
sqrt_p.def_lowering(ufunc("sqrt"))
abs_p.def_lowering(ufunc("absolute"))
sign_p.def_lowering(ufunc("sign"))
floor_p.def_lowering(ufunc("floor"))


@sigmoid_p.def_lowering
def _sigmoid_lowering(ctx: LoweringContext, eqn: JaxprEqn) -> None:
    # 1 / (1 + exp(-x)) in place, as the impl computes it and four times faster than
    # calling it; exp(-x) overflows to inf for very negative x, giving the correct 0,
    # so the function runs with overflow warnings off.
    (x,), (out,) = ctx.operands(eqn), eqn.outvars
    ctx.ignore_overflow()
    if out.aval.ndim == 0:
        ctx.assign(out, f"np.reciprocal(np.add(np.exp(np.negative({x})), 1.0))")
        return
    o = ctx.assign(out, f"np.negative({x}{ctx.out_buffer(eqn)})")
    ctx.statement(f"np.exp({o}, out={o})")
    ctx.statement(f"np.add({o}, 1.0, out={o})")
    ctx.statement(f"np.reciprocal({o}, out={o})")
    ctx.own(out)


# --- powers --------------------------------------------------------------------------

integer_pow_p = Primitive("integer_pow")


def integer_pow(x: Any, y: int) -> Any:
    """``x ** y`` for a static Python integer ``y``."""
    return integer_pow_p.bind(x, y=y)


def _integer_pow_impl(x, *, y):
    if y < 0 and x.dtype.kind not in "fc":
        raise ValueError(f"integer_pow: integers to negative powers ({y}) are not allowed")
    return np.power(x, y) if y != 2 else np.multiply(x, x)


integer_pow_p.def_impl(_integer_pow_impl)
integer_pow_p.def_abstract_eval(lambda x, *, y: x)


def _integer_pow_partial(ans, x, *, y):
    if y == 0:
        return scalar_like(x, 0)
    if y == 1:
        return scalar_like(x, 1)
    return mul(scalar_like(x, y), x if y == 2 else integer_pow(x, y - 1))


def_elementwise_derivatives(integer_pow_p, _integer_pow_partial)
batch_unary_passthrough(integer_pow_p)


def _integer_pow_source(args, eqn, out):
    (x,), y = args, int(eqn.params["y"])
    if y == 2:
        return f"np.multiply({x}, {x}{out})"
    return f"np.power({x}, {y}{out})"


integer_pow_p.def_lowering(Lowering(_integer_pow_source, elementwise=True, out="operand"))
integer_pow_p.def_simplify(
    lambda eqn, producers: forward(eqn.invars[0], eqn.outvars[0]) if eqn.params["y"] == 1 else None
)


def _pow_partial_x(ans: Any, x: Any, y: Any) -> Any:
    # d/dx x^y = y x^(y-1), taken as 0 where y == 0: x^0 is constant, also at x = 0
    # (where y x^(y-1) would be 0 * inf). As in JAX.
    y_is_zero = eq(y, scalar_like(y, 0))
    safe_y = select(y_is_zero, _ones_full(y), y)
    return select(y_is_zero, _zeros_like(ans), mul(safe_y, pow(x, sub(safe_y, _one(y)))))


pow_p, pow = binary_primitive(
    "pow",
    np.power,
    _pow_partial_x,
    # d/dy x^y = x^y log x, taken as 0 where x == 0 (the limit for y > 0).
    lambda ans, x, y: select(
        eq(x, scalar_like(x, 0)), _zeros_like(ans), mul(ans, log(_where_zero(x)))
    ),
    kinds="iufc",
    doc="``x ** y`` (integers to negative integer powers raise ``ValueError``, as in NumPy).",
)
pow_p.def_lowering(ufunc("power"))


def _zeros_like(x: Any) -> Any:
    aval = get_aval(x)
    return np.zeros(aval.shape, aval.dtype)


def _where_zero(x: Any) -> Any:
    # log(x) with the zeros replaced by ones, so the unused branch stays finite.
    return select(eq(x, scalar_like(x, 0)), _ones_full(x), x)


def _ones_full(x: Any) -> Any:
    aval = get_aval(x)
    return np.ones(aval.shape, aval.dtype)


def _minmax_partials(pick_x):
    # Ties share the derivative equally, as in JAX: d max(x, x) / dx = 1/2 each.
    def partial_x(ans, x, y):
        return _tie_split(pick_x(x, y), eq(x, y), x)

    def partial_y(ans, x, y):
        return _tie_split(pick_x(y, x), eq(x, y), y)

    return partial_x, partial_y


def _tie_split(wins: Any, ties: Any, like: Any) -> Any:
    shape, dtype = get_aval(wins).shape, get_aval(like).dtype
    zeros, ones, halves = (np.full(shape, v, dtype) for v in (0, 1, 0.5))
    return select(ties, halves, select(wins, ones, zeros))


max_p, max = binary_primitive("max", np.maximum, *_minmax_partials(lambda a, b: gt(a, b)))
min_p, min = binary_primitive("min", np.minimum, *_minmax_partials(lambda a, b: lt(a, b)))
max_p.def_lowering(ufunc("maximum"))
min_p.def_lowering(ufunc("minimum"))


# --- comparisons: boolean results, no derivative ------------------------------------


def _comparison(name: str, impl: Any) -> tuple[Primitive, Any]:
    prim = Primitive(name)
    prim.def_impl(checked_binary(prim, impl, None))
    prim.def_abstract_eval(elementwise_abstract_eval(name, None, np.bool_))
    def_zero_derivative(prim, 2)
    batch_elementwise(prim)

    def apply(x: Any, y: Any) -> Any:
        return prim.bind(x, y)

    apply.__name__ = name
    apply.__doc__ = f"Elementwise comparison ``{name}``; boolean result."
    return prim, apply


eq_p, eq = _comparison("eq", np.equal)
ne_p, ne = _comparison("ne", np.not_equal)
lt_p, lt = _comparison("lt", np.less)
le_p, le = _comparison("le", np.less_equal)
gt_p, gt = _comparison("gt", np.greater)
ge_p, ge = _comparison("ge", np.greater_equal)
eq_p.def_lowering(ufunc("equal", operator="=="))
ne_p.def_lowering(ufunc("not_equal", operator="!="))
lt_p.def_lowering(ufunc("less", operator="<"))
le_p.def_lowering(ufunc("less_equal", operator="<="))
gt_p.def_lowering(ufunc("greater", operator=">"))
ge_p.def_lowering(ufunc("greater_equal", operator=">="))

not_p, logical_not = unary_primitive("not", np.logical_not, kinds="b", zero_derivative=True)
is_finite_p, is_finite = unary_primitive(
    "is_finite",
    np.isfinite,
    zero_derivative=True,
    out_dtype=np.bool_,
    doc="True where ``x`` is neither infinite nor NaN (``numpy.isfinite``); boolean.",
)
and_p, logical_and = _comparison("and", np.logical_and)
or_p, logical_or = _comparison("or", np.logical_or)
not_p.def_lowering(ufunc("logical_not"))
is_finite_p.def_lowering(ufunc("isfinite"))
and_p.def_lowering(ufunc("logical_and"))
or_p.def_lowering(ufunc("logical_or"))


# --- select ---------------------------------------------------------------------------

select_p = Primitive("select")


def select(pred: Any, on_true: Any, on_false: Any) -> Any:
    """``on_true`` where ``pred`` else ``on_false``, elementwise (``numpy.where``)."""
    return select_p.bind(pred, on_true, on_false)


select_p.def_impl(_checked_select)


@select_p.def_abstract_eval
def _select_abstract_eval(pred: ShapedArray, on_true: ShapedArray, on_false: ShapedArray):
    if pred.dtype != np.bool_:
        raise TypeError(f"select: the predicate must be boolean, got {pred.dtype.name}")
    shape = elementwise_shape("select", (pred, on_true, on_false))
    dtype, weak = elementwise_dtype("select", (on_true, on_false))
    return ShapedArray(shape, dtype, weak)


def _select_jvp(primals, tangents):
    pred, x, y = primals
    _, tx, ty = tangents
    ans = select(pred, x, y)
    if type(tx) is Zero and type(ty) is Zero:
        return ans, Zero(get_aval(ans))
    zeros = _zeros_like(ans)
    tx = zeros if type(tx) is Zero else tx
    ty = zeros if type(ty) is Zero else ty
    return ans, select(pred, tx, ty)


def _select_vjp_branch(take_true: bool):
    def vjp(g, ans, pred, x, y):
        zeros = _zeros_like(g)
        ct = select(pred, g, zeros) if take_true else select(pred, zeros, g)
        return sum_to_shape(ct, get_aval(x if take_true else y).shape)

    return vjp


select_p.def_jvp(_select_jvp)
select_p.def_vjp(None, _select_vjp_branch(True), _select_vjp_branch(False))
batch_elementwise(select_p)
select_p.def_lowering(
    Lowering(lambda args, eqn, out: f"np.where({', '.join(args)})", elementwise=True)
)


@select_p.def_simplify
def _select_simplify(eqn, producers):
    _, x, y = eqn.invars
    return forward(x, eqn.outvars[0]) if x is y else None


# --- dtype conversion -------------------------------------------------------------------

convert_element_type_p = Primitive("convert_element_type")


def convert_element_type(x: Any, new_dtype: Any, weak_type: bool = False) -> Any:
    """``x`` cast to ``new_dtype`` (``x.astype(new_dtype)``). With ``weak_type`` the
    result is typed as a Python number of that kind would be: it adopts the dtype of
    the arrays it meets (a loop index, say)."""
    if weak_type:
        return convert_element_type_p.bind(x, new_dtype=np.dtype(new_dtype), weak_type=True)
    return convert_element_type_p.bind(x, new_dtype=np.dtype(new_dtype))


def _convert_impl(x, *, new_dtype, weak_type=False):
    return np.asarray(x).astype(new_dtype)


convert_element_type_p.def_impl(_convert_impl)
convert_element_type_p.def_abstract_eval(
    lambda x, *, new_dtype, weak_type=False: ShapedArray(x.shape, new_dtype, weak_type)
)


def _convert_jvp(primals, tangents, *, new_dtype, weak_type=False):
    (x,), (t,) = primals, tangents
    ans = convert_element_type(x, new_dtype, weak_type)
    if type(t) is Zero or new_dtype.kind not in "fc" or get_aval(x).dtype.kind not in "fc":
        return ans, Zero(get_aval(ans))
    return ans, convert_element_type(t, new_dtype)


def _convert_vjp(g, ans, x, *, new_dtype, weak_type=False):
    old = get_aval(x).dtype
    if old.kind not in "fc":
        return None
    return convert_element_type(g, old)


convert_element_type_p.def_jvp(_convert_jvp)
convert_element_type_p.def_vjp(_convert_vjp)
batch_unary_passthrough(convert_element_type_p)


@convert_element_type_p.def_lowering
def _convert_lowering(ctx: LoweringContext, eqn: JaxprEqn) -> None:
    (x,), (out,) = eqn.invars, eqn.outvars
    new_dtype = np.dtype(eqn.params["new_dtype"])
    dtype = dtype_source(new_dtype)
    if dtype is None:  # a dtype generated code does not name
        return ctx.fallback(eqn)
    lit = ctx.literal(x)
    if lit is not None:
        return ctx.set_literal(out, Literal(new_dtype.type(lit.val)))
    if x.aval.weak_type and x.aval.ndim == 0 and x.aval.dtype == new_dtype:
        # A Python scalar already converts to new_dtype wherever NumPy uses it.
        ctx.share(out, ctx.name(x))
        return ctx.set_python_scalar(out, dtype)
    if x.aval.dtype == new_dtype:  # only weakness changes: nothing to compute
        return ctx.alias(x, out)
    lazy = ctx.lazy_shape(x)
    if lazy is not None:  # convert the small operand; stay a lazy broadcast
        ctx.assign(out, f"np.asarray({ctx.name(x)}, dtype={dtype})")
        return ctx.set_lazy_shape(out, lazy)
    if x.aval.ndim:
        ctx.assign(out, f"{ctx.name(x)}.astype({dtype})")
        return ctx.own(out)
    ctx.assign(out, f"np.asarray({ctx.name(x)}, dtype={dtype})")
    return None


@convert_element_type_p.def_simplify
def _convert_simplify(eqn, producers):
    (x,), (out,) = eqn.invars, eqn.outvars
    same = x.aval.dtype == eqn.params["new_dtype"]
    return forward(x, out) if same and x.aval.weak_type == out.aval.weak_type else None


# --- fmod ------------------------------------------------------------------------------


def _fmod_partial_y(ans: Any, x: Any, y: Any) -> Any:
    # fmod(x, y) = x - y * trunc(x / y). The truncated quotient is the floored one plus
    # one where the remainders differ: a nonzero fmod whose sign is not y's.
    zero = scalar_like(ans, 0)
    q = floor_divide(x, y)
    differs = logical_and(ne(ans, zero), ne(lt(ans, zero), lt(y, zero)))
    return neg(select(differs, add(q, scalar_like(q, 1)), q))


fmod_p, fmod = binary_primitive(
    "fmod",
    np.fmod,
    lambda ans, x, y: scalar_like(ans, 1),
    _fmod_partial_y,
    kinds="iuf",
    doc="``x - y * trunc(x / y)``: the remainder with the sign of ``x`` (``numpy.fmod``).",
)
fmod_p.def_lowering(ufunc("fmod"))


# --- stop_gradient ---------------------------------------------------------------------

stop_gradient_p, _stop_gradient = unary_primitive(
    "stop_gradient", lambda x: x, kinds=None, zero_derivative=True
)
stop_gradient_p.def_lowering(alias)


def stop_gradient(x: Any) -> Any:
    """The identity, with a zero derivative: ``x`` is treated as a constant."""
    return stop_gradient_p.bind(x)


__all__ = [name for name in dir() if name.endswith("_p")] + [
    "abs",
    "atan",
    "convert_element_type",
    "cos",
    "eq",
    "exp",
    "expm1",
    "floor",
    "fmod",
    "ge",
    "gt",
    "integer_pow",
    "is_finite",
    "le",
    "log",
    "log1p",
    "logical_and",
    "logical_not",
    "logical_or",
    "lt",
    "max",
    "min",
    "ne",
    "pow",
    "select",
    "sigmoid",
    "sign",
    "sin",
    "sqrt",
    "stop_gradient",
    "tan",
    "tanh",
]
