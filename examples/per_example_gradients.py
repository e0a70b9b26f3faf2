"""Per-example gradients with ``vmap(grad)``, and DP-SGD-style clipping.

A batch gradient averages away everything about individual examples. Differentially
private SGD (Abadi et al., 2016) needs each example's own gradient: it clips each to
norm at most ``C``, sums them, adds Gaussian noise of scale ``σ C`` and divides by the
batch size, so that no single example can move the model much.

With functrans the per-example gradients are one line, no loop over the batch:

    per_example_grads = ft.vmap(ft.grad(loss_one), in_axes=(None, 0, 0))

The script checks them against a Python loop and against the batch gradient, prints
the distribution of their norms, then trains a small network on the digits with
clipped, noisy gradients.

    python examples/per_example_gradients.py
    python examples/per_example_gradients.py --clip 0.5 --noise-multiplier 1.5
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import functrans as ft
import functrans.numpy as fnp
from functrans import nn, optim
from functrans.datasets import load_digits
from functrans.tree_util import tree_leaves, tree_map


def init_params(rng: np.random.Generator, hidden: int) -> dict:
    return {
        "W1": nn.glorot_uniform(rng, (64, hidden)),
        "b1": np.zeros(hidden),
        "W2": nn.glorot_uniform(rng, (hidden, 10)),
        "b2": np.zeros(10),
    }


def predict(params, x):
    """Logits for one image (64,) or a batch (n, 64)."""
    h = nn.sigmoid(x @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]


def loss_one(params, x, y):
    """The loss of a single example: x of shape (64,), y an integer label."""
    return nn.softmax_cross_entropy(predict(params, x), y)


def loss_batch(params, X, Y):
    return nn.softmax_cross_entropy(predict(params, X), Y)


# The whole idea: differentiate the single-example loss, then map it over the batch.
per_example_grads = ft.vmap(ft.grad(loss_one), in_axes=(None, 0, 0))


def global_norms(grads) -> object:
    """The L2 norm of each example's gradient over all parameters: shape (batch,)."""
    squares = [fnp.sum(fnp.reshape(g, (g.shape[0], -1)) ** 2, axis=1) for g in tree_leaves(grads)]
    return fnp.sqrt(sum(squares[1:], squares[0]))


def make_private_grad(clip: float, noise_multiplier: float):
    @ft.jit
    def private_grad(params, X, Y, noise):
        """Clip each example's gradient to norm <= clip, sum, add N(0, (σ clip)²), average."""
        grads = per_example_grads(params, X, Y)
        norms = global_norms(grads)
        scale = fnp.minimum(1.0, clip / (norms + 1e-12))

        def clip_and_noise(g, n):
            factor = fnp.reshape(scale, (scale.shape[0],) + (1,) * (g.ndim - 1))
            return (fnp.sum(g * factor, axis=0) + noise_multiplier * clip * n) / X.shape[0]

        return tree_map(clip_and_noise, grads, noise), norms

    return private_grad


@ft.jit
def accuracy(params, X, Y):
    return fnp.mean(fnp.argmax(predict(params, X), axis=-1) == Y)


def check_per_example_gradients(params, X, Y) -> float:
    """vmap(grad) against a loop, and their mean against the batch gradient."""
    batched = per_example_grads(params, X, Y)
    looped = [ft.grad(loss_one)(params, X[i], Y[i]) for i in range(len(Y))]
    err_loop = max(
        float(np.max(np.abs(np.asarray(b)[i] - np.asarray(one[k]))))
        for k, b in batched.items()
        for i, one in enumerate(looped)
    )
    batch_grad = ft.grad(loss_batch)(params, X, Y)
    err_mean = max(
        float(np.max(np.abs(np.asarray(batched[k]).mean(axis=0) - batch_grad[k])))
        for k in batch_grad
    )
    print(
        f"per-example gradients of a batch of {len(Y)}: "
        + ", ".join(f"{k} {np.shape(v)}" for k, v in sorted(batched.items()))
    )
    print(f"  vmap(grad) vs a Python loop of grad:     max |difference| {err_loop:.1e}")
    print(f"  mean of per-example vs batch gradient:   max |difference| {err_mean:.1e}")
    sizes = []
    for n in (8, 64):
        closed = ft.make_jaxpr(per_example_grads)(params, X[:1].repeat(n, 0), Y[:1].repeat(n))
        sizes.append(len(closed.jaxpr.eqns))
    print(
        f"  traced program: {sizes[0]} equations for a batch of 8, {sizes[1]} for 64 "
        "(no loop over examples)"
    )
    return max(err_loop, err_mean)


def describe_norms(norms: np.ndarray, clip: float) -> None:
    q = np.quantile(norms, [0.0, 0.25, 0.5, 0.75, 1.0])
    print(
        f"  per-example gradient norms: min {q[0]:.3f}  25% {q[1]:.3f}  median {q[2]:.3f}  "
        f"75% {q[3]:.3f}  max {q[4]:.3f};  {np.mean(norms > clip):.0%} clipped at C={clip}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Per-example gradients with vmap(grad) and DP-SGD-style clipping and "
        "noise, trained on the digits.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=15, help="passes over the training set")
    parser.add_argument("--batch-size", type=int, default=64, help="examples per step")
    parser.add_argument("--hidden", type=int, default=32, help="hidden units")
    parser.add_argument("--lr", type=float, default=0.5, help="SGD learning rate")
    parser.add_argument("--clip", type=float, default=1.0, help="per-example norm bound C")
    parser.add_argument(
        "--noise-multiplier", type=float, default=0.5, help="noise std in units of C (σ)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for split, init and noise")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.clip <= 0 or args.noise_multiplier < 0:
        parser.error("--epochs and --batch-size must be >= 1, --clip > 0, --noise-multiplier >= 0")

    rng = np.random.default_rng(args.seed)
    X, Y = load_digits()
    order = rng.permutation(len(Y))
    n_test = len(Y) // 5
    X_test, Y_test, X_train, Y_train = (
        X[order[:n_test]],
        Y[order[:n_test]],
        X[order[n_test:]],
        Y[order[n_test:]],
    )
    params = init_params(rng, args.hidden)
    batch = min(args.batch_size, len(Y_train))

    worst = check_per_example_gradients(params, X_train[:batch], Y_train[:batch])

    private_grad = make_private_grad(args.clip, args.noise_multiplier)
    opt = optim.sgd(args.lr, momentum=0.9)
    state = opt.init(params)
    steps = len(Y_train) // batch
    print(
        f"\nDP-SGD: clip C={args.clip}, noise σ={args.noise_multiplier}, batch {batch}, "
        f"SGD lr={args.lr} momentum 0.9, {args.epochs} epochs"
    )
    for epoch in range(1, args.epochs + 1):
        perm = rng.permutation(len(Y_train))
        epoch_norms = []
        for step in range(steps):
            idx = perm[step * batch : (step + 1) * batch]
            noise = tree_map(lambda p: rng.standard_normal(np.shape(p)), params)
            grads, norms = private_grad(params, X_train[idx], Y_train[idx], noise)
            updates, state = opt.update(grads, state, params)
            params = optim.apply_updates(params, updates)
            epoch_norms.append(np.asarray(norms))
        norms = np.concatenate(epoch_norms)
        print(
            f"epoch {epoch:>2}: train acc {float(accuracy(params, X_train, Y_train)):.3f}  "
            f"test acc {float(accuracy(params, X_test, Y_test)):.3f}"
        )
        describe_norms(norms, args.clip)
    test_acc = float(accuracy(params, X_test, Y_test))
    print(f"final test accuracy: {test_acc:.4f}")
    return 0 if worst < 1e-10 else 1


if __name__ == "__main__":
    sys.exit(main())
