"""Per-example gradients of a 784-128-10 MLP for a batch of 256: ``jit(vmap(grad))``
and ``vmap(grad)`` against a hand-vectorized NumPy computation of the same per-example
gradients (the floor) and a Python loop of ``ft.grad`` over examples, in one run.

Run: python benchmarks/bench_vmap.py
"""

from __future__ import annotations

import numpy as np
from _harness import compare, header, print_table
from mlp import init

import functrans as ft
import functrans.numpy as fnp

SIZES, BATCH = (784, 128, 10), 256


def example_loss(params, x, y):
    """Cross-entropy of one example (x: (784,), y: one-hot (10,))."""
    hidden = ft.nn.sigmoid(x @ params["W1"] + params["b1"])
    logits = hidden @ params["W2"] + params["b2"]
    return -fnp.sum(ft.nn.log_softmax(logits) * y)


def hand_per_example(params, X, Y):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    a1 = 1.0 / (1.0 + np.exp(-(X @ W1 + b1)))
    z2 = a1 @ W2 + b2
    e = np.exp(z2 - z2.max(axis=1, keepdims=True))
    dz2 = e / e.sum(axis=1, keepdims=True) - Y
    dz1 = (dz2 @ W2.T) * a1 * (1.0 - a1)
    return {
        "W1": X[:, :, None] * dz1[:, None, :],
        "b1": dz1,
        "W2": a1[:, :, None] * dz2[:, None, :],
        "b2": dz2,
    }


def main() -> None:
    header("per-example gradients: vmap(grad) vs hand-vectorized NumPy")
    per_example = ft.vmap(ft.grad(example_loss), in_axes=(None, 0, 0))
    jitted = ft.jit(per_example)
    grad_one = ft.grad(example_loss)

    def loop(params, X, Y):
        grads = [grad_one(params, X[i], Y[i]) for i in range(X.shape[0])]
        return {k: np.stack([g[k] for g in grads]) for k in params}

    for dtype in (np.float32, np.float64):
        params, X, Y = init(SIZES, BATCH, dtype)
        expected = hand_per_example(params, X, Y)
        tol = 1e-4 if dtype == np.float32 else 1e-10
        for fun in (per_example, jitted, loop):
            got = fun(params, X, Y)
            for k in expected:
                np.testing.assert_allclose(got[k], expected[k], rtol=tol, atol=tol)
                assert got[k].dtype == dtype
        times = compare(
            {
                "hand numpy (vectorized)": lambda: hand_per_example(params, X, Y),
                "ft.jit(ft.vmap(ft.grad))": lambda: jitted(params, X, Y),
                "ft.vmap(ft.grad)": lambda: per_example(params, X, Y),
                "loop of ft.grad": lambda: loop(params, X, Y),
            },
            repeats=5,
            min_time=0.2,
        )
        title = f"784-128-10, batch {BATCH}, {np.dtype(dtype).name}"
        print_table(title, times, "hand numpy (vectorized)", unit=1e-3, unit_name="ms")
        speedup = times["loop of ft.grad"] / times["ft.jit(ft.vmap(ft.grad))"]
        print(f"jit(vmap(grad)) is {speedup:.1f}x faster than the loop of ft.grad")


if __name__ == "__main__":
    main()
