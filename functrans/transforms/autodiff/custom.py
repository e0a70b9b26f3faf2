"""User-defined derivative rules: ``custom_jvp`` and ``custom_vjp``, and
``stop_gradient``.

A call of a decorated function inside a transform binds one primitive holding the
function's jaxpr (so staging, batching and evaluation see an ordinary program) and
the user's rule (so differentiation uses it). Under ``vmap`` the primitive is bound
again with its jaxpr batched and the rule vmapped, so ``grad(vmap(f))`` still uses
the rule.

The rules the primitive holds are the user's, wrapped once per call: keyword
arguments are bound to positions, ``nondiff_argnums`` arguments reach the rules as
the Python values they are (never traced), and every value a rule returns is checked
against the function's own types, so that a gradient has the shape and dtype of its
primal input.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import (
    Tracer,
    Zero,
    call_with_trace,
    get_aval,
    instantiate,
    is_float,
)
from functrans.primitives import reduce_sum
from functrans.primitives import stop_gradient as _stop_gradient
from functrans.transforms.autodiff.custom_call import (
    Call,
    CustomFunction,
    as_received,
    bind_call,
    call_primitive,
    check_no_differentiated_closure,
    check_pair,
    conform,
    def_call_rules,
    jvp_inline,
    leaf_targets,
    plural,
    subtree_leaves,
)
from functrans.transforms.autodiff.reverse import run_on_tape
from functrans.transforms.batching import vmap
from functrans.transforms.staging import call_jaxpr
from functrans.tree_util import tree_flatten, tree_map, tree_unflatten

__all__ = ["custom_jvp", "custom_vjp", "stop_gradient"]


def stop_gradient(x: Any) -> Any:
    """The identity on a pytree, with a zero derivative.

    >>> import functrans as ft
    >>> float(ft.grad(lambda x: x * ft.stop_gradient(x))(3.0))
    3.0
    """
    return tree_map(lambda leaf: _stop_gradient(leaf) if isinstance(leaf, Tracer) else leaf, x)


# ---------------------------------------------------------------------------
# custom_vjp
# ---------------------------------------------------------------------------

custom_vjp_call_p = call_primitive("custom_vjp_call")


def _custom_vjp_jvp(primals, tangents, *, call_jaxpr, **_):
    # Forward mode differentiates the function itself, so jacfwd and hessian of a
    # custom_vjp function work (JAX raises here).
    return jvp_inline(call_jaxpr, primals, tangents)


def _custom_vjp_reverse(parent, primals, positions, params):
    num_consts, in_tree, out_tree = params["num_consts"], params["in_tree"], params["out_tree"]
    closed_over = any(i < num_consts for i in positions)
    check_no_differentiated_closure("custom_vjp", params["name"], closed_over)
    args = tree_unflatten(in_tree, as_received(primals[num_consts:], params))
    out_leaves, residuals = call_with_trace(parent, params["fwd"], *args)
    bwd = params["bwd"]

    def backward(g):
        g = [instantiate(c, get_aval(o)) for c, o in zip(g, out_leaves, strict=True)]
        cts = [None] * num_consts + list(bwd(residuals, tree_unflatten(out_tree, g)))
        return [cts[i] for i in positions]

    return out_leaves, backward


def _checked_fwd(fwd: Callable, call: Call, name: str) -> Callable:
    """``fwd`` over the differentiable arguments, returning ``(output leaves,
    residuals)`` with each output of the function's type."""
    out_avals = call.call_jaxpr.out_avals
    what = f"custom_vjp: fwd of {name} returned a primal output"

    @functools.wraps(fwd)
    def checked_fwd(*args: Any) -> tuple[list, Any]:
        out, residuals = check_pair(
            fwd(*call.full_args(args)),
            f"custom_vjp: fwd of {name} must return a pair (out, residuals)",
        )
        out_leaves, out_tree = tree_flatten(out)
        if out_tree != call.out_tree:
            raise TypeError(
                f"custom_vjp: fwd of {name} returned an output of structure {out_tree}, "
                f"but the function returns {call.out_tree}"
            )
        pairs = enumerate(zip(out_leaves, out_avals, strict=True))
        return [conform(o, a, what, f"for output {k}", False) for k, (o, a) in pairs], residuals

    return checked_fwd


def _checked_bwd(bwd: Callable, call: Call, name: str) -> Callable:
    """``bwd`` returning one cotangent leaf per differentiable argument leaf: ``None``
    (zero), or a value of the argument's shape and dtype."""
    arg_trees = call.in_tree.children
    what = f"custom_vjp: bwd of {name} returned"
    excluded = " (nondiff_argnums excluded)" if call.nondiff else ""
    targets = leaf_targets(call.in_tree, call.positions)

    @functools.wraps(bwd)
    def checked_bwd(residuals: Any, g: Any) -> list:
        cts = bwd(*call.nondiff, residuals, g)
        if not isinstance(cts, (tuple, list)):
            raise TypeError(
                f"{what} a value of type {type(cts).__name__}; it must return a tuple with "
                f"one cotangent per argument{excluded}"
            )
        if len(cts) != len(arg_trees):
            raise TypeError(
                f"{what} {plural(len(cts), 'cotangent')} for "
                f"{plural(len(arg_trees), 'argument')}{excluded}"
            )
        leaves = []
        for ct, arg_tree, pos in zip(cts, arg_trees, call.positions, strict=True):
            leaves += subtree_leaves(ct, arg_tree, f"{what} a cotangent", f"for argument {pos}")
        checked = []
        for ct, aval, target in zip(leaves, call.in_avals, targets, strict=True):
            if ct is not None:
                ct = conform(ct, aval, f"{what} a cotangent", target, True)
            # The derivative with respect to an integer or bool is zero.
            checked.append(ct if is_float(aval) else None)
        return checked

    return checked_bwd


def _is_array(x: Any) -> bool:
    return isinstance(x, (Tracer, np.ndarray, np.generic))


def _custom_vjp_batch_rules(params: dict, arg_axes: tuple) -> dict:
    fwd, bwd = params["fwd"], params["bwd"]
    unbatched = [a is None for a in tree_flatten(arg_axes, is_leaf=lambda x: x is None)[0]]

    # Residuals that are not arrays (Python numbers, strings...) hold for the whole
    # batch: they bypass vmap, so a Python number stays weakly typed for bwd.
    def batched_fwd(*args):
        layout = []

        def array_fwd(*args):
            out, residuals = fwd(*args)
            leaves, tree = tree_flatten(residuals)
            layout.append((tree, {i: x for i, x in enumerate(leaves) if not _is_array(x)}))
            return out, [x for x in leaves if _is_array(x)]

        out, arrays = vmap(array_fwd, in_axes=arg_axes)(*args)
        tree, others = layout[-1]
        arrays = iter(arrays)
        leaves = [others[i] if i in others else next(arrays) for i in range(tree.num_leaves)]
        return out, tree_unflatten(tree, leaves)

    def batched_bwd(residuals, g):
        leaves, tree = tree_flatten(residuals)

        def example_bwd(arrays, g):
            arrays = iter(arrays)
            example = [next(arrays) if _is_array(x) else x for x in leaves]
            # bwd checks the example's cotangents against the example's argument types.
            return bwd(tree_unflatten(tree, example), g)

        cts = vmap(example_bwd)([x for x in leaves if _is_array(x)], g)
        # An argument shared by the whole batch gets the sum of its cotangents.
        return [
            reduce_sum(c, (0,)) if c is not None and shared else c
            for c, shared in zip(cts, unbatched, strict=True)
        ]

    return {"fwd": batched_fwd, "bwd": batched_bwd}


def_call_rules(custom_vjp_call_p, _custom_vjp_jvp, _custom_vjp_reverse, _custom_vjp_batch_rules)


class custom_vjp(CustomFunction):
    """A function with a user-defined reverse-mode rule, as in JAX.

    ``f.defvjp(fwd, bwd)``: ``fwd(*args) -> (out, residuals)`` and ``bwd(residuals, g)
    -> tuple of cotangents``, one per argument, each of its argument's shape and dtype
    (``None`` for zero). Forward mode (``jvp``, ``jacfwd``, ``hessian``) differentiates
    the function itself.

    >>> import functrans as ft, functrans.numpy as fnp
    >>> @custom_vjp
    ... def clipped_identity(x):
    ...     return x
    >>> clipped_identity.defvjp(lambda x: (x, None), lambda res, g: (fnp.clip(g, -1, 1),))
    >>> float(ft.grad(lambda x: 5.0 * clipped_identity(x))(2.0))
    1.0

    Keyword arguments are bound to positions (defaults applied), so the rules always
    receive all arguments positionally. Arguments listed in ``nondiff_argnums``
    (negative indices count from the end) are Python values the function is not
    differentiated by (functions, ints, strings, configuration): they are never
    traced, ``fwd`` receives them in place like the function does, and ``bwd`` receives
    them first, ``bwd(*nondiff_args, residuals, g)``, and returns cotangents for the
    other arguments only:

    >>> from functools import partial
    >>> @partial(custom_vjp, nondiff_argnums=(0,))
    ... def clip_gradient(bound, x):
    ...     return x
    >>> clip_gradient.defvjp(
    ...     lambda bound, x: (x, None), lambda bound, res, g: (fnp.clip(g, -bound, bound),)
    ... )
    >>> float(ft.grad(lambda x: 5.0 * clip_gradient(2.0, x))(1.0))
    2.0

    A cotangent of the wrong shape or dtype is a ``TypeError`` naming the function and
    the argument. A Python scalar (and any cotangent for an argument given as a Python
    scalar) is cast to the argument's dtype; other dtypes must match exactly (a float64
    cotangent for a float32 argument is an error: a gradient has its input's dtype).
    The derivative with respect to an integer or bool argument is zero: its cotangent
    may be ``None`` or any value of the argument's shape, and is ignored.
    """

    kind = "custom_vjp"

    def __init__(self, fun: Callable, nondiff_argnums: int | Sequence[int] = ()):
        super().__init__(fun, nondiff_argnums)
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        """``fwd(*args) -> (out, residuals)``; ``bwd(*nondiff_args, residuals, g) ->
        tuple of cotangents``, one per differentiable argument (``None`` for zero)."""
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fwd is None or self.bwd is None:
            raise TypeError(f"custom_vjp: call defvjp on {self.__name__} before using it")
        args, call = self._prepare(args, kwargs)
        if call is None:
            return self.fun(*args)
        name = self.__name__
        rules = dict(fwd=_checked_fwd(self.fwd, call, name), bwd=_checked_bwd(self.bwd, call, name))
        return bind_call(custom_vjp_call_p, call, name, rules)


# ---------------------------------------------------------------------------
# custom_jvp
# ---------------------------------------------------------------------------

custom_jvp_call_p = call_primitive("custom_jvp_call")


def _custom_jvp_jvp(primals, tangents, **params):
    num_consts, in_tree = params["num_consts"], params["in_tree"]
    diff_primals = primals[num_consts:]
    args = tree_unflatten(in_tree, as_received(diff_primals, params))
    tangents = [
        instantiate(t, get_aval(p).strip_weak_type())
        for t, p in zip(tangents[num_consts:], diff_primals, strict=True)
    ]
    tans = tree_unflatten(in_tree, as_received(tangents, params))
    outs, t_outs = params["jvp"](args, tans)
    # An integer or bool output has no derivative (the rule's tangent only had its shape).
    t_outs = [
        t if is_float(get_aval(o)) else Zero(get_aval(o).strip_weak_type())
        for o, t in zip(outs, t_outs, strict=True)
    ]
    return outs, t_outs


def _checked_jvp(rule: Callable, call: Call, name: str) -> Callable:
    """``rule`` over the differentiable arguments, returning ``(output leaves, tangent
    leaves)`` with each output and tangent of the function's output type."""
    out_avals = call.call_jaxpr.out_avals
    what = f"custom_jvp: the rule of {name} returned"
    # The tangent of an argument given as a Python number may be a float64 array (a
    # tangent cannot be weakly typed); the function itself casts it to the dtype it
    # computes in, and so do tangents the rule computes from it.
    weak = any(a.weak_type for a in call.in_avals)

    @functools.wraps(rule)
    def checked_jvp(primals: tuple, tangents: tuple) -> tuple[list, list]:
        out, t_out = check_pair(
            rule(*call.nondiff, primals, tangents),
            f"custom_jvp: the rule of {name} must return (out, tangent_out)",
        )
        out_leaves, tree = tree_flatten(out)
        t_leaves, t_tree = tree_flatten(t_out)
        if tree != call.out_tree or t_tree != call.out_tree:
            raise TypeError(
                f"{what} structures {tree} and {t_tree}; the function returns {call.out_tree}"
            )
        outs, tans = [], []
        for k, (o, t, aval) in enumerate(zip(out_leaves, t_leaves, out_avals, strict=True)):
            outs.append(conform(o, aval, f"{what} a primal output", f"for output {k}", False))
            t = conform(t, aval, f"{what} a tangent", f"for output {k}", True, weak)
            tans.append(t if is_float(aval) else np.zeros(aval.shape, aval.dtype))
        return outs, tans

    return checked_jvp


def _custom_jvp_reverse(parent, primals, positions, params):
    num_consts = params["num_consts"]
    closed_over = any(i < num_consts for i in positions)
    check_no_differentiated_closure("custom_jvp", params["name"], closed_over)
    outs = call_with_trace(parent, call_jaxpr, params["call_jaxpr"], *primals)
    args = primals[num_consts:]

    def backward(g):
        # The rule is linear in the tangents: its VJP at zero tangents is the transpose.
        def tangent_map(*tangents):
            zeros = [np.zeros(get_aval(x).shape, get_aval(x).dtype) for x in primals[:num_consts]]
            return _custom_jvp_jvp(primals, zeros + list(tangents), **params)[1]

        zeros = [np.zeros(get_aval(x).shape, get_aval(x).dtype) for x in args]
        weak = [a.weak_type for a in params["call_jaxpr"].in_avals[num_consts:]]
        t_outs, trace, slots = run_on_tape(tangent_map, zeros, "custom_jvp", weak=weak)
        full = [None] * num_consts + trace.pull(t_outs, g, slots)
        return [full[i] for i in positions]

    return outs, backward


def _custom_jvp_rule(primals, tangents, **params):
    closed_over = any(type(t) is not Zero for t in tangents[: params["num_consts"]])
    check_no_differentiated_closure("custom_jvp", params["name"], closed_over)
    return _custom_jvp_jvp(primals, tangents, **params)


def _custom_jvp_batch_rules(params: dict, arg_axes: tuple) -> dict:
    # A tangent is batched exactly where its primal is (the rule receives both); the
    # rule checks each example's outputs against the example's output types.
    return {"jvp": vmap(params["jvp"], in_axes=(arg_axes, arg_axes))}


def_call_rules(custom_jvp_call_p, _custom_jvp_rule, _custom_jvp_reverse, _custom_jvp_batch_rules)


class custom_jvp(CustomFunction):
    """A function with a user-defined forward-mode rule (reverse mode transposes it),
    as in JAX.

    ``f.defjvp(rule)``: ``rule(primals, tangents) -> (out, tangent_out)``, where
    ``tangent_out`` has the structure, shapes and dtypes of the function's output.

    >>> import functrans as ft, functrans.numpy as fnp
    >>> @custom_jvp
    ... def f(x):
    ...     return fnp.sin(x)
    >>> @f.defjvp
    ... def f_jvp(primals, tangents):
    ...     return f(primals[0]), 2.0 * tangents[0]
    >>> float(ft.grad(f)(0.3))
    2.0

    Keyword arguments are bound to positions (defaults applied), so the rule always
    receives all arguments positionally. Arguments listed in ``nondiff_argnums``
    (negative indices count from the end) are Python values the function is not
    differentiated by (functions, ints, strings, configuration): they are never traced,
    and the rule receives them first, ``rule(*nondiff_args, primals, tangents)``, with
    ``primals`` and ``tangents`` holding only the other arguments:

    >>> from functools import partial
    >>> @partial(custom_jvp, nondiff_argnums=(0,))
    ... def power(n, x):
    ...     return x**n
    >>> @power.defjvp
    ... def power_jvp(n, primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return power(n, x), n * x ** (n - 1) * t
    >>> float(ft.grad(lambda x: power(3, x))(2.0))
    12.0

    A tangent of the wrong shape or dtype is a ``TypeError`` naming the function and
    the output. A Python scalar is cast to the output's dtype; other dtypes must match
    exactly. The tangent of an integer or bool output is zero, whatever the rule gives
    for it (of the output's shape).
    """

    kind = "custom_jvp"

    def __init__(self, fun: Callable, nondiff_argnums: int | Sequence[int] = ()):
        super().__init__(fun, nondiff_argnums)
        self.jvp: Callable | None = None

    def defjvp(self, jvp: Callable) -> Callable:
        """``jvp(*nondiff_args, primals, tangents) -> (out, tangent_out)``; usable as a
        decorator."""
        self.jvp = jvp
        return jvp

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.jvp is None:
            raise TypeError(f"custom_jvp: call defjvp on {self.__name__} before using it")
        args, call = self._prepare(args, kwargs)
        if call is None:
            return self.fun(*args)
        return bind_call(
            custom_jvp_call_p,
            call,
            self.__name__,
            {"jvp": _checked_jvp(self.jvp, call, self.__name__)},
        )
