"""Testing helpers: ``check_grads`` compares a function's derivatives with central
finite differences.

>>> import numpy as np, functrans.numpy as fnp
>>> check_grads(fnp.tanh, (np.array([0.3, -1.2]),), order=2)  # passes silently
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import Tracer, get_aval, is_float
from functrans.transforms.autodiff.forward import jvp
from functrans.transforms.autodiff.reverse import vjp
from functrans.tree_util import tree_flatten, tree_leaves, tree_unflatten

__all__ = ["check_grads", "check_jvp", "check_vjp"]

# Step sizes for central differences, near the optimum eps ~ (machine epsilon)^(1/3):
# truncation error shrinks as eps^2 while rounding error grows as 1/eps.
_DEFAULT_EPS = {
    np.dtype(np.float16): 3e-2,
    np.dtype(np.float32): 1e-3,
    np.dtype(np.float64): 1e-5,
}
# Tolerances of a comparison against finite differences (atol and rtol alike).
_DEFAULT_TOL = {
    np.dtype(np.float16): 1e-1,
    np.dtype(np.float32): 1e-2,
    np.dtype(np.float64): 1e-5,
}


def check_grads(
    f: Callable[..., Any],
    args: Sequence[Any],
    order: int = 1,
    modes: Sequence[str] = ("fwd", "rev"),
    atol: float | None = None,
    rtol: float | None = None,
    eps: float | None = None,
) -> None:
    """Check the derivatives of ``f`` at ``args`` against central finite differences.

    ``"fwd"`` compares ``jvp(f)`` along a random direction with the finite-difference
    directional derivative; ``"rev"`` checks ``vjp(f)`` through the inner-product
    identity ``<vjp(u), v> == <u, jvp(v)>`` with random ``u`` and ``v`` and the
    finite-difference ``jvp``. With ``order=2`` (or more) the same checks are applied
    to the derivative functions themselves, as JAX's ``check_grads`` does:
    ``(x, v) -> jvp(f, x, v)`` at a random ``v`` and ``x -> vjp(f, x)(u)`` for a fixed
    random ``u`` (JAX uses ``x`` and ``f(x)`` there, which hides second derivatives
    at exact zeros).

    ``args`` is a sequence of positional arguments, each an array or a pytree of
    arrays. Leaves that are not floating point (integer indices, booleans) are held
    fixed. Tolerances and step sizes default by dtype (float32 looser than float64).
    Also checked: tangents have the dtype of their outputs and cotangents the dtype
    of their inputs. A mismatch raises ``AssertionError`` showing the largest error,
    the inputs' shapes and both results.

    >>> import numpy as np, functrans.numpy as fnp
    >>> check_grads(lambda x, y: fnp.sin(x) * y, (np.array([0.5, 1.0]), np.array(2.0)))
    >>> check_grads(lambda x: x * x, (np.float32(1.5),), order=2)
    """
    args = tuple(args)
    unknown = set(modes) - {"fwd", "rev"}
    if unknown:
        raise ValueError(f"check_grads: unknown modes {sorted(unknown)}; use 'fwd' and 'rev'")
    if order < 1:
        raise ValueError(f"check_grads: order must be at least 1, got {order}")
    leaves, tree = tree_flatten(args)
    leaves = [_as_array(x) for x in leaves]
    diff = [i for i, x in enumerate(leaves) if _is_float(x)]

    def flat_f(*diff_leaves: Any) -> Any:
        full = list(leaves)
        for i, x in zip(diff, diff_leaves, strict=True):
            full[i] = x
        return f(*tree_unflatten(tree, full))

    xs = [leaves[i] for i in diff]
    # Defaults come from the dtypes of f's inputs and outputs and hold for every order:
    # the derivative functions are exactly as precise as f itself.
    float_dtypes = _float_dtypes([*xs, *tree_leaves(flat_f(*xs))])
    if eps is None:
        eps = max((_DEFAULT_EPS.get(d, 1e-5) for d in float_dtypes), default=1e-5)
    atol, rtol = _tolerance(atol, rtol, float_dtypes)
    _check_grads(flat_f, xs, order, modes, atol, rtol, eps, "")


def _check_grads(f, xs, order, modes, atol, rtol, eps, what) -> None:
    if "fwd" in modes:
        fwd_what = f"JVP of {what}" if what else "JVP"
        check_jvp(f, xs, atol=atol, rtol=rtol, eps=eps, what=fwd_what)
        if order > 1:
            n = len(xs)

            def f_jvp(*primals_and_tangents: Any) -> Any:
                primals, tangents = primals_and_tangents[:n], primals_and_tangents[n:]
                return jvp(f, primals, tangents)

            # JAX's check_grads reuses the primals as tangents here; random tangents
            # also exercise second derivatives at inputs that are exactly zero.
            rng = np.random.default_rng(2)
            ts = [_random_like(rng, x) for x in xs]
            _check_grads(f_jvp, [*xs, *ts], order - 1, modes, atol, rtol, eps, fwd_what)
    if "rev" in modes:
        rev_what = f"VJP of {what}" if what else "VJP"
        check_vjp(f, xs, atol=atol, rtol=rtol, eps=eps, what=rev_what)
        if order > 1:
            # A fixed random cotangent (JAX uses the primal output, which hides second
            # derivatives wherever the output is zero).
            rng = np.random.default_rng(3)
            out_leaves, out_tree = tree_flatten(f(*xs))
            cts = [_random_like(rng, o) if _is_float(o) else np.zeros_like(o) for o in out_leaves]
            ct = tree_unflatten(out_tree, cts)

            def f_vjp(*primals: Any) -> Any:
                _, pullback = vjp(f, *primals)
                return pullback(ct)

            _check_grads(f_vjp, xs, order - 1, modes, atol, rtol, eps, rev_what)


def check_jvp(
    f: Callable[..., Any],
    xs: Sequence[np.ndarray],
    atol: float | None = None,
    rtol: float | None = None,
    eps: float | None = None,
    what: str = "JVP",
) -> None:
    """Compare ``jvp(f, xs, v)`` (``xs`` flat floating arrays) with central differences
    along a random direction ``v``; see ``check_grads``."""
    rng = np.random.default_rng(0)
    tangents = [_random_like(rng, x) for x in xs]
    out, t_out = jvp(f, tuple(xs), tuple(tangents))
    out_leaves, out_tree = tree_flatten(out)
    t_leaves, t_tree = tree_flatten(t_out)
    expected_leaves, expected_tree = tree_flatten(f(*xs))
    context = _Context(what, xs)
    if not out_tree == t_tree == expected_tree:
        context.fail(f"output structures differ: {out_tree}, {t_tree} and {expected_tree}")
    atol, rtol = _tolerance(atol, rtol, _float_dtypes([*xs, *out_leaves]))
    for k, (o, e) in enumerate(zip(out_leaves, expected_leaves, strict=True)):
        context.check_close(f"primal output {k}", o, e, atol, rtol)
    numeric = _numerical_jvp(f, xs, tangents, eps)
    for k, (o, t, n) in enumerate(zip(out_leaves, t_leaves, numeric, strict=True)):
        if not _is_float(o):
            continue
        if np.asarray(t).dtype != np.asarray(o).dtype:
            context.fail(
                f"tangent of output {k} has dtype {np.asarray(t).dtype.name}, but the output "
                f"has dtype {np.asarray(o).dtype.name}"
            )
        context.check_close(f"tangent of output {k}", t, n, atol, rtol)


def check_vjp(
    f: Callable[..., Any],
    xs: Sequence[np.ndarray],
    atol: float | None = None,
    rtol: float | None = None,
    eps: float | None = None,
    what: str = "VJP",
) -> None:
    """Check ``vjp(f, *xs)`` (``xs`` flat floating arrays) through the identity
    ``<vjp(u), v> == <u, jvp(v)>`` with the finite-difference ``jvp``; see
    ``check_grads``."""
    rng = np.random.default_rng(1)
    out, pullback = vjp(f, *xs)
    out_leaves, out_tree = tree_flatten(out)
    expected_leaves, _ = tree_flatten(f(*xs))
    context = _Context(what, xs)
    atol, rtol = _tolerance(atol, rtol, _float_dtypes([*xs, *out_leaves]))
    for k, (o, e) in enumerate(zip(out_leaves, expected_leaves, strict=True)):
        context.check_close(f"primal output {k}", o, e, atol, rtol)
    tangents = [_random_like(rng, x) for x in xs]
    cotangents = [
        _random_like(rng, o) if _is_float(o) else np.zeros_like(np.asarray(o)) for o in out_leaves
    ]
    ct_in = list(pullback(tree_unflatten(out_tree, cotangents)))
    for k, (c, x) in enumerate(zip(ct_in, xs, strict=True)):
        c = np.asarray(c)
        if c.shape != x.shape or c.dtype != x.dtype:
            context.fail(
                f"cotangent of input {k} is {c.dtype.name}{list(c.shape)}, but the input "
                f"is {x.dtype.name}{list(x.shape)}"
            )
    numeric = _numerical_jvp(f, xs, tangents, eps)
    float_outs = [k for k, o in enumerate(out_leaves) if _is_float(o)]
    ip = _inner(tangents, ct_in)
    ip_expected = _inner([numeric[k] for k in float_outs], [cotangents[k] for k in float_outs])
    context.check_close(
        "inner product <vjp(u), v> against <u, numerical jvp(v)>", ip, ip_expected, atol, rtol
    )


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _as_array(x: Any) -> Any:
    if isinstance(x, Tracer):
        return x
    return np.asarray(x)


def _is_float(x: Any) -> bool:
    return is_float(get_aval(_as_array(x)))


def _random_like(rng: np.random.Generator, x: Any) -> np.ndarray:
    x = np.asarray(x)
    return rng.standard_normal(x.shape).astype(x.dtype)


def _numerical_jvp(f, xs, tangents, eps) -> list[np.ndarray]:
    """Central differences ``(f(x + eps v) - f(x - eps v)) / (2 eps)`` per output leaf,
    each step computed in its input's dtype."""

    # One step for all inputs, so that the shifts form a single direction; the
    # narrowest input dtype decides its size.
    step = max((_eps_for(eps, x.dtype) for x in xs), default=1.0)

    def shifted(sign: float) -> list[np.ndarray]:
        moved = [x + x.dtype.type(sign * step) * t for x, t in zip(xs, tangents, strict=True)]
        leaves, _ = tree_flatten(f(*moved))
        return [np.asarray(y) for y in leaves]

    plus, minus = shifted(1.0), shifted(-1.0)
    return [
        ((p.astype(np.float64) - m.astype(np.float64)) / (2 * step)).astype(p.dtype)
        if _is_float(p)
        else np.zeros(p.shape)
        for p, m in zip(plus, minus, strict=True)
    ]


def _eps_for(eps: float | None, dtype: np.dtype) -> float:
    if eps is not None:
        return eps
    return _DEFAULT_EPS.get(np.dtype(dtype), 1e-5)


def _tolerance(atol, rtol, dtypes) -> tuple[float, float]:
    default = max((_DEFAULT_TOL.get(np.dtype(d), 1e-5) for d in dtypes), default=1e-5)
    return (default if atol is None else atol), (default if rtol is None else rtol)


def _float_dtypes(values: Sequence[Any]) -> list[np.dtype]:
    return [np.asarray(x).dtype for x in values if _is_float(x)]


def _inner(xs: Sequence[Any], ys: Sequence[Any]) -> float:
    return float(
        sum(
            np.vdot(np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel())
            for x, y in zip(xs, ys, strict=True)
        )
    )


class _Context:
    """What a failure message reports: the check and the inputs' shapes."""

    def __init__(self, what: str, xs: Sequence[Any]):
        self.what = what
        self.inputs = ", ".join(f"{np.asarray(x).dtype.name}{list(np.shape(x))}" for x in xs)

    def fail(self, message: str) -> None:
        raise AssertionError(f"check_grads ({self.what}): {message}\n  inputs: {self.inputs}")

    def check_close(self, label: str, got: Any, expected: Any, atol: float, rtol: float) -> None:
        got64 = np.asarray(got, dtype=np.float64) if _is_float(got) else np.asarray(got)
        exp64 = (
            np.asarray(expected, dtype=np.float64) if _is_float(expected) else np.asarray(expected)
        )
        if got64.shape != exp64.shape:
            self.fail(f"{label}: shape {got64.shape}, expected {exp64.shape}")
        if got64.size == 0:
            return
        if got64.dtype.kind not in "fc" or exp64.dtype.kind not in "fc":
            if not np.array_equal(got64, exp64):
                self.fail(
                    f"{label} differs:\n  got:      {_show(got64)}\n  expected: {_show(exp64)}"
                )
            return
        err = np.abs(got64 - exp64)
        bound = atol + rtol * np.abs(exp64)
        bad = ~(err <= bound)  # catches NaN as a mismatch too
        if bad.any():
            excess = np.where(np.isnan(err), np.inf, err - bound)
            worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), err.shape))
            where = f" at index {worst}" if worst else ""
            self.fail(
                f"{label} mismatch: largest error {err[worst]:.3g}{where} "
                f"(got {got64[worst]:.8g}, expected {exp64[worst]:.8g}; atol={atol:g}, "
                f"rtol={rtol:g}, {int(bad.sum())} of {bad.size} elements off)\n"
                f"  got:      {_show(got64)}\n  expected: {_show(exp64)}"
            )


def _show(x: np.ndarray) -> str:
    text = np.array2string(x, precision=6, threshold=40, separator=", ")
    return text.replace("\n", "\n" + " " * 12)
