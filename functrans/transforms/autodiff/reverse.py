"""Reverse mode: a tape of per-primitive VJP rules; ``vjp``, ``grad`` and
``value_and_grad``, which all run a function once on a new tape and walk it back.

The tape records, for every primitive applied to a tracked value, the primals its
VJP rules need; the backward pass walks it once in reverse. Rules are written with
functrans operations and run under whatever trace is current when the backward pass
runs, so the backward pass is itself differentiable (``grad(grad(f))``), batchable
(``vmap(grad(f))``) and stageable (``jit(grad(f))``). Primal values are concrete
under ``grad`` itself, so Python control flow on them works.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import (
    Primitive,
    ShapedArray,
    Trace,
    Tracer,
    Zero,
    get_aval,
    is_float,
    missing_rule,
    new_trace,
)
from functrans.primitives import add_p, convert_element_type
from functrans.transforms.api_util import (
    argnums_partial,
    argnums_tuple,
    as_input,
    differentiable_leaves,
    flatten_fun,
    fun_name,
    split_aux,
    to_numpy_scalar,
    weak_inputs,
)
from functrans.transforms.autodiff.forward import (
    PrimalTracer,
    as_numpy_scalar,
    keep_weak,
    weak_outputs,
    zeros_of,
)
from functrans.tree_util import tree_flatten, tree_map, tree_unflatten

__all__ = [
    "ReverseTrace",
    "ReverseTracer",
    "grad",
    "run_on_tape",
    "value_and_grad",
    "vjp",
]


class ReverseTracer(PrimalTracer):
    """A value tracked by reverse mode: its primal and its slot on the tape."""

    __slots__ = ("slot",)

    def __init__(self, trace: ReverseTrace, primal: Any, slot: int, weak: bool = False):
        self._trace = trace
        self.primal = primal
        self.slot = slot
        self.weak = weak


class ReverseTrace(Trace):
    """Records a tape. Each entry: ``(first_slot, num_outputs, multiple, parent_slots,
    backward)`` where ``backward(cotangents) -> one cotangent (or None) per parent
    slot``; it receives a list of cotangents iff ``multiple`` (even for one output)."""

    __slots__ = ("tape", "num_slots")

    def __init__(self, parent: Trace | None, name: str = "") -> None:
        super().__init__(parent, name)
        self.tape: list[tuple[int, int, bool, tuple[int, ...], Callable]] = []
        self.num_slots = 0

    def new_input(self, primal: Any, weak: bool = False) -> ReverseTracer:
        slot = self.num_slots
        self.num_slots += 1
        return ReverseTracer(self, primal, slot, weak)

    def process_primitive(self, prim: Primitive, args: Sequence[Any], params: dict) -> Any:
        primals, slots, positions, any_weak = [], [], [], False
        for i, x in enumerate(args):
            if type(x) is ReverseTracer and x._trace is self:
                primals.append(x.primal)
                slots.append(x.slot)
                positions.append(i)
                any_weak |= x.weak
            else:
                primals.append(x)
        if not slots or not prim.differentiable:
            out = self.parent.process_primitive(prim, primals, params)
            return keep_weak(prim, args, params, out) if any_weak else out
        if prim.reverse is not None:
            outs, backward = prim.reverse(self.parent, primals, tuple(positions), params)
        elif prim.vjp is None:
            raise missing_rule(prim, "grad", "reverse-mode (VJP)", "prim.def_vjp(*rules)")
        else:
            outs = self.parent.process_primitive(prim, primals, params)
            backward = functools.partial(
                _apply_vjp_rules, prim.vjp, tuple(positions), primals, outs, params
            )
        weak = weak_outputs(prim, args, params) if any_weak else None
        return self.record(outs, prim.multiple_results, tuple(slots), backward, weak)

    def record(
        self,
        outs: Any,
        multiple: bool,
        parents: tuple[int, ...],
        backward,
        weak: Sequence[bool] | None = None,
    ) -> Any:
        first = self.num_slots
        n = len(outs) if multiple else 1
        self.num_slots += n
        self.tape.append((first, n, multiple, parents, backward))
        weak = weak or [False] * n
        if multiple:
            return [
                ReverseTracer(self, o, first + k, weak[k]) if is_float(get_aval(o)) else o
                for k, o in enumerate(outs)
            ]
        return ReverseTracer(self, outs, first, weak[0])

    def concretize(self, tracer: Tracer, conversion: str) -> Any:
        return tracer.primal

    def tracks(self, x: Any) -> bool:
        """Whether ``x`` is one of this tape's values."""
        return type(x) is ReverseTracer and x._trace is self

    def primal(self, x: Any) -> Any:
        """``x`` with this tape's tracking removed."""
        return x.primal if type(x) is ReverseTracer and x._trace is self else x

    def backward(self, seeds: dict[int, Any], wanted: Sequence[int]) -> list[Any]:
        """Propagate cotangents ``seeds`` (slot -> cotangent) back to the ``wanted``
        slots; ``None`` where nothing flowed."""
        cts: list[Any] = [None] * self.num_slots
        for slot, ct in seeds.items():
            cts[slot] = _accumulate(cts[slot], ct)
        for first, n, multiple, parents, backward in reversed(self.tape):
            if not multiple:
                g = cts[first]
                if g is None:
                    continue
                cts[first] = None
            else:
                gs = cts[first : first + n]
                if all(g is None for g in gs):
                    continue
                g = gs
            for slot, ct in zip(parents, backward(g), strict=True):
                if ct is not None:
                    cts[slot] = _accumulate(cts[slot], ct)
        return [cts[s] for s in wanted]

    def pull(self, outs: Sequence[Any], out_cts: Sequence[Any], wanted: Sequence[int]) -> list:
        """Propagate one cotangent (or ``None``) per value of ``outs`` back to the
        ``wanted`` slots; ``None`` where nothing flowed."""
        seeds: dict[int, Any] = {}
        for o, ct in zip(outs, out_cts, strict=True):
            if ct is not None and type(o) is ReverseTracer and o._trace is self:
                # The same value may be listed twice: its cotangents add up.
                seeds[o.slot] = _accumulate(seeds.get(o.slot), ct)
        return self.backward(seeds, wanted) if seeds else [None] * len(wanted)


def _apply_vjp_rules(rules, positions, primals, ans, params, g) -> list[Any]:
    return [None if rules[i] is None else rules[i](g, ans, *primals, **params) for i in positions]


def _accumulate(total: Any, ct: Any) -> Any:
    # A value used several times receives the sum of its uses' cotangents.
    if total is None:
        return ct
    return add_p.bind(total, ct)


def run_on_tape(
    fun: Callable,
    args: Sequence[Any],
    name: str,
    tracked: Sequence[bool] | None = None,
    weak: Sequence[bool] | None = None,
) -> tuple[Any, ReverseTrace, list[int]]:
    """Run ``fun(*args)`` on a new tape tracking the ``tracked`` arguments (all by
    default), the ``weak`` ones standing for Python numbers. Returns what ``fun``
    returned, the trace (``trace.pull`` walks it back) and the tracked inputs' slots."""
    weak = weak or [False] * len(args)
    with new_trace(ReverseTrace, name) as trace:
        if tracked is None:
            inputs = [trace.new_input(a, w) for a, w in zip(args, weak, strict=True)]
        else:
            inputs = [
                trace.new_input(a, w) if t else a
                for a, t, w in zip(args, tracked, weak, strict=True)
            ]
        in_slots = list(range(trace.num_slots))  # a new tape numbers its inputs first
        result = fun(*inputs)
    return result, trace, in_slots


def _materialize(cts: Sequence[Any], leaves: Sequence[Any]) -> list[Any]:
    """The cotangents of the inputs ``leaves`` as values of their types: zeros where
    nothing flowed, a 0-d result as the NumPy scalar NumPy gives."""
    return [
        zeros_of(get_aval(x).strip_weak_type()) if c is None else as_numpy_scalar(c)
        for c, x in zip(cts, leaves, strict=True)
    ]


def _output_cotangent(ct: Any, aval: ShapedArray | None) -> Any:
    """A cotangent given for an output of type ``aval`` (``None``: the output is not
    tracked, or has no derivative), as the tape takes it."""
    if aval is None or ct is None or type(ct) is Zero:
        return None
    ct_aval = get_aval(ct)
    if ct_aval.shape != aval.shape:
        raise ValueError(
            f"vjp: cotangent of shape {ct_aval.shape} for an output of shape {aval.shape}"
        )
    return ct if ct_aval.dtype == aval.dtype else convert_element_type(ct, aval.dtype)


def vjp(fun: Callable, *primals: Any, has_aux: bool = False):
    """Reverse-mode derivative: ``(out, vjp_fn)`` (``(out, vjp_fn, aux)`` with
    ``has_aux``), where ``vjp_fn(cotangent)`` returns one cotangent per primal.
    ``vjp_fn`` may be called any number of times.

    >>> import functrans.numpy as fnp
    >>> y, pullback = vjp(fnp.multiply, 2.0, 3.0)
    >>> [float(c) for c in pullback(1.0)]
    [3.0, 2.0]
    """
    name = f"vjp({fun_name(fun)})"
    p_leaves, p_tree = tree_flatten(tuple(primals))
    weak = weak_inputs(p_leaves)
    p_leaves = [as_input(x, "vjp") for x in p_leaves]
    flat, out_tree_of = flatten_fun(fun, p_tree, has_aux, name)
    result, trace, in_slots = run_on_tape(flat, p_leaves, name, weak=weak)
    outs, aux = result if has_aux else (result, None)
    out_tree = out_tree_of()
    # Cotangents flow from the tracked outputs with a derivative (not from integers).
    out_avals = [get_aval(o.primal) if trace.tracks(o) else None for o in outs]
    out_avals = [a if a is not None and is_float(a) else None for a in out_avals]

    def vjp_fn(cotangent: Any) -> tuple:
        ct_leaves, ct_tree = tree_flatten(cotangent)
        if ct_tree != out_tree:
            raise ValueError(
                f"vjp: the cotangent's structure {ct_tree} differs from the output's {out_tree}"
            )
        pairs = zip(ct_leaves, out_avals, strict=True)
        cts = [_output_cotangent(as_input(c, "vjp"), a) for c, a in pairs]
        return tree_unflatten(p_tree, _materialize(trace.pull(outs, cts, in_slots), p_leaves))

    out = tree_unflatten(out_tree, [trace.primal(o) for o in outs])
    if has_aux:
        return out, vjp_fn, tree_map(trace.primal, aux)
    return out, vjp_fn


def value_and_grad(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    allow_int: bool = False,
) -> Callable:
    """A function returning ``(fun(*args), gradient)``; with ``has_aux``,
    ``((value, aux), gradient)``. See ``grad``."""
    return _value_and_grad(fun, argnums, has_aux, allow_int, f"value_and_grad({fun_name(fun)})")


def _value_and_grad(
    fun: Callable, argnums: int | Sequence[int], has_aux: bool, allow_int: bool, name: str
) -> Callable:
    nums = argnums_tuple(name, "argnums", argnums)
    single = isinstance(argnums, int)

    @functools.wraps(fun)
    def value_and_grad_fun(*args: Any, **kwargs: Any):
        positions, leaves, tree = differentiable_leaves(name, args, nums, allow_int)
        weak = weak_inputs(leaves)
        leaves = [to_numpy_scalar(x) for x in leaves]
        flat = argnums_partial(fun, args, positions, tree, kwargs)
        result, trace, in_slots = run_on_tape(flat, leaves, name, weak=weak)
        out, aux = split_aux(name, result) if has_aux else (result, None)
        primal = trace.primal(out)
        _check_scalar_output(name, primal)
        value = as_numpy_scalar(to_numpy_scalar(primal))  # never a Python number
        seed = np.ones((), value.dtype)
        grads = tree_unflatten(tree, _materialize(trace.pull([out], [seed], in_slots), leaves))
        grads = grads[0] if single else tuple(grads)
        if has_aux:
            return (value, tree_map(trace.primal, aux)), grads
        return value, grads

    return value_and_grad_fun


def grad(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    allow_int: bool = False,
) -> Callable:
    """The gradient of a scalar-valued ``fun`` with respect to argument ``argnums``
    (a tuple of ints gives a tuple of gradients). Arguments may be pytrees; each
    gradient has its argument's structure, shapes and dtypes.

    >>> import functrans.numpy as fnp
    >>> grad(lambda x: fnp.sum(x ** 2))(np.array([1.0, 2.0]))
    array([2., 4.])
    """
    value_and_grad_fun = _value_and_grad(fun, argnums, has_aux, allow_int, f"grad({fun_name(fun)})")

    @functools.wraps(fun)
    def grad_fun(*args: Any, **kwargs: Any):
        (_, aux), g = (
            value_and_grad_fun(*args, **kwargs)
            if has_aux
            else ((None, None), value_and_grad_fun(*args, **kwargs)[1])
        )
        return (g, aux) if has_aux else g

    return grad_fun


def _check_scalar_output(name: str, out: Any) -> None:
    try:
        aval = get_aval(out)
    except TypeError:
        raise TypeError(
            f"{name}: the function must return a scalar array, got {type(out).__name__}"
        ) from None
    if aval.shape != ():
        raise TypeError(
            f"{name}: the function must return a scalar (shape ()), got an output of shape "
            f"{aval.shape}; reduce it (e.g. .sum()) or use jacrev/vjp for non-scalar outputs"
        )
    if not is_float(aval):
        raise TypeError(f"{name}: the output must be a float, got dtype {aval.dtype.name}")
