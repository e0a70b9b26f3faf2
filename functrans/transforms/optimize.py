"""Jaxpr-to-jaxpr passes. Each is a small function from a jaxpr to a jaxpr that
computes the same outputs."""

from __future__ import annotations

from functrans.ir import Jaxpr, JaxprEqn, Var
from functrans.primitives import broadcast_in_dim_p

__all__ = ["compose_broadcasts", "dce", "simplify_for_display"]


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


def simplify_for_display(jaxpr: Jaxpr) -> Jaxpr:
    """What ``make_jaxpr`` shows: broadcasts composed, dead code dropped."""
    return dce(compose_broadcasts(jaxpr))
