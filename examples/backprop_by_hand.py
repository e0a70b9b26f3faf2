"""Backpropagation derived by hand, checked against ``ft.grad``.

For a linear layer ``z = W x + b`` and a loss ``L`` with error signal ``δ = ∂L/∂z``,
the chain rule gives three formulas that carry every network:

    ∂L/∂W = δ xᵀ        ∂L/∂x = Wᵀ δ        ∂L/∂b = δ

and with ``L = ½‖z − y‖²`` the error signal at the output is ``δ = z − y``. This script
takes four networks, computes each gradient from those formulas in plain NumPy, prints
it next to what ``ft.grad`` returns, and prints the jaxpr of the gradient
(``ft.make_jaxpr(ft.grad(loss))``), where the same products appear as equations:

1. one layer:                z = W x + b
2. two layers:               h = σ(W₁ x + b₁), z = W₂ h + b₂;  δ₁ = (W₂ᵀ δ₂) ⊙ h ⊙ (1 − h)
3. one layer applied twice:  z₁ = W x + b, z₂ = W z₁ + b;  ∂L/∂W = δ₂ z₁ᵀ + δ₁ xᵀ
4. a batch of two columns:   Z = W X + b 1ᵀ;  ∂L/∂W = Δ Xᵀ, ∂L/∂b = column sum of Δ

    python examples/backprop_by_hand.py
    python examples/backprop_by_hand.py --no-jaxprs --seed 3
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import functrans as ft
import functrans.numpy as fnp

N_IN, N_HIDDEN, N_OUT = 3, 4, 2


def show(x: np.ndarray) -> str:
    text = np.array2string(np.asarray(x), precision=4, suppress_small=True, floatmode="fixed")
    return text.replace("\n", "\n" + " " * 26)


class Report:
    """Prints hand-derived gradients beside ft.grad's and remembers the worst mismatch."""

    def __init__(self, show_jaxprs: bool):
        self.show_jaxprs = show_jaxprs
        self.worst = 0.0

    def section(self, title: str, setup: str) -> None:
        print(f"\n{'=' * 78}\n{title}\n  {setup}\n{'=' * 78}")

    def compare(self, formula: str, hand: np.ndarray, auto: np.ndarray) -> None:
        err = float(np.max(np.abs(np.asarray(hand) - np.asarray(auto)), initial=0.0))
        self.worst = max(self.worst, err)
        print(f"\n{formula}")
        print(f"  by hand               = {show(hand)}")
        print(f"  ft.grad               = {show(auto)}")
        print(f"  max |difference|      = {err:.1e}")

    def jaxpr(self, loss, argnums, *args) -> None:
        if self.show_jaxprs:
            print(f"\nft.make_jaxpr(ft.grad(loss, argnums={argnums}))(...):")
            print(ft.make_jaxpr(ft.grad(loss, argnums=argnums))(*args))


def sigmoid(z):
    return ft.nn.sigmoid(z)


def one_layer(report: Report, rng: np.random.Generator) -> None:
    W, b = rng.normal(size=(N_OUT, N_IN)), rng.normal(size=N_OUT)
    x, y = rng.normal(size=N_IN), rng.normal(size=N_OUT)

    def loss(W, x, b, y):
        z = W @ x + b
        return 0.5 * fnp.sum((z - y) ** 2)

    report.section("1. One layer", "z = W x + b,  L = ½‖z − y‖²,  δ = z − y")
    dW, dx, db = ft.grad(loss, argnums=(0, 1, 2))(W, x, b, y)
    delta = W @ x + b - y
    report.compare("∂L/∂W = δ xᵀ", np.outer(delta, x), dW)
    report.compare("∂L/∂x = Wᵀ δ", W.T @ delta, dx)
    report.compare("∂L/∂b = δ", delta, db)
    report.jaxpr(loss, (0, 1, 2), W, x, b, y)


def two_layers(report: Report, rng: np.random.Generator) -> None:
    W1, b1 = rng.normal(size=(N_HIDDEN, N_IN)), rng.normal(size=N_HIDDEN)
    W2, b2 = rng.normal(size=(N_OUT, N_HIDDEN)), rng.normal(size=N_OUT)
    x, y = rng.normal(size=N_IN), rng.normal(size=N_OUT)

    def loss(W1, b1, W2, b2, x, y):
        h = sigmoid(W1 @ x + b1)
        z = W2 @ h + b2
        return 0.5 * fnp.sum((z - y) ** 2)

    report.section(
        "2. Two layers",
        "h = σ(W₁ x + b₁),  z = W₂ h + b₂,  L = ½‖z − y‖²,  δ₂ = z − y,  "
        "δ₁ = (W₂ᵀ δ₂) ⊙ h ⊙ (1 − h)",
    )
    dW1, db1, dW2, db2 = ft.grad(loss, argnums=(0, 1, 2, 3))(W1, b1, W2, b2, x, y)
    h = 1 / (1 + np.exp(-(W1 @ x + b1)))
    delta2 = W2 @ h + b2 - y
    delta1 = (W2.T @ delta2) * h * (1 - h)  # σ'(a) = σ(a)(1 − σ(a))
    report.compare("∂L/∂W₂ = δ₂ hᵀ", np.outer(delta2, h), dW2)
    report.compare("∂L/∂b₂ = δ₂", delta2, db2)
    report.compare("∂L/∂W₁ = δ₁ xᵀ", np.outer(delta1, x), dW1)
    report.compare("∂L/∂b₁ = δ₁", delta1, db1)
    report.jaxpr(loss, (0, 1, 2, 3), W1, b1, W2, b2, x, y)


def nested(report: Report, rng: np.random.Generator) -> None:
    W, b = rng.normal(size=(N_IN, N_IN)) / 2, rng.normal(size=N_IN)
    x, y = rng.normal(size=N_IN), rng.normal(size=N_IN)

    def loss(W, b, x, y):
        z1 = W @ x + b
        z2 = W @ z1 + b  # the same W and b again
        return 0.5 * fnp.sum((z2 - y) ** 2)

    report.section(
        "3. One layer applied twice (W, b reused)",
        "z₁ = W x + b,  z₂ = W z₁ + b,  L = ½‖z₂ − y‖²,  δ₂ = z₂ − y,  δ₁ = Wᵀ δ₂",
    )
    dW, db = ft.grad(loss, argnums=(0, 1))(W, b, x, y)
    z1 = W @ x + b
    delta2 = W @ z1 + b - y
    delta1 = W.T @ delta2
    report.compare(
        "∂L/∂W = δ₂ z₁ᵀ + δ₁ xᵀ  (one term per use)", np.outer(delta2, z1) + np.outer(delta1, x), dW
    )
    report.compare("∂L/∂b = δ₂ + δ₁", delta2 + delta1, db)
    report.jaxpr(loss, (0, 1), W, b, x, y)


def batch(report: Report, rng: np.random.Generator) -> None:
    W, b = rng.normal(size=(N_OUT, N_IN)), rng.normal(size=N_OUT)
    X, Y = rng.normal(size=(N_IN, 2)), rng.normal(size=(N_OUT, 2))  # examples are columns

    def loss(W, b, X, Y):
        Z = W @ X + b[:, None]  # b is broadcast over the columns
        return 0.5 * fnp.sum((Z - Y) ** 2)

    report.section(
        "4. A batch of two columns",
        "Z = W X + b 1ᵀ,  L = ½‖Z − Y‖²_F = Σ over columns,  Δ = Z − Y (one δ per column)",
    )
    dW, db, dX = ft.grad(loss, argnums=(0, 1, 2))(W, b, X, Y)
    Delta = W @ X + b[:, None] - Y
    report.compare("∂L/∂W = Δ Xᵀ = Σ_k δ_k x_kᵀ", Delta @ X.T, dW)
    report.compare("∂L/∂b = column sum of Δ = Σ_k δ_k", Delta.sum(axis=1), db)
    report.compare("∂L/∂X = Wᵀ Δ", W.T @ Delta, dX)
    report.jaxpr(loss, (0, 1), W, b, X, Y)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Derive backpropagation by hand for four small networks and compare "
        "every gradient with ft.grad; print the jaxpr of each gradient."
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    parser.add_argument("--no-jaxprs", action="store_true", help="do not print the gradient jaxprs")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    report = Report(show_jaxprs=not args.no_jaxprs)
    for example in (one_layer, two_layers, nested, batch):
        example(report, rng)
    agree = report.worst < 1e-10
    print(
        f"\nlargest difference between hand formulas and ft.grad: {report.worst:.1e} "
        f"({'agree' if agree else 'DISAGREE'})"
    )
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
