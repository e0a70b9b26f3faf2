"""Automatic differentiation: forward mode (JVP tracing) and reverse mode (a tape of
per-primitive VJP rules), and the user-facing ``jvp``, ``linearize``, ``vjp``,
``grad``, ``value_and_grad``.

Reverse mode records, for every primitive applied to a tracked value, the primals
its VJP rules need; the backward pass walks the tape once in reverse. Rules are
written with functrans operations and run under whatever trace is current when the
backward pass runs, so the backward pass is itself differentiable (``grad(grad(f))``),
batchable (``vmap(grad(f))``) and stageable (``jit(grad(f))``). Primal values are
concrete under ``grad`` itself, so Python control flow on them works.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from functrans.core import (
    PYTHON_SCALARS,
    Primitive,
    ShapedArray,
    Trace,
    Tracer,
    Zero,
    call_with_trace,
    get_aval,
    missing_rule,
    new_trace,
)
from functrans.primitives import add_p
from functrans.transforms.staging import DynamicJaxprTrace, as_array_arg
from functrans.tree_util import tree_flatten, tree_map, tree_unflatten

__all__ = ["grad", "jvp", "linearize", "value_and_grad", "vjp"]


# ---------------------------------------------------------------------------
# Forward mode
# ---------------------------------------------------------------------------


class PrimalTracer(Tracer):
    """A tracer whose value is a concrete-or-outer ``primal`` (forward and reverse mode).

    The NumPy layer asks for shapes and dtypes on every operation: they are read from
    the primal directly instead of building an aval.
    """

    __slots__ = ("primal", "weak")

    @property
    def aval(self) -> ShapedArray:
        aval = get_aval(self.primal)
        return aval.update(weak_type=True) if self.weak else aval

    @property
    def shape(self) -> tuple[int, ...]:
        return self.primal.shape

    @property
    def dtype(self) -> np.dtype:
        return self.primal.dtype

    @property
    def weak_type(self) -> bool:
        # ``weak``: an input given as a Python scalar. Its primal is a NumPy scalar,
        # but like the Python number it takes the dtype of the arrays it meets.
        primal = self.primal
        return self.weak or (isinstance(primal, Tracer) and primal.weak_type)


class JVPTracer(PrimalTracer):
    __slots__ = ("tangent",)

    def __init__(self, trace: JVPTrace, primal: Any, tangent: Any, weak: bool = False):
        self._trace = trace
        self.primal = primal
        self.tangent = tangent
        self.weak = weak


class JVPTrace(Trace):
    __slots__ = ()

    def process_primitive(self, prim: Primitive, args: Sequence[Any], params: dict) -> Any:
        primals, tangents, any_tangent, any_weak = [], [], False, False
        for x in args:
            if type(x) is JVPTracer and x._trace is self:
                primals.append(x.primal)
                tangents.append(x.tangent)
                any_tangent = True
                any_weak |= x.weak
            else:
                primals.append(x)
                tangents.append(Zero(get_aval(x)))
        if not any_tangent or not prim.differentiable:
            out = self.parent.process_primitive(prim, primals, params)
            return _keep_weak(prim, args, params, out) if any_weak else out
        if prim.jvp is None:
            raise missing_rule(prim, "jvp", "forward-mode (JVP)", "prim.def_jvp(rule)")
        out, tangent = call_with_trace(self.parent, prim.jvp, primals, tangents, **params)
        if prim.multiple_results:
            weak = _weak_outputs(prim, args, params) if any_weak else [False] * len(out)
            return [self._wrap(*ptw) for ptw in zip(out, tangent, weak, strict=True)]
        return self._wrap(out, tangent, any_weak and _weak_outputs(prim, args, params)[0])

    def _wrap(self, primal: Any, tangent: Any, weak: bool = False) -> Any:
        if type(tangent) is Zero:
            return _python_number(primal) if weak else primal
        return JVPTracer(self, primal, tangent, weak)

    def concretize(self, tracer: Tracer, conversion: str) -> Any:
        return tracer.primal


def _python_number(value: Any) -> Any:
    """A weakly typed concrete scalar as the Python number that behaves so in NumPy."""
    if isinstance(value, (np.ndarray, np.generic)) and value.ndim == 0:
        return value.item()
    return value


def _keep_weak(prim: Primitive, args: Sequence[Any], params: dict, out: Any) -> Any:
    """``out`` of a primitive computed without derivative (no tangent, or none
    defined), with its weakly typed scalars as Python numbers."""
    weak = _weak_outputs(prim, args, params)
    if prim.multiple_results:
        return [_python_number(o) if w else o for o, w in zip(out, weak, strict=True)]
    return _python_number(out) if weak[0] else out


def _weak_outputs(prim: Primitive, args: Sequence[Any], params: dict) -> list[bool]:
    """Which outputs are weakly typed, by the primitive's own type rule, as staging
    types them (``s * 2.0`` of a Python number ``s`` is weak, ``x32 * s`` is not).
    Asked only when a weakly typed value is among the operands."""
    out = prim.abstract_eval(*[get_aval(x) for x in args], **params)
    return [a.weak_type for a in out] if prim.multiple_results else [out.weak_type]


def _scalar(x: Any) -> Any:
    """A 0-d array as the NumPy scalar NumPy itself would give."""
    return x[()] if type(x) is np.ndarray and x.ndim == 0 else x


def _zeros(aval: ShapedArray) -> Any:
    """Zeros of ``aval``: a NumPy scalar for shape ``()``, as NumPy gives for scalars."""
    return np.zeros(aval.shape, aval.dtype)[()]


def _jvp_flat(
    fun: Callable, primals: list, tangents: list, name: str, weak: Sequence[bool] = ()
) -> tuple[list, list]:
    weak = weak or [False] * len(primals)
    with new_trace(JVPTrace, name) as trace:
        inputs = [
            JVPTracer(trace, p, t, w) for p, t, w in zip(primals, tangents, weak, strict=True)
        ]
        outs = fun(*inputs)
        primals_out, tangents_out = [], []
        for x in outs:
            if type(x) is JVPTracer and x._trace is trace:
                primals_out.append(x.primal)
                tangents_out.append(x.tangent)
            else:
                primals_out.append(x)
                tangents_out.append(Zero(get_aval(x)))
    return primals_out, tangents_out


def _zero_for_integers(primals: Sequence[Any], tangents: Sequence[Any]) -> list[Any]:
    """Integer inputs have no derivative: whatever their tangent, it is zero."""
    return [
        t if get_aval(p).dtype.kind in "fc" else Zero(get_aval(p).strip_weak_type())
        for p, t in zip(primals, tangents, strict=True)
    ]


def _check_tangent(p: Any, t: Any, what: str) -> Any:
    weak = type(t) in (int, float, complex)  # a Python scalar adopts the primal's dtype
    t = _as_input(t, what)
    pa, ta = get_aval(p), get_aval(t)
    if pa.shape != ta.shape:
        raise ValueError(f"{what}: tangent of shape {ta.shape} for a primal of shape {pa.shape}")
    if pa.dtype.kind in "fc" and ta.dtype != pa.dtype:
        if weak:
            return pa.dtype.type(t)
        raise TypeError(
            f"{what}: tangent of dtype {ta.dtype.name} for a primal of dtype {pa.dtype.name}; "
            "a tangent has its primal's dtype"
        )
    return t


def jvp(fun: Callable, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward-mode derivative: ``(fun(*primals), J @ tangents)``.

    >>> import functrans.numpy as fnp
    >>> y, t = jvp(fnp.sin, (0.0,), (2.0,))
    >>> float(y), float(t)
    (0.0, 2.0)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples or lists")
    p_leaves, p_tree = tree_flatten(tuple(primals))
    t_leaves, t_tree = tree_flatten(tuple(tangents))
    if p_tree != t_tree:
        raise ValueError(f"jvp: primals {p_tree} and tangents {t_tree} differ in structure")
    weak = _weak(p_leaves)
    p_leaves = [_as_input(x, "jvp") for x in p_leaves]
    t_leaves = [_check_tangent(p, t, "jvp") for p, t in zip(p_leaves, t_leaves, strict=True)]
    t_leaves = _zero_for_integers(p_leaves, t_leaves)
    out_tree_box = []
    flat = _flatten_fun(fun, p_tree, out_tree_box)
    out_p, out_t = _jvp_flat(flat, p_leaves, t_leaves, f"jvp({_name(fun)})", weak)
    out_t = [_zeros(t.aval) if type(t) is Zero else _scalar(t) for t in out_t]
    out_tree = out_tree_box[0]
    return tree_unflatten(out_tree, [_scalar(p) for p in out_p]), tree_unflatten(out_tree, out_t)


def linearize(fun: Callable, *primals: Any) -> tuple[Any, Callable]:
    """``(fun(*primals), f_jvp)`` where ``f_jvp(*tangents)`` applies the Jacobian at
    ``primals`` without re-running ``fun``: its tangent computation is staged once.

    >>> import functrans.numpy as fnp
    >>> y, f_jvp = linearize(fnp.exp, 0.0)
    >>> float(f_jvp(3.0))
    3.0
    """
    from functrans.ir import ClosedJaxpr, Jaxpr, eval_jaxpr
    from functrans.transforms.jaxpr_passes import dce

    p_leaves, p_tree = tree_flatten(tuple(primals))
    weak = _weak(p_leaves)
    p_leaves = [_as_input(x, "linearize") for x in p_leaves]
    out_tree_box = []
    flat = _flatten_fun(fun, p_tree, out_tree_box)
    name = f"linearize({_name(fun)})"
    with new_trace(DynamicJaxprTrace, name) as staging:
        tangent_in = [staging.new_arg(get_aval(p).strip_weak_type()) for p in p_leaves]
        out_p, out_t = _jvp_flat(
            flat, p_leaves, _zero_for_integers(p_leaves, tangent_in), name, weak
        )
        out_t = [_zeros(t.aval) if type(t) is Zero else t for t in out_t]
        # A call primitive (jit, cond, scan...) computes primal and tangent outputs in
        # one staged equation, so its primal outputs are staged too.
        staged = [i for i, p in enumerate(out_p) if isinstance(p, Tracer)]
        jaxpr, consts = staging.to_jaxpr(out_t + [out_p[i] for i in staged])
    if staged:  # evaluate them once (they do not depend on the tangents)
        zeros = [_zeros(v.aval) for v in jaxpr.invars]
        values = eval_jaxpr(jaxpr, consts, *zeros)[len(out_t) :]
        for i, v in zip(staged, values, strict=True):
            out_p[i] = v
        jaxpr = dce(Jaxpr(jaxpr.constvars, jaxpr.invars, jaxpr.outvars[: len(out_t)], jaxpr.eqns))
    linear = ClosedJaxpr(jaxpr, consts)
    out_tree = out_tree_box[0]

    def f_jvp(*tangents: Any) -> Any:
        t_leaves, t_tree = tree_flatten(tuple(tangents))
        if t_tree != p_tree:
            raise ValueError(f"linearize: tangents {t_tree} do not match primals {p_tree}")
        pairs = zip(p_leaves, t_leaves, strict=True)
        t_leaves = [_check_tangent(p, t, "linearize") for p, t in pairs]
        outs = eval_jaxpr(linear.jaxpr, linear.consts, *t_leaves)
        return tree_unflatten(out_tree, [_scalar(o) for o in outs])

    f_jvp.jaxpr = linear  # type: ignore[attr-defined]
    return tree_unflatten(out_tree, [_scalar(p) for p in out_p]), f_jvp


# ---------------------------------------------------------------------------
# Reverse mode
# ---------------------------------------------------------------------------


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
            return _keep_weak(prim, args, params, out) if any_weak else out
        if prim.reverse is not None:
            outs, backward = prim.reverse(self.parent, primals, tuple(positions), params)
        elif prim.vjp is None:
            raise missing_rule(prim, "grad", "reverse-mode (VJP)", "prim.def_vjp(*rules)")
        else:
            outs = self.parent.process_primitive(prim, primals, params)
            backward = functools.partial(
                _apply_vjp_rules, prim.vjp, tuple(positions), primals, outs, params
            )
        weak = _weak_outputs(prim, args, params) if any_weak else None
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
                ReverseTracer(self, o, first + k, weak[k]) if _is_float(o) else o
                for k, o in enumerate(outs)
            ]
        return ReverseTracer(self, outs, first, weak[0])

    def concretize(self, tracer: Tracer, conversion: str) -> Any:
        return tracer.primal

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


def _is_float(x: Any) -> bool:
    return get_aval(x).dtype.kind in "fc"


def _apply_vjp_rules(rules, positions, primals, ans, params, g) -> list[Any]:
    return [None if rules[i] is None else rules[i](g, ans, *primals, **params) for i in positions]


def _accumulate(total: Any, ct: Any) -> Any:
    # A value used several times receives the sum of its uses' cotangents.
    if total is None:
        return ct
    return add_p.bind(total, ct)


def _vjp_flat(fun: Callable, primals: list, name: str, weak: Sequence[bool] = ()):
    """Run ``fun`` under a new tape; returns (outputs, trace, input slots)."""
    weak = weak or [False] * len(primals)
    with new_trace(ReverseTrace, name) as trace:
        inputs = [trace.new_input(p, w) for p, w in zip(primals, weak, strict=True)]
        outs = fun(*inputs)
    return outs, trace, [x.slot for x in inputs]


def _strip(trace: ReverseTrace, x: Any) -> Any:
    return x.primal if type(x) is ReverseTracer and x._trace is trace else x


def _pullback(trace: ReverseTrace, outs: list, in_slots: list, in_avals: list):
    out_avals = [get_aval(_strip(trace, o)) for o in outs]

    def pull(out_cts: list) -> list:
        seeds = {}
        for o, ct, aval in zip(outs, out_cts, out_avals, strict=True):
            if type(ct) is Zero or ct is None:
                continue
            if type(o) is ReverseTracer and o._trace is trace and aval.dtype.kind in "fc":
                # (An integer output has no derivative: its cotangent flows nowhere.)
                ct_aval = get_aval(ct)
                if ct_aval.shape != aval.shape:
                    raise ValueError(
                        f"vjp: cotangent of shape {ct_aval.shape} for an output of shape "
                        f"{aval.shape}"
                    )
                ct = ct if ct_aval.dtype == aval.dtype else _cast(ct, aval.dtype)
                # The same tracer may be returned twice: its cotangents add up.
                seeds[o.slot] = _accumulate(seeds.get(o.slot), ct)
        cts = trace.backward(seeds, in_slots) if seeds else [None] * len(in_slots)
        return [_zeros(a) if c is None else _scalar(c) for c, a in zip(cts, in_avals, strict=True)]

    return pull


def _cast(x: Any, dtype: np.dtype) -> Any:
    from functrans.primitives import convert_element_type

    return convert_element_type(x, dtype)


def vjp(fun: Callable, *primals: Any, has_aux: bool = False):
    """Reverse-mode derivative: ``(out, vjp_fn)`` (``(out, vjp_fn, aux)`` with
    ``has_aux``), where ``vjp_fn(cotangent)`` returns one cotangent per primal.
    ``vjp_fn`` may be called any number of times.

    >>> import functrans.numpy as fnp
    >>> y, pullback = vjp(fnp.multiply, 2.0, 3.0)
    >>> [float(c) for c in pullback(1.0)]
    [3.0, 2.0]
    """
    p_leaves, p_tree = tree_flatten(tuple(primals))
    weak = _weak(p_leaves)
    p_leaves = [_as_input(x, "vjp") for x in p_leaves]
    out_tree_box: list = []
    flat = _flatten_fun(fun, p_tree, out_tree_box, has_aux=has_aux)
    outs, trace, in_slots = _vjp_flat(flat, p_leaves, f"vjp({_name(fun)})", weak)
    if has_aux:
        outs, aux = outs
    out_tree = out_tree_box[0]
    pull = _pullback(trace, outs, in_slots, [get_aval(p).strip_weak_type() for p in p_leaves])

    def vjp_fn(cotangent: Any) -> tuple:
        ct_leaves, ct_tree = tree_flatten(cotangent)
        if ct_tree != out_tree:
            raise ValueError(
                f"vjp: the cotangent's structure {ct_tree} differs from the output's {out_tree}"
            )
        return tree_unflatten(p_tree, pull([_as_input(c, "vjp") for c in ct_leaves]))

    out = tree_unflatten(out_tree, [_strip(trace, o) for o in outs])
    if has_aux:
        return out, vjp_fn, tree_map(lambda x: _strip(trace, x), aux)
    return out, vjp_fn


def value_and_grad(
    fun: Callable,
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    allow_int: bool = False,
) -> Callable:
    """A function returning ``(fun(*args), gradient)``; with ``has_aux``,
    ``((value, aux), gradient)``. See ``grad``."""
    return _value_and_grad(fun, argnums, has_aux, allow_int, f"value_and_grad({_name(fun)})")


def _value_and_grad(
    fun: Callable, argnums: int | Sequence[int], has_aux: bool, allow_int: bool, name: str
) -> Callable:

    @functools.wraps(fun)
    def value_and_grad_fun(*args: Any, **kwargs: Any):
        nums = _check_argnums(name, argnums, len(args))
        diff_args = [args[i] for i in nums]
        leaves, tree = tree_flatten(diff_args)
        weak = _weak(leaves)
        leaves = [_check_differentiable(name, _as_input(x, name), allow_int) for x in leaves]

        def flat_fun(*flat):
            full = list(args)
            for i, a in zip(nums, tree_unflatten(tree, flat), strict=True):
                full[i] = a
            return fun(*full, **kwargs)

        with new_trace(ReverseTrace, name) as trace:
            inputs = [trace.new_input(x, w) for x, w in zip(leaves, weak, strict=True)]
            result = flat_fun(*inputs)
        if has_aux:
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                raise TypeError(f"{name}: with has_aux=True, fun must return a pair (out, aux)")
            out, aux = result
            aux = tree_map(lambda x: _strip(trace, x), aux)
        else:
            out = result
        _check_scalar_output(name, _strip(trace, out))
        value = _scalar(_as_input(_strip(trace, out), name))  # never a Python number
        if type(out) is ReverseTracer and out._trace is trace:
            seed = np.ones((), get_aval(value).dtype)
            cts = trace.backward({out.slot: seed}, [x.slot for x in inputs])
        else:
            cts = [None] * len(inputs)
        grads = [
            _zeros(get_aval(x).strip_weak_type()) if c is None else _scalar(c)
            for c, x in zip(cts, leaves, strict=True)
        ]
        grads = tree_unflatten(tree, grads)
        grads = grads[0] if isinstance(argnums, int) else tuple(grads)
        return ((value, aux) if has_aux else value), grads

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
    value_and_grad_fun = _value_and_grad(fun, argnums, has_aux, allow_int, f"grad({_name(fun)})")

    @functools.wraps(fun)
    def grad_fun(*args: Any, **kwargs: Any):
        (value, aux), g = (
            value_and_grad_fun(*args, **kwargs)
            if has_aux
            else ((None, None), value_and_grad_fun(*args, **kwargs)[1])
        )
        return (g, aux) if has_aux else g

    return grad_fun


# ---------------------------------------------------------------------------
# Argument checking and flattening
# ---------------------------------------------------------------------------


def _name(fun: Callable) -> str:
    return getattr(fun, "__name__", type(fun).__name__)


def _weak(leaves: Sequence[Any]) -> list[bool]:
    return [type(x) in (int, float, complex) for x in leaves]


def _as_input(x: Any, what: str) -> Any:
    x = as_array_arg(x, what)
    if isinstance(x, PYTHON_SCALARS):
        return np.asarray(x)[()]
    return x


def _check_argnums(name: str, argnums: int | Sequence[int], nargs: int) -> tuple[int, ...]:
    if isinstance(argnums, (int, np.integer)):
        nums: tuple = (argnums,)
    elif isinstance(argnums, (tuple, list)):
        nums = tuple(argnums)
    else:
        nums = (argnums,)
    for n in nums:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            raise TypeError(f"{name}: argnums must be an int or a tuple of ints, got {argnums!r}")
        if not -nargs <= n < nargs:
            raise ValueError(
                f"{name}: argnums {argnums} out of range for a call with {nargs} positional "
                "arguments"
            )
    return tuple(int(n) % nargs for n in nums)


def _check_differentiable(name: str, x: Any, allow_int: bool) -> Any:
    dtype = get_aval(x).dtype
    if dtype.kind not in "fc" and not allow_int:
        raise TypeError(
            f"{name}: differentiating with respect to an input of dtype {dtype.name} "
            f"(shape {get_aval(x).shape}); use a float input, or pass allow_int=True"
        )
    return x


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
    if aval.dtype.kind not in "fc":
        raise TypeError(f"{name}: the output must be a float, got dtype {aval.dtype.name}")


def _flatten_fun(fun: Callable, in_tree, out_tree_box: list, has_aux: bool = False) -> Callable:
    """``fun`` over pytrees as a function of flat leaves returning flat leaves; the
    output structure is stored in ``out_tree_box``."""

    def flat_fun(*leaves: Any) -> Any:
        args = tree_unflatten(in_tree, leaves)
        out = fun(*args)
        if has_aux:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError("has_aux=True: the function must return a pair (out, aux)")
            out, aux = out
            out_leaves, out_tree = tree_flatten(out)
            out_tree_box.append(out_tree)
            return out_leaves, aux
        out_leaves, out_tree = tree_flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    return flat_fun
