"""vmap: in_axes/out_axes/axis_size, keyword arguments, every error SPEC names, and
compositions with the derivative transforms, each against a Python loop."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrans as ft
import functrans.numpy as fnp
from functrans.errors import ConcretizationTypeError

M = np.arange(6.0).reshape(2, 3)
V = np.array([1.0, -2.0, 0.5])


def loop(f, *args, in_axes):
    """The reference: ``f`` applied to each slice along ``in_axes``, stacked on axis 0."""
    sizes = {np.shape(a)[ax] for a, ax in zip(args, in_axes, strict=True) if ax is not None}
    (size,) = sizes
    pairs = list(zip(args, in_axes, strict=True))
    take = lambda i: [a if ax is None else np.take(a, i, axis=ax) for a, ax in pairs]
    outs = [f(*take(i)) for i in range(size)]
    return np.stack([np.asarray(o) for o in outs])


# ---------------------------------------------------------------------------
# in_axes, out_axes, axis_size, keyword arguments
# ---------------------------------------------------------------------------


def test_in_axes_int_and_negative():
    np.testing.assert_allclose(ft.vmap(fnp.sum)(M), M.sum(axis=1))
    np.testing.assert_allclose(ft.vmap(fnp.sum, in_axes=1)(M), M.sum(axis=0))
    np.testing.assert_allclose(ft.vmap(fnp.sum, in_axes=-1)(M), M.sum(axis=0))
    np.testing.assert_allclose(ft.vmap(fnp.sum, in_axes=-2)(M), M.sum(axis=1))


def test_in_axes_tuple_list_and_none():
    f = lambda a, b: a * b + 1.0
    np.testing.assert_allclose(ft.vmap(f, in_axes=(0, None))(M, V), M * V + 1.0)
    np.testing.assert_allclose(ft.vmap(f, in_axes=[1, 0])(M, V), (M * V).T + 1.0)
    np.testing.assert_allclose(ft.vmap(f, in_axes=(None, 0))(V, M), M * V + 1.0)


def test_in_axes_pytree_prefix():
    Pair = namedtuple("Pair", ["mapped", "shared"])
    f = lambda d: d["a"] * d["b"][0] + d["b"][1]
    w = np.array([3.0, -1.0])
    got = ft.vmap(f, in_axes=({"a": 1, "b": None},))({"a": M, "b": (w, np.array(10.0))})
    np.testing.assert_allclose(got, (M * w[:, None] + 10.0).T)
    got = ft.vmap(f, in_axes=({"a": 0, "b": (None, None)},))({"a": M, "b": (V, 10.0)})
    np.testing.assert_allclose(got, M * V + 10.0)
    got = ft.vmap(f, in_axes=({"a": 0, "b": (None, 0)},))({"a": M, "b": (V, w)})
    np.testing.assert_allclose(got, M * V + w[:, None])
    got = ft.vmap(lambda p: p.mapped + p.shared, in_axes=(Pair(0, None),))(Pair(M, V))
    np.testing.assert_allclose(got, M + V)


def test_in_axes_that_is_not_a_prefix_is_an_error():
    with pytest.raises(ValueError, match="prefix"):
        ft.vmap(lambda d: d["a"], in_axes=({"a": 0, "c": 0},))({"a": M, "b": M})


def test_out_axes():
    np.testing.assert_allclose(ft.vmap(lambda a: a * 2, out_axes=1)(M), (M * 2).T)
    np.testing.assert_allclose(ft.vmap(lambda a: a * 2, out_axes=-1)(M), (M * 2).T)
    a, s = ft.vmap(lambda a: (a, fnp.sum(a)), out_axes=(1, 0))(M)
    np.testing.assert_allclose(a, M.T)
    np.testing.assert_allclose(s, M.sum(axis=1))


def test_out_axes_none_for_an_unmapped_output():
    doubled, shifted = ft.vmap(lambda a, b: (a * 2, b + 1), in_axes=(0, None), out_axes=(0, None))(
        M, V
    )
    np.testing.assert_allclose(doubled, M * 2)
    np.testing.assert_allclose(shifted, V + 1)  # not broadcast over the batch


def test_unmapped_output_is_broadcast_over_the_batch():
    out = ft.vmap(lambda a, b: b * 3.0, in_axes=(0, None))(M, V)
    np.testing.assert_allclose(out, np.stack([V * 3.0] * 2))
    np.testing.assert_allclose(ft.vmap(lambda a: 1.0)(M), [1.0, 1.0])


def test_axis_size_when_nothing_is_mapped():
    out = ft.vmap(lambda v: v * 2, in_axes=None, axis_size=4)(V)
    np.testing.assert_allclose(out, np.stack([V * 2] * 4))
    np.testing.assert_allclose(ft.vmap(fnp.sum, axis_size=2)(M), M.sum(axis=1))


def test_keyword_arguments_are_mapped_over_axis_zero():
    scale = np.array([1.0, 10.0])
    got = ft.vmap(lambda a, scale: a * scale, in_axes=(1,))(M, scale=np.ones(3))
    np.testing.assert_allclose(got, M.T)
    got = ft.vmap(lambda a, scale: a * scale)(M, scale=scale)
    np.testing.assert_allclose(got, M * scale[:, None])


def test_size_zero_and_size_one_batches():
    f = lambda a: fnp.sum(fnp.tanh(a) ** 2)
    empty = ft.vmap(f)(np.ones((0, 3)))
    assert empty.shape == (0,)
    np.testing.assert_allclose(ft.vmap(f)(M[:1]), loop(f, M[:1], in_axes=(0,)))


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_mapped_sizes_that_disagree_list_each_argument():
    with pytest.raises(ValueError) as info:
        ft.vmap(lambda a, b, c: a + b + c, in_axes=(0, 0, None))(M, np.ones((3, 3)), V)
    message = str(info.value)
    assert "argument 0 has size 2" in message and "argument 1 has size 3" in message
    assert "argument 2" not in message  # unmapped
    with pytest.raises(ValueError, match="size 2.*size 3"):
        ft.vmap(lambda a, scale: a * scale)(M, scale=np.ones(3))
    with pytest.raises(ValueError, match="axis_size is 5"):
        ft.vmap(fnp.sum, axis_size=5)(M)


@pytest.mark.parametrize("axis", [2, -3])
def test_axis_out_of_range(axis):
    with pytest.raises(ValueError) as info:
        ft.vmap(fnp.sum, in_axes=axis)(M)
    message = str(info.value)
    assert str(axis) in message and "(2, 3)" in message


def test_mapping_a_scalar_is_out_of_range():
    with pytest.raises(ValueError, match=r"shape \(\)"):
        ft.vmap(lambda a, b: a * b)(M, 2.0)


def test_in_axes_of_the_wrong_length():
    with pytest.raises(ValueError) as info:
        ft.vmap(lambda a, b: a + b, in_axes=(0,))(M, M)
    assert "1 entries" in str(info.value) and "2 positional arguments" in str(info.value)


def test_in_axes_of_the_wrong_type():
    with pytest.raises(TypeError, match="in_axes"):
        ft.vmap(lambda a: a, in_axes="rows")(M)
    with pytest.raises(TypeError, match="in_axes"):
        ft.vmap(lambda a: a, in_axes=(1.0,))(M)


def test_no_mapped_input_needs_axis_size():
    with pytest.raises(ValueError, match="axis_size"):
        ft.vmap(lambda a: a * 2, in_axes=None)(V)


def test_mapped_output_with_out_axes_none():
    with pytest.raises(ValueError, match="out_axes=None"):
        ft.vmap(lambda a: a * 2, out_axes=None)(M)
    with pytest.raises(ValueError, match="out_axes"):
        ft.vmap(lambda a: a * 2, out_axes=3)(M)


def test_python_branch_on_a_batched_value_is_a_concretization_error():
    def relu_branch(x):
        if x > 0:
            return x
        return 0.0 * x

    with pytest.raises(ConcretizationTypeError) as info:
        ft.vmap(relu_branch)(V)
    assert isinstance(info.value, TypeError)
    message = str(info.value)
    assert "bool()" in message and "vmap(relu_branch)" in message
    assert "where" in message and "cond" in message
    # An unmapped argument is an ordinary value: branching on it is fine.
    out = ft.vmap(lambda a, t: a if t > 0 else -a, in_axes=(0, None))(V, 1.0)
    np.testing.assert_allclose(out, V)
    np.testing.assert_allclose(ft.vmap(lambda a: fnp.where(a > 0, a, 0.0))(V), [1.0, 0.0, 0.5])


# ---------------------------------------------------------------------------
# Random in_axes and out_axes against a loop
# ---------------------------------------------------------------------------


def composite(a, b, c):
    return fnp.tanh(a) @ b + fnp.sum(a) * c


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    ax_a=st.sampled_from([0, 1, 2, -1, None]),
    ax_b=st.sampled_from([0, 1, -2, None]),
    ax_c=st.sampled_from([0, None]),
    out_axis=st.sampled_from([0, 1, -1]),
    size=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**16),
)
def test_random_in_axes_and_out_axes_match_a_loop(ax_a, ax_b, ax_c, out_axis, size, seed):
    rng = np.random.default_rng(seed)
    in_axes = (ax_a, ax_b, ax_c)
    if all(ax is None for ax in in_axes):
        in_axes = (0, ax_b, ax_c)
    example = [(2, 3), (3, 4), (4,)]  # composite(a, b, c) -> shape (2, 4)
    args = []
    for shape, ax in zip(example, in_axes, strict=True):
        if ax is None:
            args.append(rng.standard_normal(shape))
        else:
            full = list(shape)
            full.insert(ax % (len(shape) + 1), size)
            args.append(rng.standard_normal(full))
    got = ft.vmap(composite, in_axes=in_axes, out_axes=out_axis)(*args)
    expected = np.moveaxis(loop(composite, *args, in_axes=in_axes), 0, out_axis)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# Compositions
# ---------------------------------------------------------------------------

RNG = np.random.default_rng(42)
PARAMS = {
    "W1": RNG.standard_normal((4, 3)),
    "b1": RNG.standard_normal(4),
    "W2": RNG.standard_normal((2, 4)),
    "b2": RNG.standard_normal(2),
}
XS = RNG.standard_normal((5, 3))
YS = RNG.standard_normal((5, 2))


def example_loss(p, x, y):
    h = fnp.tanh(p["W1"] @ x + p["b1"])
    return 0.5 * fnp.sum((p["W2"] @ h + p["b2"] - y) ** 2)


def batch_loss(p, X, Y):
    H = fnp.tanh(X @ p["W1"].T + p["b1"])
    return 0.5 * fnp.sum((H @ p["W2"].T + p["b2"] - Y) ** 2)


def test_per_example_gradients_match_a_loop():
    per_example = ft.vmap(ft.grad(example_loss), in_axes=(None, 0, 0))(PARAMS, XS, YS)
    for i in range(len(XS)):
        g = ft.grad(example_loss)(PARAMS, XS[i], YS[i])
        for k in PARAMS:
            np.testing.assert_allclose(per_example[k][i], g[k], rtol=1e-12, atol=1e-14)
    assert per_example["W1"].shape == (5, 4, 3)


def test_gradient_of_a_vmapped_loss_is_the_batch_gradient():
    mapped = ft.vmap(example_loss, in_axes=(None, 0, 0))
    g = ft.grad(lambda p: fnp.sum(mapped(p, XS, YS)))(PARAMS)
    expected = ft.grad(batch_loss)(PARAMS, XS, YS)
    looped = [ft.grad(example_loss)(PARAMS, XS[i], YS[i]) for i in range(len(XS))]
    for k in PARAMS:
        np.testing.assert_allclose(g[k], expected[k], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(g[k], sum(gi[k] for gi in looped), rtol=1e-12, atol=1e-14)


def test_vmap_of_vmap():
    f = lambda a, b: fnp.sum(fnp.sin(a) * b)
    A3 = np.arange(24.0).reshape(2, 3, 4) / 10
    B = np.linspace(-1, 1, 12).reshape(3, 4)
    got = ft.vmap(ft.vmap(f, in_axes=(0, 0)), in_axes=(0, None))(A3, B)
    expected = np.array([[np.sum(np.sin(A3[i, j]) * B[j]) for j in range(3)] for i in range(2)])
    np.testing.assert_allclose(got, expected)
    # Inner map over axis 1, outer over axis 2 of the original: out[k, j] = f(A3[:, j, k]).
    w = np.array([1.0, 2.0])
    got = ft.vmap(ft.vmap(f, in_axes=(1, None)), in_axes=(2, None))(A3, w)
    expected = np.array([[np.sum(np.sin(A3[:, j, k]) * w) for j in range(3)] for k in range(4)])
    np.testing.assert_allclose(got, expected)


def vector_fun(x):
    return fnp.tanh(PARAMS["W1"] @ x) * fnp.sum(x**2)


def scalar_fun(x):
    return fnp.sum(fnp.tanh(PARAMS["W1"] @ x) ** 2)


def test_jacobians_equal_loops_of_jvp_and_vjp():
    x = XS[0]
    jf = ft.jacfwd(vector_fun)(x)
    jr = ft.jacrev(vector_fun)(x)
    columns = np.stack([ft.jvp(vector_fun, (x,), (e,))[1] for e in np.eye(3)], axis=1)
    _, pullback = ft.vjp(vector_fun, x)
    rows = np.stack([pullback(e)[0] for e in np.eye(4)])
    np.testing.assert_allclose(jf, columns, rtol=1e-12)
    np.testing.assert_allclose(jr, rows, rtol=1e-12)
    h = ft.hessian(scalar_fun)(x)
    hvps = np.stack([ft.jvp(ft.grad(scalar_fun), (x,), (e,))[1] for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(h, hvps, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("transform", [ft.jacfwd, ft.jacrev, ft.hessian])
def test_vmapped_jacobians_equal_loops(transform):
    f = scalar_fun if transform is ft.hessian else vector_fun
    got = ft.vmap(transform(f))(XS)
    expected = loop(transform(f), XS, in_axes=(0,))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def _equation_counts(f, make_args):
    return {n: len(ft.make_jaxpr(f)(*make_args(n)).eqns) for n in (1, 7, 1000)}


def test_vmap_programs_do_not_grow_with_the_batch():
    per_example_grads = ft.vmap(ft.grad(example_loss), in_axes=(None, 0, 0))
    counts = _equation_counts(
        per_example_grads, lambda n: (PARAMS, np.ones((n, 3)), np.ones((n, 2)))
    )
    assert len(set(counts.values())) == 1, counts
    nested = ft.vmap(ft.vmap(composite, in_axes=(0, None, 0)), in_axes=(0, None, 0))
    counts = _equation_counts(
        nested, lambda n: (np.ones((n, 5, 2, 3)), np.ones((3, 4)), np.ones((n, 5, 4)))
    )
    assert len(set(counts.values())) == 1, counts
    counts = _equation_counts(ft.vmap(ft.jacrev(vector_fun)), lambda n: (np.ones((n, 3)),))
    assert len(set(counts.values())) == 1, counts


def test_size_errors_name_the_leaf_inside_a_pytree_argument():
    params = {"a": np.ones(3), "b": np.ones(4)}
    with pytest.raises(ValueError, match=r"argument 0\['a'\] has size 3, argument 0\['b'\] has"):
        ft.vmap(lambda p: p["a"] + p["b"])(params)
    with pytest.raises(ValueError, match=r"argument 0 has size 3, keyword argument 'y' has size 4"):
        ft.vmap(lambda x, y=None: x + y)(np.ones(3), y=np.ones(4))
    with pytest.raises(ValueError, match=r"in_axes 2 is out of range for argument 1\[0\] of shape"):
        ft.vmap(lambda x, y: x, in_axes=(0, 2))(np.ones(3), (np.ones(4), np.ones(2)))


def test_out_axes_must_be_a_prefix_of_the_output():
    with pytest.raises(ValueError, match=r"out_axes \(0,\) is not a tree prefix"):
        ft.vmap(lambda x: (x, x), out_axes=(0,))(np.ones(3))
    np.testing.assert_array_equal(ft.vmap(lambda x: x, out_axes=(0,))(np.ones(3)), np.ones(3))
