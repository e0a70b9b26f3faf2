"""The two-layer MLP the benchmarks train: sigmoid hidden layer, softmax
cross-entropy, written three ways (functrans, hand-written NumPy, autograd)."""

from __future__ import annotations

import numpy as np

import functrans as ft
import functrans.numpy as fnp

LEARNING_RATE = 0.1


def init(sizes: tuple[int, int, int], batch: int, dtype, seed: int = 0):
    n_in, n_hidden, n_out = sizes
    rng = np.random.default_rng(seed)
    params = {
        "W1": (rng.normal(size=(n_in, n_hidden)) / np.sqrt(n_in)).astype(dtype),
        "b1": np.zeros(n_hidden, dtype),
        "W2": (rng.normal(size=(n_hidden, n_out)) / np.sqrt(n_hidden)).astype(dtype),
        "b2": np.zeros(n_out, dtype),
    }
    X = rng.normal(size=(batch, n_in)).astype(dtype)
    labels = rng.integers(0, n_out, size=batch)
    Y = np.eye(n_out, dtype=dtype)[labels]
    return params, X, Y


def loss(params, X, Y):
    """Mean softmax cross-entropy of the two-layer sigmoid network (functrans)."""
    hidden = ft.nn.sigmoid(X @ params["W1"] + params["b1"])
    logits = hidden @ params["W2"] + params["b2"]
    return -fnp.mean(fnp.sum(ft.nn.log_softmax(logits) * Y, axis=1))


def functrans_step(params, X, Y):
    grads = ft.grad(loss)(params, X, Y)
    return {k: params[k] - LEARNING_RATE * grads[k] for k in params}


def numpy_step(params, X, Y):
    """Forward, backward and SGD update written by hand: the floor."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    z1 = X @ W1 + b1
    a1 = 1.0 / (1.0 + np.exp(-z1))
    z2 = a1 @ W2 + b2
    shifted = z2 - z2.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    probs = e / e.sum(axis=1, keepdims=True)
    dz2 = (probs - Y) / X.shape[0]
    dW2 = a1.T @ dz2
    db2 = dz2.sum(axis=0)
    dz1 = (dz2 @ W2.T) * a1 * (1.0 - a1)
    dW1 = X.T @ dz1
    db1 = dz1.sum(axis=0)
    lr = LEARNING_RATE
    return {"W1": W1 - lr * dW1, "b1": b1 - lr * db1, "W2": W2 - lr * dW2, "b2": b2 - lr * db2}


def autograd_step_factory():
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError:
        return None

    def aloss(params, X, Y):
        z1 = anp.dot(X, params["W1"]) + params["b1"]
        a1 = 1.0 / (1.0 + anp.exp(-z1))
        z2 = anp.dot(a1, params["W2"]) + params["b2"]
        shifted = z2 - anp.max(z2, axis=1, keepdims=True)
        logp = shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
        return -anp.mean(anp.sum(logp * Y, axis=1))

    agrad = autograd.grad(aloss)

    def step(params, X, Y):
        grads = agrad(params, X, Y)
        return {k: params[k] - LEARNING_RATE * grads[k] for k in params}

    return step
