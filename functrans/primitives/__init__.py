"""The primitive table: every primitive with its implementation, shape rule,
derivative rules and batching rule, grouped by family.

The functions here are the primitive-level API (``functrans.lax``): strict about
shapes and dtypes, with no implicit broadcasting except of rank-0 operands.
"""

from functrans.core import Primitive
from functrans.primitives import elementwise, linalg, reductions, structural
from functrans.primitives.elementwise import *  # noqa: F403
from functrans.primitives.linalg import *  # noqa: F403
from functrans.primitives.reductions import *  # noqa: F403
from functrans.primitives.structural import *  # noqa: F403


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
