"""Structural passes over jaxprs that every interpreter may use: dead code,
composed broadcasts, uniform constants, and the known/unknown partition (partial
evaluation) that splits a staged VJP into its forward and backward parts.

The optimizer (``functrans.transforms.jit.passes``) builds on these; ``make_jaxpr``,
``linearize`` and the derived jaxprs of call-like primitives use them directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from functrans.ir import ClosedJaxpr, Jaxpr, JaxprEqn, Literal, Var
from functrans.primitives import broadcast_in_dim_p
from functrans.primitives._simplify import new_eqn

__all__ = [
    "Atom",
    "compose_broadcasts",
    "dce",
    "partition_known",
    "prune_consts",
    "simplify_for_display",
    "subst",
    "uniform_consts",
    "uniform_value",
]

Atom = Var | Literal


def subst(atoms: Sequence[Atom], env: Mapping[Var, Atom]) -> list[Atom]:
    return [env.get(a, a) if type(a) is Var else a for a in atoms]


def dce(jaxpr: Jaxpr) -> Jaxpr:
    """Dead-code elimination: drop equations whose outputs are never used.
    (Every primitive is pure, so an unused result is safe to drop.)"""
    live = {id(v) for v in jaxpr.outvars if type(v) is Var}
    kept: list[JaxprEqn] = []
    for eqn in reversed(jaxpr.eqns):
        if any(id(v) in live for v in eqn.outvars):
            kept.append(eqn)
            live.update(id(v) for v in eqn.invars if type(v) is Var)
    kept.reverse()
    if len(kept) == len(jaxpr.eqns):
        return jaxpr
    return Jaxpr(jaxpr.constvars, jaxpr.invars, jaxpr.outvars, kept)


def compose_broadcasts(jaxpr: Jaxpr) -> Jaxpr:
    """``broadcast_in_dim`` of a ``broadcast_in_dim`` is one ``broadcast_in_dim``.

    This is what makes ``b[:, None] + M`` a single broadcast of ``b``.
    """
    producers: dict[int, JaxprEqn] = {}
    eqns = []
    for eqn in jaxpr.eqns:
        if eqn.primitive is broadcast_in_dim_p:
            src = producers.get(id(eqn.invars[0]))
            if src is not None:
                inner = src.params["broadcast_dimensions"]
                outer = eqn.params["broadcast_dimensions"]
                eqn = JaxprEqn(
                    broadcast_in_dim_p,
                    src.invars,
                    eqn.outvars,
                    dict(
                        shape=eqn.params["shape"],
                        broadcast_dimensions=tuple(outer[d] for d in inner),
                    ),
                )
            producers[id(eqn.outvars[0])] = eqn
        eqns.append(eqn)
    return Jaxpr(jaxpr.constvars, jaxpr.invars, jaxpr.outvars, eqns)


def uniform_value(value: Any) -> Any:
    """The one value every element of a non-empty numeric array holds (a NumPy
    scalar), or None if there is none. NaNs are never uniform: they differ from
    themselves."""
    if not isinstance(value, np.ndarray) or value.size == 0 or value.dtype.kind not in "biufc":
        return None
    flat = value.reshape(-1)
    first = flat[0]
    if flat[-1] != first or not (flat == first).all():
        return None
    if first == 0 and value.dtype.kind in "fc":  # 0.0 and -0.0 compare equal
        parts = (flat.real, flat.imag) if value.dtype.kind == "c" else (flat,)
        if any(np.signbit(p).any() != np.signbit(p).all() for p in parts):
            return None
    return first


def uniform_consts(closed: ClosedJaxpr, kinds: str = "biufc") -> ClosedJaxpr:
    """A constant array whose elements are all equal (the zeros and ones that
    derivative rules create) becomes a broadcast of a scalar literal, which the other
    passes can see through and code generation turns into a scalar."""
    jaxpr = closed.jaxpr
    env: dict[Var, Atom] = {}
    new_eqns, constvars, consts = [], [], []
    for v, value in zip(jaxpr.constvars, closed.consts, strict=True):
        scalar = uniform_value(value) if value.dtype.kind in kinds else None
        if scalar is not None:
            lit = Literal(scalar)
            eqn = new_eqn(
                broadcast_in_dim_p, [lit], dict(shape=value.shape, broadcast_dimensions=())
            )
            new_eqns.append(eqn)
            env[v] = eqn.outvars[0]
        else:
            constvars.append(v)
            consts.append(value)
    if not env:
        return closed
    eqns = new_eqns + [
        JaxprEqn(e.primitive, subst(e.invars, env), e.outvars, e.params) for e in jaxpr.eqns
    ]
    outvars = subst(jaxpr.outvars, env)
    return ClosedJaxpr(Jaxpr(constvars, jaxpr.invars, outvars, eqns), consts)


def prune_consts(closed: ClosedJaxpr) -> ClosedJaxpr:
    """Drop constvars that no equation or output uses."""
    jaxpr = closed.jaxpr
    used = {id(v) for e in jaxpr.eqns for v in e.invars if type(v) is Var}
    used.update(id(v) for v in jaxpr.outvars if type(v) is Var)
    keep = [i for i, v in enumerate(jaxpr.constvars) if id(v) in used]
    if len(keep) == len(jaxpr.constvars):
        return closed
    constvars = [jaxpr.constvars[i] for i in keep]
    return ClosedJaxpr(
        Jaxpr(constvars, jaxpr.invars, jaxpr.outvars, jaxpr.eqns), [closed.consts[i] for i in keep]
    )


def simplify_for_display(closed: ClosedJaxpr) -> ClosedJaxpr:
    """What ``make_jaxpr`` shows: broadcasts composed, dead code dropped, and constants
    of equal elements (the seeds and zeros that derivative rules evaluate while
    tracing) written as the broadcast of one number, as JAX prints them."""
    closed = uniform_consts(closed, kinds="fc")  # index constants stay as they are
    return ClosedJaxpr(dce(compose_broadcasts(closed.jaxpr)), closed.consts)


def partition_known(
    jaxpr: Jaxpr, unknown_ins: Sequence[bool], unknown_outs: Sequence[bool]
) -> tuple[Jaxpr, Jaxpr, int]:
    """Split ``jaxpr`` into the part computable from its known inputs and the rest.

    Returns ``(known, unknown, num_residuals)``. ``known`` takes the constvars and the
    known invars and returns the outputs not marked in ``unknown_outs`` followed by
    the residuals; ``unknown`` takes the same constvars, then the residuals and the
    unknown invars, and returns the outputs marked in ``unknown_outs``. Every
    equation that depends only on known values runs in ``known``.
    """
    unknown = {id(v) for v, u in zip(jaxpr.invars, unknown_ins, strict=True) if u}
    known_eqns, unknown_eqns = [], []
    for eqn in jaxpr.eqns:
        if any(type(v) is Var and id(v) in unknown for v in eqn.invars):
            unknown_eqns.append(eqn)
            unknown.update(id(v) for v in eqn.outvars)
        else:
            known_eqns.append(eqn)
    for v, u in zip(jaxpr.outvars, unknown_outs, strict=True):
        if not u and type(v) is Var and id(v) in unknown:
            raise ValueError("partition_known: an output marked known depends on unknown inputs")
    constvar_ids = {id(v) for v in jaxpr.constvars}
    residuals: dict[int, Var] = {}

    def need(atoms: Sequence[Atom]) -> None:
        for a in atoms:
            if type(a) is Var and id(a) not in unknown and id(a) not in constvar_ids:
                residuals.setdefault(id(a), a)

    for eqn in unknown_eqns:
        need(eqn.invars)
    need([v for v, u in zip(jaxpr.outvars, unknown_outs, strict=True) if u])
    res = list(residuals.values())
    known_outs = [v for v, u in zip(jaxpr.outvars, unknown_outs, strict=True) if not u]
    known_ins = [v for v, u in zip(jaxpr.invars, unknown_ins, strict=True) if not u]
    unknown_ins_vars = [v for v, u in zip(jaxpr.invars, unknown_ins, strict=True) if u]
    known_jaxpr = dce(Jaxpr(jaxpr.constvars, known_ins, known_outs + res, known_eqns))
    unknown_outs_vars = [v for v, u in zip(jaxpr.outvars, unknown_outs, strict=True) if u]
    unknown_jaxpr = dce(
        Jaxpr(jaxpr.constvars, res + unknown_ins_vars, unknown_outs_vars, unknown_eqns)
    )
    return known_jaxpr, unknown_jaxpr, len(res)
