"""Train a one-hidden-layer network on the handwritten digits shipped with functrans.

The model is the classic multilayer perceptron: 64 pixels -> sigmoid hidden layer ->
10 logits, trained with softmax cross-entropy and Adam over shuffled minibatches.
The whole training step (forward pass, ``value_and_grad``, Adam update) is one pure
function compiled with ``jit``.

    python examples/train_mlp.py                 # defaults: >= 95% test accuracy
    python examples/train_mlp.py --epochs 1      # a quick smoke run
    python examples/train_mlp.py --hidden 128 --lr 3e-3 --out runs/wide

Writes ``metrics.csv`` (one row per epoch), ``params.npz`` and, when matplotlib is
installed, ``training.png`` (loss and accuracy curves) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

import numpy as np

import functrans as ft
import functrans.numpy as fnp
from functrans import nn, optim
from functrans.datasets import load_digits

NUM_CLASSES = 10


# --- the model -----------------------------------------------------------------------


def init_params(rng: np.random.Generator, sizes: list[int], dtype) -> dict:
    """Glorot-uniform weights and zero biases for layers of the given sizes."""
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
        params[f"W{i}"] = nn.glorot_uniform(rng, (n_in, n_out), dtype)
        params[f"b{i}"] = np.zeros(n_out, dtype)
    return params


def predict(params: dict, X):
    """Logits for a batch of images ``X`` of shape (batch, 64)."""
    hidden = nn.sigmoid(X @ params["W1"] + params["b1"])
    return hidden @ params["W2"] + params["b2"]


def loss_fn(params: dict, X, y):
    return nn.softmax_cross_entropy(predict(params, X), y)


def make_train_step(optimizer: optim.GradientTransformation):
    @ft.jit
    def train_step(params, opt_state, X, y):
        loss, grads = ft.value_and_grad(loss_fn)(params, X, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optim.apply_updates(params, updates), opt_state, loss

    return train_step


@ft.jit
def evaluate(params, X, y):
    """(mean loss, accuracy) on a whole data set."""
    logits = predict(params, X)
    accuracy = fnp.mean(fnp.argmax(logits, axis=-1) == y)
    return nn.softmax_cross_entropy(logits, y), accuracy


# --- data ------------------------------------------------------------------------------


def split(X, y, test_fraction: float, rng: np.random.Generator):
    """A stratified train/test split: ``test_fraction`` of every class is held out."""
    test = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        test[members[: round(test_fraction * len(members))]] = True
    return X[~test], y[~test], X[test], y[test]


# --- the terminal progress bar ----------------------------------------------------------


class Progress:
    """One line per epoch; on a terminal it is redrawn in place as a progress bar."""

    def __init__(self, epochs: int, steps: int, stream=sys.stdout, width: int = 24):
        self.epochs, self.steps, self.stream, self.width = epochs, steps, stream, width
        self.live = stream.isatty()

    def update(self, epoch: int, step: int, loss: float, rate: float) -> None:
        if self.live:
            self.stream.write("\r" + self._line(epoch, step, loss, rate))
            self.stream.flush()

    def end_epoch(self, epoch: int, loss: float, rate: float, extra: str) -> None:
        line = self._line(epoch, self.steps, loss, rate) + f"  {extra}"
        self.stream.write(("\r" if self.live else "") + line + "\n")
        self.stream.flush()

    def _line(self, epoch: int, step: int, loss: float, rate: float) -> str:
        done = round(self.width * step / max(self.steps, 1))
        bar = "#" * done + "." * (self.width - done)
        digits = len(str(self.epochs))
        return (
            f"epoch {epoch:>{digits}}/{self.epochs} [{bar}] {step:>3}/{self.steps} "
            f"loss {loss:.4f}  {rate:>8,.0f} examples/s"
        )


# --- outputs -----------------------------------------------------------------------------


def write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(path: str, rows: list[dict]) -> bool:
    """Loss and accuracy curves; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], label="train (running mean)")
    ax_loss.plot(epochs, [r["test_loss"] for r in rows], label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="Loss")
    ax_acc.plot(epochs, [r["train_accuracy"] for r in rows], label="train")
    ax_acc.plot(epochs, [r["test_accuracy"] for r in rows], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# --- main --------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a sigmoid MLP on the UCI handwritten digits with functrans "
        "(jit + value_and_grad + Adam).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=40, help="passes over the training set")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    parser.add_argument("--batch-size", type=int, default=32, help="minibatch size")
    parser.add_argument("--seed", type=int, default=0, help="seed for split, init, shuffling")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="held-out share")
    parser.add_argument(
        "--dtype", choices=["float32", "float64"], default="float32", help="parameter dtype"
    )
    parser.add_argument("--out", default="runs/train_mlp", help="folder for metrics and plots")
    args = parser.parse_args(argv)
    for name in ("epochs", "hidden", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 < args.test_fraction < 1:
        parser.error("--test-fraction must be between 0 and 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(args.seed)
    X, y = load_digits(dtype=dtype)
    X_train, y_train, X_test, y_test = split(X, y, args.test_fraction, rng)
    batch = min(args.batch_size, len(y_train))
    steps = len(y_train) // batch  # drop the ragged last batch: one compiled shape
    print(
        f"digits: {len(y_train)} train / {len(y_test)} test images, 64 -> {args.hidden} "
        f"(sigmoid) -> 10, Adam lr={args.lr}, batch {batch}, {args.epochs} epochs, {dtype}"
    )

    params = init_params(rng, [X.shape[1], args.hidden, NUM_CLASSES], dtype)
    optimizer = optim.adam(args.lr)
    opt_state = optimizer.init(params)
    train_step = make_train_step(optimizer)
    progress = Progress(args.epochs, steps)

    os.makedirs(args.out, exist_ok=True)
    rows = []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(y_train))
        epoch_start, running = time.perf_counter(), 0.0
        for step in range(1, steps + 1):
            idx = order[(step - 1) * batch : step * batch]
            params, opt_state, loss = train_step(params, opt_state, X_train[idx], y_train[idx])
            running += (float(loss) - running) / step
            rate = step * batch / (time.perf_counter() - epoch_start)
            progress.update(epoch, step, running, rate)
        train_loss, train_acc = (float(v) for v in evaluate(params, X_train, y_train))
        test_loss, test_acc = (float(v) for v in evaluate(params, X_test, y_test))
        accuracies = f"train acc {train_acc:.3f}  test acc {test_acc:.3f}"
        progress.end_epoch(epoch, running, rate, accuracies)
        rows.append(
            dict(
                epoch=epoch,
                train_loss=round(running, 6),
                train_accuracy=round(train_acc, 6),
                test_loss=round(test_loss, 6),
                test_accuracy=round(test_acc, 6),
                examples_per_second=round(rate, 1),
                seconds=round(time.perf_counter() - start, 3),
            )
        )
    elapsed = time.perf_counter() - start

    metrics_path = os.path.join(args.out, "metrics.csv")
    write_csv(metrics_path, rows)
    np.savez(os.path.join(args.out, "params.npz"), **params)
    print(f"wrote {metrics_path} and {os.path.join(args.out, 'params.npz')}")
    plot_path = os.path.join(args.out, "training.png")
    if plot(plot_path, rows):
        print(f"wrote {plot_path}")
    else:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
    info = train_step.cache_info()
    print(f"jit: train_step traced {info.misses} time(s), then ran compiled {info.hits} times")
    print(f"training time: {elapsed:.2f} s")
    print(f"final train accuracy: {train_acc:.4f}")
    print(f"final test accuracy: {test_acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
