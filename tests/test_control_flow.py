"""Structured control flow: ``cond``/``switch``, ``while_loop``, ``fori_loop`` and ``scan``.

Every case is one function written against a control-flow namespace. Run with
``functrans.lax`` it is the function under test; run with ``PY`` (the same
signatures as plain Python loops and ``if``) it is the oracle. Each case is checked
eagerly, under ``jit`` (once it exists), under ``vmap`` against a loop over the batch
(predicates batched or not), and its derivatives against finite differences.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import functrans as ft
import functrans.numpy as fnp
from functrans import lax
from functrans.control_flow import control_flow_primitives
from functrans.ir import typecheck_jaxpr
from functrans.test_util import check_grads
from functrans.tree_util import tree_flatten, tree_map

SETTINGS = dict(
    deadline=None,
    derandomize=True,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HAS_JIT = hasattr(ft, "jit")
requires_jit = pytest.mark.skipif(not HAS_JIT, reason="functrans.jit is not available yet")


# ---------------------------------------------------------------------------
# The oracle: the same API as Python control flow
# ---------------------------------------------------------------------------


class PY:
    @staticmethod
    def cond(pred, true_fun, false_fun, *operands):
        return true_fun(*operands) if pred else false_fun(*operands)

    @staticmethod
    def switch(index, branches, *operands):
        return branches[int(np.clip(index, 0, len(branches) - 1))](*operands)

    @staticmethod
    def while_loop(cond_fun, body_fun, val):
        while cond_fun(val):
            val = body_fun(val)
        return val

    @staticmethod
    def fori_loop(lower, upper, body_fun, val):
        for i in range(int(lower), int(upper)):
            val = body_fun(np.int64(i), val)
        return val

    @staticmethod
    def scan(f, init, xs, length=None, reverse=False):
        leaves, _ = tree_flatten(xs)
        n = length if length is not None else leaves[0].shape[0]
        carry, ys = init, []
        for i in reversed(range(n)) if reverse else range(n):
            carry, y = f(carry, tree_map(lambda x: x[i], xs))
            ys.append(y)
        if reverse:
            ys.reverse()
        return carry, tree_map(lambda *y: np.stack(y), *ys) if ys else None


def assert_close(got: Any, expected: Any, rtol: float = 1e-9, atol: float = 1e-9) -> None:
    got_leaves, got_tree = tree_flatten(got)
    exp_leaves, exp_tree = tree_flatten(expected)
    assert got_tree == exp_tree, f"structure {got_tree} != {exp_tree}"
    for g, e in zip(got_leaves, exp_leaves, strict=True):
        g, e = np.asarray(g), np.asarray(e)
        assert g.shape == e.shape, f"shape {g.shape} != {e.shape}"
        assert g.dtype == e.dtype, f"dtype {g.dtype} != {e.dtype}"
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


def stack_lanes(outs: list) -> Any:
    return tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *outs)


# ---------------------------------------------------------------------------
# Cases: (function of a control-flow namespace, argument sampler, grad?)
# ---------------------------------------------------------------------------


def cond_case(L, p, x, w):
    def yes(a, d):
        return {"s": fnp.sin(a) * d["w"], "t": (a * 2.0, d["w"] + 1.0)}

    def no(a, d):
        return {"s": a - d["w"], "t": (fnp.tanh(d["w"]) * a, a * a)}

    return L.cond(p > 0, yes, no, x, {"w": w})


def cond_args(rng):
    sign = rng.choice([-1.0, 1.0])
    return (sign * rng.uniform(0.5, 2.0), rng.standard_normal(3), rng.standard_normal(3))


def switch_case(L, i, x):
    branches = [lambda a: fnp.exp(a) * 0.5, lambda a: a * a - 1.0, lambda a: fnp.cos(a) + a]
    return L.switch(i, branches, x)


def switch_args(rng):
    return (np.int64(rng.integers(-1, 5)), rng.standard_normal(4))


def while_case(L, n, x):
    def keep_going(c):
        return c[0] < n

    def body(c):
        i, v = c
        return i + 1, fnp.sin(v) * 1.5 + 0.1 * v

    return L.while_loop(keep_going, body, (np.int64(0), x))


def while_args(rng):
    return (np.int64(rng.integers(0, 6)), rng.standard_normal(3))


def fori_case(lo, hi, L, x, y):
    def body(i, c):
        a, b = c
        return a * fnp.cos(b) + 0.1 * i, b + 0.5 * a

    return L.fori_loop(lo, hi, body, (x, y))


def scan_case(length, reverse, L, h, xa, xb):
    def step(c, x):
        h = fnp.tanh(c["h"] * x["a"] + 0.5 * x["b"])
        n = c["n"] + fnp.sum(h * h)
        return {"h": h, "n": n}, (h * x["b"], None, {"z": n})

    return L.scan(step, {"h": h, "n": np.float64(0.0)}, {"a": xa, "b": xb}, reverse=reverse)


def scan_args(length):
    def sample(rng):
        return (
            rng.standard_normal(3),
            rng.standard_normal((length, 3)),
            rng.standard_normal(length),
        )

    return sample


def check_case(case, sample, rng, data, grad: bool) -> None:
    fun, oracle = functools.partial(case, lax), functools.partial(case, PY)
    args = sample(rng)
    expected = oracle(*args)
    assert_close(fun(*args), expected)
    if HAS_JIT:
        jitted = ft.jit(fun)
        assert_close(jitted(*args), expected)
        assert_close(jitted(*args), expected)
    # vmap over a random subset of the arguments (others broadcast), as a loop.
    size = data.draw(st.sampled_from([0, 1, 3]), label="batch size")
    lanes = [sample(rng) for _ in range(max(size, 1))]
    mapped = data.draw(st.lists(st.booleans(), min_size=len(args), max_size=len(args)))
    if not any(mapped):
        mapped[0] = True
    in_axes = tuple(0 if m else None for m in mapped)
    batched = [
        np.stack([lane[k] for lane in lanes])[:size] if m else args[k] for k, m in enumerate(mapped)
    ]
    per_lane = [
        oracle(*[lanes[b][k] if m else args[k] for k, m in enumerate(mapped)])
        for b in range(max(size, 1))
    ]
    expected = tree_map(lambda x: x[:size], stack_lanes(per_lane))
    assert_close(ft.vmap(fun, in_axes=in_axes)(*batched), expected)
    check_grads(fun, args, modes=("fwd", "rev") if grad else ("fwd",))
    typecheck_jaxpr(ft.make_jaxpr(fun)(*args).jaxpr)


def rng_from(data) -> np.random.Generator:
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


@settings(**SETTINGS)
@given(data=st.data())
def test_cond_matches_python_if(data):
    check_case(cond_case, cond_args, rng_from(data), data, grad=True)


@settings(**SETTINGS)
@given(data=st.data())
def test_switch_matches_python_indexing(data):
    check_case(switch_case, switch_args, rng_from(data), data, grad=True)


@settings(**SETTINGS)
@given(data=st.data())
def test_while_loop_matches_python_while(data):
    check_case(while_case, while_args, rng_from(data), data, grad=False)


@settings(**SETTINGS)
@given(data=st.data(), lo=st.integers(-2, 3), hi=st.integers(-2, 5))
def test_fori_loop_matches_python_for(data, lo, hi):
    sample = lambda rng: (rng.standard_normal(2), rng.standard_normal(2))  # noqa: E731
    check_case(functools.partial(fori_case, lo, hi), sample, rng_from(data), data, grad=True)


@settings(**SETTINGS)
@given(data=st.data(), length=st.integers(1, 5), reverse=st.booleans())
def test_scan_matches_python_loop(data, length, reverse):
    case = functools.partial(scan_case, length, reverse)
    check_case(case, scan_args(length), rng_from(data), data, grad=True)


def test_scan_of_length_zero_returns_init_and_empty_ys():
    carry, ys = lax.scan(lambda c, x: (c + x, c * x), np.ones(2), np.zeros((0, 2)))
    assert_close(carry, np.ones(2))
    assert ys.shape == (0, 2)
    g = ft.grad(lambda c: fnp.sum(lax.scan(lambda c, x: (c * x, c), c, np.zeros((0, 2)))[0]))
    assert_close(g(np.ones(2)), np.ones(2))


def test_scan_without_xs_uses_length():
    carry, ys = lax.scan(lambda c, _: (c * 2.0, c), 1.0, None, length=4)
    assert_close(carry, np.float64(16.0))
    assert_close(ys, np.array([1.0, 2.0, 4.0, 8.0]))


def test_switch_clamps_a_traced_index():
    branches = [lambda x: x + 1.0, lambda x: x * 10.0]
    f = lambda i, x: lax.switch(i, branches, x)  # noqa: E731
    out = ft.vmap(f, in_axes=(0, None))(np.array([-3, 0, 1, 9]), 2.0)
    assert_close(out, np.array([3.0, 3.0, 20.0, 20.0]))


# ---------------------------------------------------------------------------
# Higher order and compositions
# ---------------------------------------------------------------------------


def test_second_derivatives_of_scan_and_cond():
    rng = np.random.default_rng(0)
    case = functools.partial(scan_case, 3, False, lax)
    check_grads(case, scan_args(3)(rng), order=2)
    check_grads(functools.partial(cond_case, lax), cond_args(rng), order=2)
    check_grads(functools.partial(fori_case, 0, 3, lax), (np.ones(2), np.ones(2) * 0.3), order=2)


def test_vmap_of_grad_and_grad_of_vmap_of_scan():
    rng = np.random.default_rng(1)

    def loss(w, xs):
        carry, ys = lax.scan(lambda c, x: (fnp.tanh(w * c + x), c * x), np.zeros(2), xs)
        return fnp.sum(carry) + fnp.sum(ys)

    ws, xs = rng.standard_normal((4, 2)), rng.standard_normal((5, 2))
    expected = np.stack([ft.grad(loss)(w, xs) for w in ws])
    assert_close(ft.vmap(ft.grad(loss), in_axes=(0, None))(ws, xs), expected)
    total = lambda ws: fnp.sum(ft.vmap(loss, in_axes=(0, None))(ws, xs))  # noqa: E731
    assert_close(ft.grad(total)(ws), expected)


def test_nested_control_flow_derivatives():
    def f(w, xs):
        def step(c, x):
            inner, _ = lax.scan(lambda a, b: (a * fnp.sin(b * w) + b, None), c, x)
            c = lax.cond(fnp.sum(inner) > 0, lambda v: v * w, lambda v: v - w, inner)
            return c, fnp.sum(c)

        return lax.scan(step, np.ones(2), xs)

    rng = np.random.default_rng(2)
    check_grads(f, (rng.standard_normal(2), rng.standard_normal((3, 4, 2))))


def test_values_closed_over_by_bodies_are_differentiated():
    def f(w):
        total = lax.fori_loop(0, 3, lambda i, c: c * w + 1.0, np.ones(2))
        return lax.cond(True, lambda: fnp.sum(total * w), lambda: fnp.sum(total))

    check_grads(f, (np.array([0.5, -1.5]),))

    def g(w):
        return lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * w), (0, w))[1]

    check_grads(g, (np.array([0.9, 1.1]),), modes=("fwd",))


def test_float32_carries_and_weak_initial_values():
    out = lax.fori_loop(0, 4, lambda i, s: s + np.float32(1.5), 0.0)
    assert_close(out, np.float32(6.0))
    xs = np.arange(4, dtype=np.float32)
    carry, ys = lax.scan(lambda c, x: (c + x, c), 0, np.arange(3))
    assert carry.dtype == np.int64 and ys.dtype == np.int64
    g = ft.grad(lambda x: lax.scan(lambda c, v: (c * v, None), np.float32(1.0), x)[0])(xs + 1)
    assert g.dtype == np.float32
    assert_close(g, np.array([24.0, 12.0, 8.0, 6.0], np.float32))


Pair = namedtuple("Pair", ["a", "b"])


def test_namedtuple_carry_and_dict_outputs():
    def step(c, x):
        return Pair(c.a + x, c.b * x), {"a": c.a}

    carry, ys = lax.scan(step, Pair(0.0, 1.0), np.array([1.0, 2.0, 3.0]))
    assert isinstance(carry, Pair)
    assert_close(carry, Pair(np.float64(6.0), np.float64(6.0)))
    assert_close(ys, {"a": np.array([0.0, 1.0, 3.0])})


# ---------------------------------------------------------------------------
# Batched predicates and Newton's method
# ---------------------------------------------------------------------------


def newton_sqrt(a):
    """sqrt(a) by Newton's method; also returns the number of iterations."""

    def not_done(c):
        return fnp.abs(c[0] * c[0] - a) > 1e-12 * a

    def step(c):
        return 0.5 * (c[0] + a / c[0]), c[1] + 1

    return lax.while_loop(not_done, step, (a, np.int64(0)))


def test_newton_with_a_batched_predicate_runs_each_lane_to_its_own_end():
    a = np.array([1.5, 4.0, 100.0, 1e6])
    roots, iters = ft.vmap(newton_sqrt)(a)
    expected = [newton_sqrt(x) for x in a]
    assert_close(roots, np.array([r for r, _ in expected]))
    assert_close(iters, np.array([k for _, k in expected]))
    assert len(set(iters.tolist())) > 1
    np.testing.assert_allclose(roots, np.sqrt(a), rtol=1e-12)
    _, d_root = ft.jvp(ft.vmap(lambda a: newton_sqrt(a)[0]), (a,), (np.ones(4),))
    np.testing.assert_allclose(d_root, 0.5 / np.sqrt(a), rtol=1e-6)


@requires_jit
def test_newton_under_jit_and_vmap():
    a = np.array([2.0, 9.0, 1e4])
    roots, iters = ft.jit(ft.vmap(newton_sqrt))(a)
    np.testing.assert_allclose(roots, np.sqrt(a), rtol=1e-12)
    assert_close(iters, np.array([newton_sqrt(x)[1] for x in a]))
    assert len(set(iters.tolist())) == 3
    roots, _ = ft.vmap(ft.jit(newton_sqrt))(a)
    np.testing.assert_allclose(roots, np.sqrt(a), rtol=1e-12)


def test_batched_cond_predicate_runs_both_branches_and_selects():
    f = lambda x: lax.cond(x > 0, lambda v: fnp.log(v), lambda v: v * 3.0, x)  # noqa: E731
    x = np.array([2.0, -1.0, 0.5])
    with np.errstate(invalid="ignore"):
        assert_close(ft.vmap(f)(x), np.array([np.log(2.0), -3.0, np.log(0.5)]))
        assert_close(ft.vmap(ft.grad(f))(x), np.array([0.5, 3.0, 2.0]))
    jaxpr = ft.make_jaxpr(ft.vmap(f))(x)
    assert "select" in str(jaxpr) and "cond" not in str(jaxpr)


def test_fori_loop_with_batched_bounds():
    f = lambda n, x: lax.fori_loop(0, n, lambda i, c: c * 2.0 + i, x)  # noqa: E731
    n = np.array([0, 1, 4])
    assert_close(ft.vmap(f, in_axes=(0, None))(n, 1.0), np.array([f(k, 1.0) for k in n]))


# ---------------------------------------------------------------------------
# Tracing once, program size, residuals
# ---------------------------------------------------------------------------


def test_bodies_are_traced_once_whatever_the_trip_count():
    calls = []

    def step(c, x):
        calls.append(1)
        return c * x, c

    xs = np.linspace(0.5, 1.5, 200)
    lax.scan(step, np.float64(1.0), xs)
    ft.grad(lambda c: lax.scan(step, c, xs)[0])(np.float64(1.0))
    ft.vmap(lambda c: lax.scan(step, c, xs)[0])(np.ones(3))
    assert len(calls) == 3

    def body(c):
        calls.append(1)
        return c + 1

    lax.while_loop(lambda c: c < 1000, body, np.int64(0))
    assert len(calls) == 4


def test_concrete_predicate_outside_transforms_calls_the_branch():
    calls = []
    out = lax.cond(True, lambda x: calls.append("t") or x + 1, lambda x: calls.append("f"), 1)
    assert out == 2 and calls == ["t"]


def rnn_loss(params, xs):
    def cell(h, x):
        return fnp.tanh(params["W"] @ h + params["U"] @ x + params["b"]), None

    h, _ = lax.scan(cell, np.zeros(params["b"].shape), xs)
    return fnp.sum(h * h)


def rnn_params(rng, hidden=5, inputs=3):
    return {
        "W": rng.standard_normal((hidden, hidden)) * 0.4,
        "U": rng.standard_normal((hidden, inputs)) * 0.4,
        "b": rng.standard_normal(hidden) * 0.1,
    }


def test_rnn_gradient_program_size_does_not_depend_on_length():
    params = rnn_params(np.random.default_rng(3))
    sizes = []
    for n in (10, 1000):
        jaxpr = ft.make_jaxpr(ft.grad(rnn_loss))(params, np.zeros((n, 3)))
        typecheck_jaxpr(jaxpr.jaxpr)
        sizes.append(len(jaxpr.eqns))
        scans = [e for e in jaxpr.eqns if e.primitive.name == "scan"]
        assert [e.params["length"] for e in scans] == [n, n]
        # Per-step residuals are stacked along the scan axis; W and U are not.
        stacked = [v.aval.shape for v in scans[0].outvars[1:]]
        assert stacked and all(s == (n, 5) for s in stacked)
    assert sizes[0] == sizes[1]


def test_rnn_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    check_grads(rnn_loss, (rnn_params(rng), rng.standard_normal((100, 3))))


def test_rnn_example_runs():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "rnn.py"
    spec = importlib.util.spec_from_file_location("rnn_example", path)
    rnn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rnn)
    rng = np.random.default_rng(5)
    params = rnn.init_params(rng, 6, 4)
    xs, target = rng.standard_normal((100, 4)), rng.uniform(-0.5, 0.5, 6)
    check_grads(lambda p: rnn.loss(p, np.zeros(6), xs, target), (params,), modes=("rev",))


def test_printer_nests_sub_jaxprs():
    jaxpr = ft.make_jaxpr(lambda c, xs: lax.scan(lambda c, x: (c * x, c + x), c, xs))(
        1.0, np.ones(3)
    )
    assert str(jaxpr) == (
        "{ lambda ; a:f64[] b:f64[3]. let\n"
        "    c:f64[] d:f64[3] = scan[jaxpr={ lambda ; e:f64[] f:f64[]. let\n"
        "            g:f64[] = mul e f\n"
        "            h:f64[] = add e f\n"
        "          in (g, h) } length=3 num_carry=1 num_consts=0 reverse=False] a b\n"
        "  in (c, d) }"
    )


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_cond_branches_with_different_types():
    def yes(x):
        return x, x

    def no(x):
        return x, x.astype(np.float32)

    with pytest.raises(
        TypeError,
        match=r"output leaf `output\[1\]` is f64\[2\] in true_fun "
        r"`yes` and f32\[2\] in false_fun `no`",
    ):
        ft.jit(lambda x: lax.cond(x[0] > 0, yes, no, x))(np.ones(2)) if HAS_JIT else ft.make_jaxpr(
            lambda x: lax.cond(x[0] > 0, yes, no, x)
        )(np.ones(2))
    with pytest.raises(
        TypeError,
        match=r"same pytree structure.*true_fun `<lambda>` returns "
        r"\(\*, \*\) and false_fun `<lambda>` returns \[\*, \*\]",
    ):
        ft.vmap(lambda x: lax.cond(x > 0, lambda v: (v, v), lambda v: [v, v], x))(np.ones(2))


def test_switch_branches_with_different_shapes():
    with pytest.raises(
        TypeError,
        match=r"`output` is f64\[2\] in branches\[0\] `<lambda>` "
        r"and f64\[\] in branches\[1\] `<lambda>`",
    ):
        ft.vmap(lambda i, x: lax.switch(i, [lambda v: v, lambda v: v[0]], x))(
            np.array([0, 1]), np.ones((2, 2))
        )


def test_while_body_that_changes_the_carry():
    def grow(c):
        return fnp.concatenate([c["v"], c["v"]]), 0

    with pytest.raises(TypeError, match=r"body_fun `grow` must return a carry with the pytree"):
        lax.while_loop(lambda c: False, grow, {"v": np.ones(2)})

    def widen(c):
        return {"v": fnp.concatenate([c["v"], c["v"]])}

    with pytest.raises(
        TypeError,
        match=r"body_fun `widen`.*carry leaf `init_val\['v'\]` is "
        r"f64\[2\] on input and f64\[4\] on output",
    ):
        lax.while_loop(lambda c: False, widen, {"v": np.ones(2)})

    def to_float32(c):
        return c[0], c[1].astype(np.float32)

    with pytest.raises(TypeError, match=r"`init_val\[1\]` is f64\[\] on input and f32\[\]"):
        lax.while_loop(lambda c: False, to_float32, (1.0, np.float64(2.0)))
    with pytest.raises(TypeError, match=r"cond_fun `<lambda>` must return a boolean scalar"):
        lax.while_loop(lambda c: c, lambda c: c, np.ones(2))


def test_fori_loop_body_that_changes_the_carry():
    def to_float32(i, x):
        return {"x": x["x"].astype(np.float32)}

    message = r"fori_loop: body_fun `to_float32`.*`init_val\['x'\]` is f64\[2\] on input and f32"
    with pytest.raises(TypeError, match=message):
        lax.fori_loop(0, 3, to_float32, {"x": np.ones(2)})
    with pytest.raises(TypeError, match=message):
        ft.make_jaxpr(lambda n: lax.fori_loop(0, n, to_float32, {"x": np.ones(2)}))(3)
    with pytest.raises(
        TypeError,
        match=r"body_fun `<lambda>` must return a value with the "
        r"pytree structure of init_val \*, but returns \(\*, \*\)",
    ):
        lax.fori_loop(0, 3, lambda i, x: (x, x), np.ones(2))


def test_scan_xs_with_different_leading_sizes():
    def step(c, x):
        return c, None

    with pytest.raises(
        ValueError,
        match=r"leaf `xs\['a'\]` is f64\[5,3\] \(size 5\) and leaf "
        r"`xs\['b'\]` is f64\[4\] \(size 4\); f `step`",
    ):
        lax.scan(step, 0.0, {"a": np.ones((5, 3)), "b": np.ones(4)})
    with pytest.raises(ValueError, match=r"length=3 but xs leaf `xs\[0\]` is f64\[4\]"):
        lax.scan(step, 0.0, [np.ones(4)], length=3)
    with pytest.raises(TypeError, match=r"f `<lambda>` must return a pair \(carry, y\)"):
        lax.scan(lambda c, x: c, 0.0, np.ones(3))
    with pytest.raises(TypeError, match=r"carry leaf `carry` is f64\[\] on input and f64\[2\]"):
        lax.scan(lambda c, x: (c * x, None), 0.0, np.ones((3, 2)))


def test_reverse_mode_of_while_loop_explains_and_suggests_scan():
    f = lambda x: lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * x), (0, x))[1]
    with pytest.raises(ValueError, match=r"while_loop.*lax.scan.*fori_loop"):
        ft.grad(f)(1.5)
    # Traced bounds make fori_loop a while_loop.
    g = lambda n, x: ft.grad(lambda x: lax.fori_loop(0, n, lambda i, c: c * x, x))(x)  # noqa: E731
    with pytest.raises(ValueError, match=r"fori_loop with concrete"):
        ft.make_jaxpr(g)(3, 1.5)
    # Only the predicate depends on x: no derivative flows, no error.
    h = lambda x: lax.while_loop(lambda c: c < x, lambda c: c + 1.0, 0.0)  # noqa: E731
    assert ft.grad(h)(2.5) == 0.0


def test_cond_predicate_must_be_a_scalar():
    with pytest.raises(TypeError, match=r"cond: pred must be a scalar, got f64\[2\]"):
        lax.cond(np.ones(2), lambda: 1.0, lambda: 2.0)


# ---------------------------------------------------------------------------
# Rules and jit
# ---------------------------------------------------------------------------


def test_every_control_flow_primitive_has_every_rule():
    for prim in control_flow_primitives():
        for slot in ("impl", "abstract_eval", "jvp", "reverse", "batch"):
            assert getattr(prim, slot) is not None, f"{prim.name}.{slot}"


@requires_jit
def test_jit_compiles_loops_once():
    calls = []

    def f(w, xs):
        def step(c, x):
            calls.append(1)
            return fnp.tanh(w * c + x), c

        return lax.scan(step, np.zeros(2), xs)

    jitted = ft.jit(f)
    rng = np.random.default_rng(6)
    w, xs = rng.standard_normal(2), rng.standard_normal((50, 2))
    assert_close(jitted(w, xs), PY.scan(lambda c, x: (np.tanh(w * c + x), c), np.zeros(2), xs))
    jitted(w, xs)
    assert len(calls) == 1 and jitted.cache_info().hits == 1
    g = ft.jit(ft.grad(lambda w, xs: fnp.sum(f(w, xs)[0])))
    assert_close(g(w, xs), ft.grad(lambda w, xs: fnp.sum(f(w, xs)[0]))(w, xs))


def test_fori_loop_index_is_weakly_typed_with_python_bounds():
    # As range()'s Python ints: a float32 carry plus (a multiple of) the index stays
    # float32, eagerly and under every transform.
    f = lambda c: lax.fori_loop(0, 3, lambda i, c: c + i * 0.5, c)
    x = np.ones(2, np.float32)
    assert f(x).dtype == ft.jit(f)(x).dtype == ft.vmap(f)(np.stack([x, x])).dtype == np.float32
    np.testing.assert_array_equal(f(x), [2.5, 2.5])
    g = ft.grad(lambda c: fnp.sum(f(c)))(x)
    assert g.dtype == np.float32 and (g == 1).all()
    # Also a jitted function's int argument as the bound, a division, a closed-over
    # Python float: all weak, as in a Python loop over range().
    n_loop = lambda n: lax.fori_loop(0, n, lambda i, c: c + i, np.float32(1))
    assert ft.jit(n_loop)(3) == 4.0 and ft.jit(n_loop)(3).dtype == np.float32
    assert lax.fori_loop(0, 3, lambda i, c: c + i / 2, x).dtype == np.float32
    scaled = ft.jit(lambda s: lax.fori_loop(0, 3, lambda i, c: c + i * s, x))(2.0)
    assert scaled.dtype == np.float32 and (scaled == x + 6.0).all()
    # NumPy integer bounds give a NumPy integer index: NumPy's promotion applies.
    out = lax.fori_loop(np.int32(0), np.int32(3), lambda i, c: c + i, np.ones(2, np.float64))
    assert out.dtype == np.float64
