"""``functrans.lax``: the primitive-level API.

Strict versions of the NumPy operations (operands of one shape and dtype, static
axes), one function per primitive, as in ``jax.lax``. Structured control flow
(``cond``, ``while_loop``, ``fori_loop``, ``scan``) lives here too.
"""

from functrans.control_flow import cond, fori_loop, scan, switch, while_loop  # noqa: F401
from functrans.primitives import *  # noqa: F403
from functrans.primitives import all_primitives  # noqa: F401
