"""The trace machinery: concretization, leaked tracers, conversions, threads."""

import threading

import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from functrans import lax
from functrans.errors import (
    ConcretizationTypeError,
    TracerArrayConversionError,
    UnexpectedTracerError,
)


def test_python_branch_on_traced_value_is_a_concretization_error():
    def f(x):
        if fnp.sum(x) > 0:
            return x
        return -x

    with pytest.raises(ConcretizationTypeError) as info:
        ft.make_jaxpr(f)(np.ones(3))
    message = str(info.value)
    assert "bool()" in message and "make_jaxpr(f)" in message
    assert "lax.cond" in message and "static_argnums" in message
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("conversion", [int, float])
def test_numeric_conversions_under_staging(conversion):
    with pytest.raises(ConcretizationTypeError, match=f"{conversion.__name__}\\(\\)"):
        ft.make_jaxpr(lambda x: conversion(x))(1.0)


def test_python_control_flow_works_under_grad():
    def f(x):
        return x * x if x > 0 else -x

    assert float(ft.grad(f)(3.0)) == 6.0
    assert float(ft.grad(f)(-3.0)) == -1.0


def test_np_asarray_of_tracer_is_a_clear_error():
    with pytest.raises(TracerArrayConversionError, match="cannot convert a traced array"):
        ft.make_jaxpr(lambda x: np.asarray(x))(np.ones(2))


def test_leaked_tracer_is_reported_when_used():
    leaked = []

    def f(x):
        leaked.append(x)
        return x * 2.0

    ft.grad(f)(1.0)
    with pytest.raises(UnexpectedTracerError, match="already finished"):
        fnp.sin(leaked[0])


def test_leaked_staging_tracer_is_reported():
    leaked = []
    ft.make_jaxpr(lambda x: leaked.append(x) or x)(np.ones(2))
    with pytest.raises(UnexpectedTracerError):
        leaked[0] + 1.0


def test_nested_grads_do_not_confuse_perturbations():
    # d/dx [x * d/dy (x * y)] = d/dx [x * x] = 2x
    def outer(x):
        return x * ft.grad(lambda y: x * y)(1.0)

    assert float(ft.grad(outer)(3.0)) == 6.0


def test_tracing_state_is_per_thread():
    barrier = threading.Barrier(4)
    results = {}

    def work(k):
        def f(x):
            barrier.wait(timeout=10)
            return fnp.sum(fnp.sin(x) * k)

        results[k] = float(ft.grad(f)(np.zeros(3)).sum())

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {k: 3.0 * k for k in range(4)}


def test_invalid_argument_types_name_the_argument():
    with pytest.raises(TypeError, match="argument 0 .* str"):
        fnp.exp("abc")
    with pytest.raises(TypeError, match="ragged"):
        fnp.add([[1.0, 2.0], [3.0]], 1.0)
    with pytest.raises(TypeError, match="object"):
        ft.grad(lambda x: x)(object())


def test_shape_errors_name_operation_and_shapes_eagerly_and_traced():
    with pytest.raises(ValueError, match=r"add: incompatible shapes \(2, 3\) and \(4,\)"):
        fnp.add(np.ones((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match=r"add: incompatible shapes \(2, 3\) and \(4,\)"):
        ft.make_jaxpr(fnp.add)(np.ones((2, 3)), np.ones(4))


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: lax.add(np.ones((2, 2)), np.ones(2)),
            r"add: incompatible shapes \(2, 2\) and \(2,\)",
        ),
        (lambda: lax.mul(np.ones(2), np.ones(3)), r"mul: incompatible shapes \(2,\) and \(3,\)"),
        (lambda: lax.lt(np.ones(2), np.ones((1, 2))), r"lt: incompatible shapes"),
        (lambda: lax.reshape(np.ones(6), (4,)), r"reshape: .*\(6,\).*\(4,\)"),
        (lambda: lax.matmul(np.ones((2, 3)), np.ones(4)), r"matmul: incompatible shapes"),
        (lambda: lax.add(np.ones(2, np.float32), np.ones(2)), r"add: .*float32 and float64"),
        (lambda: lax.div(np.ones(2, int), np.ones(2, int)), r"div: .*int64 are not supported"),
        (lambda: lax.select(np.ones(2, int), np.ones(2), 0.0), r"select: .*must be boolean"),
        # A Python number of a higher kind would make NumPy compute in another dtype.
        (lambda: lax.add(np.arange(3, dtype=np.int32), 2.5), r"add: .*int32 and float64"),
    ],
)
def test_primitives_check_shapes_and_dtypes_eagerly_as_they_do_when_traced(call, message):
    # lax does not broadcast implicitly (only rank-0 operands), eagerly or traced, and
    # a failing NumPy implementation is reported by the shape rule.
    with pytest.raises((ValueError, TypeError), match=message):
        call()
    assert lax.add(np.ones((2, 2)), 1.0).shape == (2, 2)


def test_the_ir_records_are_reachable_from_core():
    closed = ft.make_jaxpr(lambda x: fnp.sin(x) * 2.0)(np.ones(2))
    assert isinstance(closed, ft.core.ClosedJaxpr) and isinstance(closed.jaxpr, ft.core.Jaxpr)
    eqn = closed.eqns[0]
    assert isinstance(eqn, ft.core.JaxprEqn) and isinstance(eqn.invars[0], ft.core.Var)
    assert isinstance(closed.eqns[1].invars[1], ft.core.Literal)
    assert ft.core.eval_jaxpr is ft.eval_jaxpr
    with pytest.raises(AttributeError):
        ft.core.NotThere  # noqa: B018


def test_converting_a_leaked_tracer_reports_the_leak():
    leaked = []
    ft.jit(lambda x: leaked.append(x) or x)(np.ones(2))
    with pytest.raises(UnexpectedTracerError, match="np.asarray: .*jit"):
        np.asarray(leaked[0])
