"""The jaxpr optimization passes: each one evaluated before and after on random inputs,
equations counted on built cases, and the result type-checked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrans as ft
import functrans.numpy as fnp
from functrans import lax
from functrans.ir import ClosedJaxpr, Jaxpr, JaxprEqn, Literal, Var, typecheck_jaxpr
from functrans.transforms.jit import jit_p
from functrans.transforms.jit import passes as opt

SETTINGS = dict(deadline=None, derandomize=True, database=None)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def prims(closed) -> list[str]:
    jaxpr = closed.jaxpr if isinstance(closed, ClosedJaxpr) else closed
    return [e.primitive.name for e in jaxpr.eqns]


def run(closed: ClosedJaxpr, *args):
    return ft.eval_jaxpr(closed.jaxpr, closed.consts, *args)


def check_pass(before: ClosedJaxpr, after: ClosedJaxpr, *args) -> None:
    """``after`` is well typed and computes what ``before`` computes."""
    typecheck_jaxpr(after.jaxpr)
    want, got = run(before, *args), run(after, *args)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert np.shape(g) == np.shape(w)
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=f"\n{before}\n{after}")


def jaxpr_of(fun, *args) -> ClosedJaxpr:
    return ft.make_jaxpr(fun)(*args)


def with_jaxpr(closed: ClosedJaxpr, jaxpr: Jaxpr) -> ClosedJaxpr:
    return ClosedJaxpr(jaxpr, closed.consts)


# ---------------------------------------------------------------------------
# dce and cse
# ---------------------------------------------------------------------------


def test_dce_drops_unused_equations(rng):
    def f(x):
        fnp.exp(x)  # unused
        y = fnp.sin(x)
        fnp.tanh(y)  # unused
        return y * 2.0

    x = rng.normal(size=3)
    with ft.config.override("jit_optimize", False):
        before = ft.make_jaxpr(lambda x: ft.jit(f)(x))(x).eqns[0].params["jaxpr"]
    assert prims(before) == ["exp", "sin", "tanh", "mul"]
    after = with_jaxpr(before, opt.dce(before.jaxpr))
    assert prims(after) == ["sin", "mul"]
    check_pass(before, after, x)


def test_cse_merges_repeated_work(rng):
    def f(x, y):
        a = fnp.sin(x) * y
        b = fnp.sin(x) * y  # same as a
        return a + b, fnp.sin(x)

    x, y = rng.normal(size=(2, 4))
    before = jaxpr_of(f, x, y)
    after = with_jaxpr(before, opt.dce(opt.cse(before.jaxpr)))
    assert prims(before).count("sin") == 3
    assert prims(after) == ["sin", "mul", "add"]
    check_pass(before, after, x, y)


def test_cse_tells_literals_apart_and_skips_unhashable_params(rng):
    before = jaxpr_of(lambda x: (x * 2.0, x * 3.0, x * 2.0), rng.normal(size=3))
    after = with_jaxpr(before, opt.cse(before.jaxpr))
    assert prims(after) == ["mul", "mul"]
    assert after.jaxpr.outvars[0] is after.jaxpr.outvars[2]
    x = Var(ft.core.ShapedArray((3,), np.float64))
    eqns = [JaxprEqn(lax.neg_p, [x], [Var(x.aval)], dict(tag=[1])) for _ in range(2)]
    jaxpr = Jaxpr([], [x], [e.outvars[0] for e in eqns], eqns)
    assert len(opt.cse(jaxpr).eqns) == 2  # a list param: never merged, no error


def test_compose_broadcasts_makes_one_broadcast(rng):
    def f(b, m):
        inner = lax.broadcast_in_dim(b, (3, 1), (0,))  # b[:, None]
        return lax.broadcast_in_dim(inner, (2, 3, 4), (1, 2)) * m

    b, m = rng.normal(size=3), rng.normal(size=(2, 3, 4))
    with ft.config.override("jit_optimize", False):
        before = ft.make_jaxpr(lambda b, m: ft.jit(f)(b, m))(b, m).eqns[0].params["jaxpr"]
    assert prims(before) == ["broadcast_in_dim", "broadcast_in_dim", "mul"]
    after = with_jaxpr(before, opt.dce(opt.compose_broadcasts(before.jaxpr)))
    assert prims(after) == ["broadcast_in_dim", "mul"]
    assert after.eqns[0].params["broadcast_dimensions"] == (1,)
    check_pass(before, after, b, m)


# ---------------------------------------------------------------------------
# simplify: what autodiff and vmap emit
# ---------------------------------------------------------------------------

SIMPLIFY_CASES = {
    "mul_one": (lambda x: x * 1.0, []),
    "one_mul": (lambda x: 1.0 * fnp.tanh(x), ["tanh"]),
    "add_zero": (lambda x: fnp.sin(x) + 0.0, ["sin"]),
    "zero_add": (lambda x: 0.0 + fnp.sin(x), ["sin"]),
    "sub_zero": (lambda x: fnp.sin(x) - 0.0, ["sin"]),
    "zero_sub": (lambda x: 0.0 - fnp.sin(x), ["sin", "neg"]),
    "div_one": (lambda x: fnp.sin(x) / 1.0, ["sin"]),
    "neg_neg": (lambda x: fnp.negative(-fnp.sin(x)), ["sin"]),
    "neg_neg_neg": (lambda x: fnp.negative(fnp.negative(-x)), ["neg"]),
    "add_broadcast_zeros": (lambda x: fnp.sin(x) + np.zeros(x.shape), ["sin"]),
    "mul_ones_array": (lambda x: np.ones(x.shape) * fnp.sin(x), ["sin"]),
    "scalar_plus_zeros": (
        lambda x: fnp.sum(x) + np.zeros(x.shape),
        ["reduce_sum", "broadcast_in_dim"],
    ),
    "transpose_transpose": (lambda x: fnp.transpose(fnp.transpose(fnp.sin(x))), ["sin"]),
    "transpose_compose": (
        lambda x: fnp.transpose(fnp.transpose(x, (1, 2, 0)), (1, 0, 2)),
        ["transpose"],
    ),
    "reshape_reshape": (lambda x: fnp.reshape(fnp.reshape(x, (-1,)), (6, 2)), ["reshape"]),
    "reshape_roundtrip": (lambda x: fnp.reshape(fnp.reshape(fnp.sin(x), (-1,)), x.shape), ["sin"]),
    "noop_reshape": (lambda x: lax.reshape_p.bind(fnp.sin(x), new_sizes=x.shape), ["sin"]),
    "noop_transpose": (lambda x: lax.transpose_p.bind(fnp.sin(x), permutation=(0, 1, 2)), ["sin"]),
    "noop_broadcast": (
        lambda x: lax.broadcast_in_dim_p.bind(
            fnp.sin(x), shape=x.shape, broadcast_dimensions=(0, 1, 2)
        ),
        ["sin"],
    ),
    "noop_convert": (
        lambda x: lax.convert_element_type_p.bind(fnp.sin(x), new_dtype=np.dtype("float64")),
        ["sin"],
    ),
    "integer_pow_one": (lambda x: lax.integer_pow(fnp.sin(x), 1), ["sin"]),
    "select_same": (lambda x: fnp.where(x > 0, fnp.sin(x), fnp.sin(x)), ["sin"]),
    "broadcast_of_unit_reshape": (
        lambda x: (
            lax.broadcast_in_dim(
                fnp.reshape(fnp.sum(x, axis=(1, 2), keepdims=True), (3,)), (3, 2, 2), (0,)
            )
            * x
        ),
        ["reduce_sum", "broadcast_in_dim", "mul"],
    ),
    "sum_of_broadcast_all": (
        lambda x: fnp.sum(fnp.broadcast_to(fnp.sin(x[0, 0]), (5, 3, 2, 2))),
        ["slice", "reshape", "sin", "reduce_sum", "mul"],
    ),
    "sum_of_broadcast_new_axis": (
        lambda x: fnp.sum(fnp.broadcast_to(x, (4, 3, 2, 2)), axis=0),
        ["mul"],
    ),
    "sum_of_broadcast_mixed": (
        lambda x: fnp.sum(fnp.broadcast_to(x[:, :1, :], (4, 3, 5, 2)), axis=(0, 1)),
        ["slice", "reduce_sum", "broadcast_in_dim", "mul"],
    ),
}


@pytest.mark.parametrize("name", list(SIMPLIFY_CASES))
def test_simplify_removes_no_ops(name, rng):
    fun, expected = SIMPLIFY_CASES[name]
    x = rng.normal(size=(3, 2, 2))
    before = jaxpr_of(fun, x)
    after = opt.optimize(before)
    check_pass(before, after, x)
    assert prims(after) == expected, f"{before}\n{after}"


def test_simplify_alone_and_fixed_point(rng):
    x = rng.normal(size=(3, 2))
    before = jaxpr_of(lambda x: fnp.negative(-(x * 1.0)) + 0.0, x)
    after = with_jaxpr(before, opt.dce(opt.simplify(before.jaxpr)))
    check_pass(before, after, x)
    assert prims(after) == []
    assert opt.simplify(after.jaxpr) is after.jaxpr  # nothing left to do: same object


def test_simplify_keeps_stop_gradient_and_real_work(rng):
    x = rng.normal(size=3)
    before = jaxpr_of(lambda x: ft.stop_gradient(x) * 2.0 + x * 0.5, x)
    after = opt.optimize(before)
    assert prims(after) == prims(before)


def test_derivatives_divide_where_the_partial_is_a_reciprocal(rng):
    # log' = 1/x, log1p' = 1/(1+x), atan' = 1/(1+x^2), d(a/b)/da = 1/b: the chain rule
    # divides (one rounding), so compiled and eager derivatives agree to the last bit.
    x = rng.uniform(1, 2, size=1000)
    f = lambda x: fnp.sum(fnp.log(x) * 3.0 + fnp.log1p(x) + fnp.arctan(x) + x / 7.0)
    eager, compiled = ft.grad(f)(x), ft.jit(ft.grad(f))(x)
    np.testing.assert_array_equal(compiled, eager)
    (call,) = ft.make_jaxpr(ft.jit(ft.grad(lambda x: fnp.sum(fnp.log(x)))))(x).eqns
    assert (
        "mul" not in prims(call.params["jaxpr"]) and prims(call.params["jaxpr"]).count("div") == 1
    )


def test_multiply_by_zero_is_kept_for_ieee_semantics(rng):
    before = jaxpr_of(lambda x: x * 0.0, rng.normal(size=3))
    after = opt.optimize(before)
    assert prims(after) == ["mul"]
    with np.errstate(invalid="ignore"):
        (out,) = run(after, np.array([np.inf, 1.0, np.nan]))
    np.testing.assert_array_equal(out, [np.nan, 0.0, np.nan])


def test_grad_of_a_two_layer_sigmoid_net_has_no_multiply_by_one_or_add_zero(rng):
    def loss(w1, w2, x):
        return fnp.sum(ft.nn.sigmoid(ft.nn.sigmoid(x @ w1) @ w2))

    args = rng.normal(size=(4, 5)), rng.normal(size=(5, 2)), rng.normal(size=(3, 4))
    outer = ft.make_jaxpr(ft.jit(ft.grad(loss, argnums=(0, 1))))(*args)
    (eqn,) = outer.eqns
    assert eqn.primitive is jit_p
    inner = eqn.params["jaxpr"]
    for e in inner.eqns:
        literals = [a.val for a in e.invars if type(a) is Literal]
        assert not (e.primitive.name == "mul" and 1 in literals), inner
        assert not (e.primitive.name in ("add", "sub") and 0 in literals), inner
        assert e.primitive.name != "broadcast_in_dim" or e.invars[0].aval.shape, inner
    unoptimized = ft.make_jaxpr(ft.grad(loss, argnums=(0, 1)))(*args)
    assert len(inner.eqns) < len(unoptimized.eqns)
    check_pass(unoptimized, inner, *args)


# ---------------------------------------------------------------------------
# Constants: uniform consts, folding, pruning
# ---------------------------------------------------------------------------


def test_uniform_consts_become_broadcast_literals(rng):
    ones, w = np.ones((3, 2)), rng.normal(size=(3, 2))
    x, c_ones, c_w, t, out = (Var(ft.core.ShapedArray((3, 2), np.float64)) for _ in range(5))
    eqns = [JaxprEqn(lax.mul_p, [x, c_ones], [t], {}), JaxprEqn(lax.add_p, [t, c_w], [out], {})]
    before = ClosedJaxpr(Jaxpr([c_ones, c_w], [x], [out], eqns), [ones, w])
    # Staging writes such a constant as a broadcast itself.
    assert len(jaxpr_of(lambda x: x * ones + w, rng.normal(size=(3, 2))).consts) == 1
    after = opt.uniform_consts(before)
    assert len(after.consts) == 1 and after.consts[0] is w
    assert prims(after)[0] == "broadcast_in_dim"
    check_pass(before, after, rng.normal(size=(3, 2)))


def test_fold_constants_evaluates_constant_equations():
    c = np.array([1.0, 2.0, 3.0])
    a, k = Var(ft.core.ShapedArray((3,), np.float64)), Var(ft.core.ShapedArray((3,), np.float64))
    s = Var(ft.core.ShapedArray((), np.float64))
    t, u, v = (Var(ft.core.ShapedArray((3,), np.float64)) for _ in range(3))
    eqns = [
        JaxprEqn(lax.add_p, [Literal(2.0), Literal(3.0)], [s], {}),  # scalar: a literal
        JaxprEqn(lax.exp_p, [k], [t], {}),  # array: a new const
        JaxprEqn(lax.mul_p, [t, s], [u], {}),
        JaxprEqn(lax.add_p, [a, u], [v], {}),  # depends on the input: stays
    ]
    before = ClosedJaxpr(Jaxpr([k], [a], [v, s], eqns), [c])
    after = opt.fold_constants(before)
    assert prims(after) == ["add"]
    assert type(after.jaxpr.outvars[1]) is Literal and after.jaxpr.outvars[1].val == 5.0
    np.testing.assert_allclose(after.consts[0], np.exp(c) * 5.0)
    check_pass(before, after, np.ones(3))


def test_fold_constants_keeps_broadcasts_and_failures():
    a = Var(ft.core.ShapedArray((1000, 1000), np.float64))
    b = Var(ft.core.ShapedArray((2,), np.int64))
    eqns = [
        JaxprEqn(
            lax.broadcast_in_dim_p,
            [Literal(1.0)],
            [a],
            dict(shape=(1000, 1000), broadcast_dimensions=()),
        ),
        JaxprEqn(lax.integer_pow_p, [Literal(np.int64(2))], [Var(b.aval)], dict(y=-1)),
    ]
    jaxpr = Jaxpr([], [], [a, eqns[1].outvars[0]], eqns)
    before = ClosedJaxpr(jaxpr, [])
    assert opt.fold_constants(before) is before  # a broadcast stays; integer ** -1 raises


def test_prune_consts_drops_unused():
    w = np.ones(3)
    c = Var(ft.core.ShapedArray((3,), np.float64))
    x = Var(ft.core.ShapedArray((3,), np.float64))
    closed = ClosedJaxpr(Jaxpr([c], [x], [x], []), [w])
    assert opt.prune_consts(closed).consts == []


# ---------------------------------------------------------------------------
# inline_calls and partition_known
# ---------------------------------------------------------------------------


def test_inline_calls_flattens_nested_jit(rng):
    w = rng.normal(size=(3,))
    inner = ft.jit(lambda x: fnp.sin(x) * w)
    middle = ft.jit(lambda x: inner(x) + inner(x * 2.0))
    x = rng.normal(size=3)
    with ft.config.override("jit_optimize", False):
        before = ft.make_jaxpr(lambda x: middle(x) * 3.0)(x)
    assert "jit" in prims(before)
    after = opt.inline_calls(before, {jit_p: "jaxpr"})
    assert "jit" not in prims(after)
    assert prims(after).count("sin") == 2
    check_pass(before, after, x)
    typecheck_jaxpr(after.jaxpr)  # the two copies of inner's body use distinct variables


def test_partition_known_splits_forward_and_backward(rng):
    def f(x, ct):
        y = fnp.tanh(x) * 2.0  # known
        return y, ct * (1.0 - y * y) + fnp.sin(x)  # unknown: uses ct

    x, ct = rng.normal(size=(2, 4))
    closed = jaxpr_of(f, x, ct)
    known, unknown, num_res = opt.partition_known(closed.jaxpr, [False, True], [False, True])
    assert "sin" in prims(known) and "tanh" in prims(known)
    assert "tanh" not in prims(unknown) and "sin" not in prims(unknown)
    y_and_res = ft.eval_jaxpr(known, [], x)
    y, res = y_and_res[0], y_and_res[1:]
    assert len(res) == num_res
    (out,) = ft.eval_jaxpr(unknown, [], *res, ct)
    want_y, want_out = f(x, ct)
    np.testing.assert_allclose(y, want_y)
    np.testing.assert_allclose(out, want_out)
    with pytest.raises(ValueError, match="depends on unknown"):
        opt.partition_known(closed.jaxpr, [False, True], [False, False])


# ---------------------------------------------------------------------------
# The whole pipeline on random programs
# ---------------------------------------------------------------------------

UNARY = {
    "tanh": fnp.tanh,
    "neg": fnp.negative,
    "neg_row_sum": lambda a: fnp.sum(-a, axis=0, keepdims=True) * a,
    "scale": lambda a: a * -0.5,
    "mul_one": lambda a: a * 1.0,
    "add_zero": lambda a: 0.0 + a,
    "double_t": lambda a: fnp.transpose(fnp.transpose(a)),
    "t": fnp.transpose,
    "reshape_rt": lambda a: fnp.reshape(fnp.reshape(a, (-1,)), a.shape),
    "row_sum_bcast": lambda a: fnp.broadcast_to(fnp.sum(a, axis=0), a.shape),
    "sum_of_bcast": lambda a: fnp.broadcast_to(fnp.sum(fnp.broadcast_to(a, (2, 3, 3)), 0), a.shape),
    "ones_mul": lambda a: np.ones((3, 3)) * a,
    "stop": ft.stop_gradient,
}
BINARY = {"add": fnp.add, "mul": fnp.multiply, "sub": fnp.subtract, "matmul": fnp.matmul}


@st.composite
def programs(draw):
    steps = []
    for i in range(draw(st.integers(1, 12))):
        n = i + 2
        if draw(st.booleans()):
            steps.append((draw(st.sampled_from(sorted(UNARY))), draw(st.integers(0, n - 1)), 0))
        else:
            operands = draw(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)))
            steps.append((draw(st.sampled_from(sorted(BINARY))), *operands))
    return steps


def build(steps):
    def f(x, y):
        vals = [x, y]
        for name, i, j in steps:
            op = UNARY.get(name)
            vals.append(op(vals[i]) if op else BINARY[name](vals[i], vals[j]))
        return vals[-1], vals[len(vals) // 2]

    return f


@settings(max_examples=150, **SETTINGS)
@given(programs(), st.integers(0, 2**16))
def test_optimize_preserves_values_and_derivatives(steps, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(2, 3, 3)) * 0.5
    f = build(steps)
    before = jaxpr_of(f, x, y)
    after = opt.optimize(before)
    check_pass(before, after, x, y)
    assert len(after.eqns) <= len(before.eqns)
    # The optimized jaxpr differentiates like the original (jit's rules rely on it).
    g_before = ft.grad(lambda a, b: fnp.sum(run(before, a, b)[0]))(x, y)
    g_after = ft.grad(lambda a, b: fnp.sum(run(after, a, b)[0]))(x, y)
    np.testing.assert_allclose(g_after, g_before, rtol=1e-10, atol=1e-12)
