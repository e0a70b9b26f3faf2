"""jit: equal to the eager function over a table of operations, cached per signature,
composable with grad/vmap/jvp, thread safe, and compiled to readable NumPy."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import warnings
from collections import namedtuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import functrans as ft
import functrans.numpy as fnp
from functrans import lax
from functrans.errors import ConcretizationTypeError
from functrans.primitives import all_primitives
from functrans.transforms.jit import codegen, jit_p

SETTINGS = dict(deadline=None, derandomize=True, database=None)
F32, F64, I64 = np.dtype("float32"), np.dtype("float64"), np.dtype("int64")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def assert_close(got, want, what=""):
    got_leaves, want_leaves = ft.tree_util.tree_leaves(got), ft.tree_util.tree_leaves(want)
    assert len(got_leaves) == len(want_leaves), what
    for g, w in zip(got_leaves, want_leaves, strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
        assert g.dtype == w.dtype, f"{what}: dtype {g.dtype} != {w.dtype}"
        if w.dtype.kind in "fc":
            tol = 2e-5 if w.dtype == F32 else 1e-11
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=what)
        else:
            np.testing.assert_array_equal(g, w, err_msg=what)


# ---------------------------------------------------------------------------
# jit(f) equals f over a table of operations
# ---------------------------------------------------------------------------


def real(rng, shape, dtype):
    return rng.uniform(-2, 2, size=shape).astype(dtype)


def positive(rng, shape, dtype):
    return rng.uniform(0.2, 3, size=shape).astype(dtype)


def nonzero(rng, shape, dtype):
    return (rng.uniform(0.5, 2, size=shape) * rng.choice([-1, 1], size=shape)).astype(dtype)


def ints(rng, shape, dtype):
    return rng.integers(-5, 6, size=shape).astype(dtype)


MATRIX = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=4).map(lambda s: [s])


def same(n, min_dims=0):
    return hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=4).map(
        lambda s: [s] * n
    )


ND = same(1, min_dims=1)


BROADCAST2 = hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3).map(
    lambda r: list(r.input_shapes)
)
BROADCAST3 = hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3).map(
    lambda r: list(r.input_shapes)
)
MATMUL = st.sampled_from(
    [[(3,), (3,)], [(2, 3), (3,)], [(3,), (3, 4)], [(2, 3), (3, 4)], [(5, 2, 3), (5, 3, 4)]]
)

# name: (function, shapes strategy, value domain, dtypes)
RECORDS = {
    "exp": (fnp.exp, same(1), real, (F32, F64)),
    "log": (fnp.log, same(1), positive, (F32, F64)),
    "tanh": (fnp.tanh, same(1), real, (F32, F64)),
    "sin_cos": (lambda x: fnp.sin(x) * fnp.cos(x), same(1), real, (F32, F64)),
    "sqrt": (fnp.sqrt, same(1), positive, (F32, F64)),
    "expm1_log1p": (lambda x: fnp.expm1(x) + fnp.log1p(fnp.abs(x)), same(1), real, (F64,)),
    "arctan_tan": (lambda x: fnp.arctan(x) + fnp.tan(x * 0.5), same(1), real, (F64,)),
    "abs_sign": (lambda x: fnp.abs(x) * fnp.sign(x), same(1), real, (F64, I64)),
    "negative_square": (lambda x: -fnp.square(x), same(1), real, (F32, I64)),
    "power_int": (lambda x: x**3 + x**2 - x**-1, same(1), nonzero, (F64,)),
    "power": (fnp.power, same(2), positive, (F64,)),
    "sigmoid": (ft.nn.sigmoid, same(1), real, (F32, F64)),
    "sigmoid_extremes": (lambda x: ft.nn.sigmoid(x * 500.0), same(1), real, (F32, F64)),
    "relu": (ft.nn.relu, same(1), real, (F64,)),
    "add": (fnp.add, BROADCAST2, real, (F32, F64, I64)),
    "subtract": (fnp.subtract, BROADCAST2, real, (F64, I64)),
    "multiply": (fnp.multiply, BROADCAST2, real, (F32, F64, I64)),
    "divide": (fnp.divide, BROADCAST2, nonzero, (F32, F64)),
    "maximum_minimum": (
        lambda x, y: fnp.maximum(x, y) - fnp.minimum(x, y),
        BROADCAST2,
        real,
        (F64,),
    ),
    "comparisons": (lambda x, y: (x < y, x <= y, x == y, x != y, x > y), BROADCAST2, ints, (I64,)),
    "where": (lambda c, x, y: fnp.where(c > 0, x, y), BROADCAST3, real, (F32, F64)),
    "clip": (lambda x: fnp.clip(x, -0.5, 0.75), same(1), real, (F64,)),
    "python_scalars": (lambda x: (x * 2.5 + 1) / 3 - 0.5, same(1), real, (F32, F64)),
    "astype": (lambda x: x.astype(np.float32) * 2.0, same(1), real, (F64, I64)),
    "sum_all": (fnp.sum, same(1), real, (F32, F64, I64)),
    "sum_axis": (lambda x: fnp.sum(x, axis=-1, keepdims=True), ND, real, (F64,)),
    "mean_var_std": (
        lambda x: (fnp.mean(x, axis=0), fnp.var(x), fnp.std(x, axis=0)),
        ND,
        real,
        (F64,),
    ),
    "max_min_prod": (
        lambda x: (fnp.max(x, axis=0), fnp.min(x), fnp.prod(x, axis=-1)),
        ND,
        real,
        (F64,),
    ),
    "argmax_argmin": (lambda x: (fnp.argmax(x), fnp.argmin(x, axis=0)), ND, real, (F64,)),
    "softmax": (lambda x: ft.nn.softmax(x * 10.0), ND, real, (F32, F64)),
    "log_softmax": (lambda x: ft.nn.log_softmax(x), ND, real, (F64,)),
    "logsumexp": (lambda x: ft.nn.logsumexp(x, axis=0), ND, real, (F64,)),
    "matmul": (fnp.matmul, MATMUL, real, (F32, F64)),
    "dot_outer": (
        lambda x, y: (fnp.dot(x, y), fnp.outer(x, y)),
        st.just([(4,), (4,)]),
        real,
        (F64,),
    ),
    "einsum": (lambda a, b: fnp.einsum("ij,jk->ik", a, b), st.just([(2, 3), (3, 4)]), real, (F64,)),
    "transpose_reshape": (
        lambda x: fnp.reshape(fnp.transpose(x), (-1,)) * 2.0,
        MATRIX,
        real,
        (F32, F64),
    ),
    "swap_moveaxis": (
        lambda x: fnp.moveaxis(fnp.swapaxes(x[None], 0, 2), 0, -1),
        MATRIX,
        real,
        (F64,),
    ),
    "expand_squeeze_ravel": (
        lambda x: fnp.ravel(fnp.squeeze(fnp.expand_dims(x, 0), 0)),
        same(1),
        real,
        (F64,),
    ),
    "broadcast_to": (
        lambda x: fnp.broadcast_to(x, (2, 3, 4)) + 1.0,
        st.just([(3, 1)]),
        real,
        (F64,),
    ),
    "concatenate_stack": (
        lambda x, y: (fnp.concatenate([x, y], axis=0), fnp.stack([x, y])),
        same(2, min_dims=1),
        real,
        (F64,),
    ),
    "split": (lambda x: fnp.split(x, 2, axis=0), st.just([(4, 3)]), real, (F64,)),
    "slicing": (lambda x: x[1:, ::2] * x[:-1, ::2], st.just([(4, 5)]), real, (F64,)),
    "reverse_slice": (lambda x: x[::-1], ND, real, (F64,)),
    "int_index": (lambda x: x[np.array([0, 2, 2])] * 2.0, st.just([(3, 2)]), real, (F64,)),
    "newaxis_broadcast": (
        lambda x, y: x[:, None] * y[None, :] + x[:, None],
        st.just([(3,), (4,)]),
        real,
        (F32, F64),
    ),
    "bias_add": (lambda x, b: x + b, st.just([(5, 3), (3,)]), real, (F64,)),
    "mixed_scalar_broadcast": (lambda x: fnp.sum(x) + x * fnp.max(x), same(1), real, (F64,)),
}


@pytest.mark.parametrize("name", list(RECORDS))
@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_jit_equals_eager(name, data):
    fun, shapes_strategy, domain, dtypes = RECORDS[name]
    shapes = data.draw(shapes_strategy, label="shapes")
    dtype = data.draw(st.sampled_from(dtypes), label="dtype")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    args = [domain(rng, s, dtype) for s in shapes]
    copies = [a.copy() for a in args]
    jitted = ft.jit(fun)
    with np.errstate(all="ignore"):
        want = fun(*args)
        got = jitted(*args)
        assert_close(got, want, f"{name}: first call\n{jitted.source(*args)}")
        assert_close(jitted(*args), want, f"{name}: cached call")
    info = jitted.cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 1, 1)
    for a, c in zip(args, copies, strict=True):
        np.testing.assert_array_equal(a, c, err_msg="jit wrote into an input")


# ---------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------


def test_cache_hits_and_misses_per_signature():
    traces = []

    def f(x, y):
        traces.append(1)  # a side effect: runs only while tracing
        return fnp.tanh(x) * y

    jf = ft.jit(f)
    x3, x4 = np.ones(3), np.ones(4)
    jf(x3, 2.0)
    jf(x3 + 1, 3.0)  # new values, same signature: a hit (Python scalars by type)
    assert jf.cache_info()[:2] == (1, 1) and len(traces) == 1
    jf(x4, 2.0)  # new shape
    jf(x3.astype(np.float32), 2.0)  # new dtype
    jf(x3, 2)  # int instead of float
    jf(x3, np.float64(2.0))  # a NumPy scalar is not weakly typed
    maxsize = ft.transforms.jit.CACHE_MAXSIZE
    assert jf.cache_info() == ft.transforms.jit.CacheInfo(1, 5, maxsize, 5)
    assert len(traces) == 5
    jf(x3, np.array(5.0))  # a 0-d array has the NumPy scalar's signature
    assert jf.cache_info().hits == 2


def test_static_arguments_the_function_cannot_take_are_errors():
    with pytest.raises(ValueError, match=r"static_argnums 3 is out of range.*1 positional"):
        ft.jit(lambda x: x, static_argnums=3)
    with pytest.raises(ValueError, match=r"static_argnames \['zz'\].*\['x'\]"):
        ft.jit(lambda x: x, static_argnames="zz")
    with pytest.raises(TypeError, match="static_argnums must be an int or a tuple"):
        ft.jit(lambda x: x, static_argnums=1.0)
    with pytest.raises(TypeError, match="static_argnames must be a str or a tuple"):
        ft.jit(lambda x: x, static_argnames=1)
    assert ft.jit(lambda x: x * 2, static_argnums=None)(1.0) == 2.0  # None: none, as in JAX
    ft.jit(lambda *args: args, static_argnums=3)  # may be passed: no error
    ft.jit(lambda **kwargs: kwargs, static_argnames="zz")
    assert ft.jit(lambda x, n: x * n, static_argnums=-1)(np.ones(2), 3).tolist() == [3.0, 3.0]


def test_make_jaxpr_static_argnums_count_from_the_end_too():
    closed = ft.make_jaxpr(lambda x, n: x if n > 1 else -x, static_argnums=-1)(1.0, 2)
    assert len(closed.jaxpr.invars) == 1 and not closed.eqns
    with pytest.raises(ValueError, match="static_argnums .* out of range"):
        ft.make_jaxpr(lambda x: x, static_argnums=3)(1.0)


def test_python_numbers_come_out_as_numpy_scalars():
    assert repr(ft.jit(lambda x: 1.0)(2.0)) == "np.float64(1.0)"
    assert repr(ft.jit(lambda x: x)(1.0)) == "np.float64(1.0)"
    assert repr(ft.jit(lambda x: (x, 3))(np.ones(2))[1]) == "np.int64(3)"
    assert repr(ft.jit(lambda x: x * 2)(1.5)) == "np.float64(3.0)"


def test_the_cache_keeps_at_most_maxsize_signatures(monkeypatch):
    monkeypatch.setattr(ft.transforms.jit, "CACHE_MAXSIZE", 3)
    jf = ft.jit(lambda x: fnp.sum(x * 2.0))
    for n in range(1, 6):
        assert jf(np.ones(n)) == 2.0 * n
    assert jf.cache_info()[1:] == (5, 3, 3)
    jf(np.ones(3))  # among the three kept: a hit, and now the most recently used
    assert jf.cache_info().hits == 1
    jf(np.ones(6))  # a new signature drops the least recently used: n = 4
    jf(np.ones(3))
    assert jf.cache_info().hits == 2
    assert jf(np.ones(4)) == 8.0  # dropped: traced again, still right
    assert jf.cache_info()[1:] == (7, 3, 3)


def test_cache_key_includes_pytree_structure():
    jf = ft.jit(lambda t: t[0] * 2.0)
    jf((np.ones(2), np.ones(2)))
    jf([np.ones(2), np.ones(2)])  # list, not tuple
    jf((np.ones(2), np.ones(2), None))
    jf((np.ones(2), {"b": np.ones(2)}))
    assert jf.cache_info().misses == 4
    jf((np.zeros(2), {"b": np.zeros(2)}))
    assert jf.cache_info().hits == 1


def test_static_arguments():
    traces = []

    def f(x, n, scale=1.0):
        traces.append(n)
        for _ in range(n):  # Python control flow on a static value
            x = fnp.sin(x)
        return x * scale

    x = np.array([0.3, 0.7])
    jf = ft.jit(f, static_argnums=1)
    assert_close(jf(x, 2), np.sin(np.sin(x)))
    assert_close(jf(x, 3), np.sin(np.sin(np.sin(x))))
    jf(x, 2)
    assert jf.cache_info()[:2] == (1, 2)
    assert_close(jf(x, n=2), np.sin(np.sin(x)))  # static whether passed by position or name
    assert traces == [2, 3, 2]
    jg = ft.jit(f, static_argnames=("n", "scale"))
    assert_close(jg(x, 1, scale=2.0), 2 * np.sin(x))
    assert_close(jg(x, 1, scale=3.0), 3 * np.sin(x))
    assert jg.cache_info().misses == 2
    jn = ft.jit(f, static_argnums=(-1,))
    assert_close(jn(x, 2), np.sin(np.sin(x)))


def test_unhashable_static_argument_is_a_clear_type_error():
    jf = ft.jit(lambda x, sizes: x * len(sizes), static_argnums=1)
    with pytest.raises(TypeError, match=r"static argument 'sizes' has unhashable type list"):
        jf(np.ones(2), [1, 2])
    assert_close(jf(np.ones(2), (1, 2)), np.full(2, 2.0))


def test_non_array_arguments_and_outputs_are_type_errors():
    def f(x, label):
        return x

    with pytest.raises(TypeError, match=r"jit\(f\): argument 'label' is a str"):
        ft.jit(f)(np.ones(2), "hello")
    assert_close(ft.jit(f, static_argnums=1)(np.ones(2), "hello"), np.ones(2))
    with pytest.raises(TypeError, match=r"output leaf 1 is a str"):
        ft.jit(lambda x: (x, "text"))(np.ones(2))


@pytest.mark.parametrize(
    "body, operation",
    [
        (lambda x: 1.0 if x > 0 else -1.0, "bool()"),
        (lambda x: x * int(x), "int()"),
        (lambda x: x * float(x), "float()"),
        (lambda n: fnp.ones((n, 2)), "index()"),  # a traced value used as a shape
        (lambda n: fnp.zeros(n), "index()"),
        (lambda n: fnp.reshape(fnp.ones(4), (n, -1)), "index()"),
        (lambda n: fnp.ones(4).reshape(n, 2), "index()"),
        (lambda n: fnp.arange(n), "index()"),
        (lambda n: fnp.arange(6.0)[:n], "index()"),
    ],
)
def test_concretization_errors_name_the_jitted_function_and_operation(body, operation):
    def step(x):
        return body(x)

    with pytest.raises(ConcretizationTypeError) as info:
        ft.jit(step)(2)
    message = str(info.value)
    assert "jit(step)" in message and operation in message and "static_argnums" in message
    assert isinstance(info.value, TypeError)
    static = ft.jit(step, static_argnums=0)  # the same code works with a static argument
    assert_close(static(2), body(2))


def test_side_effects_run_only_at_trace_time_and_disable_jit_runs_eagerly():
    calls = []

    def f(x):
        calls.append(type(x).__name__)
        return x + 1.0

    jf = ft.jit(f)
    for _ in range(3):
        jf(np.ones(2))
    assert calls == ["JaxprTracer"]
    with ft.config.override("disable_jit", True):
        assert_close(jf(np.ones(2)), np.full(2, 2.0))
    assert calls == ["JaxprTracer", "ndarray"]


def test_source_and_clear_cache():
    jf = ft.jit(lambda x: fnp.exp(x) * 2.0)
    source = jf.source(np.ones(3))
    assert source.startswith("def jitted(a):") and "np.exp(a)" in source
    assert jf.cache_info()[:3] == (0, 1, ft.transforms.jit.CACHE_MAXSIZE)
    jf(np.ones(3))
    assert jf.cache_info().hits == 1
    jf.clear_cache()
    assert jf.cache_info().currsize == 0


def test_retrace_logging_names_what_changed(caplog):
    def f(x, n):
        return x * n

    jf = ft.jit(f, static_argnums=1)
    with ft.config.override("log_compiles", True), caplog.at_level(logging.WARNING, "functrans"):
        jf(np.ones(3), 2)
        jf(np.ones(4), 2)
        jf(np.ones(4, np.float32), 2)
        jf(np.ones(4, np.float32), 5)
        jf(np.ones(4, np.float32), 5)  # a hit: nothing logged
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4
    assert messages[0].startswith("Compiling jit(f) for argument 'x': f64[3]")
    assert "argument 'x': f64[3] -> f64[4]" in messages[1]
    assert "argument 'x': f64[4] -> f32[4]" in messages[2]
    assert "static argument 'n': 2 -> 5" in messages[3]


# ---------------------------------------------------------------------------
# Pytrees and values in and out
# ---------------------------------------------------------------------------

Pair = namedtuple("Pair", "a b")


@ft.tree_util.register_dataclass
@dataclasses.dataclass
class Layer:
    w: np.ndarray
    b: np.ndarray
    name: str = dataclasses.field(default="dense", metadata=dict(static=True))


def test_pytrees_in_and_out(rng):
    def f(params, pair, layer, scale=1.0):
        out = {"w": params["w"] * scale, "sum": pair.a + pair.b}
        return (out, [layer.w @ layer.b, None], Pair(pair.b, 1.0))

    args = (
        {"w": rng.normal(size=3)},
        Pair(rng.normal(size=2), rng.normal(size=2)),
        Layer(rng.normal(size=(2, 3)), rng.normal(size=3)),
    )
    jf = ft.jit(f)
    assert_close(jf(*args, scale=2.0), f(*args, scale=2.0))
    got = jf(*args, scale=2.0)
    assert isinstance(got[2], Pair) and got[1][1] is None
    assert jf.cache_info()[:2] == (1, 1)


def test_outputs_that_are_inputs_constants_or_literals(rng):
    c = np.arange(3.0)
    jf = ft.jit(lambda x: (x, c, 2.0, fnp.zeros(3), x * 0 + 1))
    x = rng.normal(size=3)
    out = jf(x)
    assert_close(out, (x, c, np.float64(2.0), np.zeros(3), np.ones(3)))
    out[1][0] = 100.0  # the caller owns what it gets back: no constant is shared
    out[3][0] = 100.0
    again = jf(x)
    assert again[1][0] == 0.0 and again[3][0] == 0.0 and c[0] == 0.0


def test_no_arguments_and_weak_scalar_results():
    assert_close(ft.jit(lambda: fnp.ones(2) * 3.0)(), np.full(2, 3.0))
    assert_close(ft.jit(lambda x: x * 2)(3.0), np.float64(6.0))
    assert_close(ft.jit(lambda x: x * 2.0)(np.float32(3.0)), np.float32(6.0))
    assert_close(ft.jit(lambda x: x + 1)(np.ones(2, np.float32)), np.full(2, 2, np.float32))


def test_buffer_reuse_never_writes_into_inputs_or_constants(rng):
    w = rng.normal(size=1000)

    def chain(x, y):
        z = x
        for _ in range(20):
            z = fnp.tanh(z * w + y) - x
        return z, fnp.exp(x)

    x, y = rng.normal(size=(2, 1000))
    saved = x.copy(), y.copy(), w.copy()
    jf = ft.jit(chain)
    want = chain(x, y)
    assert_close(jf(x, y), want)
    assert_close(jf(x, y), want)
    for a, b in zip((x, y, w), saved, strict=True):
        np.testing.assert_array_equal(a, b)
    source = jf.source(x, y)
    assert source.count(", out=") >= 30


# ---------------------------------------------------------------------------
# jit as a call primitive, and compositions
# ---------------------------------------------------------------------------


def mlp_loss(params, x, y):
    w1, b1, w2, b2 = params
    h = ft.nn.sigmoid(x @ w1 + b1)
    logits = h @ w2 + b2
    return -fnp.mean(fnp.sum(ft.nn.log_softmax(logits) * y, axis=1))


@pytest.fixture
def mlp(rng):
    params = (
        rng.normal(size=(4, 8)),
        rng.normal(size=8),
        rng.normal(size=(8, 3)),
        rng.normal(size=3),
    )
    x = rng.normal(size=(6, 4))
    y = np.eye(3)[rng.integers(0, 3, size=6)]
    return params, x, y


def test_inside_a_transform_jit_is_one_equation(mlp):
    closed = ft.make_jaxpr(ft.jit(mlp_loss))(*mlp)
    (eqn,) = closed.eqns
    assert eqn.primitive is jit_p and eqn.primitive.name == "jit"
    assert eqn.params["name"] == "mlp_loss"
    assert isinstance(eqn.params["jaxpr"], ft.ClosedJaxpr)
    ft.ir.typecheck_jaxpr(closed.jaxpr)
    assert "jit[jaxpr={ lambda" in str(closed)


def test_nested_jits_are_inlined(rng):
    inner = ft.jit(lambda x: fnp.sin(x) * 2.0)
    outer = ft.jit(lambda x: inner(x) + inner(x + 1.0))
    x = rng.normal(size=3)
    assert_close(outer(x), np.sin(x) * 2 + np.sin(x + 1) * 2)
    (eqn,) = ft.make_jaxpr(outer)(x).eqns
    assert [e.primitive.name for e in eqn.params["jaxpr"].eqns].count("jit") == 0
    assert outer.source(x).count("np.sin") == 2


COMPOSITIONS = {
    "grad(jit(f))": lambda f: ft.grad(ft.jit(f)),
    "jit(grad(f))": lambda f: ft.jit(ft.grad(f)),
    "grad(jit(jit(f)))": lambda f: ft.grad(ft.jit(ft.jit(f))),
    "value_and_grad(jit(f))": lambda f: ft.value_and_grad(ft.jit(f)),
    "jit(value_and_grad(f))": lambda f: ft.jit(ft.value_and_grad(f)),
}


@pytest.mark.parametrize("name", list(COMPOSITIONS))
def test_compositions_with_grad_equal_unjitted(name, mlp):
    transform = COMPOSITIONS[name]
    want = (ft.value_and_grad if "value" in name else ft.grad)(mlp_loss)(*mlp)
    got = transform(mlp_loss)(*mlp)
    assert_close(got, want, name)


def test_vmap_of_jit_and_jit_of_vmap_of_grad(mlp, rng):
    params, x, y = mlp
    per_example = lambda p, xi, yi: mlp_loss(p, xi[None], yi[None])  # noqa: E731
    want_losses = np.array([per_example(params, xi, yi) for xi, yi in zip(x, y, strict=True)])
    assert_close(ft.vmap(ft.jit(per_example), in_axes=(None, 0, 0))(params, x, y), want_losses)
    assert_close(ft.jit(ft.vmap(per_example, in_axes=(None, 0, 0)))(params, x, y), want_losses)
    grads = ft.jit(ft.vmap(ft.grad(per_example), in_axes=(None, 0, 0)))(params, x, y)
    want = [ft.grad(per_example)(params, xi, yi) for xi, yi in zip(x, y, strict=True)]
    for k in range(4):
        assert_close(grads[k], np.stack([w[k] for w in want]))
    assert_close(ft.vmap(ft.grad(ft.jit(per_example)), in_axes=(None, 0, 0))(params, x, y), grads)


def test_jvp_hessian_and_higher_order_through_jit(rng):
    a = rng.normal(size=(4, 3))

    def f(x):
        return fnp.sum(fnp.tanh(a @ x))

    x, t = rng.normal(size=(2, 3))
    jf = ft.jit(f)
    assert_close(ft.jvp(jf, (x,), (t,)), ft.jvp(f, (x,), (t,)))
    second = ft.grad(lambda x: ft.grad(f)(x)[0])(x)
    assert_close(ft.grad(lambda x: ft.grad(jf)(x)[0])(x), second)
    hess = ft.hessian(f)(x)
    assert_close(ft.hessian(jf)(x), hess)
    assert_close(ft.jit(ft.hessian(f))(x), hess)
    assert_close(ft.jacfwd(jf)(x), ft.jacfwd(f)(x))
    g = lambda x: fnp.tanh(a @ x)  # noqa: E731
    assert_close(ft.jacrev(ft.jit(g))(x), ft.jacrev(g)(x))
    y, f_jvp = ft.linearize(jf, x)
    assert_close(f_jvp(t), ft.jvp(f, (x,), (t,))[1])


def test_grad_of_jit_runs_compiled_forward_and_backward(monkeypatch, mlp):
    names = []
    impl = jit_p.impl

    def spy(*args, **params):
        names.append(params["name"])
        return impl(*args, **params)

    monkeypatch.setattr(jit_p, "impl", spy)
    jl = ft.jit(mlp_loss)
    assert_close(ft.grad(jl)(*mlp), ft.grad(mlp_loss)(*mlp))
    assert names == ["mlp_loss_fwd", "mlp_loss_bwd"]
    ft.grad(jl, argnums=1)(*mlp)  # other inputs differentiated: another split
    assert names[2:] == ["mlp_loss_fwd", "mlp_loss_bwd"]
    assert jl.cache_info()[:2] == (1, 1)


def test_closing_over_tracers_of_an_enclosing_transform(rng):
    def outer(x):
        return ft.jit(lambda y: fnp.sin(x) * y)(2.0)  # x is a tracer of grad / vmap

    assert_close(ft.grad(outer)(0.3), 2 * np.cos(0.3))
    xs = rng.normal(size=4)
    assert_close(ft.vmap(outer)(xs), 2 * np.sin(xs))
    assert_close(ft.jit(outer)(0.3), 2 * np.sin(0.3))
    assert_close(ft.grad(ft.jit(outer))(0.3), 2 * np.cos(0.3))


def test_integer_outputs_and_inputs_under_grad(rng):
    def f(x, n):
        return fnp.sum(x * n), fnp.argmax(x)

    jf = ft.jit(f)
    x = rng.normal(size=4)
    g = ft.grad(lambda x: jf(x, np.int64(3))[0])(x)
    assert_close(g, np.full(4, 3.0))


# ---------------------------------------------------------------------------
# Generated code
# ---------------------------------------------------------------------------

MLP_FORWARD_SOURCE = """\
@np.errstate(over="ignore")
def jitted(a, b, c, d, e):
    f = e @ a
    g = np.add(f, b, out=f)
    h = np.negative(g, out=g)
    np.exp(h, out=h)
    np.add(h, 1.0, out=h)
    np.reciprocal(h, out=h)
    i = h @ c
    j = np.add(i, d, out=i)
    return (j,)
"""


def test_golden_source_of_a_two_layer_net(rng):
    def predict(w1, b1, w2, b2, x):
        h = ft.nn.sigmoid(x @ w1 + b1)
        return h @ w2 + b2

    args = (
        rng.normal(size=(4, 16)),
        rng.normal(size=16),
        rng.normal(size=(16, 3)),
        rng.normal(size=3),
        rng.normal(size=(32, 4)),
    )
    jp = ft.jit(predict)
    assert jp.source(*args) == MLP_FORWARD_SOURCE
    assert_close(jp(*args), predict(*args))


def test_source_of_the_gradient_reads_like_numpy(mlp):
    source = ft.jit(ft.grad(mlp_loss)).source(*mlp)
    compile(source, "<test>", "exec")
    body = [line.strip() for line in source.splitlines()[2:-1]]
    assert source.count(" @ ") + source.count("np.matmul(") == 5  # 2 forward, 3 backward
    assert "impl" not in source  # every primitive here has a NumPy lowering
    for line in body:
        assert line.startswith(("np.", "return")) or " = " in line, line
    assert ".T" in source  # transposes are views


@pytest.mark.parametrize("size", [5, 3000])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_sigmoid_lowerings_are_accurate_and_silent(size, dtype):
    x = np.linspace(-1000, 1000, size).astype(dtype)
    x[:3] = [-50.0, 0.0, 30.0]
    jf = ft.jit(lambda x: (ft.nn.sigmoid(x), ft.nn.sigmoid(x[0])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning escapes
        got = jf(x)
    assert_close(got, (ft.nn.sigmoid(x), ft.nn.sigmoid(x[0])))
    assert "scipy" not in jf.source(x) and "expit" not in jf.source(x)  # NumPy only


@pytest.mark.parametrize("dtype", [np.float16, F32, F64])
def test_float_literals_are_written_as_short_as_their_dtype_allows(dtype):
    jf = ft.jit(lambda x: x * 0.1 + 1e-3)
    x = np.arange(3).astype(dtype)
    source = jf.source(x)
    assert "0.1" in source and "0.001" in source, source
    np.testing.assert_array_equal(jf(x), (lambda x: x * 0.1 + 1e-3)(x))


def test_keepdims_reductions_and_weak_scalar_conversions(mlp):
    source = ft.jit(ft.grad(mlp_loss)).source(*mlp)
    # The log-softmax's max and both of its row sums keep their axis; nothing is reshaped.
    assert "np.maximum.reduce(k, axis=1, keepdims=True)" in source
    assert source.count("np.add.reduce(") == 4  # two row sums, two bias gradients
    assert source.count("axis=1, keepdims=True)") == 3 and ".reshape(" not in source
    jf = ft.jit(lambda x, s: (x - s * x, fnp.asarray(s, np.float64)))
    out = jf(np.ones(2), 0.25)
    assert_close(out, (np.full(2, 0.75), np.float64(0.25)))
    assert type(out[1]) is np.float64
    assert "np.float64(b)" in jf.source(np.ones(2), 0.25)


def test_a_buffer_passed_to_an_impl_is_never_reused(rng):
    def f(x):
        t = fnp.exp(x)
        y = lax.cond(True, lambda v: v, lambda v: -v, t)  # the impl may return t itself
        return y, fnp.sin(x) * 2.0  # the temporaries here must not overwrite t

    x = rng.normal(size=100)
    assert_close(ft.jit(f)(x), (np.exp(x), np.sin(x) * 2.0))


def test_primitives_without_a_lowering_fall_back_to_their_impl(rng):
    lowered = codegen.lowered_primitives()
    missing = sorted(p.name for p in all_primitives() if p not in lowered)
    assert missing == ["scatter_add"]
    x = rng.normal(size=(3, 2))

    def f(x):
        padded = lax.pad(x, ((1, 0, 1), (0, 0, 0)))  # interior padding: the impl
        scattered = lax.scatter_add(np.zeros((4, 2)), x, [np.array([0, 2, 2])])
        return padded, scattered

    closed = ft.make_jaxpr(f)(x)
    compiled = codegen.compile_jaxpr(closed)
    assert compiled.fallbacks == {"pad", "scatter_add"}
    assert_close(ft.jit(f)(x), f(x))


def test_generated_code_contains_no_user_text():
    def f(x):
        return {"'; import os; '": x * 2.0}

    f.__name__ = "evil\nimport os"
    source = ft.jit(f).source(np.ones(2))
    assert "import" not in source and "evil" not in source and "os" not in source


# ---------------------------------------------------------------------------
# Threads and big programs
# ---------------------------------------------------------------------------


def test_threads_share_one_cache_and_never_see_each_others_traces():
    tracing = threading.Event()
    release = threading.Event()

    def f(x):
        if x.ndim == 2:  # shape logic is static: fine while tracing
            tracing.set()
            release.wait(5)
        return fnp.tanh(x) * 2.0 + fnp.sum(x)

    jf = ft.jit(f)
    shapes = [(3,), (4,), (2, 3), (5,)]
    errors = []
    barrier = threading.Barrier(8)

    def worker(k):
        try:
            rng = np.random.default_rng(k)
            barrier.wait()
            for i in range(40):
                x = rng.normal(size=shapes[(k + i) % 4])
                assert_close(jf(x), np.tanh(x) * 2 + x.sum())
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    tracing.wait(5)
    # While a thread is tracing, this thread evaluates eagerly: no trace leaks across.
    assert ft.core.current_trace() is ft.core.EVAL_TRACE
    assert type(fnp.tanh(np.ones(2))) is np.ndarray
    release.set()
    for t in threads:
        t.join()
    assert not errors, errors
    info = jf.cache_info()
    assert info.hits + info.misses == 8 * 40
    assert info.misses == info.currsize == 4


def test_a_ten_thousand_equation_program_jits_without_deep_recursion(rng):
    def chain(x):
        for i in range(10_000):
            x = fnp.sin(x) if i % 2 else x * 1.0001
        return x

    x = rng.normal(size=5)
    jf = ft.jit(chain)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200 + len(__import__("inspect").stack()))
    try:
        got = jf(x)
    finally:
        sys.setrecursionlimit(limit)
    want = x
    for i in range(10_000):
        want = np.sin(want) if i % 2 else want * 1.0001
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert jf.source(x).count("\n") > 10_000


VIEWS_AND_IDENTITIES = {
    "copy": fnp.copy,
    "times one": lambda x: x * 1.0,
    "plus zero": lambda x: x + 0.0,
    "transpose": lambda x: x.T,
    "slice": lambda x: x[1:],
    "twice": lambda x: (x, x),
}


@pytest.mark.parametrize("name", list(VIEWS_AND_IDENTITIES))
def test_outputs_never_share_memory_with_inputs(name):
    # The optimizer reduces these to the input (or a view of it); a jitted function
    # still returns new arrays, as a copy does eagerly. vmap copies an input it
    # returns unchanged.
    f = VIEWS_AND_IDENTITIES[name]
    x = np.arange(6.0).reshape(2, 3)
    runs = [ft.jit(f)] + ([ft.vmap(f)] if name in ("copy", "twice") else [])
    for run in runs:
        out = run(x)
        for o in out if isinstance(out, tuple) else (out,):
            assert not np.shares_memory(o, x)
    assert type(ft.jit(lambda x: x[0, 0])(x)) is np.float64  # a scalar, not a 0-d view
