"""How the transforms read their arguments: one front door for ``grad``, ``vjp``,
``jvp``, ``linearize``, the Jacobians, ``vmap``, ``make_jaxpr``, the custom-rule
decorators and control flow.

* which arguments a transform acts on (``argnums``, ``static_argnums``,
  ``nondiff_argnums``): checked once, counted from the end when negative;
* whether a value is an array argument, and which inputs may be differentiated;
* the ``(out, aux)`` pair of ``has_aux``;
* a function over pytrees as a function over flat leaves, and a function of some of
  its arguments with the others fixed;
* a function's name and signature.

Every transform checks these alike and says so in the same words.

>>> argnums_tuple("grad(f)", "argnums", 1)
(1,)
>>> argnum_positions("grad(f)", "argnums", (0, -1), 3)
(0, 2)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import PYTHON_SCALARS, ShapedArray, Tracer, get_aval, is_float
from functrans.tree_util import PyTreeDef, tree_flatten, tree_unflatten

__all__ = [
    "abstractify",
    "argnum_positions",
    "argnums_partial",
    "argnums_tuple",
    "as_array_arg",
    "as_input",
    "check_callable",
    "check_differentiable",
    "differentiable_leaves",
    "flatten_fun",
    "fun_name",
    "positional_params",
    "signature_of",
    "split_aux",
    "static_argnames_tuple",
    "static_argnums_tuple",
    "substitute",
    "to_numpy_scalar",
    "weak_inputs",
]


# ---------------------------------------------------------------------------
# Functions: name, signature, flattening
# ---------------------------------------------------------------------------


def fun_name(fun: Callable) -> str:
    """How messages and traces name ``fun``: its ``__name__``, else its type's."""
    return getattr(fun, "__name__", type(fun).__name__)


def check_callable(what: str, name: str, fun: Any) -> None:
    if not callable(fun):
        raise TypeError(f"{what}: {name} must be callable, got {type(fun).__name__} {fun!r:.60}")


def signature_of(fun: Callable) -> inspect.Signature | None:
    """``fun``'s signature, or ``None`` (some builtins and extension callables have none)."""
    try:
        return inspect.signature(fun)
    except (TypeError, ValueError):
        return None


def positional_params(signature: inspect.Signature | None) -> tuple[list[str], bool]:
    """The names of the positional parameters, and whether any number of positional
    arguments is accepted (a ``*args``, or no signature to tell)."""
    if signature is None:
        return [], True
    params = signature.parameters.values()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = [p.name for p in params if p.kind in positional]
    return names, any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)


def flatten_fun(
    fun: Callable, in_tree: PyTreeDef, has_aux: bool = False, what: str = ""
) -> tuple[Callable, Callable[[], PyTreeDef]]:
    """``fun`` over the pytrees ``in_tree`` (a tuple of its positional arguments) as a
    function of flat leaves returning flat leaves (with ``has_aux``: ``(leaves, aux)``).
    Returns it and a function giving the output structure once it has been called."""
    store: list[PyTreeDef] = []

    def flat_fun(*leaves: Any) -> Any:
        out = fun(*tree_unflatten(in_tree, leaves))
        if has_aux:
            out, aux = split_aux(what, out)
        out_leaves, out_tree = tree_flatten(out)
        store.append(out_tree)
        return (out_leaves, aux) if has_aux else out_leaves

    return flat_fun, lambda: store[0]


def split_aux(what: str, result: Any) -> tuple[Any, Any]:
    """The ``(out, aux)`` pair a function differentiated with ``has_aux`` returns."""
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise TypeError(f"{what}: with has_aux=True, the function must return a pair (out, aux)")
    return result[0], result[1]


def substitute(args: Sequence[Any], positions: Sequence[int], values: Sequence[Any]) -> list:
    """``args`` with ``values`` in place of the arguments at ``positions``."""
    full = list(args)
    for p, v in zip(positions, values, strict=True):
        full[p] = v
    return full


def argnums_partial(
    fun: Callable,
    args: Sequence[Any],
    positions: Sequence[int],
    in_tree: PyTreeDef,
    kwargs: dict | None = None,
) -> Callable:
    """``fun`` as a function of the leaves of its arguments at ``positions`` (a list of
    them has the structure ``in_tree``), the other arguments and ``kwargs`` fixed to the
    values of this call."""
    kwargs = kwargs or {}

    def partial_fun(*leaves: Any) -> Any:
        return fun(*substitute(args, positions, tree_unflatten(in_tree, leaves)), **kwargs)

    return partial_fun


# ---------------------------------------------------------------------------
# Argument numbers
# ---------------------------------------------------------------------------


def _is_int(n: Any) -> bool:
    return isinstance(n, (int, np.integer)) and not isinstance(n, bool)


def argnums_tuple(what: str, label: str, argnums: Any) -> tuple[int, ...]:
    """``argnums`` (an int, or a tuple or list of ints) as a tuple, or a ``TypeError``
    naming the parameter ``label``."""
    if _is_int(argnums):
        return (int(argnums),)
    if not isinstance(argnums, (tuple, list)):
        raise TypeError(f"{what}: {label} must be an int or a tuple of ints, got {argnums!r}")
    if not all(_is_int(n) for n in argnums):
        raise TypeError(f"{what}: {label} must be a tuple of ints, got {argnums!r}")
    return tuple(int(n) for n in argnums)


def static_argnums_tuple(what: str, argnums: Any) -> tuple[int, ...]:
    """``static_argnums`` as a tuple; ``None`` means none, as in JAX."""
    return () if argnums is None else argnums_tuple(what, "static_argnums", argnums)


def static_argnames_tuple(what: str, argnames: Any) -> tuple[str, ...]:
    """``static_argnames`` (a str, or a tuple or list of str) as a tuple; ``None`` means
    none."""
    if argnames is None:
        return ()
    if isinstance(argnames, str):
        return (argnames,)
    if not isinstance(argnames, (tuple, list)):
        raise TypeError(
            f"{what}: static_argnames must be a str or a tuple of str, got {argnames!r}"
        )
    if not all(isinstance(s, str) for s in argnames):
        raise TypeError(f"{what}: static_argnames must be a tuple of str, got {argnames!r}")
    return tuple(argnames)


def argnum_positions(
    what: str, label: str, argnums: tuple[int, ...], nargs: int
) -> tuple[int, ...]:
    """Each of ``argnums`` as a position in a call with ``nargs`` positional arguments
    (negative numbers count from the end), or a ``ValueError``."""
    for n in argnums:
        if not -nargs <= n < nargs:
            raise ValueError(
                f"{what}: {label} {argnums}: {n} is out of range for a call with {nargs} "
                "positional arguments"
            )
    return tuple([n % nargs for n in argnums])


# ---------------------------------------------------------------------------
# Array arguments
# ---------------------------------------------------------------------------

_ARRAY_TYPES = (np.ndarray, np.generic, Tracer, *PYTHON_SCALARS)


def as_array_arg(x: Any, what: str) -> Any:
    """``x`` as a valid array argument, or a ``TypeError`` naming it and its type."""
    if isinstance(x, _ARRAY_TYPES):
        return x
    if isinstance(x, (list, tuple)):
        try:
            arr = np.asarray(x)
        except ValueError as e:
            raise TypeError(f"{what}: a ragged or invalid nested sequence ({e})") from None
        if arr.dtype.kind in "biufc":
            return arr
    raise TypeError(
        f"{what}: expected an array, a number or a list of numbers, got "
        f"{type(x).__name__} {x!r:.60}"
    )


def to_numpy_scalar(x: Any) -> Any:
    """A Python number as the NumPy scalar of its default dtype; anything else as it is."""
    return np.asarray(x)[()] if isinstance(x, PYTHON_SCALARS) else x


def as_input(x: Any, what: str) -> Any:
    """An array argument as a value the transforms differentiate (``to_numpy_scalar``)."""
    return to_numpy_scalar(as_array_arg(x, what))


def abstractify(x: Any) -> ShapedArray:
    """The aval a transform's input gets: NumPy values as they are, Python scalars weakly
    typed, lists converted as NumPy converts them; anything else is a ``TypeError``."""
    if isinstance(x, _ARRAY_TYPES):
        return get_aval(x)
    return get_aval(as_array_arg(x, "argument"))


def weak_inputs(leaves: Sequence[Any]) -> list[bool]:
    """Which inputs are Python numbers: they stay weakly typed under differentiation."""
    return [type(x) in (int, float, complex) for x in leaves]


def check_differentiable(what: str, x: Any, allow_int: bool) -> Any:
    """``x`` if it may be differentiated with respect to, or a ``TypeError``."""
    aval = get_aval(x)
    if not is_float(aval) and not allow_int:
        raise TypeError(
            f"{what}: differentiating with respect to an input of dtype {aval.dtype.name} "
            f"(shape {aval.shape}); use a float input, or pass allow_int=True"
        )
    return x


def differentiable_leaves(
    what: str, args: Sequence[Any], argnums: tuple[int, ...], allow_int: bool
) -> tuple[tuple[int, ...], list[Any], PyTreeDef]:
    """The positions of the ``argnums`` arguments of a call, their leaves (checked to be
    array inputs that may be differentiated, Python numbers kept as such) and their
    structure (a list of the arguments)."""
    positions = argnum_positions(what, "argnums", argnums, len(args))
    leaves, tree = tree_flatten([args[i] for i in positions])
    for x in leaves:
        check_differentiable(what, as_array_arg(x, what), allow_int)
    return positions, leaves, tree
