"""Logistic regression by Newton's method, with the Hessian from ``ft.hessian``.

Newton's method minimises a smooth convex loss ``L(θ)`` by solving the local
quadratic model at every step:

    θ ← θ − H(θ)⁻¹ ∇L(θ),    H = ∇²L = ft.hessian(L),  ∇L = ft.grad(L)

Near the optimum the error squares at every step (quadratic convergence): a handful
of steps reach machine precision, where gradient descent needs thousands. Here ``L``
is the L2-regularised logistic loss separating two digits of the shipped data set:

    L(θ) = mean(softplus(z) − y z) + (λ/2)‖w‖²,   z = X w + b,  θ = (w, b)

For this loss the Hessian is known in closed form, ``Xᵀ diag(p (1 − p)) X / n + λ I``
(with ``p = σ(z)`` and ``X`` carrying a column of ones for ``b``); the script checks
``ft.hessian`` against it.

    python examples/newton.py                    # 3 versus 8
    python examples/newton.py --digits 1 7 --l2 1e-2
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import functrans as ft
import functrans.numpy as fnp
from functrans import nn
from functrans.datasets import load_digits


def make_loss(X, y, l2: float):
    """The regularised logistic loss of θ = (w, b) packed in one vector; X has a
    trailing column of ones so that b = θ[-1] is not penalised."""
    penalty = np.ones(X.shape[1])
    penalty[-1] = 0.0

    def loss(theta):
        z = X @ theta
        return fnp.mean(nn.softplus(z) - y * z) + 0.5 * l2 * fnp.sum(penalty * theta**2)

    return loss, penalty


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Binary logistic regression on two digits by Newton's method, "
        "Hessians by ft.hessian.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--digits",
        type=int,
        nargs=2,
        default=[3, 8],
        metavar=("A", "B"),
        help="the two digit classes to separate",
    )
    parser.add_argument("--l2", type=float, default=1e-3, help="L2 regularisation λ")
    parser.add_argument("--iterations", type=int, default=12, help="maximum Newton steps")
    parser.add_argument("--tol", type=float, default=1e-10, help="stop when |∇L| is below")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    args = parser.parse_args(argv)
    a, b = args.digits
    if a == b or not all(0 <= d <= 9 for d in args.digits):
        parser.error("--digits must be two different digits from 0 to 9")
    if args.l2 <= 0:
        parser.error("--l2 must be positive (the two classes may be linearly separable)")

    X_all, y_all = load_digits()
    keep = (y_all == a) | (y_all == b)
    X = np.hstack([X_all[keep], np.ones((keep.sum(), 1))])  # a column of ones for the bias
    y = (y_all[keep] == b).astype(np.float64)
    order = np.random.default_rng(args.seed).permutation(len(y))
    n_test = len(y) // 4
    test, train = order[:n_test], order[n_test:]
    loss, penalty = make_loss(X[train], y[train], args.l2)
    grad, hess = ft.grad(loss), ft.hessian(loss)
    print(
        f"digits {a} (y=0) versus {b} (y=1): {len(train)} train / {len(test)} test images, "
        f"{X.shape[1]} parameters, λ={args.l2}"
    )

    theta = np.zeros(X.shape[1])
    H = hess(theta)
    p = 0.5 * np.ones(len(train))
    closed_form = (X[train].T * (p * (1 - p))) @ X[train] / len(train) + args.l2 * np.diag(penalty)
    print(
        f"ft.hessian vs Xᵀ diag(p(1−p)) X / n + λI at θ=0: max |difference| "
        f"{np.max(np.abs(H - closed_form)):.1e}   (H is {H.shape[0]}x{H.shape[1]})\n"
    )

    print(" step        loss        |∇L|   Newton decrement")
    for step in range(args.iterations + 1):
        g = grad(theta)
        gnorm = float(np.linalg.norm(g))
        if step == args.iterations or gnorm < args.tol:
            print(f"{step:>5}  {float(loss(theta)):.10f}  {gnorm:.3e}")
            break
        H = hess(theta)
        direction = np.linalg.solve(H, g)
        decrement = float(np.sqrt(g @ direction))  # sqrt(gᵀ H⁻¹ g): the predicted progress
        print(f"{step:>5}  {float(loss(theta)):.10f}  {gnorm:.3e}   {decrement:.3e}")
        theta = theta - direction

    predictions = (X @ theta > 0).astype(np.float64)
    train_acc = float(np.mean(predictions[train] == y[train]))
    test_acc = float(np.mean(predictions[test] == y[test]))
    print(f"\nNewton steps: {step}")
    print(f"final train accuracy: {train_acc:.4f}")
    print(f"final test accuracy: {test_acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
