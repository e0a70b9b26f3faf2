"""The public way to extend functrans: new primitives with all their rules, and custom
derivative rules for Python functions.

A primitive is a name plus rules in slots (``impl``, ``abstract_eval``, ``jvp``,
``vjp``, ``batch``, ``lowering``...), each set once where the primitive is defined.
The helpers here write the common shapes of rules in one line each; rules are
written with functrans operations, so derivatives of derivatives and batches of
derivatives need no extra code. ``docs/extending.md`` walks through ``erf``.

>>> import numpy as np, functrans as ft
>>> from functrans import extend
>>> cube_p, cube = extend.unary_primitive(
...     "cube_example", lambda x: x**3, lambda ans, x: 3.0 * x * x, doc="x ** 3")
>>> float(ft.grad(ft.grad(cube))(2.0))  # d2/dx2 x**3 = 6x
12.0
>>> ft.vmap(cube)(np.arange(3.0))
array([0., 1., 8.])
>>> extend.check_grads(cube, (np.array([0.5, -1.5]),), order=2)
>>> _ = cube_p.def_lowering(extend.expression(lambda args, eqn, out: f"{args[0]} ** 3"))
>>> print(ft.jit(cube).source(np.ones(2)))
def jitted(a):
    b = a ** 3
    return (b,)
"""

from functrans.core import Primitive, ShapedArray, Zero, registered_primitives
from functrans.primitives._lowering import (
    Lowering,
    LoweringContext,
    alias,
    call_impl,
    dtype_source,
    expression,
    ufunc,
    view,
)
from functrans.primitives._rules import (
    OperandRules,
    Reciprocal,
    batch_size,
    batch_unary_passthrough,
    def_linear,
    def_zero_derivative,
    elementwise_abstract_eval,
    instantiate,
    scalar_like,
)
from functrans.primitives.arithmetic import (
    add_tangents,
    batch_elementwise,
    binary_primitive,
    def_bilinear,
    def_elementwise_derivatives,
    unary_primitive,
)
from functrans.primitives.structural import (
    broadcast_batched,
    expand_reduced,
    move_axis,
    reduction_primitive,
    sum_to_shape,
)
from functrans.test_util import check_grads, check_jvp, check_vjp
from functrans.transforms.autodiff.custom import custom_jvp, custom_vjp

__all__ = [
    "Lowering",
    "LoweringContext",
    "OperandRules",
    "Primitive",
    "Reciprocal",
    "ShapedArray",
    "Zero",
    "add_tangents",
    "alias",
    "batch_elementwise",
    "batch_size",
    "batch_unary_passthrough",
    "binary_primitive",
    "broadcast_batched",
    "call_impl",
    "check_grads",
    "check_jvp",
    "check_vjp",
    "custom_jvp",
    "custom_vjp",
    "def_bilinear",
    "def_elementwise_derivatives",
    "def_linear",
    "def_zero_derivative",
    "dtype_source",
    "elementwise_abstract_eval",
    "expand_reduced",
    "expression",
    "instantiate",
    "move_axis",
    "reduction_primitive",
    "registered_primitives",
    "scalar_like",
    "sum_to_shape",
    "ufunc",
    "unary_primitive",
    "view",
]
