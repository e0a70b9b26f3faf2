"""``functrans.numpy``: the NumPy API, composed from functrans primitives.

Outside any transform every function here is a thin layer over the NumPy function
of the same name and returns exactly what NumPy returns. When an argument is a
tracer, the function canonicalises its arguments (NEP 50 dtype promotion, explicit
``broadcast_in_dim`` for implicit broadcasting, normalised axes) and binds
primitives, so the transforms see a small, strict set of operations.

Tracers get NumPy's operators and methods from this package, and NumPy's dispatch
protocols (``__array_ufunc__``, ``__array_function__``) route plain NumPy calls on
tracers here, so ``np.tanh(x)`` traces exactly like ``fnp.tanh(x)``.

>>> import numpy as np, functrans as ft, functrans.numpy as fnp
>>> float(ft.grad(lambda x: fnp.sum(fnp.tanh(x) ** 2))(np.zeros(3)).sum())
0.0

Beyond the names in the contract, this package also provides ``full_like
empty_like astype shape ndim size flip take take_along_axis tensordot trace
diagonal atleast_1d atleast_2d hstack vstack logical_and logical_or logical_not
floor amax amin any all isfinite isnan isinf floor_divide remainder mod fmod divmod
copy`` (and the operators ``//``, ``%`` and ``divmod`` on traced values).
One known difference from NumPy under tracing: out-of-range traced indices are not
checked.

The modules, each importing only those before it: ``_dtypes`` (dtype names, NEP 50
promotion), ``_abstract_eval`` and ``_dispatch`` (the eager twin of every function,
eager error messages, NumPy's dispatch protocols), ``_operands`` (arguments as
promoted, broadcast operands; axes), the families ``elementwise``, ``reductions``,
``shapes``, ``creation``, ``indexing`` and ``products``, and ``_tracer_methods``.
"""

from functrans.numpy import _tracer_methods
from functrans.numpy._dtypes import (
    bool_,
    complex64,
    complex128,
    dtype,
    e,
    float16,
    float32,
    float64,
    inf,
    int8,
    int16,
    int32,
    int64,
    nan,
    ndarray,
    newaxis,
    pi,
    uint8,
)
from functrans.numpy._dtypes import result_dtype as result_dtype
from functrans.numpy._operands import apply_elementwise as _elementwise  # noqa: F401 (nn.sigmoid)
from functrans.numpy._operands import broadcast_shapes as broadcast_shapes
from functrans.numpy._operands import normalize_axes as normalize_axes
from functrans.numpy._operands import normalize_axis as normalize_axis
from functrans.numpy.creation import (
    arange,
    array,
    asarray,
    astype,
    copy,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    zeros,
    zeros_like,
)
from functrans.numpy.elementwise import (
    abs,
    absolute,
    add,
    arctan,
    clip,
    cos,
    divide,
    divmod,
    equal,
    exp,
    expm1,
    floor,
    floor_divide,
    fmod,
    greater,
    greater_equal,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    not_equal,
    power,
    remainder,
    sign,
    sin,
    sqrt,
    square,
    subtract,
    tan,
    tanh,
    true_divide,
    where,
)
from functrans.numpy.indexing import take, take_along_axis
from functrans.numpy.products import diagonal, dot, einsum, matmul, outer, tensordot, trace
from functrans.numpy.reductions import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    max,
    mean,
    min,
    prod,
    std,
    sum,
    var,
)
from functrans.numpy.shapes import (
    atleast_1d,
    atleast_2d,
    broadcast_to,
    concatenate,
    expand_dims,
    flip,
    hstack,
    moveaxis,
    ndim,
    ravel,
    reshape,
    shape,
    size,
    split,
    squeeze,
    stack,
    swapaxes,
    transpose,
    vstack,
)

_tracer_methods.install()

__all__ = [
    # dtypes and constants
    "bool_",
    "complex64",
    "complex128",
    "dtype",
    "e",
    "float16",
    "float32",
    "float64",
    "inf",
    "int8",
    "int16",
    "int32",
    "int64",
    "nan",
    "ndarray",
    "newaxis",
    "pi",
    "uint8",
    # creation
    "arange",
    "array",
    "asarray",
    "astype",
    "copy",
    "empty",
    "empty_like",
    "eye",
    "full",
    "full_like",
    "linspace",
    "ones",
    "ones_like",
    "zeros",
    "zeros_like",
    # elementwise
    "abs",
    "absolute",
    "add",
    "arctan",
    "clip",
    "cos",
    "divide",
    "divmod",
    "equal",
    "exp",
    "expm1",
    "floor",
    "floor_divide",
    "fmod",
    "greater",
    "greater_equal",
    "isfinite",
    "isinf",
    "isnan",
    "less",
    "less_equal",
    "log",
    "log1p",
    "logical_and",
    "logical_not",
    "logical_or",
    "maximum",
    "minimum",
    "mod",
    "multiply",
    "negative",
    "not_equal",
    "power",
    "remainder",
    "sign",
    "sin",
    "sqrt",
    "square",
    "subtract",
    "tan",
    "tanh",
    "true_divide",
    "where",
    # reductions
    "all",
    "amax",
    "amin",
    "any",
    "argmax",
    "argmin",
    "max",
    "mean",
    "min",
    "prod",
    "std",
    "sum",
    "var",
    # shapes
    "atleast_1d",
    "atleast_2d",
    "broadcast_to",
    "concatenate",
    "expand_dims",
    "flip",
    "hstack",
    "moveaxis",
    "ndim",
    "ravel",
    "reshape",
    "shape",
    "size",
    "split",
    "squeeze",
    "stack",
    "swapaxes",
    "transpose",
    "vstack",
    # indexing
    "take",
    "take_along_axis",
    # linear algebra
    "diagonal",
    "dot",
    "einsum",
    "matmul",
    "outer",
    "tensordot",
    "trace",
]
