"""Eager reverse mode: one MLP training step (forward + backward + SGD update) with
``ft.grad`` (not jitted), against the same step written by hand in NumPy (the
floor) and against autograd, all measured in one run; plus the gradient of a
100-op elementwise chain on a 10-vector.

Run: python benchmarks/bench_grad.py
"""

from __future__ import annotations

import numpy as np
from _harness import compare, header, print_table
from mlp import autograd_step_factory, functrans_step, init, numpy_step

import functrans as ft
import functrans.numpy as fnp

SIZES = [((2, 8, 2), 4), ((784, 128, 10), 32), ((784, 512, 10), 256)]


def check_same_step(params, X, Y):
    ours, theirs = functrans_step(params, X, Y), numpy_step(params, X, Y)
    for k in ours:
        tol = 1e-4 if ours[k].dtype == np.float32 else 1e-10
        np.testing.assert_allclose(ours[k], theirs[k], rtol=tol, atol=tol)
        assert ours[k].dtype == params[k].dtype


def chain_grad_bench() -> None:
    x = np.linspace(-1.0, 1.0, 10)

    def chain(mod, v):
        for _ in range(25):
            v = mod.tanh(mod.sin(v) * 1.01 + 0.5)
        return mod.sum(v)

    def hand_grad(v):
        # Forward keeps what the backward pass needs, then walks back by hand.
        saved = []
        for _ in range(25):
            s = np.sin(v)
            t = np.tanh(s * 1.01 + 0.5)
            saved.append((v, t))
            v = t
        g = np.ones_like(v)
        for v_in, t in reversed(saved):
            g = g * (1.0 - t * t) * 1.01 * np.cos(v_in)
        return g

    np.testing.assert_allclose(ft.grad(lambda v: chain(fnp, v))(x), hand_grad(x), rtol=1e-10)
    candidates = {
        "hand numpy": lambda: hand_grad(x),
        "ft.grad": lambda: ft.grad(lambda v: chain(fnp, v))(x),
    }
    try:
        import autograd
        import autograd.numpy as anp

        agrad = autograd.grad(lambda v: chain(anp, v))
        candidates["autograd"] = lambda: agrad(x)
    except ImportError:
        pass
    times = {k: t / 100 for k, t in compare(candidates).items()}
    print_table("gradient of a 100-op chain on a 10-vector, per op", times, "hand numpy")


def main() -> None:
    header("eager ft.grad: MLP training step")
    autograd_step = autograd_step_factory()
    for dtype in (np.float32, np.float64):
        for sizes, batch in SIZES:
            params, X, Y = init(sizes, batch, dtype)
            check_same_step(params, X, Y)
            candidates = {
                "hand numpy": lambda: numpy_step(params, X, Y),
                "ft.grad": lambda: functrans_step(params, X, Y),
            }
            if autograd_step is not None:
                candidates["autograd"] = lambda: autograd_step(params, X, Y)
            times = compare(candidates)
            name = "-".join(map(str, sizes))
            print_table(f"{name} batch {batch}, {np.dtype(dtype).name}", times, "hand numpy")
    chain_grad_bench()


if __name__ == "__main__":
    main()
