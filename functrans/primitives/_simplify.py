"""The optimizer's rewrites of a primitive, written where the primitive is defined.

A *simplify rule* (``prim.def_simplify(rule)``) looks at one equation, whose
operands are already renamed, and ``producers``, the equations that produced the
variables before it. It returns None (keep the equation), an atom that replaces its
output, or a list of equations whose last one writes the original output.

A *negation sink* (``prim.def_rule("negation_sink", NegationSink(...))``) says how a
negated operand moves through the primitive, so that ``sink_negations`` can carry
the ``-g`` that reverse mode writes for every subtrahend down to an addition, a
literal or another negation that absorbs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from functrans.core import Primitive
from functrans.ir import Atom, JaxprEqn, Literal, Var

__all__ = [
    "SIGN_INTO_LITERAL",
    "SIGN_PASSES_THROUGH",
    "NegationSink",
    "Producers",
    "new_eqn",
]

# The equation that produced each variable so far, as a simplify rule sees it.
Producers = Mapping[Var, JaxprEqn]


def new_eqn(
    prim: Primitive, invars: Sequence[Atom], params: dict, out: Var | None = None
) -> JaxprEqn:
    """A new single-output equation; its output is ``out`` or a fresh variable."""
    if out is None:
        out = Var(prim.abstract_eval(*[a.aval for a in invars], **params))
    return JaxprEqn(prim, invars, [out], params)


# What ``NegationSink.rewrite`` returns: an atom that is the output, or the equation
# to write instead, as ``(primitive, operands, negate)`` (``negate``: its result is
# negated).
Rewrite = Atom | tuple[Primitive, list[Atom], bool]


class NegationSink(NamedTuple):
    """How a negation moves through a primitive.

    ``absorbs(eqn)``: whether the equation takes a negated operand for free (an
    addition, a product with a literal); a negation moves only along a chain that
    ends in one. ``rewrite(eqn, operands, negated)`` is called with the operands
    flagged in ``negated`` stripped of their negation. ``negation``: the primitive
    is ``-x`` itself, where a chain starts.
    """

    absorbs: Callable[[JaxprEqn], bool]
    rewrite: Callable[[JaxprEqn, list[Atom], list[bool]], Rewrite]
    negation: bool = False


def _sign_comes_out(eqn: JaxprEqn, operands: list[Atom], negated: list[bool]) -> Rewrite:
    """An operator odd in each operand: ``f(-x, y) = -f(x, y)``; a literal operand
    takes the sign (``2 * -y`` is ``-2 * y``)."""
    negate = sum(negated) % 2 == 1
    for i, a in enumerate(operands):
        if negate and type(a) is Literal:
            operands[i], negate = Literal(-a.val, a.aval), False
    return eqn.primitive, operands, negate


# Moves and sums of elements: the sign passes through to the result.
SIGN_PASSES_THROUGH = NegationSink(lambda eqn: False, _sign_comes_out)

# Products and quotients: the sign passes through, and a literal operand absorbs it.
SIGN_INTO_LITERAL = NegationSink(
    lambda eqn: any(type(a) is Literal for a in eqn.invars), _sign_comes_out
)
