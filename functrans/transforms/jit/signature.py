"""Call signatures of a jitted function: the cache key of a call, built in one pass
over its arguments, and the function that rebuilds the output pytree from the
compiled function's output tuple. Both run on every cache hit, so every attribute
lookup counts.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from functrans.core import ShapedArray, Tracer, get_aval
from functrans.tree_util import PyTreeDef, tree_unflatten

__all__ = ["aval_key", "flatten_fast", "unflattener"]

_WEAK_KEY = {"b": bool, "i": int, "u": int, "f": float, "c": complex}


def aval_key(aval: ShapedArray) -> tuple:
    """A leaf's part of the key: shape and dtype, a Python scalar by its type."""
    if aval.weak_type:
        if aval.shape == () and aval.dtype == get_aval(_WEAK_KEY[aval.dtype.kind]()).dtype:
            return (_WEAK_KEY[aval.dtype.kind],)
        return ("weak", aval.shape, aval.dtype)
    return (aval.shape, aval.dtype)


_ndarray, _generic = np.ndarray, np.generic


def flatten_fast(xs: Any, leaves: list, key: list) -> int:
    """Leaves and a signature key for trees of tuples, lists, dicts and None. Returns
    1 if a leaf is a tracer, 0 if none is, -1 for anything it does not handle.
    (This is the cache-hit path: every attribute lookup counts.)"""
    status = 0
    leaf, item = leaves.append, key.append
    for x in xs:
        t = type(x)
        if t is _ndarray:
            leaf(x)
            item(x.shape)
            item(x.dtype)
            continue
        if t is dict:
            try:
                names = sorted(x)
            except TypeError:
                return -1
            item(tuple(names))
            children = map(x.__getitem__, names)
        elif t is tuple or t is list:
            item(t)
            item(len(x))
            children = x
        else:
            children = None
        if children is not None:
            for v in children:  # arrays inline; anything else recursively
                if type(v) is _ndarray:
                    leaf(v)
                    item(v.shape)
                    item(v.dtype)
                else:
                    s = flatten_fast((v,), leaves, key)
                    if s < 0:
                        return s
                    status |= s
        elif t is float or t is int or t is bool or t is complex:
            leaf(x)
            item(t)
        elif x is None:
            item(None)
        elif isinstance(x, Tracer):
            leaf(x)
            key.extend(aval_key(x.aval))
            status = 1
        elif isinstance(x, _generic):
            leaf(x)
            item(())
            item(x.dtype)
        else:
            return -1
    return status


def unflattener(tree: PyTreeDef) -> Callable[[tuple], Any] | None:
    """A function from the compiled function's output tuple to the output pytree
    (``None``: the tuple itself is the output). Tuples, lists, dicts, namedtuples and
    None are built by one generated expression; dict keys and namedtuple classes are
    bound as constants (no user text goes into the source)."""
    if tree.node_type is None:
        return operator.itemgetter(0)
    if tree.node_type is tuple and all(c.node_type is None for c in tree.children):
        return None
    counter = iter(range(tree.num_leaves))
    constants: dict[str, Any] = {}

    def constant(value: Any) -> str:
        name = f"c{len(constants)}"
        constants[name] = value
        return name

    def expr(t: PyTreeDef) -> str | None:
        if t.node_type is None:
            return f"t[{next(counter)}]"
        if t.node_type is type(None):
            return "None"
        parts = [expr(c) for c in t.children]
        if any(p is None for p in parts):
            return None
        inner = ", ".join(parts) + ("," if len(parts) == 1 else "")
        if t.node_type is tuple:
            return f"({inner})"
        if t.node_type is list:
            return f"[{inner}]"
        if t.node_type is dict:  # a display: faster than dict(zip(...))
            items = (f"{constant(k)}: {p}" for k, p in zip(t.aux, parts, strict=True))
            return "{" + ", ".join(items) + "}"
        if issubclass(t.node_type, tuple) and hasattr(t.node_type, "_fields"):
            return f"{constant(t.node_type)}({inner})"
        return None  # a registered class: its own unflatten function

    source = expr(tree)
    if source is None:
        return functools.partial(tree_unflatten, tree)
    return eval(f"lambda t: {source}", constants)
