"""``jit``: stage a function to a jaxpr once per call signature, optimize it, compile
it to a straight-line NumPy function, and run that on every later call.

Two paths:

* Called with concrete arrays, a jitted function looks its signature (pytree
  structure, each leaf's shape and dtype, Python scalars by type, static values) up
  in its cache and runs the compiled function. On a miss it traces, optimizes and
  compiles first.
* Called with a tracer of another transform, it binds one ``jit`` equation holding
  its jaxpr, whose rules (``primitive.py``) differentiate and batch it.

This module is the front end (the cache). The backend, one module per idea:
``signature.py`` (the cache key of a call), ``primitive.py`` (``jit_p`` and its
rules), ``passes.py`` (the optimizer), ``codegen.py`` (the emitter, which reads each
primitive's ``lowering`` slot) and ``buffers.py`` (which buffers it may reuse).
"""

from __future__ import annotations

import collections
import functools
import inspect
import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from functrans.config import config
from functrans.core import PYTHON_SCALARS, Tracer
from functrans.ir import ClosedJaxpr, Jaxpr
from functrans.transforms.api_util import (
    abstractify,
    fun_name,
    positional_params,
    signature_of,
    static_argnames_tuple,
    static_argnums_tuple,
)
from functrans.transforms.jit import codegen
from functrans.transforms.jit.primitive import jit_p, optimized
from functrans.transforms.jit.signature import aval_key, flatten_fast, unflattener
from functrans.transforms.staging import trace_to_jaxpr
from functrans.tree_util import PyTreeDef, tree_flatten, tree_unflatten

__all__ = ["CACHE_MAXSIZE", "CacheInfo", "Jitted", "jit", "jit_p"]

logger = logging.getLogger("functrans.jit")

# Signatures one jitted function keeps compiled. A function called with ever new
# shapes (say, sequences of every length) would otherwise hold on to all of them.
CACHE_MAXSIZE = 1024


class CacheInfo(NamedTuple):
    """Statistics of a jitted function's cache, as ``functools.lru_cache`` reports."""

    hits: int
    misses: int
    maxsize: int | None
    currsize: int


class _Entry:
    """One cached signature: the optimized jaxpr, the output structure and, once it
    has run on concrete arrays, the compiled function."""

    __slots__ = ("closed", "out_tree", "fn", "unflatten")

    def __init__(self, closed: ClosedJaxpr, out_tree: PyTreeDef):
        self.closed = closed
        self.out_tree = out_tree
        self.fn: Callable[..., tuple] | None = None
        self.unflatten = unflattener(out_tree)


# ---------------------------------------------------------------------------
# jit
# ---------------------------------------------------------------------------


class Jitted:
    """A function staged, optimized and compiled once per call signature.
    Created by ``jit``; see there."""

    def __init__(
        self,
        fun: Callable,
        static_argnums: int | Sequence[int] = (),
        static_argnames: str | Sequence[str] = (),
    ) -> None:
        if not callable(fun):
            raise TypeError(f"jit: expected a function, got {type(fun).__name__}")
        functools.update_wrapper(self, fun)
        self._fun = fun
        self._name = fun_name(fun)
        self._params = positional_params(signature_of(fun))[0]
        self._static_argnums, self._static_argnames = self._normalize_static(
            static_argnums, static_argnames
        )
        self._has_static = bool(self._static_argnums or self._static_argnames)
        self._cache: collections.OrderedDict[Any, _Entry] = collections.OrderedDict()
        # Hits are counted without a lock: next() on an itertools.count is atomic. It
        # also advances when cache_info reads it, so reads are counted and subtracted.
        self._hit_count = itertools.count()
        self._hit_reads = 0
        self._misses = 0
        self._trace_lock = threading.RLock()
        self._count_lock = threading.Lock()
        self._last_signature: dict[str, str] | None = None  # of the last logged compile

    # --- calling ----------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if config.disable_jit:
            return self._fun(*args, **kwargs)
        if kwargs or self._has_static:
            return self._call_general(args, kwargs)
        leaves: list = []
        key: list = [len(args)]
        status = flatten_fast(args, leaves, key)
        if status < 0:
            return self._call_general(args, kwargs)
        signature = tuple(key)
        entry = self._cache.get(signature)
        if entry is None or status:
            return self._call_slow(signature, args, kwargs, leaves, None)
        try:  # noqa: SIM105 (inline _touch: this is the hit path)
            self._cache.move_to_end(signature)
        except KeyError:
            pass
        next(self._hit_count)
        fn = entry.fn or self._compile(entry)
        out = fn(*leaves)
        unflatten = entry.unflatten
        return out if unflatten is None else unflatten(out)

    def _call_general(self, args: tuple, kwargs: dict) -> Any:
        key, leaves, statics = self._signature(args, kwargs)
        return self._call_slow(key, args, kwargs, leaves, statics)

    def _key(self, args: tuple, kwargs: dict) -> tuple[tuple, list, tuple | None]:
        """``(key, leaves, statics)`` as ``__call__`` computes them."""
        if not kwargs and not self._has_static:
            leaves: list = []
            key: list = [len(args)]
            if flatten_fast(args, leaves, key) >= 0:
                return tuple(key), leaves, None
        return self._signature(args, kwargs)

    def _call_slow(self, key, args, kwargs, leaves, statics) -> Any:
        entry, extra = self._lookup(key, args, kwargs, leaves, statics, count_hit=True)
        if extra or any(isinstance(x, Tracer) for x in leaves):
            outs = jit_p.bind(*extra, *leaves, jaxpr=entry.closed, name=self._name)
            return tree_unflatten(entry.out_tree, outs)
        fn = entry.fn or self._compile(entry)
        out = fn(*leaves)
        return out if entry.unflatten is None else entry.unflatten(out)

    def _signature(self, args: tuple, kwargs: dict) -> tuple[tuple, list, tuple]:
        """Cache key, array leaves and static values of a call, for any pytrees."""
        dyn_args, dyn_kwargs, statics = self._split(args, kwargs)
        leaves, tree = tree_flatten((dyn_args, dyn_kwargs))
        key: list = ["general", tree, statics]
        for i, x in enumerate(leaves):
            if type(x) is not np.ndarray and isinstance(x, np.ndarray):
                x = leaves[i] = np.asarray(x)  # ndarray subclasses
            if isinstance(x, (np.ndarray, np.generic, Tracer, *PYTHON_SCALARS)):
                key.extend(aval_key(abstractify(x)))
                continue
            raise TypeError(
                f"jit({self._name}): {self._leaf_labels(args, kwargs)[i]} is a "
                f"{type(x).__name__} ({x!r:.40}), not an array; pass arrays or Python "
                "numbers, or mark the argument static (static_argnums / static_argnames)"
            )
        return tuple(key), leaves, statics

    def _split(self, args: tuple, kwargs: dict) -> tuple[list, dict, tuple]:
        static_pos = self._static_positions(len(args))
        dyn_args, statics = [], []
        for i, a in enumerate(args):
            if i in static_pos:
                statics.append((i, self._static_value(a, self._arg_label(i))))
            else:
                dyn_args.append(a)
        dyn_kwargs = {}
        for k, v in kwargs.items():
            if k in self._static_argnames:
                statics.append((k, self._static_value(v, f"argument {k!r}")))
            else:
                dyn_kwargs[k] = v
        statics.sort(key=lambda s: (isinstance(s[0], str), s[0]))
        return dyn_args, dyn_kwargs, tuple(statics)

    def _static_value(self, value: Any, label: str) -> tuple:
        try:
            hash(value)
        except TypeError:
            raise TypeError(
                f"jit({self._name}): static {label} has unhashable type "
                f"{type(value).__name__}; static arguments are part of the cache key and "
                "must be hashable (use a tuple instead of a list, or make it a regular "
                "array argument)"
            ) from None
        return (type(value), value)

    # --- tracing and compiling ------------------------------------------------------

    def _lookup(self, key, args, kwargs, leaves, statics, count_hit: bool):
        """The cache entry for a signature, tracing on a miss. Returns ``(entry, extra)``
        where ``extra`` are tracers the function closed over, which the call passes as
        leading arguments (such an entry is not cached)."""
        entry = self._cache.get(key)
        if entry is None:
            with self._trace_lock:
                entry = self._cache.get(key)
                if entry is None:
                    return self._trace(key, args, kwargs, leaves, statics)
        if count_hit:
            self._touch(key)
            next(self._hit_count)
        return entry, []

    def _touch(self, signature: tuple) -> None:
        """Mark a signature as just used (the least recently used one is dropped first).
        Atomic under the GIL; another thread may have dropped it meanwhile."""
        try:  # noqa: SIM105 (contextlib.suppress costs a context manager on every hit)
            self._cache.move_to_end(signature)
        except KeyError:
            pass

    def _trace(self, key, args, kwargs, leaves, statics) -> tuple[_Entry, list]:
        if statics is None:
            statics = ()
        if config.log_compiles:
            self._log_compile(self._describe(args, kwargs, leaves, statics))
        static_pos = {s[0]: s[1][1] for s in statics if isinstance(s[0], int)}
        static_kw = {s[0]: s[1][1] for s in statics if isinstance(s[0], str)}
        dyn_args = [a for i, a in enumerate(args) if i not in static_pos]
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in static_kw}
        _, in_tree = tree_flatten((dyn_args, dyn_kwargs))
        name = f"jit({self._name})"
        out_trees: list = []

        def flat_fun(*flat):
            dyn, kw = tree_unflatten(in_tree, flat)
            dyn = iter(dyn)
            full = [static_pos[i] if i in static_pos else next(dyn) for i in range(len(args))]
            out = self._fun(*full, **kw, **static_kw)
            out_leaves, out_tree = tree_flatten(out)
            for i, x in enumerate(out_leaves):
                if not isinstance(x, (np.ndarray, np.generic, Tracer, *PYTHON_SCALARS)):
                    raise TypeError(
                        f"{name}: output leaf {i} is a {type(x).__name__} ({x!r:.40}); a "
                        "jitted function must return arrays (in any pytree)"
                    )
            out_trees.append(out_tree)
            return out_leaves

        jaxpr, consts = trace_to_jaxpr(flat_fun, [abstractify(x) for x in leaves], name)
        extra = [c for c in consts if isinstance(c, Tracer)]
        if extra:  # closed over tracers of an enclosing transform: explicit arguments
            jaxpr = Jaxpr([], jaxpr.constvars + jaxpr.invars, jaxpr.outvars, jaxpr.eqns)
            extra, consts = consts, []
        closed = optimized(ClosedJaxpr(jaxpr, consts))
        entry = _Entry(closed, out_trees[0])
        with self._count_lock:
            self._misses += 1
        if not extra:
            if len(self._cache) >= CACHE_MAXSIZE:
                self._cache.popitem(last=False)  # the least recently used
            self._cache[key] = entry
        return entry, extra

    def _compile(self, entry: _Entry) -> Callable[..., tuple]:
        entry.fn = codegen.compiled(entry.closed).fn
        return entry.fn

    # --- introspection ----------------------------------------------------------------

    def cache_info(self) -> CacheInfo:
        """Cache statistics: ``hits``, ``misses`` (traces), ``maxsize`` (signatures kept
        at most; beyond it the least recently used is dropped) and ``currsize``
        (signatures cached)."""
        with self._count_lock:
            hits = next(self._hit_count) - self._hit_reads
            self._hit_reads += 1
            return CacheInfo(hits, self._misses, CACHE_MAXSIZE, len(self._cache))

    def clear_cache(self) -> None:
        """Forget every compiled signature (statistics are kept)."""
        with self._trace_lock:
            self._cache.clear()

    def source(self, *args: Any, **kwargs: Any) -> str:
        """The Python source of the compiled function for these arguments (traced and
        compiled if needed; only a trace counts in ``cache_info``)."""
        key, leaves, statics = self._key(args, kwargs)
        entry, extra = self._lookup(key, args, kwargs, leaves, statics, count_hit=False)
        if extra:
            raise TypeError(
                f"jit({self._name}).source: the function closes over traced values of an "
                "enclosing transform, so it has no standalone compiled form"
            )
        return codegen.compiled(entry.closed).source

    def __repr__(self) -> str:
        return f"<jit({self._name})>"

    # --- static arguments and descriptions ----------------------------------------------

    def _normalize_static(self, nums, names) -> tuple[tuple[int, ...], frozenset[str]]:
        what = f"jit({self._name})"
        nums = static_argnums_tuple(what, nums)
        names = static_argnames_tuple(what, names)
        self._check_static_exist(nums, names)
        # As in JAX, a static parameter is static however it is passed.
        params = self._params
        names_set = set(names) | {params[n] for n in nums if 0 <= n < len(params)}
        nums_set = set(nums) | {params.index(s) for s in names if s in params}
        return tuple(sorted(nums_set)), frozenset(names_set)

    def _check_static_exist(self, nums: tuple[int, ...], names: tuple[str, ...]) -> None:
        """Static arguments the function cannot take are a mistake (as in JAX), unless
        it takes ``*args`` / ``**kwargs``."""
        signature = signature_of(self._fun)
        if signature is None:
            return
        positional, any_positional = positional_params(signature)
        if not any_positional:
            for n in nums:
                if not -len(positional) <= n < len(positional):
                    raise ValueError(
                        f"jit({self._name}): static_argnums {n} is out of range: the function "
                        f"takes {len(positional)} positional arguments"
                    )
        params = signature.parameters.values()
        if all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in params):
            known = {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
            unknown = sorted(set(names) - known)
            if unknown:
                raise ValueError(
                    f"jit({self._name}): static_argnames {unknown} name no parameter of the "
                    f"function (its parameters: {sorted(known)})"
                )

    def _arg_label(self, i: int) -> str:
        if self._params and i < len(self._params):
            return f"argument {self._params[i]!r}"
        return f"argument {i}"

    def _leaf_labels(self, args: tuple, kwargs: dict) -> list[str]:
        """A name for each dynamic leaf, in flattening order."""
        dyn_args, dyn_kwargs, _ = self._split(args, kwargs)
        positions = [i for i in range(len(args)) if i not in self._static_positions(len(args))]
        labels = []
        for i, a in zip(positions, dyn_args, strict=True):
            labels += self._labels_of(self._arg_label(i), a)
        for k in sorted(dyn_kwargs):
            labels += self._labels_of(f"argument {k!r}", dyn_kwargs[k])
        return labels

    def _static_positions(self, n: int) -> set[int]:
        return {i % n for i in self._static_argnums if -n <= i < n}

    @staticmethod
    def _labels_of(label: str, tree: Any) -> list[str]:
        leaves, treedef = tree_flatten(tree)
        if treedef.node_type is None:
            return [label]
        return [f"{label} (leaf {j})" for j in range(len(leaves))]

    def _describe(self, args, kwargs, leaves, statics) -> dict[str, str]:
        """Each leaf's and static argument's type, by name: what a retrace reports."""
        desc = {}
        for label, x in zip(self._leaf_labels(args, kwargs), leaves, strict=True):
            aval = abstractify(x)
            weak = " (Python scalar)" if aval.weak_type else ""
            desc[label] = f"{aval.str_short()}{weak}"
        for where, (_, value) in statics or ():
            label = self._arg_label(where) if isinstance(where, int) else f"argument {where!r}"
            desc[f"static {label}"] = f"{value!r:.60}"
        return desc

    def _log_compile(self, signature: dict[str, str]) -> None:
        previous, self._last_signature = self._last_signature, signature
        if previous is None:
            logger.warning("Compiling jit(%s) for %s", self._name, _fmt(signature))
            return
        changes = [
            f"{label}: {previous.get(label, 'absent')} -> {signature.get(label, 'absent')}"
            for label in dict.fromkeys([*previous, *signature])
            if previous.get(label) != signature.get(label)
        ]
        reason = "; ".join(changes) or "the pytree structure changed"
        logger.warning("Retracing jit(%s) because %s", self._name, reason)


def _fmt(signature: dict[str, str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in signature.items()) or "no arguments"


def jit(
    fun: Callable,
    static_argnums: int | Sequence[int] = (),
    static_argnames: str | Sequence[str] = (),
) -> Jitted:
    """Compile ``fun``: trace it to a jaxpr once per call signature (pytree structure,
    each leaf's shape and dtype, Python scalars by type, the values of static
    arguments), optimize the jaxpr, lower it to a NumPy function and run that.

    Python side effects in ``fun`` run only while it is traced. Arguments listed in
    ``static_argnums`` / ``static_argnames`` are passed to ``fun`` as they are (they
    must be hashable), so Python control flow may depend on them. Inside another
    transform (``grad``, ``vmap``, ``make_jaxpr``...), a jitted function is one
    ``jit`` equation that the transform differentiates or batches.

    >>> import numpy as np, functrans as ft, functrans.numpy as fnp
    >>> @ft.jit
    ... def f(x, y):
    ...     return fnp.tanh(x) * y + 1.0
    >>> f(np.zeros(3), np.ones(3))
    array([1., 1., 1.])
    >>> f(np.ones(3), np.ones(3)).shape   # same signature: a cache hit
    (3,)
    >>> f.cache_info()
    CacheInfo(hits=1, misses=1, maxsize=1024, currsize=1)
    >>> print(f.source(np.zeros(3), np.ones(3)))
    def jitted(a, b):
        c = np.tanh(a)
        d = c * b
        e = d + 1.0
        return (e,)
    """
    return Jitted(fun, static_argnums, static_argnames)
