"""The differentiation API: grad, value_and_grad, vjp, jvp, linearize, jacfwd, jacrev,
hessian, custom_jvp/custom_vjp and stop_gradient, against closed forms in NumPy."""

from __future__ import annotations

import functools
from collections import namedtuple

import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from functrans import lax
from functrans.core import Primitive
from functrans.errors import UnexpectedTracerError
from functrans.primitives import all_primitives
from functrans.test_util import check_grads

X = np.array([0.3, -1.2, 2.0])
A = np.array([[0.5, -1.0, 0.25], [1.5, 0.3, -0.7]])


def sum_tanh_sq(x):
    return fnp.sum(fnp.tanh(x) ** 2)


def sum_tanh_sq_grad(x):
    t = np.tanh(x)
    return 2 * t * (1 - t**2)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# ---------------------------------------------------------------------------
# grad and value_and_grad
# ---------------------------------------------------------------------------


def test_grad_matches_the_closed_form():
    np.testing.assert_allclose(ft.grad(sum_tanh_sq)(X), sum_tanh_sq_grad(X), rtol=1e-12)


def test_value_and_grad_returns_both():
    value, g = ft.value_and_grad(sum_tanh_sq)(X)
    np.testing.assert_allclose(value, np.sum(np.tanh(X) ** 2), rtol=1e-12)
    np.testing.assert_allclose(g, sum_tanh_sq_grad(X), rtol=1e-12)


def f_xy(x, y):
    return fnp.sum(fnp.sin(x) * y**2)


def test_argnums_int_negative_and_tuple():
    y = np.array([1.0, 2.0, -0.5])
    gx_expected, gy_expected = np.cos(X) * y**2, 2 * np.sin(X) * y
    np.testing.assert_allclose(ft.grad(f_xy)(X, y), gx_expected)
    np.testing.assert_allclose(ft.grad(f_xy, argnums=1)(X, y), gy_expected)
    np.testing.assert_allclose(ft.grad(f_xy, argnums=-1)(X, y), gy_expected)
    gx, gy = ft.grad(f_xy, argnums=(0, 1))(X, y)
    np.testing.assert_allclose(gx, gx_expected)
    np.testing.assert_allclose(gy, gy_expected)
    (only_y,) = ft.grad(f_xy, argnums=(1,))(X, y)
    np.testing.assert_allclose(only_y, gy_expected)
    _, (gx, gy) = ft.value_and_grad(f_xy, argnums=(0, 1))(X, y)
    np.testing.assert_allclose(gy, gy_expected)


@pytest.mark.parametrize("argnums", [2, -3, (0, 2)])
def test_argnums_out_of_range(argnums):
    with pytest.raises(ValueError, match="argnums") as info:
        ft.grad(f_xy, argnums=argnums)(X, X)
    assert "2 positional arguments" in str(info.value)


@pytest.mark.parametrize("argnums", ["x", 1.0])
def test_argnums_of_the_wrong_type(argnums):
    with pytest.raises(TypeError, match="argnums"):
        ft.grad(f_xy, argnums=argnums)(X, X)


def test_has_aux():
    def loss(w):
        pred = fnp.tanh(w)
        return fnp.sum(pred**2), {"pred": pred, "note": "aux can hold anything"}

    g, aux = ft.grad(loss, has_aux=True)(X)
    np.testing.assert_allclose(g, sum_tanh_sq_grad(X))
    np.testing.assert_allclose(aux["pred"], np.tanh(X))
    assert isinstance(aux["pred"], np.ndarray) and aux["note"] == "aux can hold anything"
    (value, aux), g = ft.value_and_grad(loss, has_aux=True)(X)
    np.testing.assert_allclose(value, np.sum(np.tanh(X) ** 2))
    np.testing.assert_allclose(aux["pred"], np.tanh(X))


def test_has_aux_requires_a_pair():
    with pytest.raises(TypeError, match="has_aux"):
        ft.grad(sum_tanh_sq, has_aux=True)(X)


@pytest.mark.parametrize("bad", [np.array([1, 2]), np.array([True, False]), 3])
def test_integer_and_bool_inputs_are_a_type_error(bad):
    with pytest.raises(TypeError) as info:
        ft.grad(lambda x: fnp.sum(x * 2.0))(bad)
    message = str(info.value)
    assert np.asarray(bad).dtype.name in message and "allow_int" in message


def test_allow_int_gives_a_zero_gradient_for_the_integer_input():
    f = lambda n, x: fnp.sum(x**2) * n
    gn, gx = ft.grad(f, argnums=(0, 1), allow_int=True)(3, X)
    assert np.all(np.asarray(gn) == 0)
    np.testing.assert_allclose(gx, 6 * X)


@pytest.mark.parametrize("shape", [(3,), (2, 1), (1,)])
def test_non_scalar_output_is_a_type_error_naming_the_shape(shape):
    with pytest.raises(TypeError) as info:
        ft.grad(lambda x: fnp.reshape(x, shape) * 2.0)(np.ones(int(np.prod(shape))))
    assert str(shape) in str(info.value)


def test_gradient_has_the_shape_and_dtype_of_its_input():
    for x in (X, X.astype(np.float32), np.float32(0.5), 0.5, np.ones((2, 3), np.float32)):
        g = ft.grad(lambda x: fnp.sum(fnp.sin(x) * 3.0))(x)
        assert np.shape(g) == np.shape(x)
        assert np.asarray(g).dtype == np.asarray(x).dtype
    g = ft.grad(lambda x, y: fnp.sum(y))(X.astype(np.float32), X)  # independent of x
    assert g.dtype == np.float32 and np.all(g == 0)


def test_keyword_arguments_are_not_differentiated():
    g = ft.grad(lambda x, scale=1.0: fnp.sum(x**2) * scale)(X, scale=3.0)
    np.testing.assert_allclose(g, 6 * X)


# ---------------------------------------------------------------------------
# Pytrees
# ---------------------------------------------------------------------------

Params = namedtuple("Params", ["w", "b"])


def test_grad_of_dict_tuple_and_namedtuple_arguments():
    x = np.array([1.0, -2.0, 0.5])
    params = {"layer": Params(w=A, b=np.array([0.1, -0.1])), "scale": (np.array(2.0),)}

    def loss(p, x):
        z = p["layer"].w @ x + p["layer"].b
        return fnp.sum(fnp.tanh(z)) * p["scale"][0]

    g = ft.grad(loss)(params, x)
    assert isinstance(g, dict) and isinstance(g["layer"], Params)
    assert isinstance(g["scale"], tuple)
    z = A @ x + params["layer"].b
    delta = 2.0 * (1 - np.tanh(z) ** 2)
    np.testing.assert_allclose(g["layer"].w, np.outer(delta, x))
    np.testing.assert_allclose(g["layer"].b, delta)
    np.testing.assert_allclose(g["scale"][0], np.sum(np.tanh(z)))
    assert g["scale"][0].shape == ()


def test_vjp_and_jvp_with_pytree_inputs_and_outputs():
    def f(p):
        return {"prod": p.w * p.b, "pair": (fnp.sum(p.w), fnp.exp(p.b))}

    p = Params(w=np.array([1.0, 2.0]), b=np.array([0.5, -1.0]))
    out, pullback = ft.vjp(f, p)
    assert set(out) == {"prod", "pair"}
    ct = {"prod": np.array([1.0, 10.0]), "pair": (np.array(3.0), np.array([2.0, 0.0]))}
    (g,) = pullback(ct)
    assert isinstance(g, Params)
    np.testing.assert_allclose(g.w, ct["prod"] * p.b + 3.0)
    np.testing.assert_allclose(g.b, ct["prod"] * p.w + ct["pair"][1] * np.exp(p.b))

    t = Params(w=np.array([1.0, 0.0]), b=np.array([0.0, 1.0]))
    out, tangent = ft.jvp(f, (p,), (t,))
    np.testing.assert_allclose(tangent["prod"], t.w * p.b + p.w * t.b)
    np.testing.assert_allclose(tangent["pair"][0], 1.0)
    np.testing.assert_allclose(tangent["pair"][1], np.exp(p.b) * t.b)


def test_jacobians_of_pytrees():
    def f(p):
        return {"a": p["x"] * 2.0, "b": fnp.sum(p["x"] * p["y"])}

    p = {"x": np.array([1.0, 2.0, 3.0]), "y": np.array([4.0, 5.0, 6.0])}
    for jac in (ft.jacfwd, ft.jacrev):
        j = jac(f)(p)
        np.testing.assert_allclose(j["a"]["x"], 2 * np.eye(3))
        np.testing.assert_allclose(j["a"]["y"], np.zeros((3, 3)))
        np.testing.assert_allclose(j["b"]["x"], p["y"])
        np.testing.assert_allclose(j["b"]["y"], p["x"])


# ---------------------------------------------------------------------------
# vjp, jvp, linearize
# ---------------------------------------------------------------------------


def tanh_affine(x):
    return fnp.tanh(A @ x)


def tanh_affine_jacobian(x):
    return (1 - np.tanh(A @ x) ** 2)[:, None] * A


def test_vjp_fn_called_repeatedly_with_different_cotangents():
    out, pullback = ft.vjp(tanh_affine, X)
    np.testing.assert_allclose(out, np.tanh(A @ X))
    jac = tanh_affine_jacobian(X)
    rng = np.random.default_rng(0)
    for _ in range(4):
        u = rng.standard_normal(2)
        (g,) = pullback(u)
        np.testing.assert_allclose(g, jac.T @ u, rtol=1e-12)
    # The basis vectors give the rows of the Jacobian; the results stay independent.
    rows = [pullback(e)[0] for e in np.eye(2)]
    np.testing.assert_allclose(np.stack(rows), jac, rtol=1e-12)


def test_vjp_with_several_primals_and_has_aux():
    out, pullback, aux = ft.vjp(lambda a, b: (a * b, {"ratio": a / b}), X, X + 5.0, has_aux=True)
    ga, gb = pullback(np.ones(3))
    np.testing.assert_allclose(ga, X + 5.0)
    np.testing.assert_allclose(gb, X)
    np.testing.assert_allclose(aux["ratio"], X / (X + 5.0))


def test_vjp_rejects_a_cotangent_of_the_wrong_shape():
    _, pullback = ft.vjp(tanh_affine, X)
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        pullback(np.ones(3))


def test_jvp_matches_the_closed_form():
    v = np.array([1.0, 0.5, -2.0])
    out, tangent = ft.jvp(tanh_affine, (X,), (v,))
    np.testing.assert_allclose(out, np.tanh(A @ X))
    np.testing.assert_allclose(tangent, tanh_affine_jacobian(X) @ v, rtol=1e-12)


def test_jvp_argument_errors():
    with pytest.raises(TypeError, match="tuples or lists"):
        ft.jvp(tanh_affine, X, np.ones(3))
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        ft.jvp(tanh_affine, (X,), (np.ones(2),))
    with pytest.raises(TypeError, match="float32.*float64"):
        ft.jvp(tanh_affine, (X,), (np.ones(3, np.float32),))


def test_linearize_evaluates_the_jacobian_without_rerunning_the_function():
    calls = []

    def f(x):
        calls.append(1)
        return fnp.sin(x) * x

    out, f_jvp = ft.linearize(f, X)
    assert len(calls) == 1
    np.testing.assert_allclose(out, np.sin(X) * X)
    for v in (np.ones(3), np.array([0.0, 2.0, -1.0])):
        np.testing.assert_allclose(f_jvp(v), (np.cos(X) * X + np.sin(X)) * v, rtol=1e-12)
    assert len(calls) == 1
    np.testing.assert_allclose(f_jvp(np.ones(3)), ft.jvp(f, (X,), (np.ones(3),))[1])


# ---------------------------------------------------------------------------
# float32 stays float32
# ---------------------------------------------------------------------------


def test_float32_inputs_give_float32_derivatives():
    x = X.astype(np.float32)
    a = A.astype(np.float32)
    f = lambda x: fnp.sum(fnp.tanh(a @ x) * 2.0 + x[0] ** 2)
    assert ft.grad(f)(x).dtype == np.float32
    assert ft.value_and_grad(f)(x)[0].dtype == np.float32
    assert ft.jvp(f, (x,), (np.ones(3, np.float32),))[1].dtype == np.float32
    assert ft.vjp(lambda x: fnp.exp(x) / 3.0, x)[1](np.ones(3, np.float32))[0].dtype == np.float32
    assert ft.linearize(f, x)[1](np.ones(3, np.float32)).dtype == np.float32
    assert ft.jacfwd(lambda x: fnp.sin(x) * 0.5)(x).dtype == np.float32
    assert ft.jacrev(lambda x: fnp.sin(x) * 0.5)(x).dtype == np.float32
    assert ft.hessian(f)(x).dtype == np.float32
    np.testing.assert_allclose(ft.grad(f)(x), ft.grad(f)(X.astype(np.float64)), rtol=1e-5)


def test_a_differentiated_python_number_is_weakly_typed():
    # Like the Python number itself, it takes the float32 of the arrays it meets.
    x32 = X.astype(np.float32)
    scaled = lambda s: x32 * s
    out, tangent = ft.jvp(scaled, (2.0,), (1.0,))
    assert out.dtype == tangent.dtype == np.float32
    value, g = ft.value_and_grad(lambda s: fnp.sum(scaled(s)))(2.0)
    assert value.dtype == np.float32
    assert type(g) is np.float64 and g == np.float64(x32.sum())  # a Python float's gradient
    out, pullback = ft.vjp(scaled, 2.0)
    assert out.dtype == np.float32 and pullback(np.ones(3, np.float32))[0].dtype == np.float64
    out, f_jvp = ft.linearize(scaled, 2.0)
    assert out.dtype == f_jvp(1.0).dtype == np.float32
    assert ft.jacfwd(scaled)(2.0).dtype == np.float32
    assert ft.grad(lambda s: fnp.sum(x32 * s * s))(2.0) == np.float64(4.0 * x32.sum())
    # It is typed by each primitive's own rule, as staging types it: weak through
    # s * 2.0, sin(s), sign(s), s // 0.7 or stop_gradient(s); strong once stacked or
    # given a dtype (then float64, as under jit and in NumPy).
    inner = {
        "mul": lambda s: s * 2.0,
        "sin": fnp.sin,
        "sign": fnp.sign,
        "floor_divide": lambda s: s // 0.7,
        "stop_gradient": ft.stop_gradient,
        "where": lambda s: fnp.where(s > 0, s, 0.0),
        "asarray": lambda s: fnp.asarray(s, dtype=float),
        "stack": lambda s: fnp.stack([s, s, s]),
    }
    for name, g in inner.items():
        f = lambda s, g=g: fnp.sum(x32 * g(s))
        want = ft.jit(f)(3.0).dtype
        assert want == (np.float64 if name in ("asarray", "stack") else np.float32), name
        assert ft.value_and_grad(f)(3.0)[0].dtype == want, name
        assert np.asarray(ft.jvp(f, (3.0,), (1.0,))[1]).dtype == want, name


def test_scalar_results_are_numpy_scalars():
    for result in (
        ft.grad(lambda x: 1.0)(2.0),  # a constant: a zero gradient
        ft.grad(ft.stop_gradient)(2.0),
        ft.value_and_grad(lambda x: 1.0)(2.0)[0],
        ft.grad(lambda x: x * 3.0)(np.array(2.0)),
        ft.jvp(lambda x: 1.0, (2.0,), (1.0,))[1],
    ):
        assert type(result) is np.float64, (result, type(result))


# ---------------------------------------------------------------------------
# Higher order
# ---------------------------------------------------------------------------


def test_grad_of_grad():
    f = lambda x: fnp.sin(x) * x
    d2 = ft.grad(ft.grad(f))
    for x in (0.3, -1.7, 2.5):
        np.testing.assert_allclose(d2(x), 2 * np.cos(x) - x * np.sin(x), rtol=1e-12)
    d3 = ft.grad(ft.grad(ft.grad(f)))
    np.testing.assert_allclose(d3(0.3), -3 * np.sin(0.3) - 0.3 * np.cos(0.3), rtol=1e-12)


def test_jacfwd_of_jacrev_and_the_other_orders():
    f = lambda x: fnp.sum(fnp.exp(x[0] * x) * x)
    x = np.array([0.5, -0.3, 1.1])
    expected = ft.hessian(f)(x)
    for outer in (ft.jacfwd, ft.jacrev):
        for inner in (ft.jacfwd, ft.jacrev):
            np.testing.assert_allclose(outer(inner(f))(x), expected, rtol=1e-10)
    # Closed form of the Hessian of f = sum_i x_i exp(x_0 x_i), with e_i = exp(x_0 x_i).
    x0, e = x[0], np.exp(x[0] * x)
    h = np.diag(x0 * e * (2 + x0 * x))
    cross = x * e * (2 + x0 * x)
    h[0, 1:] = h[1:, 0] = cross[1:]
    h[0, 0] = e[0] * (6 * x0 + 4 * x0**3) + np.sum(x[1:] ** 3 * e[1:])
    np.testing.assert_allclose(expected, h, rtol=1e-10)


def test_hessian_of_sum_tanh_of_a_linear_map():
    f = lambda x: fnp.sum(fnp.tanh(A @ x))
    t = np.tanh(A @ X)
    expected = A.T @ np.diag(-2 * t * (1 - t**2)) @ A
    np.testing.assert_allclose(ft.hessian(f)(X), expected, rtol=1e-12, atol=1e-14)


def test_jacobian_shapes_are_out_shape_plus_in_shape():
    x = np.ones((2, 3))
    f = lambda x: fnp.outer(fnp.sum(x, axis=0), np.arange(4.0))
    for jac in (ft.jacfwd, ft.jacrev):
        j = jac(f)(x)
        assert j.shape == (3, 4, 2, 3)
        expected = np.zeros((3, 4, 2, 3))
        for i in range(3):
            expected[i, :, :, i] = np.arange(4.0)[:, None]
        np.testing.assert_allclose(j, expected)
    jx, jy = ft.jacrev(lambda x, y: x * y[0], argnums=(0, 1))(X, np.ones(2))
    assert jx.shape == (3, 3) and jy.shape == (3, 2)
    np.testing.assert_allclose(jy[:, 0], X)


def test_check_grads_on_a_composite_to_second_order():
    check_grads(lambda x, w: fnp.sum(fnp.tanh(w @ x) ** 2 * fnp.exp(x[:2])), (X, A), order=2)


# ---------------------------------------------------------------------------
# Python control flow on values
# ---------------------------------------------------------------------------


def piecewise(x):
    if x > 0:
        return x**3
    return -2.0 * x


def test_python_branches_on_values_under_every_derivative():
    assert ft.grad(piecewise)(2.0) == 12.0
    assert ft.grad(piecewise)(-1.0) == -2.0
    assert ft.jvp(piecewise, (2.0,), (1.0,))[1] == 12.0
    assert ft.vjp(piecewise, -3.0)[1](1.0) == (-2.0,)
    assert ft.grad(ft.grad(piecewise))(2.0) == 12.0
    np.testing.assert_allclose(ft.hessian(piecewise)(2.0), 12.0)


def test_python_loops_on_values_under_grad():
    def newton_sqrt(a):
        y = a
        while fnp.abs(y * y - a) > 1e-12:
            y = 0.5 * (y + a / y)
        return y

    np.testing.assert_allclose(ft.grad(newton_sqrt)(4.0), 0.25, rtol=1e-9)

    def repeat(x):
        for _ in range(int(x[0])):
            x = x * 1.5
        return fnp.sum(x)

    np.testing.assert_allclose(ft.grad(repeat)(np.array([2.0, 1.0])), [2.25, 2.25])


# ---------------------------------------------------------------------------
# custom_vjp and custom_jvp
# ---------------------------------------------------------------------------


@ft.custom_vjp
def softplus(x):
    return fnp.log1p(fnp.exp(x))


def _softplus_fwd(x):
    return softplus(x), x


def _softplus_bwd(x, g):
    return (g / (1.0 + fnp.exp(-x)),)


softplus.defvjp(_softplus_fwd, _softplus_bwd)


@ft.custom_vjp
def clip_gradient(x):
    return x


clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (fnp.clip(g, -1.0, 1.0),))


def test_custom_vjp_rule_is_used_by_reverse_mode():
    np.testing.assert_allclose(ft.grad(lambda x: fnp.sum(softplus(x)))(X), sigmoid(X))
    np.testing.assert_allclose(softplus(X), np.log1p(np.exp(X)))  # eager: the function
    g = ft.grad(lambda x: fnp.sum(5.0 * clip_gradient(x)))(X)
    np.testing.assert_allclose(g, np.ones(3))  # clipped, not 5
    np.testing.assert_allclose(ft.jacrev(lambda x: 5.0 * clip_gradient(x))(X), np.eye(3))


def test_custom_vjp_under_forward_mode_differentiates_the_function():
    _, t = ft.jvp(lambda x: 5.0 * clip_gradient(x), (X,), (np.ones(3),))
    np.testing.assert_allclose(t, 5.0 * np.ones(3))
    np.testing.assert_allclose(ft.jacfwd(softplus)(X), np.diag(sigmoid(X)))


def test_custom_vjp_hessian_and_higher_order():
    s = sigmoid(X)
    np.testing.assert_allclose(
        ft.hessian(lambda x: fnp.sum(softplus(x)))(X), np.diag(s * (1 - s)), atol=1e-15
    )
    x = 0.3
    np.testing.assert_allclose(
        ft.grad(ft.grad(softplus))(x), sigmoid(x) * (1 - sigmoid(x)), rtol=1e-12
    )
    np.testing.assert_allclose(ft.vmap(ft.grad(softplus))(X), s)


def test_custom_vjp_with_several_arguments_and_none_cotangents():
    @ft.custom_vjp
    def scaled(x, scale):
        return x * scale

    scaled.defvjp(lambda x, s: (x * s, s), lambda s, g: (g * s, None))
    gx, gs = ft.grad(lambda x, s: fnp.sum(scaled(x, s)), argnums=(0, 1))(X, 3.0)
    np.testing.assert_allclose(gx, 3.0 * np.ones(3))
    assert gs == 0.0


@ft.custom_jvp
def doubled_sin(x):
    return fnp.sin(x)


@doubled_sin.defjvp
def _doubled_sin_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return doubled_sin(x), 2.0 * fnp.cos(x) * t


def test_custom_jvp_rule_is_used_by_both_modes():
    np.testing.assert_allclose(doubled_sin(X), np.sin(X))
    _, t = ft.jvp(doubled_sin, (X,), (np.ones(3),))
    np.testing.assert_allclose(t, 2 * np.cos(X))
    np.testing.assert_allclose(ft.grad(lambda x: fnp.sum(doubled_sin(x)))(X), 2 * np.cos(X))
    np.testing.assert_allclose(ft.jacrev(doubled_sin)(X), np.diag(2 * np.cos(X)))
    np.testing.assert_allclose(
        ft.hessian(lambda x: fnp.sum(doubled_sin(x)))(X), np.diag(-2 * np.sin(X)), atol=1e-15
    )
    np.testing.assert_allclose(ft.vmap(ft.grad(doubled_sin))(X), 2 * np.cos(X))


COMPOSITIONS_WITH_VMAP = {
    # name: (transform of f over a batch, expected gradient of sum(f) in closed form)
    "grad(vmap)": lambda f: ft.grad(lambda x: fnp.sum(ft.vmap(f)(x))),
    "vmap(grad)": lambda f: ft.vmap(ft.grad(f)),
    "jit(grad(vmap))": lambda f: ft.jit(ft.grad(lambda x: fnp.sum(ft.vmap(f)(x)))),
    "grad(jit(vmap))": lambda f: ft.grad(lambda x: fnp.sum(ft.jit(ft.vmap(f))(x))),
    "jacfwd(vmap)": lambda f: lambda x: fnp.diagonal(ft.jacfwd(ft.vmap(f))(x)),
    "vmap(vmap) under grad": lambda f: ft.grad(
        lambda x: fnp.sum(ft.vmap(ft.vmap(f))(fnp.reshape(x, (3, 1))))
    ),
}


@pytest.mark.parametrize("name", list(COMPOSITIONS_WITH_VMAP))
def test_custom_rules_survive_vmap(name):
    # The rules give 2 cos x, the function's own derivative is cos x: only the rule
    # can produce the expected values.
    @ft.custom_vjp
    def doubled_sin_vjp(x):
        return fnp.sin(x)

    doubled_sin_vjp.defvjp(lambda x: (fnp.sin(x), x), lambda x, g: (2.0 * fnp.cos(x) * g,))
    transform = COMPOSITIONS_WITH_VMAP[name]
    np.testing.assert_allclose(transform(doubled_sin)(X), 2 * np.cos(X))
    if name != "jacfwd(vmap)":  # forward mode differentiates a custom_vjp function itself
        np.testing.assert_allclose(transform(doubled_sin_vjp)(X), 2 * np.cos(X))


def test_custom_vjp_under_vmap_sums_the_cotangent_of_a_shared_argument():
    @ft.custom_vjp
    def scale(x, w):
        return x * w

    # Deliberately not the true derivative (w, x): 3 for x and 5 per example for w.
    scale.defvjp(lambda x, w: (x * w, None), lambda res, g: (3.0 * g, 5.0 * fnp.sum(g)))
    loss = lambda x, w: fnp.sum(ft.vmap(scale, in_axes=(0, None))(x, w))
    gx, gw = ft.grad(loss, argnums=(0, 1))(X, 2.0)
    np.testing.assert_allclose(gx, 3.0 * np.ones(3))
    assert float(gw) == 15.0


def test_custom_jvp_under_vmap_keeps_its_stable_second_derivative():
    # softplus's rule, t * sigmoid(x), has the exact second derivative sigmoid'(0) = 1/4
    hess = ft.hessian(lambda x: fnp.sum(ft.vmap(ft.nn.softplus)(x)))(np.zeros(3))
    np.testing.assert_allclose(hess, 0.25 * np.eye(3))
    jaxpr = ft.make_jaxpr(ft.vmap(ft.nn.softplus))(np.zeros(3))
    assert [e.primitive.name for e in jaxpr.eqns] == ["custom_jvp_call"]


def test_custom_jvp_under_vmap_closing_over_a_batched_value_uses_the_function():
    def f(x, y):
        @ft.custom_jvp
        def shifted_sin(x):
            return fnp.sin(x + y)

        shifted_sin.defjvp(lambda p, t: (shifted_sin(p[0]), 2.0 * t[0]))
        return shifted_sin(x)

    g = ft.grad(lambda x: fnp.sum(ft.vmap(f)(x, X)))(X)
    np.testing.assert_allclose(g, np.cos(2 * X))  # the implementation's derivative


def test_custom_jvp_makes_a_stable_derivative():
    @ft.custom_jvp
    def log1pexp(x):
        return fnp.log1p(fnp.exp(x))

    @log1pexp.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return log1pexp(x), t * (1.0 - 1.0 / (1.0 + fnp.exp(x)))

    big = np.array([10.0, 100.0, 1000.0])
    with np.errstate(over="ignore"):
        g = ft.grad(lambda x: fnp.sum(log1pexp(x)))(big)
    np.testing.assert_allclose(g, [sigmoid(10.0), 1.0, 1.0])


def test_custom_rules_closing_over_a_differentiated_value_are_a_clear_error():
    def with_custom_vjp(w, x):
        @ft.custom_vjp
        def scale(x):
            return x * w

        scale.defvjp(lambda x: (x * w, None), lambda _, g: (g * w,))
        return fnp.sum(scale(x))

    def with_custom_jvp(w, x):
        @ft.custom_jvp
        def scale(x):
            return x * w

        scale.defjvp(lambda p, t: (p[0] * w, t[0] * w))
        return fnp.sum(scale(x))

    for f in (with_custom_vjp, with_custom_jvp):
        with pytest.raises(TypeError, match="closes over a value that is being differentiated"):
            ft.grad(f, argnums=(0, 1))(2.0, X)
    with pytest.raises(TypeError, match="as an argument"):
        ft.jvp(with_custom_jvp, (2.0, X), (1.0, np.zeros(3)))
    # Closing over a value that is not differentiated is fine.
    np.testing.assert_allclose(ft.grad(with_custom_vjp, argnums=1)(2.0, X), 2.0 * np.ones(3))
    np.testing.assert_allclose(ft.grad(with_custom_jvp, argnums=1)(2.0, X), 2.0 * np.ones(3))


def _sine_with_bwd(bwd):
    @ft.custom_vjp
    def g(x):
        return fnp.sin(x)

    g.defvjp(lambda x: (g(x), x), bwd)
    return g


def test_custom_vjp_cotangents_of_the_wrong_type_are_a_clear_error():
    x2 = np.array([0.5, 1.0])
    wrong_shape = _sine_with_bwd(lambda x, g: (np.ones(5),))
    message = (
        r"custom_vjp: bwd of g returned a cotangent of shape \(5,\) and dtype float64 for "
        r"argument 0 of shape \(2,\) and dtype float64"
    )
    with pytest.raises(TypeError, match=message):
        ft.grad(lambda x: fnp.sum(wrong_shape(x)))(x2)
    # Under vmap the rule's cotangent is checked per example.
    with pytest.raises(TypeError, match=r"shape \(5,\) .* for argument 0 of shape \(2,\)"):
        ft.grad(lambda x: fnp.sum(ft.vmap(wrong_shape)(x)))(np.ones((4, 2)))

    narrowed = _sine_with_bwd(lambda x, g: (g.astype(np.float32),))
    with pytest.raises(TypeError, match="dtype float32 for argument 0 of shape .* float64"):
        ft.grad(lambda x: fnp.sum(narrowed(x)))(x2)
    widened = _sine_with_bwd(lambda x, g: (g.astype(np.float64),))
    with pytest.raises(TypeError, match="dtype float64 for argument 0 of shape .* float32"):
        ft.grad(lambda x: fnp.sum(widened(x)))(x2.astype(np.float32))
    with pytest.raises(TypeError, match=r"a cotangent of shape \(\) .* of shape \(2,\)"):
        ft.grad(lambda x: fnp.sum(_sine_with_bwd(lambda x, g: (1.0,))(x)))(x2)
    with pytest.raises(TypeError, match="a cotangent of type str for argument 0"):
        ft.grad(_sine_with_bwd(lambda x, g: ("one",)))(0.5)
    with pytest.raises(TypeError, match="bwd of g returned a value of type ndarray; .* a tuple"):
        ft.grad(lambda x: fnp.sum(_sine_with_bwd(lambda x, g: g)(x)))(x2)
    with pytest.raises(TypeError, match="bwd of g returned 2 cotangents for 1 argument"):
        ft.grad(_sine_with_bwd(lambda x, g: (g, g)))(0.5)

    @ft.custom_vjp
    def weighted(p):
        return fnp.sum(p["w"] * p["b"])

    weighted.defvjp(lambda p: (weighted(p), p), lambda p, g: ({"w": g * p["b"]},))
    with pytest.raises(TypeError, match=r"structure \{'w': \*\} for argument 0 of structure"):
        ft.grad(weighted)({"w": X, "b": np.ones(3)})


def test_custom_vjp_cotangents_take_their_argument_dtype():
    x32 = X.astype(np.float32)
    cos_rule = _sine_with_bwd(lambda x, g: (fnp.cos(x) * g,))
    for transform in (
        ft.grad(lambda x: fnp.sum(cos_rule(x))),
        ft.jit(ft.grad(lambda x: fnp.sum(cos_rule(x)))),
        ft.vmap(ft.grad(cos_rule)),
        ft.grad(lambda x: fnp.sum(ft.vmap(cos_rule)(x))),
    ):
        g = transform(x32)
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, np.cos(x32), rtol=1e-6)
    # A Python number takes the argument's dtype; None is a zero of that dtype.
    one = _sine_with_bwd(lambda x, g: (1.0,))
    for x in (np.float32(0.5), np.float64(0.5), 0.5):
        g = ft.grad(one)(x)
        assert g == 1.0 and type(g) is (np.float32 if type(x) is np.float32 else np.float64)
    g = ft.grad(_sine_with_bwd(lambda x, g: (None,)))(np.float32(0.5))
    assert g == 0.0 and g.dtype == np.float32
    assert ft.vmap(ft.grad(one))(x32).dtype == np.float32

    # An integer argument's derivative is zero, whatever the rule says (of its shape).
    @ft.custom_vjp
    def times(x, n):
        return x * n

    times.defvjp(lambda x, n: (x * n, n), lambda n, g: (g * n, g))
    gx, gn = ft.grad(times, argnums=(0, 1), allow_int=True)(2.0, 3)
    assert gx == 3.0 and gn == 0
    times.defvjp(lambda x, n: (x * n, n), lambda n, g: (g * n, np.ones(2)))
    with pytest.raises(TypeError, match=r"for argument 1 of shape \(\) and dtype int64"):
        ft.grad(times)(2.0, 3)


def test_custom_jvp_tangents_of_the_wrong_type_are_a_clear_error():
    wrong_shape = _with_jvp_rule(lambda p, t: (fnp.sin(p[0]), np.ones(5)))
    message = (
        r"custom_jvp: the rule of f returned a tangent of shape \(5,\) and dtype float64 for "
        r"output 0 of shape \(3,\) and dtype float64"
    )
    with pytest.raises(TypeError, match=message):
        ft.jvp(wrong_shape, (X,), (np.ones(3),))
    with pytest.raises(TypeError, match=message):
        ft.grad(lambda x: fnp.sum(wrong_shape(x)))(X)
    with pytest.raises(TypeError, match=r"shape \(5,\) .* for output 0 of shape \(\)"):
        ft.vmap(ft.grad(wrong_shape))(X)

    widened = _with_jvp_rule(lambda p, t: (fnp.sin(p[0]), fnp.cos(p[0]) * t[0].astype(float)))
    x32 = X.astype(np.float32)
    message = "tangent of shape .* dtype float64 for output 0 of shape .* float32"
    with pytest.raises(TypeError, match=message):
        ft.jvp(widened, (x32,), (np.ones(3, np.float32),))
    with pytest.raises(TypeError, match=message):
        ft.grad(lambda x: fnp.sum(widened(x)))(x32)
    with pytest.raises(TypeError, match=r"primal output of shape \(2,\) .* output 0 of shape"):
        ft.jvp(_with_jvp_rule(lambda p, t: (np.ones(2), t[0])), (X,), (np.ones(3),))


def test_custom_jvp_tangents_take_their_output_dtype():
    # The rule computes with Python numbers: its tangents take the output's dtype.
    doubled = _with_jvp_rule(lambda p, t: (fnp.sin(p[0]), 2.0 * t[0]))
    zero = _with_jvp_rule(lambda p, t: (fnp.sin(p[0]), 0.0))
    for x, dtype in ((np.float32(0.3), np.float32), (0.3, np.float64)):
        for f, expected in ((doubled, 2.0), (zero, 0.0)):
            for g in (ft.grad(f)(x), ft.jit(ft.grad(f))(x), ft.jvp(f, (x,), (dtype(1.0),))[1]):
                assert type(g) is dtype and g == expected
    x32 = X.astype(np.float32)
    assert ft.vmap(ft.grad(zero))(x32).dtype == np.float32

    # nn.softplus: its rule returns t * sigmoid(x).
    s32 = sigmoid(x32)
    for transform, expected in (
        (ft.vmap(ft.grad(ft.nn.softplus)), s32),
        (ft.grad(lambda x: fnp.sum(ft.vmap(ft.nn.softplus)(x))), s32),
        (ft.jit(ft.vmap(ft.grad(ft.nn.softplus))), s32),
        (ft.vmap(ft.grad(ft.grad(ft.nn.softplus))), s32 * (1 - s32)),
    ):
        g = transform(x32)
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, expected, rtol=1e-5)
    g = ft.grad(ft.nn.softplus)(2.0)
    assert type(g) is np.float64 and g == pytest.approx(sigmoid(2.0), rel=1e-15)
    g = ft.grad(lambda s: fnp.sum(ft.nn.softplus(x32 * s)))(2.0)
    np.testing.assert_allclose(g, np.sum(x32 * sigmoid(2.0 * x32)), rtol=1e-6)


def _scaled_by_python_number():
    @ft.custom_jvp
    def scale_jvp(x, s):
        return x * s

    scale_jvp.defjvp(lambda p, t: (scale_jvp(*p), t[0] * p[1] + p[0] * t[1]))

    @ft.custom_vjp
    def scale_vjp(x, s):
        return x * s

    # The residuals hold s, a Python number: the rule computes in float32 with it.
    scale_vjp.defvjp(lambda x, s: (x * s, (x, s)), lambda r, g: (g * r[1], fnp.sum(g * r[0])))
    return scale_jvp, scale_vjp


@pytest.mark.parametrize("kind", ["custom_jvp", "custom_vjp"])
def test_custom_rules_with_a_python_number_argument_compute_as_the_function(kind):
    # x32 * s is float32 when s is a Python number, in the function and in its rules.
    f = _scaled_by_python_number()[kind == "custom_vjp"]
    x32 = X.astype(np.float32)
    for out in (f(x32, 2.0), ft.jit(f)(x32, 2.0), ft.vmap(f, in_axes=(0, None))(x32, 2.0)):
        assert out.dtype == np.float32
    batched = lambda x, s: fnp.sum(ft.vmap(f, in_axes=(0, None))(x, s))
    for loss in (lambda x, s: fnp.sum(f(x, s)), batched, ft.jit(batched)):
        gx = ft.grad(loss)(x32, 2.0)
        assert gx.dtype == np.float32
        np.testing.assert_allclose(gx, 2.0)
        gs = ft.grad(loss, argnums=1)(x32, 2.0)  # a Python number's gradient: float64
        assert type(gs) is np.float64
        np.testing.assert_allclose(gs, x32.sum(), rtol=1e-6)
    jac = ft.jacfwd(lambda s: f(x32, s))(2.0)
    assert jac.dtype == np.float32
    np.testing.assert_allclose(jac, x32)
    np.testing.assert_allclose(
        ft.grad(ft.grad(lambda s: fnp.sum(f(x32, s) ** 2)))(2.0), 2 * np.sum(x32**2), rtol=1e-6
    )


def test_custom_rules_bind_keyword_arguments_to_positions():
    @ft.custom_vjp
    def scale(x, y=2.0):
        return x * y

    # Deliberately not the true derivative: 10 y for x, and 100 sum(g) for y.
    scale.defvjp(lambda x, y: (x * y, y), lambda y, g: (10.0 * y * g, 100.0 * fnp.sum(g)))

    @ft.custom_jvp
    def shift(x, y=2.0):
        return x + y

    shift.defjvp(lambda p, t: (shift(*p), 10.0 * t[0] + 100.0 * t[1]))
    loss = lambda f, **kw: lambda x: fnp.sum(f(x, **kw))
    for f, kind in ((scale, "custom_vjp"), (shift, "custom_jvp")):
        np.testing.assert_allclose(f(X, y=3.0), f(X, 3.0))  # eager: the function
        np.testing.assert_allclose(ft.grad(loss(f, y=3.0))(X), 30.0 if f is scale else 10.0)
        np.testing.assert_allclose(ft.grad(loss(f))(X), 20.0 if f is scale else 10.0)
        np.testing.assert_allclose(ft.grad(lambda y: fnp.sum(f(x=X, y=y)))(3.0), 300.0)
        _, t = ft.jvp(lambda y: f(X, y=y), (3.0,), (1.0,))
        np.testing.assert_allclose(t, X if f is scale else 100.0)  # jvp of scale: itself
        batched = ft.grad(lambda x: fnp.sum(ft.vmap(lambda a: f(a, y=3.0))(x)))(X)
        np.testing.assert_allclose(batched, 30.0 if f is scale else 10.0)
        with pytest.raises(TypeError, match=f"{kind}: {f.__name__}: .*keyword argument 'z'"):
            ft.grad(lambda x: fnp.sum(f(x, z=3.0)))(X)
        with pytest.raises(TypeError, match="keyword argument 'z'"):
            f(X, z=3.0)

    @ft.custom_jvp
    def keyword_only(x, *, y=2.0):
        return x * y

    keyword_only.defjvp(lambda p, t: (keyword_only(*p), 2.0 * t[0]))
    np.testing.assert_allclose(ft.grad(lambda x: fnp.sum(keyword_only(x)))(X), 2.0)
    with pytest.raises(TypeError, match=r"keyword_only: the keyword arguments \['y'\]"):
        ft.grad(lambda x: fnp.sum(keyword_only(x, y=3.0)))(X)


@functools.partial(ft.custom_jvp, nondiff_argnums=(0,))
def power(n, x):
    return x**n


@power.defjvp
def _power_jvp(n, primals, tangents):
    assert isinstance(n, int) and len(primals) == len(tangents) == 1  # n is not traced
    (x,), (t,) = primals, tangents
    return power(n, x), n * x ** (n - 1) * t


@functools.partial(ft.custom_vjp, nondiff_argnums=(0, -1))
def clip_gradient_by(bound, x, mode):
    return x if mode == "identity" else 2.0 * x


def _clip_gradient_by_fwd(bound, x, mode):
    return clip_gradient_by(bound, x, mode), None


def _clip_gradient_by_bwd(bound, mode, residuals, g):
    assert isinstance(bound, float) and mode in ("identity", "double")
    return (fnp.clip(g, -bound, bound) * (1.0 if mode == "identity" else 2.0),)


clip_gradient_by.defvjp(_clip_gradient_by_fwd, _clip_gradient_by_bwd)


NONDIFF_TRANSFORMS = {
    # name: the derivative of sum(f(x)) by each composition
    "grad": lambda f: ft.grad(lambda x: fnp.sum(f(x))),
    "jit(grad)": lambda f: ft.jit(ft.grad(lambda x: fnp.sum(f(x)))),
    "grad(jit)": lambda f: ft.grad(lambda x: fnp.sum(ft.jit(f)(x))),
    "vmap(grad)": lambda f: ft.vmap(ft.grad(f)),
    "grad(vmap)": lambda f: ft.grad(lambda x: fnp.sum(ft.vmap(f)(x))),
    "jit(grad(vmap))": lambda f: ft.jit(ft.grad(lambda x: fnp.sum(ft.vmap(f)(x)))),
}


@pytest.mark.parametrize("name", list(NONDIFF_TRANSFORMS))
def test_nondiff_argnums_under_every_transform(name):
    transform = NONDIFF_TRANSFORMS[name]
    for x in (X, X.astype(np.float32)):
        g = transform(lambda x: power(3, x))(x)
        assert g.dtype == x.dtype
        np.testing.assert_allclose(g, 3 * x**2, rtol=1e-6)
        # g = 5 per element, clipped to the bound (and doubled by the "double" mode)
        g = transform(lambda x: 5.0 * clip_gradient_by(1.5, x, "identity"))(x)
        assert g.dtype == x.dtype
        np.testing.assert_allclose(g, 1.5)
        g = transform(lambda x: 5.0 * clip_gradient_by(1.5, x, mode="double"))(x)
        np.testing.assert_allclose(g, 3.0)


def test_nondiff_argnums_in_forward_mode_and_higher_order():
    _, t = ft.jvp(lambda x: power(3, x), (X,), (np.ones(3),))
    np.testing.assert_allclose(t, 3 * X**2)
    np.testing.assert_allclose(ft.hessian(lambda x: fnp.sum(power(3, x)))(X), np.diag(6 * X))
    np.testing.assert_allclose(ft.grad(ft.grad(lambda x: power(3, x)))(2.0), 12.0)
    # Forward mode differentiates a custom_vjp function itself: 2 x in "double" mode.
    _, t = ft.jvp(lambda x: clip_gradient_by(1.5, x, "double"), (X,), (np.ones(3),))
    np.testing.assert_allclose(t, 2.0)
    np.testing.assert_allclose(power(3, X), X**3)  # eager: the function
    np.testing.assert_allclose(ft.vmap(power, in_axes=(None, 0))(3, X), X**3)
    np.testing.assert_allclose(ft.jit(power, static_argnums=0)(3, X), X**3)

    @functools.partial(ft.custom_jvp, nondiff_argnums=(-1,))
    def apply(x, fun):
        return fun(x)

    apply.defjvp(lambda fun, p, t: (apply(p[0], fun), ft.jvp(fun, p, t)[1]))
    np.testing.assert_allclose(ft.grad(lambda x: fnp.sum(apply(x, fnp.sin)))(X), np.cos(X))


def test_nondiff_argnums_errors():
    with pytest.raises(TypeError, match="nondiff_argnums must be a tuple of ints"):
        ft.custom_jvp(lambda n, x: x, nondiff_argnums=("n",))
    with pytest.raises(ValueError, match="repeats"):
        ft.custom_vjp(lambda n, x: x, nondiff_argnums=(0, 0))
    far = ft.custom_jvp(lambda n, x: x, nondiff_argnums=(-3,))
    far.defjvp(lambda n, p, t: (p[0], t[0]))
    with pytest.raises(ValueError, match=r"-3 is out of range for a call with 2 positional"):
        ft.grad(lambda x: far(1, x))(2.0)
    # A traced value is not a Python value: it cannot be passed as one.
    with pytest.raises(TypeError, match="argument 0 of power is in nondiff_argnums .* traced"):
        ft.grad(lambda x: power(x, x))(2.0)
    with pytest.raises(TypeError, match="static_argnums"):
        ft.jit(power)(3, X)
    with pytest.raises(TypeError, match="argument 0 of clip_gradient_by .* nondiff_argnums"):
        ft.grad(lambda x: clip_gradient_by(x, x, "identity"))(2.0)

    @ft.custom_vjp
    def labelled(x, label):
        return x

    labelled.defvjp(lambda x, label: (x, None), lambda _, g: (g, None))
    assert labelled(1.0, "eager") == 1.0
    message = "labelled was called with a str argument 1, which is not an array; list the"
    with pytest.raises(TypeError, match=message):
        ft.grad(lambda x: labelled(x, "traced"))(2.0)


# ---------------------------------------------------------------------------
# stop_gradient, leaked tracers, the staged gradient
# ---------------------------------------------------------------------------


def test_stop_gradient():
    np.testing.assert_allclose(ft.grad(lambda x: fnp.sum(x * ft.stop_gradient(x)))(X), X)
    _, t = ft.jvp(lambda x: ft.stop_gradient(x) ** 2, (X,), (np.ones(3),))
    np.testing.assert_allclose(t, 0.0)
    tree = ft.stop_gradient({"a": X, "b": (X * 2,)})
    np.testing.assert_allclose(tree["b"][0], 2 * X)

    def loss(p):
        frozen = ft.stop_gradient(p)
        return fnp.sum(p["w"] * frozen["w"]) + fnp.sum(frozen["b"])

    g = ft.grad(loss)({"w": X, "b": np.ones(2)})
    np.testing.assert_allclose(g["w"], X)
    np.testing.assert_allclose(g["b"], 0.0)
    np.testing.assert_allclose(ft.hessian(lambda x: fnp.sum(x * ft.stop_gradient(x)))(X), 0.0)


def test_a_leaked_tracer_is_an_unexpected_tracer_error():
    leaked = []

    def f(x):
        leaked.append(x)
        return fnp.sum(x**2)

    ft.grad(f)(X)
    with pytest.raises(UnexpectedTracerError, match="grad"):
        leaked[0] + 1.0
    with pytest.raises(UnexpectedTracerError):
        ft.grad(lambda y: fnp.sum(y * leaked[0]))(X)
    ft.jvp(f, (X,), (X,))
    with pytest.raises(UnexpectedTracerError):
        fnp.sin(leaked[1])


def test_staged_gradient_contains_only_ordinary_primitives():
    names = {p.name for p in all_primitives()}

    def loss(w):
        return fnp.sum(fnp.tanh(A @ w) ** 2) + fnp.sum(softplus(w)) + fnp.sum(doubled_sin(w))

    second = ft.grad(ft.grad(lambda x: fnp.sin(x) * x))
    for f, x in ((ft.grad(loss), X), (second, 0.3)):
        jaxpr = ft.make_jaxpr(f)(x)
        used = {eqn.primitive.name for eqn in jaxpr.eqns}
        assert used <= names, used - names
        np.testing.assert_allclose(ft.eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, x)[0], f(x))


# ---------------------------------------------------------------------------
# check_grads catches wrong derivatives
# ---------------------------------------------------------------------------


def _with_jvp_rule(rule):
    @ft.custom_jvp
    def f(x):
        return fnp.sin(x)

    f.defjvp(rule)
    return f


def test_check_grads_reports_a_wrong_first_derivative():
    wrong = _with_jvp_rule(lambda p, t: (fnp.sin(p[0]), 1.01 * fnp.cos(p[0]) * t[0]))
    for mode in ("fwd", "rev"):
        with pytest.raises(AssertionError) as info:
            check_grads(wrong, (X,), modes=(mode,))
        message = str(info.value)
        assert "largest error" in message and "float64[3]" in message
        assert ("JVP" if mode == "fwd" else "VJP") in message
    right = _with_jvp_rule(lambda p, t: (fnp.sin(p[0]), fnp.cos(p[0]) * t[0]))
    check_grads(right, (X,), order=2)


def test_check_grads_order_two_catches_a_wrong_second_derivative():
    @ft.custom_vjp
    def cube(x):
        return x**3

    # Right first derivative, but written with stop_gradient so its own derivative is 0.
    cube.defvjp(lambda x: (cube(x), x), lambda x, g: (g * 3.0 * ft.stop_gradient(x) ** 2,))
    check_grads(cube, (X,), order=1, modes=("rev",))
    with pytest.raises(AssertionError, match="VJP of VJP"):
        check_grads(cube, (X,), order=2, modes=("rev",))


def test_check_grads_checks_tangent_dtypes():
    # custom_jvp rejects an upcasting rule itself, so a primitive's rule carries the bug.
    upcast_sin_p = Primitive("upcast_sin")
    upcast_sin_p.def_impl(np.sin)
    upcast_sin_p.def_abstract_eval(lambda x: x)
    upcast_sin_p.def_jvp(
        lambda p, t: (upcast_sin_p.bind(p[0]), fnp.cos(p[0]).astype(np.float64) * t[0])
    )
    with pytest.raises(AssertionError, match="dtype float64.*float32"):
        check_grads(upcast_sin_p.bind, (X.astype(np.float32),), modes=("fwd",))


def test_check_grads_holds_integer_leaves_fixed_and_checks_its_arguments():
    check_grads(lambda x, i: x[i] ** 2, (X, np.array([2, 0, 0])), order=2)
    with pytest.raises(ValueError, match="modes"):
        check_grads(fnp.sin, (X,), modes=("forward",))


def test_custom_vjp_fwd_may_return_python_numbers():
    @ft.custom_vjp
    def double(x):
        return x * 2.0

    double.defvjp(lambda x: (2.0 * float(x), None), lambda res, g: (2.0 * g,))
    g = ft.grad(lambda x: double(x) * double(x))(np.float32(3.0))  # d/dx (2x)^2 = 8x
    assert float(g) == 24.0 and g.dtype == np.float32


def test_linearized_map_checks_its_tangents():
    _, f_jvp = ft.linearize(fnp.sin, X)
    with pytest.raises(ValueError, match=r"linearize: tangent of shape \(4,\) .* \(3,\)"):
        f_jvp(np.ones(4))
    with pytest.raises(TypeError, match="linearize: tangent of dtype float32 .* float64"):
        f_jvp(np.ones(3, np.float32))
    _, f_jvp = ft.linearize(fnp.sin, 0.5)
    assert f_jvp(1.0) == np.cos(0.5) and type(f_jvp(1.0)) is np.float64


def test_value_and_grad_errors_name_value_and_grad():
    with pytest.raises(TypeError, match=r"^value_and_grad\(<lambda>\): .*shape \(3,\)"):
        ft.value_and_grad(lambda x: x)(X)


def test_integer_inputs_and_outputs_carry_no_derivative():
    ints = np.arange(3)
    np.testing.assert_array_equal(ft.linearize(lambda n: n * 2, ints)[1](np.ones(3)), [0, 0, 0])
    np.testing.assert_array_equal(
        ft.linearize(lambda n, m: n**m, ints, ints)[1](np.ones(3), np.ones(3)), [0, 0, 0]
    )
    (ct,) = ft.vjp(lambda x: x * 2, ints)[1](np.ones(3))
    np.testing.assert_array_equal(ct, [0, 0, 0])
    out, tangent = ft.jvp(lambda x: x * 2, (ints,), (np.ones(3),))
    np.testing.assert_array_equal(tangent, [0, 0, 0])
    _, tangent = ft.jvp(lambda x, y: x * y, (ints, 2.0), (np.ones(3), 1.0))
    np.testing.assert_array_equal(tangent, ints)  # only y's tangent counts
    cts = ft.vjp(lambda x, y: (x * 2, y * x), ints, 2.0)[1]((np.ones(3), np.ones(3)))
    np.testing.assert_array_equal(cts[0], [0, 0, 0])
    assert cts[1] == 3.0


def test_linearize_with_a_python_bool_predicate():
    x32 = X.astype(np.float32)
    _, f_jvp = ft.linearize(lambda x: fnp.where(True, x, 0.0), x32)
    np.testing.assert_array_equal(f_jvp(x32), x32)


@pytest.mark.parametrize(
    "f",
    [
        ft.jit(fnp.sin),
        lambda x: lax.cond(True, fnp.sin, fnp.cos, x),
        lambda x: lax.fori_loop(0, 3, lambda i, c: c * x, x),
    ],
)
def test_linearize_of_a_call_gives_concrete_primal_outputs(f):
    # jit, cond and loops stage primal and tangent outputs in one equation.
    y, f_jvp = ft.linearize(f, X)
    assert type(y) is np.ndarray
    want_y, want_t = ft.jvp(f, (X,), (np.ones(3),))
    np.testing.assert_allclose(y, want_y)
    np.testing.assert_allclose(f_jvp(np.ones(3)), want_t)
