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

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from functrans.core import Primitive
from functrans.ir import ClosedJaxpr, Jaxpr, JaxprEqn, Literal, Var
from functrans.primitives import neg_p
from functrans.primitives._simplify import new_eqn
from functrans.transforms.jaxpr_passes import (
    Atom,
    compose_broadcasts,
    dce,
    partition_known,
    prune_consts,
    simplify_for_display,
    uniform_consts,
)
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


def simplify(jaxpr: Jaxpr) -> Jaxpr:
    """Algebraic simplification of what autodiff and vmap emit, by each primitive's
    ``simplify`` rule (``functrans.primitives._simplify``): ``x * 1``, ``x + 0``,
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
        rule = eqn.primitive.simplify
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

    def emit(eqn: JaxprEqn, prim: Primitive, invars: list[Atom], negate: bool) -> None:
        out = eqn.outvars[0]
        if not negate:
            eqns.append(JaxprEqn(prim, invars, [out], eqn.params))
            return
        inner = JaxprEqn(prim, invars, [Var(out.aval)], eqn.params)
        eqns.extend([inner, new_eqn(neg_p, inner.outvars, {}, out)])
        if out in absorbable:
            negated[out] = inner.outvars[0]

    for eqn in jaxpr.eqns:
        invars = _subst(eqn.invars, env)
        sink = eqn.primitive.rules.get("negation_sink")
        signs = [type(a) is Var and a in negated for a in invars]
        if sink is None or not any(signs):
            if invars != eqn.invars:
                eqn = JaxprEqn(eqn.primitive, invars, eqn.outvars, eqn.params)
            eqns.append(eqn)
            if sink is not None and sink.negation and eqn.outvars[0] in absorbable:
                negated[eqn.outvars[0]] = invars[0]
            continue
        moved = True
        plain = [negated[a] if sign else a for a, sign in zip(invars, signs, strict=True)]
        result = sink.rewrite(eqn, plain, signs)
        if isinstance(result, tuple):
            emit(eqn, *result)
        else:  # -(-x)
            env[eqn.outvars[0]] = result
    if not moved:
        return jaxpr
    return Jaxpr(jaxpr.constvars, jaxpr.invars, _subst(jaxpr.outvars, env), eqns)


def _absorbable(jaxpr: Jaxpr, uses: Mapping[Var, int]) -> set[Var]:
    """Single-use variables whose negation would be absorbed downstream: operands of
    an addition, subtraction or negation, of a product with a literal, or of a sink
    whose own output is absorbable."""
    found: set[Var] = set()
    for eqn in reversed(jaxpr.eqns):
        sink = eqn.primitive.rules.get("negation_sink")
        if sink is not None and (eqn.outvars[0] in found or sink.absorbs(eqn)):
            found.update(a for a in eqn.invars if type(a) is Var and uses.get(a, 0) == 1)
    return found


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
            eqn.primitive.rules.get("foldable", True)
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


def _call_param(prim: Primitive, calls: Collection[Primitive] | None) -> str | None:
    if calls is None or prim in calls:
        return prim.call_param
    return None


def inline_calls(closed: ClosedJaxpr, calls: Collection[Primitive] | None = None) -> ClosedJaxpr:
    """Replace each equation of a call primitive in ``calls`` (by default every
    primitive with a ``call_param``: the param holding its ``ClosedJaxpr``, whose
    invars are the call's operands) by the equations of its jaxpr, recursively."""
    jaxpr = closed.jaxpr
    if not any(_call_param(e.primitive, calls) for e in jaxpr.eqns):
        return closed
    constvars, consts = list(jaxpr.constvars), list(closed.consts)
    eqns: list[JaxprEqn] = []

    def copy(source: Sequence[JaxprEqn], env: dict[Var, Atom], fresh: bool) -> None:
        for eqn in source:
            invars = _subst(eqn.invars, env)
            param = _call_param(eqn.primitive, calls)
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
# The pipeline
# ---------------------------------------------------------------------------


def optimize(closed: ClosedJaxpr, rounds: int = 4) -> ClosedJaxpr:
    """Fold constants, simplify, sink negations, merge common subexpressions and drop
    dead code until the program stops shrinking."""
    closed = uniform_consts(closed)
    for _ in range(rounds):
        size = len(closed.jaxpr.eqns)
        closed = fold_constants(closed)
        jaxpr = dce(cse(sink_negations(simplify(compose_broadcasts(closed.jaxpr)))))
        closed = ClosedJaxpr(jaxpr, closed.consts)
        if len(jaxpr.eqns) == size:
            break
    return prune_consts(closed)
