"""functrans.nn: values against NumPy, stability at extreme inputs, derivatives against
finite differences, and behaviour under vmap and jit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrans as ft
import functrans.numpy as fnp
from functrans import nn
from functrans.test_util import check_grads


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --- NumPy references (for moderate inputs, where the naive formula is accurate) ------


def ref_logsumexp(x, axis=None, keepdims=False):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def ref_softmax(x, axis=-1):
    return np.exp(x) / np.sum(np.exp(x), axis=axis, keepdims=True)


ACTIVATIONS = {
    "sigmoid": (nn.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "relu": (nn.relu, lambda x: np.maximum(x, 0)),
    "tanh": (nn.tanh, np.tanh),
    "softplus": (nn.softplus, lambda x: np.log1p(np.exp(x))),
    "log_sigmoid": (nn.log_sigmoid, lambda x: -np.log1p(np.exp(-x))),
    "softmax": (nn.softmax, ref_softmax),
    "log_softmax": (nn.log_softmax, lambda x: np.log(ref_softmax(x))),
    "logsumexp": (nn.logsumexp, ref_logsumexp),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(), (5,), (3, 4)])
def test_values_match_numpy(name, shape, rng):
    fun, ref = ACTIVATIONS[name]
    x = rng.normal(size=shape) * 3
    got = fun(x)
    np.testing.assert_allclose(got, ref(x), rtol=1e-12, atol=1e-12)
    assert np.shape(got) == np.shape(ref(x))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_float32_stays_float32(name, rng):
    fun, _ = ACTIVATIONS[name]
    x = rng.normal(size=(2, 3)).astype(np.float32)
    assert np.asarray(fun(x)).dtype == np.float32
    traced = ft.make_jaxpr(fun)(x)
    assert traced.jaxpr.outvars[0].aval.dtype == np.float32


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivatives_match_finite_differences(name, rng):
    fun, _ = ACTIVATIONS[name]
    x = rng.normal(size=(3, 4))
    x[np.abs(x) < 0.05] += 0.2  # keep away from relu's kink
    check_grads(fun, (x,), order=2)


# --- stability -------------------------------------------------------------------------

BIG = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "log_sigmoid", "tanh", "relu"])
def test_elementwise_finite_with_finite_gradients_at_extremes(name):
    fun, _ = ACTIVATIONS[name]
    assert np.isfinite(fun(BIG)).all()
    for x in (1000.0, -1000.0):
        g = ft.grad(fun)(x)
        assert np.isfinite(g), (name, x, g)
    grads = ft.vmap(ft.grad(fun))(BIG)
    assert np.isfinite(grads).all(), (name, grads)


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "log_sigmoid", "tanh", "relu"])
def test_nan_and_infinities_come_out_as_numpy_gives_them(name):
    # NaN in, NaN out: an activation built on ``where`` must not swallow it.
    fun, ref = ACTIVATIONS[name]
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0])
    with np.errstate(all="ignore"):
        want = ref(x)
    for f in (fun, ft.jit(fun)):
        np.testing.assert_array_equal(f(x), want)


def test_sigmoid_limits_and_exact_gradients():
    np.testing.assert_array_equal(nn.sigmoid(np.array([-1000.0, 1000.0])), [0.0, 1.0])
    assert float(ft.grad(nn.sigmoid)(1000.0)) == 0.0
    assert float(ft.grad(nn.sigmoid)(-1000.0)) == 0.0
    assert float(ft.grad(nn.sigmoid)(0.0)) == 0.25
    np.testing.assert_allclose(nn.log_sigmoid(np.array([-1000.0, 1000.0])), [-1000.0, 0.0])
    assert float(ft.grad(nn.log_sigmoid)(-1000.0)) == 1.0
    assert float(ft.grad(nn.softplus)(0.0)) == 0.5  # sigmoid(0), also at the kink of |x|
    # Second derivatives at 0, where max(x, 0) and |x| have kinks: sigmoid'(0) = 1/4.
    assert float(ft.grad(ft.grad(nn.softplus))(0.0)) == 0.25
    assert float(ft.grad(ft.grad(nn.log_sigmoid))(0.0)) == -0.25
    np.testing.assert_allclose(
        ft.hessian(lambda x: fnp.sum(nn.softplus(x)))(np.zeros(3)), 0.25 * np.eye(3)
    )


@pytest.mark.parametrize(
    "logits",
    [
        np.array([1000.0, 0.0]),
        np.array([1e4, -1e4, 3.0]),
        np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1001.0, -999.0]]),
        np.array([-np.inf, 0.0, 1.0]),
    ],
)
def test_log_softmax_of_large_logits(logits):
    out = nn.log_softmax(logits)
    finite = np.isfinite(logits)
    assert np.isfinite(out[finite]).all()
    shifted = logits - logits.max(axis=-1, keepdims=True)
    want = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(out, want)
    np.testing.assert_allclose(np.exp(out).sum(axis=-1), 1.0)
    np.testing.assert_allclose(nn.softmax(logits), np.exp(want))
    weights = np.linspace(-1, 1, logits.size).reshape(logits.shape)
    g = ft.grad(lambda z: fnp.sum(fnp.where(np.isfinite(logits), nn.log_softmax(z), 0) * weights))(
        logits
    )
    assert np.isfinite(g).all(), g
    lse = nn.logsumexp(logits, axis=-1)
    np.testing.assert_allclose(lse, logits.max(axis=-1) + np.log(np.exp(shifted).sum(axis=-1)))
    assert np.isfinite(ft.grad(lambda z: fnp.sum(nn.logsumexp(z, axis=-1)))(logits)).all()


def test_cross_entropy_of_confident_wrong_predictions_is_finite():
    logits = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])
    labels = np.array([1, 0])
    loss = nn.softmax_cross_entropy(logits, labels)
    np.testing.assert_allclose(loss, 2000.0)
    g = ft.grad(nn.softmax_cross_entropy)(logits, labels)
    np.testing.assert_allclose(g, [[0.5, -0.5], [-0.5, 0.5]])


# --- logsumexp axes ---------------------------------------------------------------------


@settings(deadline=None, max_examples=40, derandomize=True)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    data=st.data(),
    keepdims=st.booleans(),
)
def test_logsumexp_and_softmax_over_any_axis(shape, data, keepdims):
    ndim = len(shape)
    axis = data.draw(
        st.one_of(
            st.none(),
            st.integers(-ndim, ndim - 1),
            st.lists(st.integers(0, ndim - 1), min_size=1, unique=True).map(tuple),
        )
    )
    x = np.random.default_rng(1).normal(size=shape) * 5 + 300
    got = nn.logsumexp(x, axis=axis, keepdims=keepdims)
    want = ref_logsumexp(x - 300, axis=axis, keepdims=keepdims) + 300
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.shape(got) == np.shape(want)
    if isinstance(axis, int):
        np.testing.assert_allclose(nn.softmax(x, axis=axis), ref_softmax(x - 300, axis=axis))
        np.testing.assert_allclose(
            nn.log_softmax(x, axis=axis), np.log(ref_softmax(x - 300, axis=axis))
        )


# --- one_hot ----------------------------------------------------------------------------


def test_one_hot():
    out = nn.one_hot(np.array([[0, 3], [1, 7]]), 4, dtype=np.float32)
    assert out.shape == (2, 2, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1, 1], 0.0)  # out of range: all zeros
    np.testing.assert_array_equal(out[0, 1], [0, 0, 0, 1])
    traced = ft.vmap(lambda y: nn.one_hot(y, 3))(np.array([2, 0]))
    np.testing.assert_array_equal(traced, np.eye(3)[[2, 0]])
    with pytest.raises(TypeError, match=r"one_hot: labels must be integers, got float64"):
        nn.one_hot(np.array([0.0, 1.0]), 3)


# --- losses -----------------------------------------------------------------------------


def test_softmax_cross_entropy_value_and_gradient(rng):
    logits = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, size=6)
    targets = np.eye(4)[labels]
    logp = np.log(ref_softmax(logits))
    want = -np.mean(logp[np.arange(6), labels])
    np.testing.assert_allclose(nn.softmax_cross_entropy(logits, labels), want)
    np.testing.assert_allclose(nn.softmax_cross_entropy(logits, targets), want)
    g = ft.grad(nn.softmax_cross_entropy)(logits, labels)
    np.testing.assert_allclose(g, (ref_softmax(logits) - targets) / 6, atol=1e-14)
    check_grads(lambda z: nn.softmax_cross_entropy(z, labels), (logits,), order=2)
    soft = ref_softmax(rng.normal(size=(6, 4)))  # probabilities, not one-hot
    np.testing.assert_allclose(
        nn.softmax_cross_entropy(logits, soft), -np.mean(np.sum(soft * logp, axis=-1))
    )


def test_softmax_cross_entropy_shapes_and_batches(rng):
    logits = rng.normal(size=(2, 3, 5))
    labels = rng.integers(0, 5, size=(2, 3))
    per_example = ft.vmap(nn.softmax_cross_entropy)(logits.reshape(6, 5), labels.reshape(6))
    assert per_example.shape == (6,)
    np.testing.assert_allclose(nn.softmax_cross_entropy(logits, labels), per_example.mean())
    single = nn.softmax_cross_entropy(logits[0, 0], labels[0, 0])
    np.testing.assert_allclose(single, per_example[0])
    f32 = nn.softmax_cross_entropy(logits.astype(np.float32), labels)
    assert np.asarray(f32).dtype == np.float32
    with pytest.raises(
        ValueError,
        match=r"labels of shape \(2,\) and dtype int64 do not fit "
        r"logits of shape \(2, 3, 5\)",
    ):
        nn.softmax_cross_entropy(logits, labels[:, 0])
    with pytest.raises(ValueError, match="float targets of shape"):
        nn.softmax_cross_entropy(logits, np.zeros((2, 3)))


def test_softmax_cross_entropy_under_jit(rng):
    logits = rng.normal(size=(8, 10))
    labels = rng.integers(0, 10, size=8)
    fun = ft.jit(ft.value_and_grad(nn.softmax_cross_entropy))
    value, grad = fun(logits, labels)
    np.testing.assert_allclose(value, nn.softmax_cross_entropy(logits, labels))
    np.testing.assert_allclose(grad, ft.grad(nn.softmax_cross_entropy)(logits, labels))


def test_mean_squared_error(rng):
    p, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    np.testing.assert_allclose(nn.mean_squared_error(p, t), np.mean((p - t) ** 2))
    np.testing.assert_allclose(ft.grad(nn.mean_squared_error)(p, t), 2 * (p - t) / p.size)
    check_grads(nn.mean_squared_error, (p, t), order=2)
    with pytest.raises(
        ValueError,
        match=r"predictions of shape \(4, 1\) and targets of shape "
        r"\(4,\) differ",
    ):
        nn.mean_squared_error(p[:, :1], t[:, 0])


# --- initializers ------------------------------------------------------------------------


def test_glorot_uniform():
    rng = np.random.default_rng(0)
    W = nn.glorot_uniform(rng, (300, 200), np.float32)
    assert W.shape == (300, 200) and W.dtype == np.float32
    limit = np.sqrt(6 / 500)
    assert np.abs(W).max() <= limit
    np.testing.assert_allclose(W.var(), limit**2 / 3, rtol=0.02)  # variance of U(-a, a)
    W = nn.glorot_uniform(rng, (3, 3, 16, 32))  # a convolution kernel: fans scale by 3x3
    assert np.abs(W).max() <= np.sqrt(6 / (9 * 16 + 9 * 32))
    again = nn.glorot_uniform(np.random.default_rng(0), (300, 200), np.float32)
    np.testing.assert_array_equal(
        nn.glorot_uniform(np.random.default_rng(0), (300, 200), np.float32), again
    )


def test_he_normal():
    W = nn.he_normal(np.random.default_rng(0), (400, 300))
    assert W.shape == (400, 300) and W.dtype == np.float64
    np.testing.assert_allclose(W.std(), np.sqrt(2 / 400), rtol=0.02)
    np.testing.assert_allclose(W.mean(), 0.0, atol=0.002)
    V = nn.he_normal(np.random.default_rng(0), (300, 400), in_axis=-1, out_axis=-2)
    np.testing.assert_allclose(V.std(), np.sqrt(2 / 400), rtol=0.02)


def test_initializer_errors():
    with pytest.raises(TypeError, match="he_normal: rng must be a numpy.random.Generator"):
        nn.he_normal(0, (3, 4))
    with pytest.raises(
        ValueError,
        match=r"glorot_uniform: needs a weight shape with at least "
        r"2 axes .* got \(5,\)",
    ):
        nn.glorot_uniform(np.random.default_rng(0), (5,))


# --- composition -------------------------------------------------------------------------


def test_two_layer_network_trains_a_step(rng):
    """A forward pass with every piece: initializers, sigmoid, cross-entropy, grads."""
    params = {
        "W1": nn.glorot_uniform(rng, (8, 16)),
        "b1": np.zeros(16),
        "W2": nn.glorot_uniform(rng, (16, 3)),
        "b2": np.zeros(3),
    }
    X, y = rng.normal(size=(32, 8)), rng.integers(0, 3, size=32)

    def loss(p):
        h = nn.sigmoid(X @ p["W1"] + p["b1"])
        return nn.softmax_cross_entropy(h @ p["W2"] + p["b2"], y)

    value, grads = ft.value_and_grad(loss)(params)
    stepped = {k: params[k] - 0.5 * grads[k] for k in params}
    assert loss(stepped) < value
    check_grads(loss, (params,), order=1)


def test_a_row_of_minus_infinity():
    logits = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(nn.logsumexp(logits, axis=-1), [-np.inf, 0.0])
        out = nn.log_softmax(logits)
        probs = nn.softmax(logits)
    # As in NumPy's own arithmetic: nothing to normalise over is NaN, a masked entry is -inf.
    assert np.isnan(out[0]).all() and np.isnan(probs[0]).all()
    np.testing.assert_array_equal(out[1], [0.0, -np.inf])
    np.testing.assert_array_equal(probs[1], [1.0, 0.0])


def test_softmax_family_axes_and_empty_axes():
    for fun in (nn.softmax, nn.log_softmax, nn.logsumexp):
        with pytest.raises(ValueError, match=rf"{fun.__name__}: axis 3 is out of bounds"):
            fun(np.ones(3), axis=3)
        with pytest.raises(ValueError, match=rf"{fun.__name__}: repeated axis"):
            fun(np.ones((2, 2)), axis=(1, -1))
    # As in JAX: the log-sum-exp of nothing is -inf, softmaxes of nothing are empty.
    assert nn.logsumexp(np.zeros(0)) == -np.inf
    np.testing.assert_array_equal(nn.logsumexp(np.zeros((2, 0)), axis=1), [-np.inf, -np.inf])
    assert nn.softmax(np.zeros((2, 0))).shape == nn.log_softmax(np.zeros((2, 0))).shape == (2, 0)
    assert type(nn.logsumexp(np.ones(3))) is np.float64
    assert nn.logsumexp(1.5, axis=-1) == 1.5  # a scalar takes axis 0 or -1, as in NumPy
    with pytest.raises(ValueError, match="logsumexp: axis 0 is out of bounds"):
        nn.logsumexp(1.5, axis=(0,))  # but no tuple of axes
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(nn.logsumexp(x, axis=(0, 1)), np.log(np.exp(x).sum()))
    np.testing.assert_allclose(nn.logsumexp(x, axis=-1, keepdims=True)[:, 0], nn.logsumexp(x, 1))


def test_logsumexp_of_integers_eagerly_and_compiled():
    x = np.arange(3)
    want = np.log(np.exp(x).sum())
    np.testing.assert_allclose(nn.logsumexp(x), want)
    np.testing.assert_allclose(ft.jit(nn.logsumexp)(x), want)
