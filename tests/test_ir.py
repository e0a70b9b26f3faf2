"""The IR: printing (golden), evaluation, type checking."""

import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from functrans import lax
from functrans.ir import Jaxpr, JaxprEqn, JaxprTypeError, Var, typecheck_jaxpr

GOLDEN_LAYER = """\
{ lambda ; a:f64[2,2] b:f64[2,2] c:f64[2]. let
    d:f64[2,2] = matmul a b
    e:f64[2,2] = broadcast_in_dim[broadcast_dimensions=(0,) shape=(2, 2)] c
    f:f64[2,2] = add d e
    g:f64[2,2] = sigmoid f
  in (g,) }"""


def layer(W, X, b):
    return ft.nn.sigmoid(W @ X + b[:, None])


def test_golden_layer_jaxpr():
    W, X, b = np.ones((2, 2)), np.ones((2, 2)), np.ones(2)
    closed = ft.make_jaxpr(layer)(W, X, b)
    assert str(closed) == GOLDEN_LAYER
    assert [e.primitive.name for e in closed.jaxpr.eqns] == [
        "matmul",
        "broadcast_in_dim",
        "add",
        "sigmoid",
    ]


def test_golden_layer_eval_matches_eager():
    rng = np.random.default_rng(0)
    W, X, b = rng.normal(size=(2, 2)), rng.normal(size=(2, 2)), rng.normal(size=2)
    closed = ft.make_jaxpr(layer)(W, X, b)
    (out,) = ft.eval_jaxpr(closed.jaxpr, closed.consts, W, X, b)
    np.testing.assert_allclose(out, layer(W, X, b), rtol=1e-12)
    typecheck_jaxpr(closed.jaxpr)


def test_ir_attributes():
    closed = ft.make_jaxpr(lambda x: fnp.tanh(x) * 2.0)(np.ones(3, np.float32))
    jaxpr = closed.jaxpr
    assert [v.aval.shape for v in jaxpr.invars] == [(3,)]
    assert jaxpr.invars[0].aval.dtype == np.dtype(np.float32)
    eqn = jaxpr.eqns[1]
    assert eqn.primitive.name == "mul" and eqn.params == {}
    literal = eqn.invars[1]
    assert literal.val == 2.0 and literal.aval.dtype == np.float32
    assert str(closed).splitlines()[2] == "    c:f32[3] = mul b 2.0:f32[]"


def test_scalar_and_dtype_short_names():
    closed = ft.make_jaxpr(lambda x, i: (fnp.sum(x), i + 1))(
        np.ones((2, 3), np.float32), np.int32(1)
    )
    text = str(closed)
    assert "a:f32[2,3] b:i32[]" in text
    assert ":f32[] = reduce_sum[axes=(0, 1)] a" in text
    assert "in (c, d) }" in text


def test_constants_become_constvars():
    table = np.arange(6.0).reshape(2, 3)
    closed = ft.make_jaxpr(lambda x: x * table)(np.ones((2, 3)))
    assert len(closed.jaxpr.constvars) == 1 and closed.consts[0] is table
    assert str(closed).startswith("{ lambda a:f64[2,3]; b:f64[2,3]. let")


def test_typecheck_rejects_use_before_definition():
    a = Var(ft.core.ShapedArray((2,), np.float64))
    b = Var(ft.core.ShapedArray((2,), np.float64))
    c = Var(ft.core.ShapedArray((2,), np.float64))
    jaxpr = Jaxpr([], [a], [c], [JaxprEqn(lax.add_p, [a, b], [c], {})])
    with pytest.raises(JaxprTypeError, match="used before it is defined"):
        typecheck_jaxpr(jaxpr)


def test_typecheck_rejects_wrong_output_type():
    a = Var(ft.core.ShapedArray((2,), np.float64))
    c = Var(ft.core.ShapedArray((3,), np.float64))
    jaxpr = Jaxpr([], [a], [c], [JaxprEqn(lax.exp_p, [a], [c], {})])
    with pytest.raises(JaxprTypeError, match="shape rule gives"):
        typecheck_jaxpr(jaxpr)


def test_eval_jaxpr_wrong_arity():
    closed = ft.make_jaxpr(fnp.exp)(np.ones(2))
    with pytest.raises(TypeError, match="expected 1 arguments"):
        ft.eval_jaxpr(closed.jaxpr, closed.consts)


def test_many_variables_get_distinct_names():
    def chain(x):
        for _ in range(60):
            x = fnp.sin(x)
        return x

    text = str(ft.make_jaxpr(chain)(1.0))
    names = [line.split(":")[0].strip() for line in text.splitlines()[1:-1]]
    assert len(set(names)) == 60 and "ba" in names


def test_python_number_literals_print_in_the_type_they_compute_in():
    assert "mul a 2.0:f64[]" in str(ft.make_jaxpr(lambda x: x * 2)(3.0))
    assert "gt a 0.0:f64[]" in str(ft.make_jaxpr(lambda x: x > 0)(np.ones(2)))
    printed = str(ft.make_jaxpr(lambda x: (x * 2, x > 0))(np.ones(2, np.int32)))
    assert "mul a 2:i32[]" in printed and "gt a 0:i32[]" in printed
