"""A recurrent network written with ``lax.scan``, trained by backpropagation through time.

The cell is ``h_t = tanh(W h_{t-1} + U x_t + b)`` and the loss is the squared distance
of the final state from a target. ``scan`` traces the cell once, so the gradient's
program has the same size for 10 steps or 10,000; its reverse mode stores one set of
residuals per step and runs the cell's derivative backwards through time.

It checks the gradient against finite differences, prints the size of the gradient
program for two sequence lengths, and fits the network to a target for a few steps
of gradient descent (under ``jit``):

    python examples/rnn.py
    python examples/rnn.py --steps 1000 --hidden 64
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

import functrans as ft
import functrans.numpy as fnp
from functrans import lax

Params = dict[str, np.ndarray]


def init_params(rng: np.random.Generator, hidden: int, inputs: int) -> Params:
    """Weights scaled so that the recurrence neither explodes nor vanishes quickly."""
    return {
        "W": rng.standard_normal((hidden, hidden)) / np.sqrt(hidden),
        "U": rng.standard_normal((hidden, inputs)) / np.sqrt(inputs),
        "b": 0.1 * rng.standard_normal(hidden),
    }


def final_state(params: Params, h0: Any, xs: Any) -> Any:
    """Run the cell over the rows of ``xs`` (shape ``(steps, inputs)``) from ``h0``."""

    def cell(h, x):
        return fnp.tanh(params["W"] @ h + params["U"] @ x + params["b"]), None

    h, _ = lax.scan(cell, h0, xs)
    return h


def loss(params: Params, h0: Any, xs: Any, target: Any) -> Any:
    return fnp.sum((final_state(params, h0, xs) - target) ** 2)


def numerical_grad(f, params: Params, name: str, eps: float = 1e-6, count: int = 5) -> tuple:
    """Central differences of ``f`` with respect to ``count`` entries of ``params[name]``."""
    rng = np.random.default_rng(1)
    flat = params[name].reshape(-1)
    picks = rng.choice(flat.size, size=min(count, flat.size), replace=False)
    values = []
    for i in picks:
        plus, minus = dict(params), dict(params)
        plus[name] = flat.copy()
        minus[name] = flat.copy()
        plus[name][i] += eps
        minus[name][i] -= eps
        plus[name] = plus[name].reshape(params[name].shape)
        minus[name] = minus[name].reshape(params[name].shape)
        values.append((f(plus) - f(minus)) / (2 * eps))
    return picks, np.array(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="A scan-based RNN: gradient check, program size, a short fit.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=100, help="sequence length")
    parser.add_argument("--hidden", type=int, default=16, help="hidden state size")
    parser.add_argument("--inputs", type=int, default=8, help="input size")
    parser.add_argument("--iterations", type=int, default=50, help="gradient descent steps")
    parser.add_argument("--lr", type=float, default=0.02, help="gradient descent step size")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    params = init_params(rng, args.hidden, args.inputs)
    h0 = np.zeros(args.hidden)
    xs = rng.standard_normal((args.steps, args.inputs))
    target = rng.uniform(-0.5, 0.5, args.hidden)

    grads = ft.grad(loss)(params, h0, xs, target)
    print(f"loss at init: {float(loss(params, h0, xs, target)):.6f}")
    for name in ("W", "U", "b"):
        picks, numeric = numerical_grad(lambda p: loss(p, h0, xs, target), params, name)
        error = np.max(np.abs(grads[name].reshape(-1)[picks] - numeric))
        print(f"d loss / d {name}: max error against finite differences {error:.2e}")

    for n in (10, 1000):
        zeros = np.zeros((n, args.inputs))
        jaxpr = ft.make_jaxpr(ft.grad(loss))(params, h0, zeros, target)
        print(f"gradient program for {n:4d} steps: {len(jaxpr.eqns)} equations")

    value_and_grad = ft.value_and_grad(loss)
    if hasattr(ft, "jit"):
        value_and_grad = ft.jit(value_and_grad)
    for it in range(args.iterations + 1):
        value, grads = value_and_grad(params, h0, xs, target)
        if it % 10 == 0 or it == args.iterations:
            print(f"step {it:3d}: loss {float(value):.6f}")
        params = {k: params[k] - args.lr * grads[k] for k in params}
    return 0


if __name__ == "__main__":
    sys.exit(main())
