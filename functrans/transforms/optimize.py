"""Jaxpr-to-jaxpr passes. Each is a small function from a jaxpr to a jaxpr that
computes the same outputs; ``optimize`` runs them in order until nothing changes.

Passes that only look at the program's structure take and return a ``Jaxpr``;
passes that read constant values (``fold_constants``, ``uniform_consts``,
``inline_calls``, ``prune_consts``) take and return a ``ClosedJaxpr``.

Every pass preserves derivatives as well as values (``stop_gradient`` is kept), so
the optimized jaxpr of a ``jit`` call can itself be differentiated and batched.

>>> import numpy as np, functrans as ft
>>> closed = ft.make_jaxpr(lambda x: -(-x) * 1.0 + 0.0)(np.ones(3))
>>> print(optimize(closed))
{ lambda ; a:f64[3]. let
  in (a,) }
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from functrans.core import Primitive, ShapedArray
from functrans.ir import ClosedJaxpr, Jaxpr, JaxprEqn, Literal, Var
from functrans.primitives import (
    add_p,
    broadcast_in_dim_p,
    convert_element_type_p,
    div_p,
    integer_pow_p,
    mul_p,
    neg_p,
    reduce_sum_p,
    reshape_p,
    select_p,
    sub_p,
    transpose_p,
)
from functrans.transforms.jaxpr_passes import (
    Atom,
    compose_broadcasts,
    dce,
    partition_known,
    prune_consts,
    simplify_for_display,
    uniform_consts,
)
from functrans.transforms.jaxpr_passes import new_eqn as _eqn
from functrans.transforms.jaxpr_passes import subst as _subst

__all__ = [
    "compose_broadcasts",
    "cse",
    "dce",
    "fold_constants",
    "inline_calls",
    "optimize",
    "partition_known",
    "prune_consts",
    "simplify",
    "simplify_for_display",
    "sink_negations",
    "uniform_consts",
]


def _has_sub_jaxpr(params: dict) -> bool:
    return any(
        isinstance(v, (Jaxpr, ClosedJaxpr))
        or isinstance(v, (tuple, list))
        and any(isinstance(u, (Jaxpr, ClosedJaxpr)) for u in v)
        for v in params.values()
    )


# ---------------------------------------------------------------------------
# Dead code, common subexpressions, broadcasts
# ---------------------------------------------------------------------------


def _atom_key(a: Atom) -> Any:
    return a if type(a) is Var else ("literal", a.aval, repr(a.val))


def cse(jaxpr: Jaxpr) -> Jaxpr:
    """Common-subexpression elimination: an equation that repeats an earlier one (same
    primitive, operands and params) reuses the earlier result."""
    env: dict[Var, Atom] = {}
    seen: dict[Any, JaxprEqn] = {}
    eqns = []
    for eqn in jaxpr.eqns:
        invars = _subst(eqn.invars, env)
        try:
            key = (eqn.primitive, tuple(map(_atom_key, invars)), tuple(sorted(eqn.params.items())))
            earlier = seen.get(key)
        except TypeError:  # an unhashable param: never merged
            key, earlier = None, None
        if earlier is not None:
            env.update(zip(eqn.outvars, earlier.outvars, strict=True))
            continue
        if invars != eqn.invars:
            eqn = JaxprEqn(eqn.primitive, invars, eqn.outvars, eqn.params)
        if key is not None:
            seen[key] = eqn
        eqns.append(eqn)
    if not env:
        return jaxpr
    return Jaxpr(jaxpr.constvars, jaxpr.invars, _subst(jaxpr.outvars, env), eqns)


# ---------------------------------------------------------------------------
# Algebraic simplification
# ---------------------------------------------------------------------------
# A rule looks at one equation (operands already renamed) and the equations that
# produced its operands. It returns None (keep the equation), an atom that replaces
# its output, or a list of equations whose last one writes the original output.


def _scalar_value(a: Atom, producers: Mapping[Var, JaxprEqn]) -> Any:
    """The value of a scalar literal or of a broadcast of one; otherwise None."""
    if type(a) is Literal:
        return a.val
    eqn = producers.get(a)
    if eqn is not None and eqn.primitive is broadcast_in_dim_p and type(eqn.invars[0]) is Literal:
        return eqn.invars[0].val
    return None


def _is_value(a: Atom, producers: Mapping[Var, JaxprEqn], target: int) -> bool:
    value = _scalar_value(a, producers)
    return value is not None and not isinstance(value, complex) and value == target


def _forward(x: Atom, out: Var) -> Atom | list[JaxprEqn] | None:
    """Make ``out`` be ``x``: the atom itself when the types agree, a broadcast when ``x``
    is a scalar standing for a full array, else None (leave the equation alone)."""
    xa, oa = x.aval, out.aval
    if xa.dtype != oa.dtype or (xa.weak_type and not oa.weak_type):
        return None
    if xa.shape == oa.shape:
        return x
    if xa.shape == ():
        return [_eqn(broadcast_in_dim_p, [x], dict(shape=oa.shape, broadcast_dimensions=()), out)]
    return None


def _simplify_add(eqn, producers):
    (x, y), (out,) = eqn.invars, eqn.outvars
    if _is_value(y, producers, 0):
        return _forward(x, out)
    if _is_value(x, producers, 0):
        return _forward(y, out)
    return None


def _simplify_sub(eqn, producers):
    (x, y), (out,) = eqn.invars, eqn.outvars
    if _is_value(y, producers, 0):
        return _forward(x, out)
    if _is_value(x, producers, 0) and y.aval.shape == out.aval.shape:
        return [_eqn(neg_p, [y], {}, out)]
    return None


def _simplify_mul(eqn, producers):
    (x, y), (out,) = eqn.invars, eqn.outvars
    if _is_value(y, producers, 1):
        return _forward(x, out)
    if _is_value(x, producers, 1):
        return _forward(y, out)
    return None


def _simplify_div(eqn, producers):
    (x, y), (out,) = eqn.invars, eqn.outvars
    return _forward(x, out) if _is_value(y, producers, 1) else None


def _simplify_neg(eqn, producers):
    (x,), (out,) = eqn.invars, eqn.outvars
    inner = producers.get(x)
    if inner is not None and inner.primitive is neg_p:
        return _forward(inner.invars[0], out)
    return None


def _simplify_integer_pow(eqn, producers):
    return _forward(eqn.invars[0], eqn.outvars[0]) if eqn.params["y"] == 1 else None


def _simplify_transpose(eqn, producers):
    (x,), (out,) = eqn.invars, eqn.outvars
    perm = eqn.params["permutation"]
    inner = producers.get(x)
    if inner is not None and inner.primitive is transpose_p:
        first = inner.params["permutation"]
        x, perm = inner.invars[0], tuple(first[p] for p in perm)
    if perm == tuple(range(len(perm))):
        return _forward(x, out)
    if x is not eqn.invars[0]:
        return [_eqn(transpose_p, [x], dict(permutation=perm), out)]
    return None


def _simplify_reshape(eqn, producers):
    (x,), (out,) = eqn.invars, eqn.outvars
    inner = producers.get(x)
    if inner is not None and inner.primitive is reshape_p:
        x = inner.invars[0]
    if x.aval.shape == out.aval.shape:
        return _forward(x, out)
    if x is not eqn.invars[0]:
        return [_eqn(reshape_p, [x], dict(new_sizes=out.aval.shape), out)]
    return None


def _simplify_broadcast(eqn, producers):
    (x,), (out,) = eqn.invars, eqn.outvars
    dims = eqn.params["broadcast_dimensions"]
    if x.aval.shape == out.aval.shape and dims == tuple(range(len(dims))):
        return _forward(x, out)
    inner = producers.get(x)
    if inner is not None and inner.primitive is reshape_p:
        src = inner.invars[0]
        new_dims = _unit_reshape_dims(src.aval.shape, x.aval.shape, dims, len(out.aval.shape))
        if new_dims is not None:
            params = dict(shape=out.aval.shape, broadcast_dimensions=new_dims)
            return [_eqn(broadcast_in_dim_p, [src], params, out)]
    return None


def _unit_reshape_dims(src_shape, mid_shape, dims, out_rank) -> tuple[int, ...] | None:
    """Broadcast dimensions for ``src`` when ``mid = reshape(src)`` only adds or drops
    axes of size 1 and ``mid`` is broadcast with ``dims``; None if there are none."""
    if [n for n in src_shape if n != 1] != [n for n in mid_shape if n != 1]:
        return None
    targets = iter(dims[j] for j, n in enumerate(mid_shape) if n != 1)
    big = [next(targets) if n != 1 else None for n in src_shape]
    result, prev = [], -1
    for i, t in enumerate(big):
        if t is None:  # a unit axis of src: any free output axis in order will do
            limit = next((u for u in big[i + 1 :] if u is not None), out_rank)
            t = prev + 1
            if t >= limit:
                return None
        result.append(t)
        prev = t
    return tuple(result)


def _simplify_convert(eqn, producers):
    (x,), (out,) = eqn.invars, eqn.outvars
    same = x.aval.dtype == eqn.params["new_dtype"]
    return _forward(x, out) if same and x.aval.weak_type == out.aval.weak_type else None


def _simplify_select(eqn, producers):
    _, x, y = eqn.invars
    return _forward(x, eqn.outvars[0]) if x is y else None


def _simplify_reduce_sum(eqn, producers):
    """``reduce_sum`` of a broadcast sums the small operand and scales it by the number
    of copies, instead of summing the materialised broadcast."""
    (x,), (out,) = eqn.invars, eqn.outvars
    axes = eqn.params["axes"]
    if not axes:
        return _forward(x, out)
    bcast = producers.get(x)
    if bcast is None or bcast.primitive is not broadcast_in_dim_p:
        return None
    src = bcast.invars[0]
    shape, dims = bcast.params["shape"], bcast.params["broadcast_dimensions"]
    dtype = out.aval.dtype
    if dtype.kind not in "iufc":
        return None
    src_axis = {d: i for i, d in enumerate(dims)}
    factor, src_axes = 1, []
    for a in axes:
        i = src_axis.get(a)
        if i is not None:
            src_axes.append(i)
        if i is None or src.aval.shape[i] != shape[a]:
            factor *= shape[a]
    eqns = []
    y = src
    if src_axes:
        eqns.append(_eqn(reduce_sum_p, [y], dict(axes=tuple(sorted(src_axes)))))
        y = eqns[-1].outvars[0]
    kept_out = [d for d in range(len(shape)) if d not in axes]
    new_dims = tuple(kept_out.index(d) for i, d in enumerate(dims) if i not in src_axes)
    out_shape = out.aval.shape
    if y.aval.shape != out_shape or new_dims != tuple(range(len(new_dims))):
        eqns.append(
            _eqn(broadcast_in_dim_p, [y], dict(shape=out_shape, broadcast_dimensions=new_dims))
        )
        y = eqns[-1].outvars[0]
    if factor != 1:
        scale = Literal(dtype.type(factor), ShapedArray((), dtype, out.aval.weak_type))
        eqns.append(_eqn(mul_p, [y, scale], {}))
    if not eqns:
        return _forward(y, out)
    last = eqns[-1]
    eqns[-1] = JaxprEqn(last.primitive, last.invars, [out], last.params)
    return eqns


_SIMPLIFY = {
    add_p: _simplify_add,
    sub_p: _simplify_sub,
    mul_p: _simplify_mul,
    div_p: _simplify_div,
    neg_p: _simplify_neg,
    integer_pow_p: _simplify_integer_pow,
    transpose_p: _simplify_transpose,
    reshape_p: _simplify_reshape,
    broadcast_in_dim_p: _simplify_broadcast,
    convert_element_type_p: _simplify_convert,
    select_p: _simplify_select,
    reduce_sum_p: _simplify_reduce_sum,
}


def simplify(jaxpr: Jaxpr) -> Jaxpr:
    """Algebraic simplification of what autodiff and vmap emit: ``x * 1``, ``x + 0``,
    ``x - 0``, ``x / 1``, ``-(-x)``, transposes of transposes, reshapes
    of reshapes, no-op reshapes, broadcasts and dtype conversions, ``select(p, x, x)``,
    and ``reduce_sum`` of a broadcast (a sum of the operand, scaled)."""
    env: dict[Var, Atom] = {}
    producers: dict[Var, JaxprEqn] = {}
    eqns: list[JaxprEqn] = []
    changed = False
    for eqn in jaxpr.eqns:
        invars = _subst(eqn.invars, env)
        if invars != eqn.invars:
            eqn = JaxprEqn(eqn.primitive, invars, eqn.outvars, eqn.params)
            changed = True
        rule = _SIMPLIFY.get(eqn.primitive)
        result = None if rule is None else rule(eqn, producers)
        if result is None:
            new = [eqn]
        elif isinstance(result, list):
            new, changed = result, True
        else:
            env[eqn.outvars[0]] = result
            changed = True
            continue
        for e in new:
            for v in e.outvars:
                producers[v] = e
        eqns.extend(new)
    if not changed:
        return jaxpr
    return Jaxpr(jaxpr.constvars, jaxpr.invars, _subst(jaxpr.outvars, env), eqns)


# ---------------------------------------------------------------------------
# Sinking negations
# ---------------------------------------------------------------------------


def _use_counts(jaxpr: Jaxpr) -> dict[Var, int]:
    uses: dict[Var, int] = {}
    for a in [a for e in jaxpr.eqns for a in e.invars] + list(jaxpr.outvars):
        if type(a) is Var:
            uses[a] = uses.get(a, 0) + 1
    return uses


def sink_negations(jaxpr: Jaxpr) -> Jaxpr:
    """Move a negation that has one use past the multiplication, division, sum,
    reshape, broadcast or transpose that uses it, until an addition or subtraction
    absorbs it (``x + -y`` is ``x - y``), a scalar literal takes it (``2 * -y`` is
    ``-2 * y``), or another negation cancels it. Reverse mode writes ``-g`` for the
    cotangent of a subtrahend, so gradients have such chains (the cross-entropy's
    through its log-sum-exp). A negation moves only along a chain that ends in such an
    absorber, so it never lands on a larger array for nothing. The values are the
    same but for the sign of a zero sum (``-x + -y`` is ``-0.0`` where ``-(x + y)``
    is ``0.0`` for ``x = 0.0, y = -0.0``)."""
    uses = _use_counts(jaxpr)
    absorbable = _absorbable(jaxpr, uses)
    negated: dict[Var, Atom] = {}  # output of a single-use neg -> its operand
    env: dict[Var, Atom] = {}
    eqns: list[JaxprEqn] = []
    moved = False

    def emit(eqn: JaxprEqn, invars: list[Atom], prim: Primitive, negate: bool) -> None:
        out = eqn.outvars[0]
        if not negate:
            eqns.append(JaxprEqn(prim, invars, [out], eqn.params))
            return
        inner = JaxprEqn(prim, invars, [Var(out.aval)], eqn.params)
        eqns.extend([inner, _eqn(neg_p, inner.outvars, {}, out)])
        if out in absorbable:
            negated[out] = inner.outvars[0]

    for eqn in jaxpr.eqns:
        invars = _subst(eqn.invars, env)
        prim = eqn.primitive
        signs = [type(a) is Var and a in negated for a in invars]
        if prim not in _NEGATION_SINKS or not any(signs):
            if invars != eqn.invars:
                eqn = JaxprEqn(prim, invars, eqn.outvars, eqn.params)
            eqns.append(eqn)
            if prim is neg_p and eqn.outvars[0] in absorbable:
                negated[eqn.outvars[0]] = invars[0]
            continue
        moved = True
        plain = [negated[a] if sign else a for a, sign in zip(invars, signs, strict=True)]
        if prim is neg_p:  # -(-x)
            env[eqn.outvars[0]] = plain[0]
        elif prim is add_p or prim is sub_p:
            x, y = plain
            neg_x, neg_y = signs[0], signs[1] != (prim is sub_p)  # x ± y as x + (±y)
            if neg_x and neg_y:
                emit(eqn, [x, y], add_p, negate=True)  # -x - y = -(x + y)
            elif neg_x:
                emit(eqn, [y, x], sub_p, negate=False)  # -x + y = y - x
            else:
                emit(eqn, [x, y], sub_p if neg_y else add_p, negate=False)
        else:  # mul, div, sums and moves of elements: the sign comes out
            negate = sum(signs) % 2 == 1
            for i, a in enumerate(plain):
                if negate and type(a) is Literal:
                    plain[i], negate = Literal(-a.val, a.aval), False
            emit(eqn, plain, prim, negate)
    if not moved:
        return jaxpr
    return Jaxpr(jaxpr.constvars, jaxpr.invars, _subst(jaxpr.outvars, env), eqns)


def _absorbable(jaxpr: Jaxpr, uses: Mapping[Var, int]) -> set[Var]:
    """Single-use variables whose negation would be absorbed downstream: operands of
    an addition, subtraction or negation, of a product with a literal, or of a sink
    whose own output is absorbable."""
    found: set[Var] = set()
    for eqn in reversed(jaxpr.eqns):
        prim = eqn.primitive
        if prim not in _NEGATION_SINKS:
            continue
        takes = prim in (add_p, sub_p, neg_p) or eqn.outvars[0] in found
        if prim in (mul_p, div_p):
            takes = takes or any(type(a) is Literal for a in eqn.invars)
        if takes:
            found.update(a for a in eqn.invars if type(a) is Var and uses.get(a, 0) == 1)
    return found


_NEGATION_SINKS = {
    *(neg_p, add_p, sub_p, mul_p, div_p, reduce_sum_p),
    *(reshape_p, broadcast_in_dim_p, transpose_p),
}


# ---------------------------------------------------------------------------
# Passes that read constants
# ---------------------------------------------------------------------------


def fold_constants(closed: ClosedJaxpr, max_size: int = 1 << 16) -> ClosedJaxpr:
    """Evaluate equations whose operands are all literals or constants. Scalar results
    become literals, small arrays (up to ``max_size`` elements) new constants.
    Broadcasts are kept: they cost nothing at run time and their results may be big."""
    jaxpr = closed.jaxpr
    known: dict[Var, Any] = dict(zip(jaxpr.constvars, closed.consts, strict=True))
    env: dict[Var, Atom] = {}
    constvars, consts = list(jaxpr.constvars), list(closed.consts)
    eqns = []
    for eqn in jaxpr.eqns:
        invars = _subst(eqn.invars, env)
        foldable = (
            eqn.primitive is not broadcast_in_dim_p
            and eqn.primitive.impl is not None
            and all(type(a) is Literal or a in known for a in invars)
            and all(v.aval.size <= max_size for v in eqn.outvars)
            and not _has_sub_jaxpr(eqn.params)
        )
        if foldable:
            values = [a.val if type(a) is Literal else known[a] for a in invars]
            try:
                with np.errstate(all="ignore"):
                    out = eqn.primitive.impl(*values, **eqn.params)
            except Exception:  # leave it to run time, which reports it properly
                foldable = False
        if not foldable:
            if invars != eqn.invars:
                eqn = JaxprEqn(eqn.primitive, invars, eqn.outvars, eqn.params)
            eqns.append(eqn)
            continue
        outs = out if eqn.primitive.multiple_results else [out]
        for v, value in zip(eqn.outvars, outs, strict=True):
            value = np.asarray(value, dtype=v.aval.dtype)
            if v.aval.shape == ():
                env[v] = Literal(value[()], v.aval)
            else:
                known[v] = value
                constvars.append(v)
                consts.append(value)
    if len(eqns) == len(jaxpr.eqns):
        return closed
    outvars = _subst(jaxpr.outvars, env)
    return prune_consts(ClosedJaxpr(Jaxpr(constvars, jaxpr.invars, outvars, eqns), consts))


def inline_calls(closed: ClosedJaxpr, calls: Mapping[Primitive, str]) -> ClosedJaxpr:
    """Replace each equation of a call primitive in ``calls`` (primitive -> name of the
    param holding its ``ClosedJaxpr``, whose invars are the call's operands) by the
    equations of its jaxpr, recursively."""
    jaxpr = closed.jaxpr
    if not any(e.primitive in calls for e in jaxpr.eqns):
        return closed
    constvars, consts = list(jaxpr.constvars), list(closed.consts)
    eqns: list[JaxprEqn] = []

    def copy(source: Sequence[JaxprEqn], env: dict[Var, Atom], fresh: bool) -> None:
        for eqn in source:
            invars = _subst(eqn.invars, env)
            param = calls.get(eqn.primitive)
            if param is None:
                outvars = eqn.outvars
                if fresh:
                    outvars = [Var(v.aval) for v in eqn.outvars]
                    env.update(zip(eqn.outvars, outvars, strict=True))
                eqns.append(JaxprEqn(eqn.primitive, invars, outvars, eqn.params))
                continue
            inner: ClosedJaxpr = eqn.params[param]
            inner_env: dict[Var, Atom] = dict(zip(inner.jaxpr.invars, invars, strict=True))
            for v, value in zip(inner.jaxpr.constvars, inner.consts, strict=True):
                inner_env[v] = Var(v.aval)
                constvars.append(inner_env[v])
                consts.append(value)
            copy(inner.jaxpr.eqns, inner_env, True)
            results = _subst(inner.jaxpr.outvars, inner_env)
            env.update(zip(eqn.outvars, results, strict=True))

    env: dict[Var, Atom] = {}
    copy(jaxpr.eqns, env, False)
    new = Jaxpr(constvars, jaxpr.invars, _subst(jaxpr.outvars, env), eqns)
    return prune_consts(ClosedJaxpr(new, consts))


# ---------------------------------------------------------------------------
# Known / unknown partition (the forward / backward split of reverse mode)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------


def optimize(
    closed: ClosedJaxpr, inline: Mapping[Primitive, str] | None = None, rounds: int = 4
) -> ClosedJaxpr:
    """Inline the calls in ``inline``, then fold constants, simplify, sink negations,
    merge common subexpressions and drop dead code until the program stops
    shrinking."""
    if inline:
        closed = inline_calls(closed, inline)
    closed = uniform_consts(closed)
    for _ in range(rounds):
        size = len(closed.jaxpr.eqns)
        closed = fold_constants(closed)
        jaxpr = dce(cse(sink_negations(simplify(compose_broadcasts(closed.jaxpr)))))
        closed = ClosedJaxpr(jaxpr, closed.consts)
        if len(jaxpr.eqns) == size:
            break
    return prune_consts(closed)
