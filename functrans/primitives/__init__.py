"""The primitive table: every primitive with its implementation, shape rule,
derivative rules and batching rule, grouped by family.

The functions here are the primitive-level API (``functrans.lax``): strict about
shapes and dtypes, with no implicit broadcasting except of rank-0 operands.
"""

from functrans.core import Primitive, registered_primitives
from functrans.primitives.arithmetic import *  # noqa: F403
from functrans.primitives.elementwise import *  # noqa: F403
from functrans.primitives.indexing import *  # noqa: F403
from functrans.primitives.linalg import *  # noqa: F403
from functrans.primitives.reductions import *  # noqa: F403
from functrans.primitives.special import *  # noqa: F403
from functrans.primitives.structural import *  # noqa: F403


def all_primitives() -> list[Primitive]:
    """Every primitive of the table, from the registry (the test suite checks each has
    all its rules).

    The control-flow primitives (``cond``, ``while``, ``scan``) hold sub-jaxprs in their
    parameters and have a whole ``reverse`` rule rather than per-operand ``vjp`` rules;
    ``functrans.control_flow.control_flow_primitives()`` lists them."""
    return [p for p in registered_primitives() if p.module.startswith(__name__ + ".")]
