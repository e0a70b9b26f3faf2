"""Structured control flow: ``cond``, ``switch``, ``while_loop``, ``fori_loop`` and
``scan`` (exported by ``functrans.lax``).

Each traces its functions once into sub-jaxprs held in the parameters of one
primitive (``cond``, ``while``, ``scan``), whatever the number of iterations, and
gives that primitive a rule for every transform: evaluation, shape checking, JVP,
reverse mode (a whole ``reverse`` rule choosing its residuals, rather than one
``vjp`` rule per operand), and batching.

These primitives are not in ``functrans.primitives.all_primitives()``: that table
holds the first-order array primitives, each tested by records that sample its
operands and compare per-operand ``vjp`` rules with finite differences. A
control-flow primitive's operands are only meaningful together with the sub-jaxprs
in its parameters, so ``control_flow_primitives()`` lists them for their own tests.

>>> import numpy as np, functrans as ft
>>> from functrans.lax import scan
>>> float(ft.grad(lambda w: scan(lambda c, x: (c * w + x, None), 0.0, np.ones(3))[0])(2.0))
5.0
"""

from __future__ import annotations

from functrans.control_flow._cond import cond, cond_p, switch
from functrans.control_flow._scan import scan, scan_p
from functrans.control_flow._while import fori_loop, while_loop, while_p
from functrans.core import Primitive

__all__ = [
    "cond",
    "cond_p",
    "control_flow_primitives",
    "fori_loop",
    "scan",
    "scan_p",
    "switch",
    "while_loop",
    "while_p",
]


def control_flow_primitives() -> list[Primitive]:
    """The control-flow primitives (each with impl, abstract_eval, jvp, reverse, batch)."""
    return [cond_p, while_p, scan_p]
