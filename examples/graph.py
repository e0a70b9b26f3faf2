"""Pictures of the computational graph of a two-layer network and of its gradient.

The network is the one of ``backprop_by_hand.py``:

    h = σ(W₁ x + b₁),   z = W₂ h + b₂,   L = ½‖z − y‖²

``ft.make_jaxpr`` traces the loss, and ``ft.make_jaxpr(ft.grad(loss, ...))`` the
program that computes its gradient: the forward pass followed by the backward pass,
where the hand formulas (δ₂ hᵀ, W₂ᵀ δ₂, δ₁ xᵀ, ...) appear as equations.
``ft.viz`` draws both: one box per equation (output name, primitive, parameters,
output type), inputs in blue, outputs in green, constants in grey.

Writes ``forward.dot`` and ``gradient.dot`` into ``--out``, and PNG / SVG images when
Graphviz (``dot``) is installed: ``apt-get install graphviz``.

    python examples/graph.py
    python examples/graph.py --format svg --rankdir LR --out runs/graphs
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import numpy as np

import functrans as ft
import functrans.numpy as fnp
from functrans import nn, viz

INPUTS = ["W1", "b1", "W2", "b2", "input x", "target y"]
GRADIENTS = ["∂L/∂W1", "∂L/∂b1", "∂L/∂W2", "∂L/∂b2"]


def loss(W1, b1, W2, b2, x, y):
    h = nn.sigmoid(W1 @ x + b1)
    z = W2 @ h + b2
    return 0.5 * fnp.sum((z - y) ** 2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Draw the forward and gradient graphs of a two-layer sigmoid network "
        "(DOT always; PNG/SVG with Graphviz).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default="runs/graphs", help="output folder")
    parser.add_argument(
        "--format",
        choices=["png", "svg", "both", "dot"],
        default="both",
        help="images to render besides the .dot files",
    )
    parser.add_argument(
        "--rankdir",
        choices=["TB", "LR"],
        default="TB",
        help="layout: top to bottom or left to right",
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs=3,
        default=[4, 3, 2],
        metavar=("IN", "HIDDEN", "OUT"),
        help="layer sizes",
    )
    parser.add_argument("--dpi", type=int, default=110, help="resolution of the PNGs")
    args = parser.parse_args(argv)
    if min(args.sizes) < 1:
        parser.error("--sizes must be positive")

    n_in, n_hidden, n_out = args.sizes
    rng = np.random.default_rng(0)
    example = [
        rng.normal(size=(n_hidden, n_in)),
        np.zeros(n_hidden),
        rng.normal(size=(n_out, n_hidden)),
        np.zeros(n_out),
        rng.normal(size=n_in),
        rng.normal(size=n_out),
    ]
    graphs = {
        "forward": (ft.make_jaxpr(loss)(*example), ["L"]),
        "gradient": (ft.make_jaxpr(ft.grad(loss, argnums=(0, 1, 2, 3)))(*example), GRADIENTS),
    }

    os.makedirs(args.out, exist_ok=True)
    formats = {"both": ["png", "svg"], "dot": []}.get(args.format, [args.format])
    have_dot = shutil.which("dot") is not None
    for name, (closed, out_names) in graphs.items():
        print(f"{name}: {len(closed.jaxpr.eqns)} equations\n{closed}\n")
        options = dict(rankdir=args.rankdir, in_names=INPUTS, out_names=out_names)
        written = [viz.render(closed, os.path.join(args.out, f"{name}.dot"), **options)]
        if have_dot:
            for fmt in formats:
                path = os.path.join(args.out, f"{name}.{fmt}")
                dpi = args.dpi if fmt == "png" else None
                written.append(viz.render(closed, path, dpi=dpi, **options))
        print("wrote " + ", ".join(written) + "\n")
    if formats and not have_dot:
        print(
            "Graphviz is not installed, so only the .dot files were written; install it "
            "(apt-get install graphviz, brew install graphviz or conda install graphviz) "
            "to render PNG/SVG, or paste the .dot text into any Graphviz viewer."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
