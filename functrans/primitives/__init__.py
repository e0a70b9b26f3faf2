"""The primitive table: every primitive with its implementation, shape rule,
derivative rules and batching rule, grouped by family.

The functions here are the primitive-level API (``functrans.lax``): strict about
shapes and dtypes, with no implicit broadcasting except of rank-0 operands.
"""

from functrans.core import Primitive
from functrans.primitives import _rules, elementwise, linalg, reductions, structural  # noqa: I001
from functrans.primitives.elementwise import *  # noqa: F403
from functrans.primitives.linalg import *  # noqa: F403
from functrans.primitives.reductions import *  # noqa: F403
from functrans.primitives.structural import *  # noqa: F403

# The rule helpers apply these primitives; bind them now that every family is loaded.
_rules.add_p = elementwise.add_p
_rules.mul_p = elementwise.mul_p
_rules.neg_p = elementwise.neg_p
_rules.reduce_sum_p = reductions.reduce_sum_p
_rules.broadcast_in_dim_p = structural.broadcast_in_dim_p
_rules.transpose_p = structural.transpose_p


def all_primitives() -> list[Primitive]:
    """Every primitive defined in the table (the test suite checks each has all rules).

    The control-flow primitives (``cond``, ``while``, ``scan``) hold sub-jaxprs in their
    parameters and have a whole ``reverse`` rule rather than per-operand ``vjp`` rules;
    ``functrans.control_flow.control_flow_primitives()`` lists them."""
    found = {}
    for module in (elementwise, structural, reductions, linalg):
        for value in vars(module).values():
            if isinstance(value, Primitive):
                found[value.name] = value
    return list(found.values())
