"""Eager and tracing overhead of functrans.numpy.

1. Eager cost per operation: a 100-op elementwise chain on a 10-vector through
   ``fnp`` outside any transform, against the same chain as plain NumPy calls
   (and autograd.numpy when installed).
2. Tracing cost: ``make_jaxpr`` of chains of 1,000 and 10,000 elementwise ops,
   microseconds per traced op (should be linear in length).

Run: python benchmarks/bench_eager.py
"""

from __future__ import annotations

import sys
import time

import numpy as np
from _harness import compare, header, print_table

import functrans as ft
import functrans.numpy as fnp

CHAIN = 100


def chain(mod, x):
    # 100 cheap elementwise ops, alternating so nothing cancels.
    for _i in range(CHAIN // 4):
        x = mod.sin(x)
        x = mod.multiply(x, 1.01)
        x = mod.add(x, 0.5)
        x = mod.tanh(x)
    return x


def main() -> None:
    header("eager and tracing overhead")
    x = np.linspace(-1.0, 1.0, 10)
    candidates = {
        "numpy": lambda: chain(np, x),
        "functrans.numpy": lambda: chain(fnp, x),
    }
    try:
        import autograd.numpy as anp

        candidates["autograd.numpy"] = lambda: chain(anp, x)
    except ImportError:
        pass
    times = {k: v / CHAIN for k, v in compare(candidates).items()}
    print_table("eager cost per op (100-op chain on a 10-vector)", times, "numpy")

    print("\n## tracing cost (make_jaxpr of an elementwise chain)")
    print("| ops | total (ms) | per op (us) |")
    print("| ---: | ---: | ---: |")
    sys.setrecursionlimit(1000)  # the default: tracing must not need more
    for length in (1_000, 10_000):

        def long_chain(x, n=length):
            for _i in range(n // 2):
                x = fnp.sin(x)
                x = x * 1.01
            return x

        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            closed = ft.make_jaxpr(long_chain)(x)
            best = min(best, time.perf_counter() - start)
        assert len(closed.jaxpr.eqns) == length
        print(f"| {length} | {best * 1e3:.1f} | {best / length * 1e6:.2f} |")


if __name__ == "__main__":
    main()
