"""``functrans.nn``: activations, losses and initializers for neural networks.

Everything here is composed from ``functrans.numpy`` (and the ``sigmoid``
primitive), so it works eagerly on NumPy arrays and under every transform. The
functions are numerically stable: ``sigmoid(±1000)``, ``log_softmax`` of huge logits
and the cross-entropy of confident wrong predictions are finite, and so are their
gradients.

>>> import numpy as np, functrans as ft
>>> float(sigmoid(0.0))
0.5
>>> bool(np.isfinite(log_softmax(np.array([1000.0, 0.0]))).all())
True
>>> float(ft.grad(sigmoid)(-1000.0))
0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from functrans import numpy as fnp
from functrans import primitives as lax
from functrans.core import Tracer, get_aval
from functrans.transforms.autodiff.custom import custom_jvp, stop_gradient

__all__ = [
    "glorot_uniform",
    "he_normal",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "mean_squared_error",
    "one_hot",
    "relu",
    "sigmoid",
    "softmax",
    "softmax_cross_entropy",
    "softplus",
    "tanh",
]

# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------


def sigmoid(x: Any) -> Any:
    """Logistic function ``1 / (1 + exp(-x))``; finite, with finite gradients, for any x.

    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    if not isinstance(x, Tracer):  # eager: the primitive's NumPy implementation
        x = np.asarray(x)
        if x.dtype.kind not in "fc":
            x = x.astype(np.float64)
        out = lax.sigmoid_p.impl(x)
        return out[()] if out.ndim == 0 else out
    return fnp._elementwise("sigmoid", lax.sigmoid, x, inexact=True)


def relu(x: Any) -> Any:
    """``max(x, 0)``, with derivative 0 at 0 (as in JAX and PyTorch); a NaN stays NaN,
    as with ``numpy.maximum``.

    >>> relu(np.array([-2.0, 0.0, 3.0, np.nan]))
    array([ 0.,  0.,  3., nan])
    """
    return fnp.where(fnp.less_equal(x, 0), 0, x)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent (``functrans.numpy.tanh``).

    >>> float(tanh(0.0))
    0.0
    """
    return fnp.tanh(x)


def softplus(x: Any) -> Any:
    """``log(1 + exp(x))``, computed as ``max(x, 0) + log1p(exp(-|x|))`` so that it
    neither overflows for large ``x`` nor loses precision for very negative ``x``.
    Its derivative is ``sigmoid(x)`` (a custom rule: the kinks of ``max`` and ``|x|``
    at 0 would otherwise make the second derivative at 0 wrong).

    >>> softplus(np.array([-1000.0, 0.0, 1000.0])).round(4).tolist()
    [0.0, 0.6931, 1000.0]
    >>> import functrans as ft
    >>> float(ft.grad(ft.grad(softplus))(0.0))  # sigmoid'(0)
    0.25
    """
    return _softplus(x)


@custom_jvp
def _softplus(x: Any) -> Any:
    return fnp.maximum(x, 0) + fnp.log1p(fnp.exp(-fnp.abs(x)))


_softplus.__name__ = "softplus"  # the name jaxprs show for the call


@_softplus.defjvp
def _softplus_jvp(primals: tuple[Any], tangents: tuple[Any]) -> tuple[Any, Any]:
    (x,), (t,) = primals, tangents
    return _softplus(x), t * sigmoid(x)


def log_sigmoid(x: Any) -> Any:
    """``log(sigmoid(x)) = -softplus(-x)``, finite for any finite ``x``.

    >>> log_sigmoid(np.array([-1000.0, 0.0])).round(4).tolist()
    [-1000.0, -0.6931]
    """
    return -softplus(-x)


def _axes(name: str, x: Any, axis: int | Sequence[int] | None) -> tuple[int, ...]:
    """``axis`` of ``x`` as sorted non-negative ints (``None``: all axes), or an error
    naming ``name``. A scalar allows the integer axis 0 or -1 (nothing to reduce), as
    NumPy's reductions do."""
    ndim = len(_aval(x).shape)
    if ndim == 0 and isinstance(axis, (int, np.integer)) and axis in (0, -1):
        return ()
    return fnp.normalize_axes(name, axis, ndim)


def _is_empty(x: Any, axes: tuple[int, ...]) -> bool:
    shape = _aval(x).shape
    return any(shape[a] == 0 for a in axes)


def _peak(x: Any, axis: Any) -> Any:
    """``max(x, axis, keepdims=True)`` without a derivative: the shift that keeps
    ``exp(x - peak)`` from overflowing. Where the maximum is infinite ``x - peak`` is
    NaN, and so is every softmax of such a row (``-inf - -inf``, ``inf / inf``)."""
    return stop_gradient(fnp.max(x, axis=axis, keepdims=True))


def _finite_peak(x: Any, axis: Any) -> Any:
    """``_peak``, but 0 where the maximum is infinite, so that the log-sum-exp of a
    row of ``-inf`` is ``-inf`` rather than NaN."""
    peak = _peak(x, axis)
    return fnp.where(fnp.isfinite(peak), peak, 0)


def logsumexp(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:
    """``log(sum(exp(x)))`` over ``axis`` (all axes by default), without overflow.

    >>> float(logsumexp(np.array([1000.0, 1000.0])))  # 1000 + log 2
    1000.6931471805599
    """
    axes = _axes("logsumexp", x, axis)
    if _is_empty(x, axes):  # the log of an empty sum
        return fnp.sum(x, axis=axes, keepdims=keepdims) - np.inf
    peak = _finite_peak(x, axes)
    out = fnp.log(fnp.sum(fnp.exp(x - peak), axis=axes, keepdims=True)) + peak
    if keepdims:
        return out
    out = fnp.squeeze(out, axis=axes)
    return out[()] if type(out) is np.ndarray and out.ndim == 0 else out  # as np.sum gives


def log_softmax(x: Any, axis: int = -1) -> Any:
    """``x - logsumexp(x, axis, keepdims=True)``: log-probabilities, finite for any
    finite logits.

    >>> log_softmax(np.array([1000.0, 0.0]))
    array([    0., -1000.])
    """
    axes = _axes("log_softmax", x, axis)
    if _is_empty(x, axes):
        return x + 0.0  # nothing to normalise; keeps the shape, as a float array
    shifted = x - _peak(x, axes)
    return shifted - fnp.log(fnp.sum(fnp.exp(shifted), axis=axes, keepdims=True))


def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis``, computed without overflow.

    >>> softmax(np.array([1000.0, 1000.0]))
    array([0.5, 0.5])
    """
    axes = _axes("softmax", x, axis)
    if _is_empty(x, axes):
        return x + 0.0
    unnormalized = fnp.exp(x - _peak(x, axes))
    return unnormalized / fnp.sum(unnormalized, axis=axes, keepdims=True)


def one_hot(labels: Any, num_classes: int, dtype: npt.DTypeLike = np.float64) -> Any:
    """``labels[..., None] == arange(num_classes)`` as ``dtype``: a trailing axis of
    length ``num_classes`` with a 1 at each label (all zeros for a label out of range).

    >>> one_hot(np.array([0, 2]), 3)
    array([[1., 0., 0.],
           [0., 0., 1.]])
    """
    aval = get_aval(labels if isinstance(labels, Tracer) else np.asarray(labels))
    if aval.dtype.kind not in "iub":
        raise TypeError(f"one_hot: labels must be integers, got {aval.dtype} of shape {aval.shape}")
    if int(num_classes) != num_classes or num_classes < 0:
        raise ValueError(f"one_hot: num_classes must be a non-negative int, got {num_classes!r}")
    hits = fnp.equal(fnp.expand_dims(labels, -1), np.arange(int(num_classes)))
    return fnp.astype(hits, np.dtype(dtype))


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


def softmax_cross_entropy(logits: Any, labels: Any) -> Any:
    """Mean cross-entropy between ``softmax(logits)`` and the labels.

    ``logits`` has shape ``batch + (classes,)``. ``labels`` is either integer class
    labels of shape ``batch`` or targets (one-hot or any probabilities) of the shape
    of ``logits``. The result is the mean over the batch of
    ``-sum(targets * log_softmax(logits), -1)``: a scalar.

    >>> logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> round(float(softmax_cross_entropy(logits, np.array([0, 2]))), 4)
    0.6691
    >>> round(float(softmax_cross_entropy(logits, one_hot(np.array([0, 2]), 3))), 4)
    0.6691
    """
    logits_aval, labels_aval = _aval(logits), _aval(labels)
    if logits_aval.ndim < 1:
        raise ValueError("softmax_cross_entropy: logits must have a class axis, got shape ()")
    if labels_aval.dtype.kind in "iu" and labels_aval.shape == logits_aval.shape[:-1]:
        targets = one_hot(labels, logits_aval.shape[-1], dtype=_float_dtype(logits_aval.dtype))
    elif labels_aval.dtype.kind in "fc" and labels_aval.shape == logits_aval.shape:
        targets = labels
    else:
        raise ValueError(
            f"softmax_cross_entropy: labels of shape {labels_aval.shape} and dtype "
            f"{labels_aval.dtype} do not fit logits of shape {logits_aval.shape}; pass integer "
            f"class labels of shape {logits_aval.shape[:-1]} or float targets of shape "
            f"{logits_aval.shape}"
        )
    per_example = -fnp.sum(targets * log_softmax(logits), axis=-1)
    return fnp.mean(per_example) if logits_aval.ndim > 1 else per_example


def mean_squared_error(predictions: Any, targets: Any) -> Any:
    """``mean((predictions - targets) ** 2)`` over all elements: a scalar.

    The shapes must be equal: a silent broadcast of ``(n, 1)`` against ``(n,)`` is a
    classic bug, so it is an error here.

    >>> float(mean_squared_error(np.array([1.0, 2.0]), np.array([0.0, 0.0])))
    2.5
    """
    p_shape, t_shape = _aval(predictions).shape, _aval(targets).shape
    if p_shape != t_shape:
        raise ValueError(
            f"mean_squared_error: predictions of shape {p_shape} and targets of shape "
            f"{t_shape} differ; reshape one of them (no broadcasting here)"
        )
    return fnp.mean(fnp.square(predictions - targets))


def _aval(x: Any) -> Any:
    return get_aval(x if isinstance(x, Tracer) else np.asarray(x))


def _float_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if dtype.kind in "fc" else np.dtype(np.float64)


# ---------------------------------------------------------------------------
# Initializers
# ---------------------------------------------------------------------------


def _fans(name: str, shape: Sequence[int], in_axis: int, out_axis: int) -> tuple[int, int]:
    shape = tuple(int(n) for n in shape)
    if len(shape) < 2:
        raise ValueError(
            f"{name}: needs a weight shape with at least 2 axes (fan-in and fan-out), got {shape}"
        )
    receptive = math.prod(
        n for i, n in enumerate(shape) if i not in (in_axis % len(shape), out_axis % len(shape))
    )
    return shape[in_axis] * receptive, shape[out_axis] * receptive


def _check_rng(name: str, rng: Any) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name}: rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )


def glorot_uniform(
    rng: np.random.Generator,
    shape: Sequence[int],
    dtype: npt.DTypeLike = np.float64,
    *,
    in_axis: int = -2,
    out_axis: int = -1,
) -> np.ndarray:
    """Glorot / Xavier uniform weights: ``U(-a, a)`` with ``a = sqrt(6 / (fan_in +
    fan_out))``, which keeps the variance of activations and gradients roughly
    constant through a layer (Glorot & Bengio, 2010).

    By default ``shape[-2]`` is the fan-in and ``shape[-1]`` the fan-out (weights used
    as ``x @ W``, as in JAX); for ``W @ x`` pass ``in_axis=-1, out_axis=-2``. Any
    other axes (convolution windows) multiply both fans.

    >>> W = glorot_uniform(np.random.default_rng(0), (64, 32), np.float32)
    >>> W.shape, W.dtype, bool(abs(W).max() <= np.sqrt(6 / 96))
    ((64, 32), dtype('float32'), True)
    """
    _check_rng("glorot_uniform", rng)
    fan_in, fan_out = _fans("glorot_uniform", shape, in_axis, out_axis)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=tuple(shape)).astype(dtype)


def he_normal(
    rng: np.random.Generator,
    shape: Sequence[int],
    dtype: npt.DTypeLike = np.float64,
    *,
    in_axis: int = -2,
    out_axis: int = -1,
) -> np.ndarray:
    """He / Kaiming normal weights: ``N(0, 2 / fan_in)``, suited to ReLU layers
    (He et al., 2015). Axes as for ``glorot_uniform``.

    >>> W = he_normal(np.random.default_rng(0), (512, 256))
    >>> round(float(W.std() * np.sqrt(512 / 2)), 1)
    1.0
    """
    _check_rng("he_normal", rng)
    fan_in, _ = _fans("he_normal", shape, in_axis, out_axis)
    return (rng.standard_normal(size=tuple(shape)) * math.sqrt(2.0 / fan_in)).astype(dtype)
