"""A call of a ``custom_jvp`` / ``custom_vjp`` function: how it is prepared, how
what its rules return is checked, and the primitive it binds.

A call binds keyword arguments to positions, sets the ``nondiff_argnums`` arguments
aside as Python values, and traces the function's program (``CustomFunction``,
``Call``). Every value a rule returns is conformed to the function's own types
(``conform``), so that a gradient has the shape and dtype of its primal input. The
call primitive (``call_primitive``) holds the program, evaluates and stages it as an
ordinary program, and inlines it where no rule of the user's applies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from functrans.core import (
    PYTHON_SCALARS,
    Primitive,
    ShapedArray,
    Tracer,
    get_aval,
    is_float,
    new_trace,
)
from functrans.ir import ClosedJaxpr, Jaxpr
from functrans.primitives import convert_element_type
from functrans.primitives.structural import broadcast_batched
from functrans.transforms import staging
from functrans.transforms.api_util import (
    argnum_positions,
    argnums_tuple,
    flatten_fun,
    positional_params,
    signature_of,
    substitute,
)
from functrans.transforms.autodiff.forward import jvp_flat
from functrans.transforms.batching import BatchTrace, BatchTracer, batch_jaxpr
from functrans.tree_util import PyTreeDef, tree_flatten, tree_leaves, tree_unflatten


def trace_call(fun: Callable, leaves: Sequence[Any], in_tree, name: str):
    """Trace ``fun`` (over pytrees) at the avals of ``leaves``. Returns the closed jaxpr
    with its consts hoisted to leading arguments, the consts, and the output tree."""
    flat, out_tree_of = flatten_fun(fun, in_tree)
    jaxpr, consts = staging.trace_to_jaxpr(flat, [get_aval(x) for x in leaves], name)
    hoisted = Jaxpr([], jaxpr.constvars + jaxpr.invars, jaxpr.outvars, jaxpr.eqns)
    return ClosedJaxpr(hoisted, []), consts, out_tree_of()


def any_tracer(leaves: Sequence[Any]) -> bool:
    return any(isinstance(x, Tracer) for x in leaves)


# ---------------------------------------------------------------------------
# What the user's rules return, checked against the function's own types
# ---------------------------------------------------------------------------


def _cast(x: Any, dtype: np.dtype) -> Any:
    if type(x) in PYTHON_SCALARS:
        return dtype.type(x)
    return convert_element_type(x, dtype)


def conform(
    x: Any, aval: ShapedArray, what: str, target: str, derivative: bool, weak: bool = False
) -> Any:
    """``x`` as a value of ``aval``'s shape and dtype, or a ``TypeError`` showing both.

    The dtypes must be equal, except that a weakly typed value (a Python scalar), a
    value standing for a weakly typed one (an argument given as a Python scalar) and,
    with ``weak``, any value are cast within their kind, as NEP 50 would. The dtype of
    a ``derivative`` for an integer or bool value is not checked: such a derivative is
    zero whatever it holds.
    """
    try:
        x_aval = get_aval(x)
    except TypeError:
        raise TypeError(
            f"{what} of type {type(x).__name__} {target} of shape {aval.shape} and dtype "
            f"{aval.dtype.name}; expected an array of that shape and dtype"
        ) from None
    if x_aval.shape == aval.shape:
        if x_aval.dtype == aval.dtype or (derivative and not is_float(aval)):
            return np.asarray(x, aval.dtype)[()] if type(x) in PYTHON_SCALARS else x
        weak = weak or x_aval.weak_type or aval.weak_type
        if weak and np.can_cast(x_aval.dtype, aval.dtype, "same_kind"):
            return _cast(x, aval.dtype)
    hint = f"; cast it with .astype({aval.dtype.name})" if x_aval.shape == aval.shape else ""
    raise TypeError(
        f"{what} of shape {x_aval.shape} and dtype {x_aval.dtype.name} {target} of shape "
        f"{aval.shape} and dtype {aval.dtype.name}{hint}"
    )


def subtree_leaves(value: Any, treedef: PyTreeDef, what: str, target: str) -> list:
    """The leaves of ``value``, a tree of structure ``treedef`` in which ``None`` may
    stand for any subtree (a zero for each of its leaves)."""
    if treedef.node_type is None:
        return [value]
    if value is None:
        return [None] * treedef.num_leaves
    children, node = tree_flatten(value, is_leaf=lambda x: x is not value)
    if (node.node_type, node.aux, len(children)) != (
        treedef.node_type,
        treedef.aux,
        len(treedef.children),
    ):
        structure = tree_flatten(value, is_leaf=lambda x: x is None)[1]
        raise TypeError(f"{what} of structure {structure} {target} of structure {treedef}")
    leaves = []
    for child, child_def in zip(children, treedef.children, strict=True):
        leaves += subtree_leaves(child, child_def, what, target)
    return leaves


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def check_pair(result: Any, message: str) -> tuple[Any, Any]:
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise TypeError(message)
    return result[0], result[1]


# ---------------------------------------------------------------------------
# One call of a custom function: keyword arguments, nondiff_argnums, its program
# ---------------------------------------------------------------------------


class Call(NamedTuple):
    """A call of a custom function being traced: its differentiable arguments as
    leaves, its program, and what its rules need to be called as the user wrote them."""

    leaves: list
    in_tree: PyTreeDef  # of the differentiable arguments, a tuple
    in_avals: list[ShapedArray]  # of the leaves, weak types kept
    positions: tuple[int, ...]  # of each differentiable argument in the call
    nondiff: tuple  # the nondiff_argnums arguments, in that order
    full_args: Callable[[Sequence[Any]], Sequence[Any]]  # differentiable args -> all args
    call_jaxpr: ClosedJaxpr
    consts: list
    out_tree: PyTreeDef


def _check_nondiff_argnums(kind: str, argnums: Any) -> tuple[int, ...]:
    nums = argnums_tuple(kind, "nondiff_argnums", argnums)
    if len(set(nums)) != len(nums):
        raise ValueError(f"{kind}: nondiff_argnums {argnums!r} repeats an index")
    return nums


def leaf_targets(in_tree: PyTreeDef, positions: Sequence[int]) -> list[str]:
    targets = []
    for pos, arg_tree in zip(positions, in_tree.children, strict=True):
        n = arg_tree.num_leaves
        targets += [
            f"for argument {pos}" if n == 1 else f"for argument {pos} (leaf {k} of {n})"
            for k in range(n)
        ]
    return targets


class CustomFunction:
    """What ``custom_vjp`` and ``custom_jvp`` share: binding a call's arguments and
    tracing the function's program."""

    kind = ""

    def __init__(self, fun: Callable, nondiff_argnums: int | Sequence[int] = ()):
        functools.update_wrapper(self, fun)
        if not hasattr(self, "__name__"):
            self.__name__ = type(fun).__name__
        self.fun = fun
        self.nondiff_argnums = _check_nondiff_argnums(self.kind, nondiff_argnums)
        # One distinctive attribute: wrappers (jit...) copy an instance's __dict__.
        signature = signature_of(fun)
        names, var_positional = positional_params(signature)
        self._custom_signature = (signature, len(names), var_positional)

    def _positional(self, args: tuple, kwargs: dict) -> tuple:
        """The call's arguments as positional ones, with defaults applied (as JAX
        does), so that the rules receive every argument positionally."""
        signature, n, var_positional = self._custom_signature
        if not kwargs and (len(args) == n or var_positional and len(args) >= n):
            return args
        name = f"{self.kind}: {self.__name__}"
        if signature is None:
            raise TypeError(f"{name} has no readable signature; pass its arguments by position")
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{name}: {e}") from None
        bound.apply_defaults()
        by_keyword = [k for k in bound.kwargs if k in kwargs]
        if by_keyword:
            raise TypeError(
                f"{name}: the keyword arguments {by_keyword} have no position; the rules "
                "receive positional arguments only, so make them positional parameters"
            )
        return bound.args

    def _nondiff_positions(self, nargs: int) -> tuple[int, ...]:
        what = f"{self.kind}: {self.__name__}"
        positions = argnum_positions(what, "nondiff_argnums", self.nondiff_argnums, nargs)
        if len(set(positions)) != len(positions):
            raise ValueError(
                f"{self.kind}: nondiff_argnums {self.nondiff_argnums} of {self.__name__} name "
                f"the same argument twice in a call with {nargs} positional arguments"
            )
        return positions

    def _prepare(self, args: tuple, kwargs: dict) -> tuple[tuple, Call | None]:
        """The call's positional arguments, and the traced call (``None`` when no
        argument is traced: then the function is simply called)."""
        name = self.__name__
        args = self._positional(args, kwargs)
        nondiff_positions: Sequence[int] = ()
        positions: Sequence[int] = range(len(args))
        diff_args = args
        if self.nondiff_argnums:
            nondiff_positions = self._nondiff_positions(len(args))
            for p in nondiff_positions:
                if any_tracer(tree_leaves(args[p])):
                    raise TypeError(
                        f"{self.kind}: argument {p} of {name} is in nondiff_argnums but holds "
                        "a traced value; nondiff_argnums are for Python values (functions, "
                        "ints, strings, configuration). Pass an array as an ordinary argument "
                        "(its derivative may be None), or under jit mark it static "
                        "(static_argnums)."
                    )
            positions = [i for i in positions if i not in nondiff_positions]
            diff_args = tuple(args[i] for i in positions)
        leaves, in_tree = tree_flatten(diff_args)
        if not any_tracer(leaves):
            return args, None
        targets = leaf_targets(in_tree, positions)
        in_avals = []
        for x, target in zip(leaves, targets, strict=True):
            try:
                in_avals.append(get_aval(x))
            except TypeError:
                raise TypeError(
                    f"{self.kind}: {name} was called with a {type(x).__name__} "
                    f"{target.removeprefix('for ')}, which is not an array; list the "
                    "argument in nondiff_argnums to pass it as a Python value"
                ) from None
        nondiff = tuple(args[p] for p in nondiff_positions)
        fun, full_args = self.fun, tuple
        if nondiff_positions:
            full_args = functools.partial(substitute, args, positions)

            def fun(*diff_args: Any) -> Any:
                return self.fun(*full_args(diff_args))

        program, consts, out_tree = trace_call(fun, leaves, in_tree, name)
        call = Call(
            leaves=leaves,
            in_tree=in_tree,
            in_avals=in_avals,
            positions=tuple(positions),
            nondiff=nondiff,
            full_args=full_args,
            call_jaxpr=program,
            consts=consts,
            out_tree=out_tree,
        )
        return args, call


# ---------------------------------------------------------------------------
# The call primitive: binding it, and its program inlined under JVP and batching
# ---------------------------------------------------------------------------


def jvp_inline(program: ClosedJaxpr, primals, tangents):
    """Forward mode through the call's own program (its implementation)."""
    call = functools.partial(staging.call_jaxpr, program)
    return jvp_flat(call, list(primals), list(tangents), "jvp")


def batch_inline(program: ClosedJaxpr, vals, dims):
    """Batching through the call's own program (its implementation)."""
    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims, strict=True) if d is not None)
    with new_trace(BatchTrace, "vmap", axis_size=size) as trace:
        pairs = zip(vals, dims, strict=True)
        ins = [v if d is None else BatchTracer(trace, v, d) for v, d in pairs]
        outs = staging.call_jaxpr(program, *ins)
        results = [
            (o.val, o.bdim) if type(o) is BatchTracer and o._trace is trace else (o, None)
            for o in outs
        ]
    return [r[0] for r in results], [r[1] for r in results]


def batch_call(prim: Primitive, vals, dims, params, batch_rules: Callable[..., dict]):
    """Batching rule of a custom call: bind ``prim`` again on the batched arguments
    (batch axis first), with its program batched and the user's rules vmapped by
    ``batch_rules(params, arg_axes)``, so that differentiating the batched call still
    uses them. A batched closed-over value would reach the rules only through their
    own closure, so then the call is inlined (its implementation is what gets
    differentiated)."""
    num_consts = params["num_consts"]
    if any(d is not None for d in dims[:num_consts]):
        return batch_inline(params["call_jaxpr"], vals, dims)
    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims, strict=True) if d is not None)
    in_dims = [None if d is None else 0 for d in dims]
    pairs = zip(vals, dims, strict=True)
    vals = [v if d is None else broadcast_batched(v, d, size, 0) for v, d in pairs]
    n_out = len(params["call_jaxpr"].out_avals)
    call, _ = batch_jaxpr(params["call_jaxpr"], size, in_dims, out_axis=0, force=[True] * n_out)
    arg_axes = tree_unflatten(params["in_tree"], in_dims[num_consts:])
    new_params = {**params, "call_jaxpr": call, **batch_rules(params, arg_axes)}
    return prim.bind(*vals, **new_params), [0] * n_out


def bind_call(prim: Primitive, call: Call, name: str, rules: dict) -> Any:
    """Bind a custom call: the function's program and consts, the user's ``rules``."""
    outs = prim.bind(
        *call.consts,
        *call.leaves,
        call_jaxpr=call.call_jaxpr,
        num_consts=len(call.consts),
        in_tree=call.in_tree,
        out_tree=call.out_tree,
        name=name,
        **rules,
    )
    return tree_unflatten(call.out_tree, outs)


def call_primitive(name: str) -> Primitive:
    """A custom call primitive: it evaluates, stages and batches the program in its
    ``call_jaxpr`` parameter; its differentiation rules are the caller's."""
    prim = Primitive(name, multiple_results=True)
    prim.def_impl(lambda *args, call_jaxpr, **_: staging.call_jaxpr(call_jaxpr, *args))
    prim.def_abstract_eval(lambda *avals, call_jaxpr, **_: call_jaxpr.out_avals)
    prim.def_batch(lambda vals, dims, call_jaxpr, **_: batch_inline(call_jaxpr, vals, dims))
    prim.call_param = "call_jaxpr"  # jit inlines the function (its rules are for transforms)
    return prim


def def_call_rules(
    prim: Primitive, jvp: Callable, reverse: Callable, batch_rules: Callable[..., dict]
) -> None:
    """Give a custom call primitive its differentiation rules, and a batching rule that
    keeps them (``batch_call``)."""
    prim.def_jvp(jvp)
    prim.def_reverse(reverse)
    prim.def_batch(lambda vals, dims, **params: batch_call(prim, vals, dims, params, batch_rules))


def check_no_differentiated_closure(kind: str, name: str, closed_over: bool) -> None:
    # A closed-over value reaches the call as a const; the user's rule only produces
    # derivatives for the function's arguments, so a derivative with respect to it
    # would be silently lost (or the rule would use a dead tracer).
    if closed_over:
        raise TypeError(
            f"{kind}: {name} closes over a value that is being differentiated; the rule "
            f"gives no derivative for it. Pass the value to {name} as an argument instead."
        )


def as_received(values: Sequence[Any], params: dict) -> list[Any]:
    """The call's arguments as the function received them. Differentiation holds a
    Python number given to the function (a weakly typed argument) as a NumPy scalar;
    the rules get it back as a Python number, so that they compute in the dtypes the
    function does (``x32 * s`` stays float32)."""
    avals = params["call_jaxpr"].in_avals[params["num_consts"] :]
    return [
        v.item() if a.weak_type and isinstance(v, (np.generic, np.ndarray)) and v.ndim == 0 else v
        for v, a in zip(values, avals, strict=True)
    ]
