"""functrans.optim against hand-written update formulas, eagerly and under jit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrans as ft
from functrans import optim
from functrans.tree_util import tree_leaves, tree_map, tree_structure

STEPS = 5


def make_params(rng):
    """A pytree of mixed shapes and dtypes: a matrix, a float32 vector, a scalar."""
    return {
        "dense": (rng.normal(size=(3, 4)), rng.normal(size=(4,)).astype(np.float32)),
        "scale": [np.float64(rng.normal())],
    }


def make_grads(rng, params):
    return tree_map(lambda p: rng.normal(size=np.shape(p)).astype(np.asarray(p).dtype), params)


# --- the formulas, written out in NumPy, one leaf at a time -------------------------


def sgd_reference(lr, momentum, nesterov):
    def step(p, g, v, t):
        v = g + momentum * v
        d = g + momentum * v if nesterov else (v if momentum else g)
        return p - lr * d, v

    return step


def adam_reference(lr, b1, b2, eps, wd):
    def step(p, g, mv, t):
        m, v = mv
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        return p - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * p), (m, v)

    return step


def run_reference(step, params, grads_seq, state0):
    leaves = [np.asarray(p, dtype=np.float64) for p in tree_leaves(params)]
    states = [state0(p) for p in leaves]
    for t, grads in enumerate(grads_seq, start=1):
        gs = [np.asarray(g, dtype=np.float64) for g in tree_leaves(grads)]
        new = [step(p, g, s, t) for p, g, s in zip(leaves, gs, states, strict=True)]
        leaves, states = [n[0] for n in new], [n[1] for n in new]
    return leaves


def run_optimizer(opt, params, grads_seq, jit=None):
    update = opt.update if jit is None else jit(opt.update)
    state = opt.init(params)
    for grads in grads_seq:
        updates, state = update(grads, state, params)
        params = optim.apply_updates(params, updates)
    return params, state


CASES = {
    "sgd": (
        lambda: optim.sgd(0.1),
        sgd_reference(0.1, 0.0, False),
        np.zeros_like,
    ),
    "momentum": (
        lambda: optim.sgd(0.1, momentum=0.9),
        sgd_reference(0.1, 0.9, False),
        np.zeros_like,
    ),
    "nesterov": (
        lambda: optim.sgd(0.05, momentum=0.8, nesterov=True),
        sgd_reference(0.05, 0.8, True),
        np.zeros_like,
    ),
    "adam": (
        lambda: optim.adam(0.01),
        adam_reference(0.01, 0.9, 0.999, 1e-8, 0.0),
        lambda p: (np.zeros_like(p), np.zeros_like(p)),
    ),
    "adam-betas": (
        lambda: optim.adam(0.2, b1=0.5, b2=0.75, eps=1e-3),
        adam_reference(0.2, 0.5, 0.75, 1e-3, 0.0),
        lambda p: (np.zeros_like(p), np.zeros_like(p)),
    ),
    "adamw": (
        lambda: optim.adamw(0.01, weight_decay=0.1),
        adam_reference(0.01, 0.9, 0.999, 1e-8, 0.1),
        lambda p: (np.zeros_like(p), np.zeros_like(p)),
    ),
}


def check_against_reference(name, jit=None):
    make_opt, step, state0 = CASES[name]
    rng = np.random.default_rng(0)
    params = make_params(rng)
    grads_seq = [make_grads(rng, params) for _ in range(STEPS)]
    got, state = run_optimizer(make_opt(), params, grads_seq, jit)
    want = run_reference(step, params, grads_seq, state0)
    assert tree_structure(got) == tree_structure(params)
    for g, w, p in zip(tree_leaves(got), want, tree_leaves(params), strict=True):
        dtype = np.asarray(p).dtype
        assert np.asarray(g).dtype == dtype, (name, np.asarray(g).dtype, dtype)
        assert np.shape(g) == np.shape(p)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(np.asarray(g, np.float64), w, rtol=tol, atol=tol)
    assert int(state.count) == STEPS
    assert np.asarray(state.count).dtype == np.int32


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_hand_written_formulas(name):
    check_against_reference(name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_hand_written_formulas_under_jit(name):
    check_against_reference(name, ft.jit)


@pytest.mark.parametrize("name", sorted(CASES))
def test_update_traces_with_state_as_pytree_of_arrays(name):
    """The whole update stages to a jaxpr: the state is arrays only, the count too."""
    make_opt, _, _ = CASES[name]
    opt = make_opt()
    params = make_params(np.random.default_rng(1))
    state = opt.init(params)
    assert all(isinstance(x, np.ndarray) for x in tree_leaves(state))
    closed = ft.make_jaxpr(opt.update)(params, state, params)
    out_avals = [v.aval for v in closed.jaxpr.outvars]
    expected = tree_leaves((params, state))
    assert [a.shape for a in out_avals] == [np.shape(x) for x in expected]
    assert [a.dtype for a in out_avals] == [np.asarray(x).dtype for x in expected]


def test_inside_a_differentiated_training_step():
    """A step written as a pure function: grad of the loss, then the update."""
    opt = optim.adam(0.05)

    def loss(p):
        return ft.numpy.sum(ft.numpy.square(p["w"] - np.arange(3.0))) + ft.numpy.square(p["b"])

    def step(params, state):
        grads = ft.grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    params = {"w": np.zeros(3), "b": np.float64(2.0)}
    state = opt.init(params)
    jitted = ft.jit(step)
    for _ in range(300):
        params, state = jitted(params, state)
    np.testing.assert_allclose(params["w"], np.arange(3.0), atol=1e-3)
    assert abs(float(params["b"])) < 1e-3


def test_schedule_and_float32_leaves_stay_float32():
    calls = []

    def schedule(count):
        calls.append(int(count))
        return 0.1 / (1.0 + np.asarray(count, np.float64))  # a float64 array

    for opt in (optim.sgd(schedule), optim.adam(schedule), optim.sgd(np.float64(0.1), 0.5)):
        params = {"w": np.ones(3, np.float32)}
        state = opt.init(params)
        for _ in range(3):
            updates, state = opt.update({"w": np.ones(3, np.float32)}, state, params)
            assert updates["w"].dtype == np.float32
            params = optim.apply_updates(params, updates)
        assert params["w"].dtype == np.float32
    assert calls[:3] == [0, 1, 2]  # the schedule sees the count before the step
    # sgd with lr_t = 0.1 / (1 + t) for t = 0, 1, 2:
    params = {"w": np.zeros(1)}
    opt = optim.sgd(lambda c: 0.1 / (1.0 + c))
    state = opt.init(params)
    for _ in range(3):
        updates, state = opt.update({"w": np.ones(1)}, state)
        params = optim.apply_updates(params, updates)
    np.testing.assert_allclose(params["w"], [-(0.1 + 0.05 + 0.1 / 3)])


@settings(deadline=None, max_examples=25, derandomize=True)
@given(
    lr=st.floats(1e-4, 1.0),
    b1=st.floats(0.0, 0.99),
    b2=st.floats(0.0, 0.999),
    shape=st.lists(st.integers(0, 3), max_size=3).map(tuple),
)
def test_adam_matches_formula_for_any_hyperparameters(lr, b1, b2, shape):
    rng = np.random.default_rng(42)
    p0 = rng.normal(size=shape)
    grads_seq = [rng.normal(size=shape) for _ in range(3)]
    got, _ = run_optimizer(optim.adam(lr, b1=b1, b2=b2), p0, grads_seq)
    (want,) = run_reference(
        adam_reference(lr, b1, b2, 1e-8, 0.0),
        p0,
        grads_seq,
        lambda p: (np.zeros_like(p), np.zeros_like(p)),
    )
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_errors_name_the_optimizer_and_the_problem():
    with pytest.raises(ValueError, match="sgd: learning_rate must be non-negative"):
        optim.sgd(-0.1)
    with pytest.raises(TypeError, match="adam: b1 must be a number"):
        optim.adam(0.1, b1="0.9")
    with pytest.raises(ValueError, match=r"adam: b2 must be in \[0, 1\)"):
        optim.adam(0.1, b2=1.0)
    with pytest.raises(ValueError, match="nesterov=True needs a nonzero momentum"):
        optim.sgd(0.1, nesterov=True)
    opt = optim.adam(0.1)
    state = opt.init({"w": np.zeros(3)})
    with pytest.raises(ValueError, match="adam.update: grads have tree structure"):
        opt.update({"v": np.zeros(3)}, state)
    with pytest.raises(ValueError, match=r"gradient of shape \(2,\) for a parameter of shape"):
        opt.update({"w": np.zeros(2)}, state)
    opt = optim.adamw(0.1)
    with pytest.raises(TypeError, match="adamw.update: weight decay needs the parameters"):
        opt.update({"w": np.zeros(3)}, opt.init({"w": np.zeros(3)}))
    with pytest.raises(ValueError, match="apply_updates: params have tree structure"):
        optim.apply_updates({"w": np.zeros(3)}, [np.zeros(3)])
