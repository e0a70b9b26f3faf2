"""How a call of a ``custom_jvp`` / ``custom_vjp`` function is prepared, and how what
its rules return is checked.

A call binds keyword arguments to positions, sets the ``nondiff_argnums`` arguments
aside as Python values, and traces the function's program (``CustomFunction``,
``Call``). Every value a rule returns is conformed to the function's own types
(``conform``), so that a gradient has the shape and dtype of its primal input.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from functrans.core import PYTHON_SCALARS, ShapedArray, Tracer, get_aval
from functrans.ir import ClosedJaxpr
from functrans.primitives import convert_element_type
from functrans.tree_util import PyTreeDef, tree_flatten, tree_leaves, tree_unflatten


def trace_call(fun: Callable, leaves: Sequence[Any], in_tree, name: str):
    """Trace ``fun`` (over pytrees) at the avals of ``leaves``. Returns the closed jaxpr
    with its consts hoisted to leading arguments, the consts, and the output tree."""
    from functrans.transforms.staging import trace_to_jaxpr

    out_tree_box = []

    def flat(*xs):
        out = fun(*tree_unflatten(in_tree, xs))
        out_leaves, out_tree = tree_flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    jaxpr, consts = trace_to_jaxpr(flat, [get_aval(x) for x in leaves], name)
    from functrans.ir import Jaxpr

    hoisted = Jaxpr([], jaxpr.constvars + jaxpr.invars, jaxpr.outvars, jaxpr.eqns)
    return ClosedJaxpr(hoisted, []), consts, out_tree_box[0]


def any_tracer(leaves: Sequence[Any]) -> bool:
    return any(isinstance(x, Tracer) for x in leaves)


# ---------------------------------------------------------------------------
# What the user's rules return, checked against the function's own types
# ---------------------------------------------------------------------------


def is_float(aval: ShapedArray) -> bool:
    return aval.dtype.kind in "fc"


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
    nums = (argnums,) if isinstance(argnums, (int, np.integer)) else argnums
    if not isinstance(nums, (tuple, list)) or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in nums
    ):
        raise TypeError(f"{kind}: nondiff_argnums must be a tuple of ints, got {argnums!r}")
    if len(set(nums)) != len(nums):
        raise ValueError(f"{kind}: nondiff_argnums {argnums!r} repeats an index")
    return tuple(int(n) for n in nums)


def _signature(fun: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(fun)
    except (TypeError, ValueError):  # some builtins and extension callables have none
        return None


def _num_positional(sig: inspect.Signature | None) -> tuple[int, bool]:
    """The number of positional parameters, and whether there is a ``*args``."""
    if sig is None:
        return 0, True
    kinds = [p.kind for p in sig.parameters.values()]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(k in positional for k in kinds), inspect.Parameter.VAR_POSITIONAL in kinds


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
        signature = _signature(fun)
        self._custom_signature = (signature, *_num_positional(signature))

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

    def _nondiff_positions(self, nargs: int) -> list[int]:
        positions = []
        for n in self.nondiff_argnums:
            if not -nargs <= n < nargs:
                raise ValueError(
                    f"{self.kind}: nondiff_argnums {self.nondiff_argnums} of {self.__name__}: "
                    f"{n} is out of range for a call with {nargs} positional arguments"
                )
            positions.append(n % nargs)
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

            def full_args(diff_args: Sequence[Any]) -> list:
                full = list(args)
                for p, a in zip(positions, diff_args, strict=True):
                    full[p] = a
                return full

            def fun(*diff_args: Any) -> Any:
                return self.fun(*full_args(diff_args))

        call_jaxpr, consts, out_tree = trace_call(fun, leaves, in_tree, name)
        call = Call(
            leaves=leaves,
            in_tree=in_tree,
            in_avals=in_avals,
            positions=tuple(positions),
            nondiff=nondiff,
            full_args=full_args,
            call_jaxpr=call_jaxpr,
            consts=consts,
            out_tree=out_tree,
        )
        return args, call
