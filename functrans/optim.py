"""``functrans.optim``: pure optimizers over pytrees, in the style of optax.

An optimizer is a pair of pure functions. ``init(params)`` makes the optimizer state,
a pytree of arrays (moment estimates, a step count); ``update(grads, state, params)``
turns gradients into *updates* and a new state, and ``apply_updates(params, updates)``
adds the updates to the parameters. Nothing is mutated, so a whole training step,
optimizer included, can be staged with ``jit`` and differentiated or vectorized like
any other function.

>>> import numpy as np, functrans as ft
>>> loss = lambda p: ft.numpy.sum((p["w"] - 3.0) ** 2)
>>> params = {"w": np.zeros(2)}
>>> opt = adam(0.1)
>>> state = opt.init(params)
>>> for _ in range(200):
...     updates, state = opt.update(ft.grad(loss)(params), state, params)
...     params = apply_updates(params, updates)
>>> np.round(params["w"], 3)
array([3., 3.])
>>> int(state.count)
200
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from functrans import numpy as fnp
from functrans import primitives as lax
from functrans.core import Tracer, get_aval
from functrans.tree_util import tree_flatten, tree_map, tree_structure

__all__ = [
    "AdamState",
    "GradientTransformation",
    "SgdState",
    "adam",
    "adamw",
    "apply_updates",
    "sgd",
]

Schedule = Callable[[Any], Any]
"""A learning-rate schedule: a function of the step count (an int array) to a scalar."""


class GradientTransformation(NamedTuple):
    """An optimizer: ``init(params) -> state`` and
    ``update(grads, state, params=None) -> (updates, state)``."""

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


class SgdState(NamedTuple):
    """State of ``sgd``: the step count and, with momentum, the velocity per leaf."""

    count: Any
    trace: Any


class AdamState(NamedTuple):
    """State of ``adam`` / ``adamw``: step count, first and second moment estimates."""

    count: Any
    mu: Any
    nu: Any


# ---------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------


def sgd(
    learning_rate: float | Schedule, momentum: float = 0.0, nesterov: bool = False
) -> GradientTransformation:
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    With ``momentum`` ``m`` the velocity is ``v <- g + m v`` and the update is
    ``-lr v`` (``-lr (g + m v)`` with ``nesterov=True``), as in optax and PyTorch.
    ``learning_rate`` is a number or a schedule ``count -> rate``.

    >>> opt = sgd(0.5)
    >>> updates, state = opt.update({"w": np.array([2.0])}, opt.init({"w": np.zeros(1)}))
    >>> updates
    {'w': array([-1.])}
    """
    learning_rate, momentum = _check_hyper("sgd", learning_rate=learning_rate, momentum=momentum)
    if nesterov and momentum == 0.0:
        raise ValueError("sgd: nesterov=True needs a nonzero momentum")

    def init(params: Any) -> SgdState:
        trace = tree_map(_zeros_like, params) if momentum else None
        return SgdState(count=_count0(), trace=trace)

    def update(grads: Any, state: SgdState, params: Any = None) -> tuple[Any, SgdState]:
        _check_grads("sgd", grads, state.trace if momentum else None)
        lr = _rate(learning_rate, state.count)
        if not momentum:
            return tree_map(lambda g: -_like(lr, g) * g, grads), SgdState(
                _increment(state.count), None
            )
        trace = tree_map(lambda g, v: g + momentum * v, grads, state.trace)
        step = tree_map(lambda g, v: g + momentum * v, grads, trace) if nesterov else trace
        updates = tree_map(lambda s: -_like(lr, s) * s, step)
        return updates, SgdState(_increment(state.count), trace)

    return GradientTransformation(init, update)


def adam(
    learning_rate: float | Schedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    """Adam (Kingma & Ba, 2015) with bias-corrected moment estimates.

    At step ``t`` (counting from 1): ``mu <- b1 mu + (1 - b1) g``,
    ``nu <- b2 nu + (1 - b2) g**2``, and the update is
    ``-lr (mu / (1 - b1**t)) / (sqrt(nu / (1 - b2**t)) + eps)``.

    >>> opt = adam(0.1)
    >>> updates, _ = opt.update(np.array([3.0, -0.5]), opt.init(np.zeros(2)))
    >>> np.round(updates, 6)  # the first Adam step has size lr in every coordinate
    array([-0.1,  0.1])
    """
    return _adam("adam", learning_rate, b1, b2, eps, weight_decay=0.0)


def adamw(
    learning_rate: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
) -> GradientTransformation:
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    The update is ``-lr (adam_direction + weight_decay * params)``, so ``update``
    needs ``params``.

    >>> opt = adamw(0.1, weight_decay=0.5)
    >>> params = np.array([2.0])
    >>> updates, _ = opt.update(np.array([0.0]), opt.init(params), params)
    >>> updates  # no gradient: only the decay, -0.1 * 0.5 * 2.0
    array([-0.1])
    """
    return _adam("adamw", learning_rate, b1, b2, eps, weight_decay=weight_decay)


def _adam(
    name: str,
    learning_rate: float | Schedule,
    b1: float,
    b2: float,
    eps: float,
    weight_decay: float,
) -> GradientTransformation:
    learning_rate, b1, b2, eps, weight_decay = _check_hyper(
        name, learning_rate=learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay
    )
    for label, beta in (("b1", b1), ("b2", b2)):
        if not beta < 1.0:
            raise ValueError(f"{name}: {label} must be in [0, 1), got {beta}")

    def init(params: Any) -> AdamState:
        return AdamState(
            count=_count0(), mu=tree_map(_zeros_like, params), nu=tree_map(_zeros_like, params)
        )

    def update(grads: Any, state: AdamState, params: Any = None) -> tuple[Any, AdamState]:
        _check_grads(name, grads, state.mu)
        if weight_decay and params is None:
            raise TypeError(
                f"{name}.update: weight decay needs the parameters; "
                "call update(grads, state, params)"
            )
        count = _increment(state.count)
        lr = _rate(learning_rate, state.count)
        mu = tree_map(lambda g, m: b1 * m + (1.0 - b1) * g, grads, state.mu)
        nu = tree_map(lambda g, v: b2 * v + (1.0 - b2) * (g * g), grads, state.nu)

        def direction(m: Any, v: Any) -> Any:
            t = _cast(count, get_aval(m).dtype)  # bias corrections in the leaf's dtype
            m_hat = m / (1.0 - fnp.power(b1, t))
            v_hat = v / (1.0 - fnp.power(b2, t))
            return m_hat / (fnp.sqrt(v_hat) + eps)

        step = tree_map(direction, mu, nu)
        if weight_decay:
            step = tree_map(lambda s, p: s + weight_decay * p, step, params)
        updates = tree_map(lambda s: -_like(lr, s) * s, step)
        return updates, AdamState(count, mu, nu)

    return GradientTransformation(init, update)


def apply_updates(params: Any, updates: Any) -> Any:
    """``params + updates`` leaf by leaf, each result in its parameter's dtype.

    >>> apply_updates({"w": np.ones(2, np.float32)}, {"w": np.array([0.5, -0.5])})
    {'w': array([1.5, 0.5], dtype=float32)}
    """
    p_def, u_def = tree_structure(params), tree_structure(updates)
    if p_def != u_def:
        raise ValueError(
            f"apply_updates: params have tree structure {p_def} but updates have {u_def}"
        )
    return tree_map(lambda p, u: _cast(p + u, get_aval(p).dtype), params, updates)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _count0() -> np.ndarray:
    return np.zeros((), np.int32)


def _increment(count: Any) -> Any:
    if isinstance(count, Tracer):
        return count + 1  # a Python int is weakly typed: the count stays int32
    return np.asarray(count + 1, dtype=np.int32)


def _zeros_like(x: Any) -> np.ndarray:
    aval = get_aval(x)
    return np.zeros(aval.shape, aval.dtype)


def _cast(x: Any, dtype: np.dtype) -> Any:
    if isinstance(x, Tracer):
        return x if x.aval.dtype == dtype else lax.convert_element_type(x, dtype)
    return np.asarray(x, dtype=dtype)


def _like(value: Any, leaf: Any) -> Any:
    """A scalar hyper-parameter in ``leaf``'s dtype: Python numbers stay weakly typed,
    arrays (e.g. from a schedule) are cast so float32 leaves stay float32."""
    if type(value) in (int, float):
        return value
    return _cast(value, get_aval(leaf).dtype)


def _rate(learning_rate: float | Schedule, count: Any) -> Any:
    return learning_rate(count) if callable(learning_rate) else learning_rate


def _check_hyper(name: str, **values: Any) -> list[Any]:
    """The hyper-parameters as Python floats (weakly typed: they keep float32 leaves
    float32), schedules as they are; negative or non-numeric values are errors."""
    out = []
    for key, value in values.items():
        if callable(value) and key == "learning_rate":
            out.append(value)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{name}: {key} must be a number, got {value!r}")
        if not value >= 0:
            raise ValueError(f"{name}: {key} must be non-negative, got {value!r}")
        out.append(float(value))
    return out


def _check_grads(name: str, grads: Any, like: Any) -> None:
    if like is None:
        return
    g_def, s_def = tree_structure(grads), tree_structure(like)
    if g_def != s_def:
        raise ValueError(
            f"{name}.update: grads have tree structure {g_def} but the state was made "
            f"by init for params of structure {s_def}"
        )
    for g, s in zip(tree_flatten(grads)[0], tree_flatten(like)[0], strict=True):
        g_shape, s_shape = get_aval(g).shape, get_aval(s).shape
        if g_shape != s_shape:
            raise ValueError(
                f"{name}.update: a gradient of shape {g_shape} for a parameter of shape {s_shape}"
            )
