"""Which buffers the generated code may write into: liveness and ownership.

An elementwise result is written (``out=``) into the buffer of a temporary that dies
at that operation, or into a dead temporary of the same type, which saves
allocations on long elementwise chains. Only arrays the generated code allocated
itself are ever reused (*owned*): never an input, a constant, or memory a view, an
alias or an ``impl`` call may still share (*pinned*).
"""

from __future__ import annotations

import math

from functrans.ir import Jaxpr, JaxprEqn, Var

__all__ = ["REUSE_MIN_SIZE", "Buffers"]

# Temporaries smaller than this are not worth an ``out=`` argument.
REUSE_MIN_SIZE = 64


class Buffers:
    """The buffer plan of one jaxpr, built while its equations are written in order."""

    def __init__(self, jaxpr: Jaxpr) -> None:
        self.num_eqns = len(jaxpr.eqns)
        self.last_use: dict[Var, int] = {}  # the index of the last equation reading it
        self.users: dict[Var, list[int]] = {}  # every read, by equation index
        for i, eqn in enumerate(jaxpr.eqns):
            for a in eqn.invars:
                if type(a) is Var:
                    self.last_use[a] = i
                    self.users.setdefault(a, []).append(i)
        for a in jaxpr.outvars:  # outputs live past the last equation
            if type(a) is Var:
                self.last_use[a] = self.num_eqns
                self.users.setdefault(a, []).append(self.num_eqns)
        self.owned: set[Var] = set()  # buffers this function allocated
        self.pinned: set[Var] = set()  # buffers that a view or alias shares
        self.root: dict[Var, Var] = {}  # view/alias -> the variable owning the memory
        self.pool: dict[tuple, list[Var]] = {}  # dead owned buffers by (shape, dtype)

    def owner(self, v: Var) -> Var:
        """The variable whose buffer ``v`` is (or is a view of)."""
        return self.root.get(v, v)

    def own(self, v: Var) -> None:
        if v.aval.ndim:
            self.owned.add(v)

    def share(self, out: Var, x: Var) -> None:
        """``out`` is ``x`` or a view of it: their memory is never reused."""
        owner = self.owner(x)
        self.root[out] = owner
        self.pinned.add(owner)

    def pin(self, v: Var) -> None:
        """Something outside the plan (an ``impl`` call) may keep ``v``'s memory."""
        self.pinned.add(self.owner(v))

    def only_use(self, v: Var) -> int | None:
        """The index of the equation that is the only read of ``v``."""
        users = self.users.get(v, [])
        if len(users) != 1 or users[0] >= self.num_eqns:
            return None
        return users[0]

    def _reusable(self, v: Var, out: Var) -> bool:
        return (
            v in self.owned
            and v not in self.pinned
            and v.aval.shape == out.aval.shape
            and v.aval.dtype == out.aval.dtype
            and not v.aval.weak_type
        )

    def take(self, eqn: JaxprEqn, i: int, operand: bool) -> Var | None:
        """A dead owned variable whose buffer equation ``i`` may write its result into:
        one of its operands dying here if ``operand``, else one that died before."""
        out = eqn.outvars[0]
        aval = out.aval
        if aval.ndim == 0 or aval.weak_type or math.prod(aval.shape) < REUSE_MIN_SIZE:
            return None
        if any(type(a) is Var and a.aval.weak_type for a in eqn.invars):
            return None
        if operand:
            for a in eqn.invars:
                if type(a) is Var and self.last_use.get(a) == i and self._reusable(a, out):
                    self.owned.discard(a)
                    return a
        free = self.pool.get((aval.shape, aval.dtype))
        if free:
            return free.pop()
        return None

    def release(self, eqn: JaxprEqn, i: int) -> None:
        """Equation ``i`` is written: the owned operands it read last are free."""
        for a in set(eqn.invars):
            if type(a) is Var and self.last_use.get(a) == i and a in self.owned:
                self.owned.discard(a)
                if a not in self.pinned and a.aval.ndim and not a.aval.weak_type:
                    self.pool.setdefault((a.aval.shape, a.aval.dtype), []).append(a)
