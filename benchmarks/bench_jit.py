"""Benchmarks of ``functrans.jit`` against hand-written NumPy measured in the same run
(and against autograd, JAX and PyTorch when they are installed).

Run from the repository root::

    python benchmarks/bench_jit.py                  # the full table (a few minutes)
    python benchmarks/bench_jit.py --quick          # fewer repeats, no 1024-2048-1024 net
    python benchmarks/bench_jit.py --blas-threads 1

Every number is the median of 21 interleaved rounds (``_harness.compare``), each
timed with ``time.perf_counter`` around enough calls to last 10 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _harness import blas_info, compare
from mlp import LEARNING_RATE, autograd_step_factory, functrans_step, init, numpy_step
from mlp import loss as mlp_loss

import functrans as ft
import functrans.numpy as fnp
from functrans.transforms import staging
from functrans.transforms.jit import codegen
from functrans.transforms.jit import passes as optimize

try:
    import autograd
    import autograd.numpy as anp
except ImportError:  # pragma: no cover
    autograd = None
try:
    import jax
    import jax.numpy as jnp

    # Without x64, JAX silently computes the float64 rows in float32.
    jax.config.update("jax_enable_x64", True)
except ImportError:  # pragma: no cover
    jax = None
try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

# Many short interleaved rounds: on a shared machine, load that comes and goes hits
# the candidates alike.
REPEATS, MIN_TIME = 21, 0.01


def measure(candidates: dict[str, Callable[[], Any]]) -> dict[str, float]:
    return compare(candidates, repeats=REPEATS, min_time=MIN_TIME)


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


ROWS: list[tuple] = []


def report(name: str, times: dict, baseline: str, target: float | None, ours: str = "jit"):
    base = times[baseline]
    cells = [f"{fmt_time(times[baseline])}", f"{fmt_time(times[ours])}"]
    ratio = times[ours] / base
    verdict = "" if target is None else (" ✓" if ratio <= target else " ✗")
    others = {k: v for k, v in times.items() if k not in (baseline, ours)}
    extra = ", ".join(f"{k} {fmt_time(v)} ({v / base:.2f}×)" for k, v in others.items())
    ROWS.append((name, *cells, f"{ratio:.2f}×{verdict}", f"≤{target}×" if target else "", extra))
    print(
        f"  {name:<34} hand {cells[0]:>10}  jit {cells[1]:>10}  ratio {ratio:5.2f}{verdict}"
        f"   {extra}",
        flush=True,
    )


def check(got, want, what: str, rtol: float) -> None:
    got, want = ft.tree_util.tree_leaves(got), ft.tree_util.tree_leaves(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol, err_msg=what)


def as_numpy(tree):
    """A peer's result (JAX arrays, torch tensors) as NumPy arrays, for ``check``."""

    def leaf(v):
        if torch is not None and isinstance(v, torch.Tensor):
            return v.detach().numpy()
        return np.asarray(v)

    return ft.tree_util.tree_map(leaf, tree)


# Peers take NumPy inputs where they accept them (JAX does), like hand and jit; torch
# does not, so its tensors are made once outside the timing (torch.from_numpy shares
# the memory, no copy).


# ---------------------------------------------------------------------------
# MLP training step (benchmarks/mlp.py): 2-layer, sigmoid hidden, softmax
# cross-entropy, SGD; the whole step under one jit
# ---------------------------------------------------------------------------

jit_step = ft.jit(functrans_step)


def jax_mlp_loss(params, x, y):  # pragma: no cover - optional
    h = jax.nn.sigmoid(x @ params["W1"] + params["b1"])
    logits = h @ params["W2"] + params["b2"]
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * y, axis=1))


def jax_step_fn():  # pragma: no cover - optional
    @jax.jit
    def step(params, x, y):
        grads = jax.grad(jax_mlp_loss)(params, x, y)
        return {k: params[k] - LEARNING_RATE * grads[k] for k in params}

    return lambda *a: jax.block_until_ready(step(*a))


def torch_step_fn():  # pragma: no cover - optional
    def loss(params, x, y):
        h = torch.sigmoid(x @ params["W1"] + params["b1"])
        logits = h @ params["W2"] + params["b2"]
        return -torch.mean(torch.sum(torch.log_softmax(logits, dim=1) * y, dim=1))

    def step(params, x, y):
        # autograd.grad rather than backward(): nothing accumulates in .grad between calls
        grads = torch.autograd.grad(loss(params, x, y), list(params.values()))
        with torch.no_grad():
            return {
                k: p - LEARNING_RATE * g for (k, p), g in zip(params.items(), grads, strict=True)
            }

    return step


def bench_mlp(sizes, batch, dtype, target):
    params, x, y = init(sizes, batch, dtype)
    tol = 2e-4 if dtype == np.float32 else 1e-9
    check(jit_step(params, x, y), numpy_step(params, x, y), "mlp step", tol)
    candidates = {
        "hand": lambda: numpy_step(params, x, y),
        "jit": lambda: jit_step(params, x, y),
    }
    a_step = autograd_step_factory()
    if a_step is not None:
        check(a_step(params, x, y), numpy_step(params, x, y), "autograd step", tol)
        candidates["autograd"] = lambda: a_step(params, x, y)
    if jax is not None:  # pragma: no cover
        j_step = jax_step_fn()
        check(as_numpy(j_step(params, x, y)), numpy_step(params, x, y), "jax step", tol)
        candidates["jax.jit"] = lambda: j_step(params, x, y)
    if torch is not None:  # pragma: no cover
        t_step = torch_step_fn()
        # Leaves that require grad, so that autograd.grad can differentiate by them.
        t_params = {k: torch.from_numpy(v).requires_grad_() for k, v in params.items()}
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        check(as_numpy(t_step(t_params, tx, ty)), numpy_step(params, x, y), "torch step", tol)
        candidates["torch"] = lambda: t_step(t_params, tx, ty)
    name = f"MLP step {'-'.join(map(str, sizes))} b{batch} {np.dtype(dtype).name}"
    report(name, measure(candidates), "hand", target)


# ---------------------------------------------------------------------------
# A 100-operation elementwise chain and its gradient
# ---------------------------------------------------------------------------


def ft_chain(x):
    for _ in range(20):
        x = fnp.cos(fnp.tanh(fnp.sin(x) * 1.1) + 0.3)
    return x


def hand_chain(x):
    for _ in range(20):
        x = np.cos(np.tanh(np.sin(x) * 1.1) + 0.3)
    return x


def hand_chain_grad(x):
    """Gradient of sum(chain(x)), by hand: forward keeping what backward needs."""
    tape = []
    for _ in range(20):
        t = np.tanh(np.sin(x) * 1.1)
        u = t + 0.3
        tape.append((x, t, u))
        x = np.cos(u)
    g = np.ones_like(x)
    for x, t, u in reversed(tape):
        g = -g * np.sin(u)
        g = g * (1.0 - t * t) * 1.1
        g = g * np.cos(x)
    return g


def bench_chain():
    x = np.random.default_rng(1).normal(size=10)
    j_chain = ft.jit(ft_chain)
    j_grad = ft.jit(ft.grad(lambda x: fnp.sum(ft_chain(x))))
    check(j_chain(x), hand_chain(x), "chain", 1e-12)
    check(j_grad(x), hand_chain_grad(x), "chain grad", 1e-10)
    variants = {"hand": lambda: hand_chain(x), "jit": lambda: j_chain(x)}
    grad_variants = {"hand": lambda: hand_chain_grad(x), "jit": lambda: j_grad(x)}
    if autograd is not None:
        a_chain = chain_with(anp)
        variants["autograd"] = lambda: a_chain(x)
        a_grad = autograd.grad(lambda x: anp.sum(a_chain(x)))
        check(a_grad(x), hand_chain_grad(x), "autograd chain grad", 1e-10)
        grad_variants["autograd"] = lambda: a_grad(x)
    if jax is not None:  # pragma: no cover
        jj_chain = jax.jit(chain_with(jnp))
        jj_grad = jax.jit(jax.grad(lambda x: jnp.sum(chain_with(jnp)(x))))
        check(as_numpy(jj_chain(x)), hand_chain(x), "jax chain", 1e-12)
        check(as_numpy(jj_grad(x)), hand_chain_grad(x), "jax chain grad", 1e-10)
        variants["jax.jit"] = lambda: jj_chain(x).block_until_ready()
        grad_variants["jax.jit"] = lambda: jj_grad(x).block_until_ready()
    if torch is not None:  # pragma: no cover
        t_chain = chain_with(torch)
        tx = torch.from_numpy(x)
        tx_req = tx.clone().requires_grad_()  # kept apart: the forward row builds no graph

        def t_grad():
            return torch.autograd.grad(t_chain(tx_req).sum(), tx_req)[0]

        check(as_numpy(t_chain(tx)), hand_chain(x), "torch chain", 1e-12)
        check(as_numpy(t_grad()), hand_chain_grad(x), "torch chain grad", 1e-10)
        variants["torch"] = lambda: t_chain(tx)
        grad_variants["torch"] = t_grad
    report("100-op chain, 10-vector", measure(variants), "hand", 1.2)
    report("gradient of the chain", measure(grad_variants), "hand", 1.2)


def chain_with(lib):
    """The chain on a peer's arrays: ``lib`` is autograd.numpy, jax.numpy or torch."""

    def chain(x):
        for _ in range(20):
            x = lib.cos(lib.tanh(lib.sin(x) * 1.1) + 0.3)
        return x

    return chain


# ---------------------------------------------------------------------------
# Hessian of sum(tanh(A @ x))
# ---------------------------------------------------------------------------


def bench_hessian():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(50, 50)) / 7
    x = rng.normal(size=50)

    def f(x):
        return fnp.sum(fnp.tanh(a @ x))

    def hand_hessian(x):
        t = np.tanh(a @ x)
        return (a.T * (-2.0 * t * (1.0 - t * t))) @ a

    j_hess = ft.jit(ft.hessian(f))
    check(j_hess(x), hand_hessian(x), "hessian", 1e-10)
    variants = {"hand": lambda: hand_hessian(x), "jit": lambda: j_hess(x)}
    if autograd is not None:
        a_hess = autograd.hessian(lambda x: anp.sum(anp.tanh(anp.dot(a, x))))
        variants["autograd"] = lambda: a_hess(x)
    if jax is not None:  # pragma: no cover
        jj_hess = jax.jit(jax.hessian(lambda x: jnp.sum(jnp.tanh(a @ x))))
        check(as_numpy(jj_hess(x)), hand_hessian(x), "jax hessian", 1e-10)
        variants["jax.jit"] = lambda: jj_hess(x).block_until_ready()
    if torch is not None:  # pragma: no cover
        ta, tx = torch.from_numpy(a), torch.from_numpy(x)
        t_hess = torch.func.hessian(lambda x: torch.sum(torch.tanh(ta @ x)))
        check(as_numpy(t_hess(tx)), hand_hessian(x), "torch hessian", 1e-10)
        variants["torch"] = lambda: t_hess(tx)
    report("Hessian of sum(tanh(A@x)), n=50", measure(variants), "hand", 5.0)


# ---------------------------------------------------------------------------
# First-call cost and the cache-hit call path
# ---------------------------------------------------------------------------


def bench_first_call(repeats: int = 7):
    """A fresh jit(grad(loss)) called once: its compile phases, timed one by one, and
    the whole first call next to a cached call."""
    params, x, y = init((784, 512, 10), 256, np.float64)
    loss_grad = ft.grad(mlp_loss)
    leaves, tree = ft.tree_util.tree_flatten((params, x, y))
    avals = [ft.core.get_aval(leaf) for leaf in leaves]

    def flat(*xs):
        return ft.tree_util.tree_leaves(loss_grad(*ft.tree_util.tree_unflatten(tree, xs)))

    phases: dict[str, list[float]] = {"trace": [], "optimize": [], "codegen": [], "first": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        jaxpr, consts = staging.trace_to_jaxpr(flat, avals, "grad(loss)")
        t1 = time.perf_counter()
        closed = optimize.optimize(ft.ClosedJaxpr(jaxpr, consts))
        t2 = time.perf_counter()
        codegen.compile_jaxpr(closed)
        t3 = time.perf_counter()
        jg = ft.jit(loss_grad)
        jg(params, x, y)
        t4 = time.perf_counter()
        for name, t in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            phases[name].append(t)
    steady = measure({"call": lambda: jg(params, x, y)})["call"]
    med = {name: statistics.median(t) for name, t in phases.items()}
    compile_cost = med["trace"] + med["optimize"] + med["codegen"]
    detail = (
        f"trace {fmt_time(med['trace'])} + optimize {fmt_time(med['optimize'])} + "
        f"codegen/compile {fmt_time(med['codegen'])}; whole first call "
        f"{fmt_time(med['first'])}, a cached call {fmt_time(steady)}"
    )
    if jax is not None:  # pragma: no cover
        jax_first = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            # A fresh grad function each time, so jax.jit's caches all miss.
            jax.block_until_ready(jax.jit(jax.grad(jax_mlp_loss))(params, x, y))
            jax_first.append(time.perf_counter() - t0)
        detail += f"; jax.jit first call {fmt_time(statistics.median(jax_first))}"
    ROWS.append(
        (
            "first call of jit(grad(loss)) 784-512-10: compile cost",
            "",
            fmt_time(compile_cost),
            "",
            "≤20 ms",
            detail,
        )
    )
    print(f"  compile cost {fmt_time(compile_cost)}: {detail}", flush=True)


def bench_call_overhead():
    args = [np.ones(3) for _ in range(6)]

    def six(a, b, c, d, e, f):
        return a

    jitted = ft.jit(six)
    jitted(*args)
    raw = codegen.compile_jaxpr(ft.make_jaxpr(six)(*args)).fn
    times = measure({"jit": lambda: jitted(*args), "raw": lambda: raw(*args)})
    overhead = times["jit"] - times["raw"]
    ROWS.append(
        (
            "cache-hit call path, six array args",
            "",
            fmt_time(overhead),
            "",
            "≤10 µs",
            f"jitted call {fmt_time(times['jit'])}, compiled body {fmt_time(times['raw'])}",
        )
    )
    print(
        f"  call-path overhead {fmt_time(overhead)} (jitted {fmt_time(times['jit'])}, "
        f"compiled body {fmt_time(times['raw'])})",
        flush=True,
    )


def bench_compile_scaling(repeats: int = 3):
    """Trace, optimize and compile time per equation for long programs (the median of
    ``repeats`` compilations of each: a single one may meet a garbage collection)."""
    x = np.ones(5)
    lines = []
    for n in (1000, 2000, 5000, 10000):

        def chain(x, n=n):
            for i in range(n):
                x = fnp.sin(x) if i % 2 else x * 1.0001
            return x

        phases: list[tuple[float, float, float]] = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jaxpr, consts = staging.trace_to_jaxpr(lambda x: [chain(x)], [ft.core.get_aval(x)])
            t1 = time.perf_counter()
            closed = optimize.optimize(ft.ClosedJaxpr(jaxpr, consts))
            t2 = time.perf_counter()
            codegen.compile_jaxpr(closed)
            t3 = time.perf_counter()
            phases.append((t1 - t0, t2 - t1, t3 - t2))
        trace, opt, gen = (statistics.median(p) for p in zip(*phases, strict=True))
        total = trace + opt + gen
        lines.append(
            f"{n} equations: trace {fmt_time(trace)}, optimize {fmt_time(opt)}, "
            f"codegen+compile {fmt_time(gen)}; {total / n * 1e6:.1f} µs/equation"
        )
        print("  " + lines[-1], flush=True)
    return lines


# ---------------------------------------------------------------------------


def machine() -> list[str]:
    others = [
        "autograd" if autograd else "autograd: not installed",
        f"jax {jax.__version__} ({jax.default_backend()}, x64)" if jax else "jax: not installed",
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
        if torch
        else "torch: not installed",
    ]
    info = [
        f"Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        f"BLAS: {blas_info()}",
        ", ".join(others),
    ]
    if hasattr(os, "getloadavg"):
        info.append("load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    return info


def main() -> None:
    global REPEATS, MIN_TIME
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller nets")
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="limit BLAS threads for every candidate (default: as installed)",
    )
    parser.add_argument(
        "--only",
        choices=["mlp", "tiny", "chain", "hessian", "compile"],
        default=None,
        help="run one section (tiny: the 2-8-2 MLP step alone)",
    )
    args = parser.parse_args()
    if args.quick:
        REPEATS = 5
    limit = contextlib.nullcontext()
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=args.blas_threads, user_api="blas")
        if torch is not None:  # its OpenMP pool is no BLAS pool: threadpool_limits skips it
            torch.set_num_threads(args.blas_threads)
    with limit:
        run(args.quick, args.only)


def run(quick: bool, only: str | None = None) -> None:
    for line in machine():
        print(line)
    if only in (None, "mlp", "tiny"):
        print("\nMLP training step (forward + backward + SGD update, one jit):")
        sizes = [((2, 8, 2), 4, 1.3), ((784, 128, 10), 32, 1.10), ((784, 512, 10), 256, 1.05)]
        if not quick:
            sizes.append(((1024, 2048, 1024), 512, 1.05))
        for dims, batch, target in sizes[:1] if only == "tiny" else sizes:
            for dtype in (np.float32, np.float64):
                bench_mlp(dims, batch, dtype, target)
    if only in (None, "chain"):
        print("\nElementwise chain:")
        bench_chain()
    if only in (None, "hessian"):
        print("\nHessian:")
        bench_hessian()
    scaling = []
    if only in (None, "compile"):
        print("\nCompilation:")
        bench_first_call()
        bench_call_overhead()
        scaling = bench_compile_scaling()

    print("\n| benchmark | hand NumPy | functrans jit | ratio | target | others (ratio to hand) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in ROWS:
        print("| " + " | ".join(row) + " |")
    if scaling:
        print("\nCompile time vs program size:")
    for line in scaling:
        print(f"- {line}")
    print(machine()[-1])


if __name__ == "__main__":
    main()
