"""Special functions against the C library's values (Python's ``math`` module), and
SciPy's dtype rules on top of the primitives."""

from __future__ import annotations

import math

import numpy as np
import pytest

import functrans as ft
import functrans.scipy.special as fsp
from functrans import lax


def _grid() -> np.ndarray:
    return np.concatenate(
        [
            np.linspace(-7.0, 7.0, 20001),
            np.geomspace(1e-300, 6.5, 2001),
            -np.geomspace(1e-300, 6.5, 2001),
            [0.0, -0.0, 5.9375, 6.0, 6.0625, 1e300, -1e300],
        ]
    )


def test_erf_is_within_two_ulps_of_the_c_library_in_float64():
    x = _grid()
    want = np.array([math.erf(v) for v in x])
    got = lax.erf(x)
    ulp = np.spacing(np.abs(want))
    assert np.max(np.abs(got - want) / ulp) <= 2.0
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))  # erf(-0.0) is -0.0
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)) < 1e-15


def test_erf_in_float32_is_the_rounded_float64_value():
    x = _grid()
    x = x[np.abs(x) < 1e30].astype(np.float32)
    want = np.array([math.erf(v) for v in x.astype(np.float64)]).astype(np.float32)
    got = lax.erf(x)
    assert got.dtype == np.float32
    assert np.max(np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want))) <= 1.0


def test_erf_at_the_ends_and_of_nan():
    np.testing.assert_array_equal(lax.erf(np.array([np.inf, -np.inf, np.nan])), [1.0, -1.0, np.nan])
    assert type(lax.erf(0.5)) is np.float64 and type(lax.erf(np.float32(0.5))) is np.float32


def test_erf_derivatives():
    x = np.array([-2.0, -0.3, 0.0, 0.7, 3.0])
    want = 2 / np.sqrt(np.pi) * np.exp(-(x**2))
    np.testing.assert_allclose(ft.vmap(ft.grad(lax.erf))(x), want, rtol=1e-15)
    np.testing.assert_allclose(ft.jit(ft.vmap(ft.grad(lax.erf)))(x), want, rtol=1e-15)
    np.testing.assert_allclose(ft.vmap(ft.grad(ft.grad(lax.erf)))(x), -2 * x * want, rtol=1e-14)
    ft.test_util.check_grads(lax.erf, (x,), order=2)


def test_erf_rejects_integers_eagerly_and_traced():
    for f in (lax.erf, ft.jit(lax.erf)):
        with pytest.raises(TypeError, match="erf: operands of dtype int64"):
            f(np.array([1, 2]))


def test_scipy_erf_takes_what_scipy_takes():
    np.testing.assert_allclose(fsp.erf([0, 1]), [0.0, math.erf(1.0)], rtol=1e-15)
    assert fsp.erf(np.arange(3)).dtype == np.float64
    assert fsp.erf(np.float32(0.5)).dtype == np.float32
    assert float(ft.grad(fsp.erf)(0.0)) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-15)
