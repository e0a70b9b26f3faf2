"""Backpropagation through time: the gradient of a 1000-step RNN
(``h = tanh(W h + U x_t + b)``, hidden size 64, loss on the final state) three ways,
measured in one run:

* ``lax.scan`` under ``jit``: the cell is traced once; reverse mode is a forward scan
  that stacks per-step residuals and a backward scan;
* the same RNN as a Python loop under ``jit``: tracing unrolls all the steps;
* backpropagation through time written by hand in NumPy (the floor).

Reported: trace + compile time of each jitted version, time per call, and their
ratios. Targets: per call within 1.5x of the hand
version; scan's trace + compile at least 20x faster than the unrolled loop's.

Run: python benchmarks/bench_rnn.py [--steps 1000] [--hidden 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _harness import compare, header, print_table

import functrans as ft
import functrans.numpy as fnp
from functrans import lax


def loss_scan(params, h0, xs, target):
    def cell(h, x):
        return fnp.tanh(params["W"] @ h + params["U"] @ x + params["b"]), None

    h, _ = lax.scan(cell, h0, xs)
    return fnp.sum((h - target) ** 2)


def loss_unrolled(params, h0, xs, target):
    h = h0
    for t in range(xs.shape[0]):
        h = fnp.tanh(params["W"] @ h + params["U"] @ xs[t] + params["b"])
    return fnp.sum((h - target) ** 2)


def bptt_by_hand(params, h0, xs, target):
    """The gradient of the same loss, derived by hand: forward pass keeping every state,
    then the backward recursion ``da = dh (1 - h^2)``, ``dW += da h_prev^T``...,
    ``dh_prev = W^T da``."""
    W, U, b = params["W"], params["U"], params["b"]
    steps = xs.shape[0]
    hs = np.empty((steps + 1, h0.shape[0]))
    hs[0] = h0
    for t in range(steps):
        hs[t + 1] = np.tanh(W @ hs[t] + U @ xs[t] + b)
    dh = 2.0 * (hs[steps] - target)
    dW, dU, db = np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
    for t in range(steps - 1, -1, -1):
        da = dh * (1.0 - hs[t + 1] ** 2)
        dW += np.outer(da, hs[t])
        dU += np.outer(da, xs[t])
        db += da
        dh = W.T @ da
    return {"W": dW, "U": dU, "b": db}


def trace_and_compile_seconds(make, args) -> float:
    """Trace and compile a fresh jitted function (``.source`` does both, without
    running it)."""
    fun = make()
    start = time.perf_counter()
    fun.source(*args)
    return time.perf_counter() - start


def first_call_seconds(make, args) -> float:
    """A fresh jitted function's first call: trace, compile (loop bodies included, which
    are compiled when first run) and one run."""
    fun = make()
    start = time.perf_counter()
    fun(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--inputs", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    header(f"RNN gradient, {args.steps} steps, hidden {args.hidden}, inputs {args.inputs}")
    if not hasattr(ft, "jit"):
        raise SystemExit("functrans.jit is not available")
    rng = np.random.default_rng(0)
    n, d = args.hidden, args.inputs
    params = {
        "W": rng.standard_normal((n, n)) / np.sqrt(n),
        "U": rng.standard_normal((n, d)) / np.sqrt(d),
        "b": 0.1 * rng.standard_normal(n),
    }
    h0, xs = np.zeros(n), rng.standard_normal((args.steps, d))
    target = rng.uniform(-0.5, 0.5, n)
    call_args = (params, h0, xs, target)

    # Trace + compile is measured on a fresh jitted function each time.
    make_scan = lambda: ft.jit(ft.grad(loss_scan))  # noqa: E731
    make_unrolled = lambda: ft.jit(ft.grad(loss_unrolled))  # noqa: E731
    grad_scan, grad_unrolled = make_scan(), make_unrolled()
    expected = bptt_by_hand(*call_args)
    for name, fun in (("scan", grad_scan), ("unrolled loop", grad_unrolled)):
        got = fun(*call_args)
        for k in expected:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-9, atol=1e-12, err_msg=name)

    per_call = compare(
        {
            "hand-written NumPy BPTT": lambda: bptt_by_hand(*call_args),
            "jit(grad) of lax.scan": lambda: grad_scan(*call_args),
            "jit(grad) of Python loop": lambda: grad_unrolled(*call_args),
        },
        repeats=args.repeats,
        min_time=0.2,
    )
    print_table("time per call", per_call, "hand-written NumPy BPTT", unit=1e-3, unit_name="ms")

    compile_times, first_calls = {}, {}
    for name, make, repeats in (
        ("jit(grad) of lax.scan", make_scan, args.repeats),
        ("jit(grad) of Python loop", make_unrolled, 2),
    ):
        compile_times[name] = min(
            trace_and_compile_seconds(make, call_args) for _ in range(repeats)
        )
        first_calls[name] = min(first_call_seconds(make, call_args) for _ in range(repeats))
    print("\n## trace + compile")
    print("| candidate | trace + compile, .source() (ms) | first call (ms) | steady call (ms) |")
    print("| --- | ---: | ---: | ---: |")
    for name in compile_times:
        print(
            f"| {name} | {compile_times[name] * 1e3:.2f} | {first_calls[name] * 1e3:.2f} | "
            f"{per_call[name] * 1e3:.2f} |"
        )
    eqns = {
        "lax.scan": len(ft.make_jaxpr(ft.grad(loss_scan))(*call_args).eqns),
        "Python loop": len(ft.make_jaxpr(ft.grad(loss_unrolled))(*call_args).eqns),
    }
    print(f"\ngradient program size (equations): {eqns}")

    ratio = per_call["jit(grad) of lax.scan"] / per_call["hand-written NumPy BPTT"]
    speedup = compile_times["jit(grad) of Python loop"] / compile_times["jit(grad) of lax.scan"]
    print(f"\nscan per call / hand BPTT: {ratio:.2f}x (target <= 1.5x)")
    print(f"unrolled trace+compile / scan trace+compile: {speedup:.0f}x (target >= 20x)")


if __name__ == "__main__":
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        main()
    else:
        # One BLAS thread for every candidate: small matrix-vector products gain nothing
        # from threads, and timings are steadier.
        with threadpool_limits(limits=1, user_api="blas"):
            main()
