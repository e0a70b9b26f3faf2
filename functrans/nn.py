"""``functrans.nn``: activation functions and friends, numerically stable.

>>> import numpy as np
>>> float(sigmoid(0.0))
0.5
>>> bool(np.isfinite(log_softmax(np.array([1000.0, 0.0]))).all())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from functrans import numpy as fnp
from functrans import primitives as lax
from functrans.core import Tracer
from functrans.transforms.custom import stop_gradient

__all__ = ["log_softmax", "logsumexp", "one_hot", "relu", "sigmoid", "softmax", "tanh"]


def sigmoid(x: Any) -> Any:
    """Logistic function ``1 / (1 + exp(-x))``; finite with finite gradients for any x.

    >>> float(sigmoid(0.0))
    0.5
    """
    if not isinstance(x, Tracer):
        x = np.asarray(x)
        if x.dtype.kind not in "fc":
            x = x.astype(np.float64)
        out = lax.sigmoid_p.impl(x)
        return out[()] if out.ndim == 0 else out
    return fnp._elementwise("sigmoid", lax.sigmoid, x, inexact=True)


def relu(x: Any) -> Any:
    """``max(x, 0)``, with derivative 0 at 0."""
    return fnp.where(fnp.greater(x, 0), x, fnp.zeros_like(x))


tanh = fnp.tanh


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``log(sum(exp(x)))`` over ``axis``, computed without overflow."""
    peak = stop_gradient(fnp.max(x, axis=axis, keepdims=True))
    peak = fnp.where(fnp.isfinite(peak), peak, fnp.zeros_like(peak)) if hasattr(fnp, "isfinite") else peak
    out = fnp.log(fnp.sum(fnp.exp(x - peak), axis=axis, keepdims=True)) + peak
    if keepdims:
        return out
    return fnp.squeeze(out, axis=axis) if axis is not None else fnp.reshape(out, ())


def log_softmax(x: Any, axis: int = -1) -> Any:
    """``x - logsumexp(x)`` along ``axis``; finite for any finite logits."""
    shifted = x - stop_gradient(fnp.max(x, axis=axis, keepdims=True))
    return shifted - fnp.log(fnp.sum(fnp.exp(shifted), axis=axis, keepdims=True))


def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis``, computed without overflow."""
    shifted = x - stop_gradient(fnp.max(x, axis=axis, keepdims=True))
    unnormalized = fnp.exp(shifted)
    return unnormalized / fnp.sum(unnormalized, axis=axis, keepdims=True)


def one_hot(labels: Any, num_classes: int, dtype: Any = np.float64) -> Any:
    """``labels[..., None] == arange(num_classes)`` as ``dtype``.

    >>> one_hot(np.array([0, 2]), 3)
    array([[1., 0., 0.],
           [0., 0., 1.]])
    """
    classes = np.arange(num_classes)
    return fnp.asarray(fnp.equal(fnp.expand_dims(labels, -1), classes), dtype=dtype)
