"""``functrans.numpy``: one record per function, every check applied to every record.

A record is ``fun(m, *operands, **params)`` written against a NumPy-like module ``m``
plus a hypothesis strategy for cases (operand shapes with size-0 and size-1 axes,
broadcasting and rank-0 operands, static parameters such as ``axis`` and
``keepdims``) and a value domain. For each case and dtype:

1. eager ``fun(fnp, ...)`` equals ``fun(np, ...)`` in value, dtype and type;
2. ``eval_jaxpr`` of ``make_jaxpr(fun(fnp, ...))`` equals the eager result;
3. the jaxpr typechecks;
4. ``fun(np, ...)`` traced through NumPy's dispatch protocols prints the same jaxpr.

Then: indexing (basic, advanced, mixed, traced indices), the lowering of ``matmul``,
creation under a trace, NumPy interop on tracers, and error messages that name the
operation and every operand shape.

``FNP_EXAMPLES=1000 pytest tests/test_numpy.py -k test_record`` runs a longer search
(the default, 25 examples per record, keeps this file near 15 s).
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import functrans as ft
import functrans.numpy as fnp
from functrans.errors import ConcretizationTypeError
from functrans.ir import typecheck_jaxpr
from functrans.test_util import check_grads
from functrans.tree_util import tree_leaves

SETTINGS = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
F32, F64, I32, I64, BOOL = np.float32, np.float64, np.int32, np.int64, np.bool_
FLOATS = (F32, F64)
NUMERIC = (F32, F64, I32, I64)
ALL = (F32, F64, I32, I64, BOOL)

# ---------------------------------------------------------------------------
# Domains: ``(rng, shape, dtype) -> array``
# ---------------------------------------------------------------------------


def _domain(lo: float, hi: float, int_lo: int = -4, int_hi: int = 5):
    def sample(rng, shape, dtype):
        dtype = np.dtype(dtype)
        if dtype == np.bool_:
            return rng.random(shape) < 0.5
        if dtype.kind in "iu":
            return rng.integers(int_lo, int_hi, shape).astype(dtype)
        return rng.uniform(lo, hi, shape).astype(dtype)

    return sample


real = _domain(-2.0, 2.0)
positive = _domain(0.5, 2.0, 1, 5)
unit = _domain(-0.9, 0.9, 0, 1)


def nonzero(rng, shape, dtype):
    mag = _domain(0.5, 2.0, 1, 4)(rng, shape, dtype)
    if np.dtype(dtype) == np.bool_:
        return np.ones(shape, bool)
    return (mag * rng.choice([-1, 1], shape)).astype(dtype)


def between(rng, shape, dtype):
    # Dividends: floats strictly between integers (see divisors), integers in [-4, 5).
    x = real(rng, shape, dtype)
    if np.dtype(dtype).kind == "f":
        x = (rng.integers(-4, 4, shape) + rng.uniform(0.2, 0.8, shape)).astype(dtype)
    return x


def divisors(rng, shape, dtype):
    # Floats near +-1 and +-2: over dividends from ``between``, x / y stays at least 0.07
    # from the integers where floor division and remainders jump, so finite differences
    # see their derivatives. Integers include 0 (NumPy gives 0 and warns).
    if np.dtype(dtype) == np.bool_:
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-2, 3, shape).astype(dtype)
    return (rng.choice([-2.0, -1.0, 1.0, 2.0], shape) * rng.uniform(1.0, 1.02, shape)).astype(dtype)


def distinct(rng, shape, dtype):
    # No ties, so argmax/argmin/max have one answer in every dtype.
    n = int(np.prod(shape, dtype=np.int64))
    values = rng.permutation(n) - n // 2
    return values.reshape(shape).astype(dtype) if np.dtype(dtype) != np.bool_ else values > 0


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Record:
    name: str
    fun: Callable[..., Any]  # fun(m, *operands, **params)
    cases: st.SearchStrategy  # of (operands, params); an operand is a shape or an array
    domain: Callable = real
    dtypes: tuple = FLOATS
    numpy_dispatch: bool = True  # check 4 applies (np.* on tracers dispatches here)


RECORDS: list[Record] = []


def record(name, fun, cases, **kwargs):
    RECORDS.append(Record(name, fun, cases, **kwargs))


SIDES = st.sampled_from([2, 3, 1, 0, 2, 3, 1])


def shapes(min_dims=0, max_dims=3, sides=SIDES):
    return st.lists(sides, min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def unary(draw, min_dims=0, sides=SIDES, **params):
    return [draw(shapes(min_dims, sides=sides))], dict(params)


@st.composite
def broadcasting(draw, n=2):
    """Mutually broadcastable shapes, including rank 0 and size-0/size-1 axes."""
    result = draw(hnp.mutually_broadcastable_shapes(num_shapes=n, max_dims=3, max_side=3))
    return list(result.input_shapes), {}


@st.composite
def axes(draw, ndim, allow_none=True, allow_tuple=True):
    options = [st.integers(-ndim, ndim - 1)] if ndim else []
    if allow_none:
        options.append(st.none())
    if allow_tuple:
        options.append(
            st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).flatmap(
                lambda ax: st.tuples(*[st.sampled_from([a, a - ndim]) for a in ax])
            )
            if ndim
            else st.just(())
        )
    return draw(st.one_of(options))


@st.composite
def reduction(draw, min_side=0, extra=None):
    shape = draw(shapes(sides=SIDES if min_side == 0 else st.sampled_from([1, 2, 3])))
    params = {"axis": draw(axes(len(shape))), "keepdims": draw(st.booleans())}
    if extra:
        params.update(draw(st.fixed_dictionaries(extra)))
    return [shape], params


def add_unary(name, domain=real, dtypes=FLOATS):
    record(name, lambda m, x: getattr(m, name)(x), unary(), domain=domain, dtypes=dtypes)


for _name in ("exp", "tanh", "sin", "cos", "arctan", "expm1"):
    add_unary(_name, dtypes=ALL)
for _name in ("log", "log1p", "sqrt"):
    add_unary(_name, domain=positive, dtypes=NUMERIC)
add_unary("tan", domain=unit)
for _name in ("negative", "sign"):
    add_unary(_name, dtypes=NUMERIC)
for _name in ("abs", "absolute", "square"):
    add_unary(_name, dtypes=ALL)

for _name in (
    "add",
    "multiply",
    "maximum",
    "minimum",
    "equal",
    "not_equal",
    "less",
    "less_equal",
    "greater",
    "greater_equal",
):
    record(_name, lambda m, x, y, _n=_name: getattr(m, _n)(x, y), broadcasting(), dtypes=ALL)
for _name in ("subtract", "divide", "true_divide"):
    record(
        _name,
        lambda m, x, y, _n=_name: getattr(m, _n)(x, y),
        broadcasting(),
        domain=nonzero,
        dtypes=NUMERIC,
    )
record("power", lambda m, x, y: m.power(x, y), broadcasting(), domain=positive)
record("power_int_scalar", lambda m, x: m.power(x, 3), unary(), dtypes=ALL)
record("power_numpy_int", lambda m, x: x ** np.int64(2), unary(), dtypes=NUMERIC)
record("rpow", lambda m, x: 2.0**x, unary(), dtypes=NUMERIC)
record("square_bool", lambda m, x: m.square(x), unary(), dtypes=(BOOL,))
record("python_scalars", lambda m, x: (x * 2.5 + 1) / 3 - 0.5, unary(), dtypes=ALL[:4])
record("true_divide_int", lambda m, x: m.true_divide(x, 3), unary(), dtypes=(I32, I64))
record("reflected_ops", lambda m, x: 1.0 - 2.0 / x, unary(), domain=nonzero)
record("where", lambda m, c, x, y: m.where(c > 0, x, y), broadcasting(3), dtypes=ALL[:4])

# Floor division and remainders. Integers and booleans (which NumPy divides in int8)
# with zero divisors among them; floats with divisors drawn from ``divisors`` (an array
# operand, cast to the dividend's dtype) so that finite differences stay off the jumps.
# "floor_divide" is not differentiated by test_numpy_transforms (as "floor"), but
# "floordiv_operator" is: its derivatives are zero.


@st.composite
def divisor_cases(draw):
    x_shape, y_shape = draw(broadcasting())[0]
    y = draw(hnp.arrays(np.float64, y_shape, elements=st.sampled_from([-2.0, -1.0, 1.0, 2.0])))
    return [x_shape, y], {}


for _name in ("floor_divide", "remainder", "mod", "fmod", "divmod"):
    record(
        _name + "_int",
        lambda m, x, y, _n=_name: getattr(m, _n)(x, y),
        broadcasting(),
        dtypes=(I32, I64, BOOL),
    )
    record(
        _name,
        lambda m, x, y, _n=_name: getattr(m, _n)(x, y.astype(x.dtype)),
        divisor_cases(),
        domain=between,
    )
for _name, _op in [
    ("floordiv_operator", lambda x, y: x // y),
    ("mod_operator", lambda x, y: x % y),
    ("divmod_builtin", divmod),
]:
    record(
        _name, lambda m, x, y, _op=_op: _op(x, y.astype(x.dtype)), divisor_cases(), domain=between
    )
    record(_name + "_int", lambda m, x, y, _op=_op: _op(x, y), broadcasting(), dtypes=(I32, I64))
record(
    "floordiv_mod_scalars",
    lambda m, x: (x // 2, x % -2, x % 2.0, m.fmod(x, -2), divmod(x, 2)),
    unary(),
    domain=between,
    dtypes=ALL,
)
record(
    "rfloordiv_rmod",
    lambda m, x: (2.5 // x, 2.5 % x, 7 // x, -7 % x, divmod(2.5, x)),
    unary(),
    domain=divisors,
    dtypes=ALL,
)
record("where_scalar", lambda m, x: m.where(x > 0, x, 0.0), unary())
record("clip", lambda m, x: m.clip(x, -0.5, 0.75), unary(), dtypes=NUMERIC)
record("clip_arrays", lambda m, x, lo, hi: m.clip(x, lo, hi), broadcasting(3))
record("clip_method", lambda m, x: x.clip(0.0, None), unary())

for _name in ("sum", "prod"):
    record(_name, lambda m, x, _n=_name, **kw: getattr(m, _n)(x, **kw), reduction(), dtypes=ALL)
    record(
        _name + "_method",
        lambda m, x, _n=_name, **kw: getattr(x, _n)(**kw),
        reduction(),
        dtypes=ALL,
    )
record(
    "sum_dtype",
    lambda m, x, **kw: m.sum(x, **kw),
    reduction(extra={"dtype": st.sampled_from([F32, F64, I64])}),
    dtypes=NUMERIC,
)
record("mean", lambda m, x, **kw: m.mean(x, **kw), reduction(min_side=1), dtypes=ALL)
record("mean_method", lambda m, x, **kw: x.mean(**kw), reduction(min_side=1), dtypes=NUMERIC)
record(
    "mean_dtype",
    lambda m, x, **kw: m.mean(x, dtype=np.float32, **kw),
    reduction(min_side=1),
    dtypes=NUMERIC,
)
for _name in ("var", "std"):
    record(
        _name,
        lambda m, x, _n=_name, **kw: getattr(m, _n)(x, **kw),
        reduction(min_side=1, extra={"ddof": st.sampled_from([0, 1])}),
        dtypes=NUMERIC,
    )
for _name in ("var", "std"):
    record(
        _name + "_method",
        lambda m, x, _n=_name, **kw: getattr(x, _n)(**kw),
        reduction(min_side=1),
        dtypes=NUMERIC,
    )
for _name in ("max", "min", "amax", "amin"):
    record(
        _name,
        lambda m, x, _n=_name, **kw: getattr(m, _n)(x, **kw),
        reduction(min_side=1),
        dtypes=ALL,
    )
record("max_method", lambda m, x, **kw: x.max(**kw), reduction(min_side=1), dtypes=NUMERIC)


def special(rng, shape, dtype):
    x = real(rng, shape, dtype)
    if np.dtype(dtype).kind == "f":
        pick = rng.random(shape)
        x = np.where(pick < 0.2, np.nan, np.where(pick < 0.4, np.inf, x))
        x = np.where(rng.random(shape) < 0.5, -x, x).astype(dtype)
    return x


for _name in ("isnan", "isfinite", "isinf"):
    add_unary(_name, domain=special, dtypes=ALL)
for _name in ("any", "all"):
    record(
        _name,
        lambda m, x, _n=_name, **kw: getattr(m, _n)(x > 0.5, **kw),
        reduction(),
        dtypes=NUMERIC,
    )
    record(
        _name + "_method",
        lambda m, x, _n=_name, **kw: getattr(x, _n)(**kw),
        reduction(),
        dtypes=ALL,
    )


@st.composite
def arg_reduction(draw):
    shape = draw(shapes(sides=st.sampled_from([1, 2, 3])))
    params = {"axis": draw(axes(len(shape), allow_tuple=False)), "keepdims": draw(st.booleans())}
    return [shape], params


for _name in ("argmax", "argmin"):
    record(
        _name,
        lambda m, x, _n=_name, **kw: getattr(m, _n)(x, **kw),
        arg_reduction(),
        domain=distinct,
        dtypes=NUMERIC,
    )
    record(
        _name + "_method",
        lambda m, x, _n=_name, **kw: getattr(x, _n)(**kw),
        arg_reduction(),
        domain=distinct,
        dtypes=NUMERIC,
    )


# --- shapes -----------------------------------------------------------------------------


@st.composite
def reshape_cases(draw):
    shape = draw(shapes(max_dims=4))
    size = int(np.prod(shape))
    factors = [f for f in range(1, size + 1) if size % f == 0] if size else [0, 1, 2]
    new, rest = [], size
    for _ in range(draw(st.integers(0, 3))):
        f = draw(st.sampled_from([f for f in factors if rest and rest % f == 0] or [1]))
        new.append(f)
        rest = rest // f if f else rest
    if size:
        new.append(rest)
        if draw(st.booleans()):
            new[draw(st.integers(0, len(new) - 1))] = -1
    else:
        new.append(0)
    return [shape], {"newshape": tuple(draw(st.permutations(new)))}


record("reshape", lambda m, x, newshape: m.reshape(x, newshape), reshape_cases(), dtypes=ALL)
record("reshape_F", lambda m, x, newshape: m.reshape(x, newshape, order="F"), reshape_cases())
record("reshape_method", lambda m, x, newshape: x.reshape(newshape), reshape_cases())
record("reshape_method_args", lambda m, x, newshape: x.reshape(*newshape), reshape_cases())
record("reshape_keyword", lambda m, x, newshape: m.reshape(x, shape=newshape), reshape_cases())
record("ravel", lambda m, x: m.ravel(x), unary(), dtypes=ALL)
record("ravel_method", lambda m, x: x.ravel(), unary())
record("flatten", lambda m, x: x.flatten(), unary())
record("copy", lambda m, x: m.copy(x), unary(), dtypes=ALL)
record("copy_method", lambda m, x: x.copy(), unary(), dtypes=ALL)


@st.composite
def permutation_cases(draw):
    shape = draw(shapes(max_dims=4))
    perm = draw(st.permutations(range(len(shape))))
    perm = [p - len(shape) if draw(st.booleans()) else p for p in perm]
    return [shape], {"axes": draw(st.sampled_from([None, tuple(perm)]))}


record("transpose", lambda m, x, axes: m.transpose(x, axes), permutation_cases(), dtypes=ALL)
record(
    "transpose_method",
    lambda m, x, axes: x.transpose() if axes is None else x.transpose(*axes),
    permutation_cases(),
)
record("T", lambda m, x: x.T, unary())


@st.composite
def two_axes(draw):
    shape = draw(shapes(min_dims=1, max_dims=4))
    n = len(shape)
    return [shape], {"a": draw(st.integers(-n, n - 1)), "b": draw(st.integers(-n, n - 1))}


record("swapaxes", lambda m, x, a, b: m.swapaxes(x, a, b), two_axes())
record("swapaxes_method", lambda m, x, a, b: x.swapaxes(a, b), two_axes())
record("moveaxis", lambda m, x, a, b: m.moveaxis(x, a, b), two_axes())


@st.composite
def moveaxis_many(draw):
    shape = draw(shapes(min_dims=1, max_dims=4))
    n = len(shape)
    src = draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n))
    dst = draw(
        st.lists(
            st.integers(-n, n - 1), unique_by=lambda a: a % n, min_size=len(src), max_size=len(src)
        )
    )
    return [shape], {"src": tuple(src), "dst": tuple(dst)}


record("moveaxis_many", lambda m, x, src, dst: m.moveaxis(x, src, dst), moveaxis_many())


@st.composite
def expand_cases(draw):
    shape = draw(shapes())
    out_nd = len(shape) + draw(st.integers(1, 2))
    ax = draw(
        st.lists(
            st.integers(-out_nd, out_nd - 1),
            unique_by=lambda a: a % out_nd,
            min_size=out_nd - len(shape),
            max_size=out_nd - len(shape),
        )
    )
    return [shape], {"axis": ax[0] if len(ax) == 1 and draw(st.booleans()) else tuple(ax)}


record("expand_dims", lambda m, x, axis: m.expand_dims(x, axis), expand_cases(), dtypes=ALL)


@st.composite
def squeeze_cases(draw):
    shape = draw(shapes(max_dims=4, sides=st.sampled_from([1, 1, 2, 0])))
    ones = [i for i, n in enumerate(shape) if n == 1]
    axis = draw(
        st.one_of(
            st.none(),
            st.lists(st.sampled_from(ones), unique=True).map(tuple) if ones else st.none(),
        )
    )
    return [shape], {"axis": axis}


record("squeeze", lambda m, x, axis: m.squeeze(x, axis), squeeze_cases())
record("squeeze_method", lambda m, x, axis: x.squeeze(axis), squeeze_cases())


@st.composite
def broadcast_to_cases(draw):
    result = draw(hnp.mutually_broadcastable_shapes(num_shapes=1, max_dims=3, max_side=3))
    return [result.input_shapes[0]], {"shape": result.result_shape}


record(
    "broadcast_to", lambda m, x, shape: m.broadcast_to(x, shape), broadcast_to_cases(), dtypes=ALL
)


@st.composite
def concat_cases(draw):
    base = list(draw(shapes(min_dims=1)))
    axis = draw(st.integers(-len(base), len(base) - 1))
    ops = []
    for _ in range(draw(st.integers(1, 3))):
        s = list(base)
        s[axis] = draw(SIDES)
        ops.append(tuple(s))
    if draw(st.booleans()):
        return [draw(shapes()) for _ in ops], {"axis": None}
    return ops, {"axis": axis}


record("concatenate", lambda m, *xs, axis: m.concatenate(xs, axis=axis), concat_cases(), dtypes=ALL)
record(
    "concatenate_mixed",
    lambda m, x, y, **kw: m.concatenate([x.astype(np.float32), y]),
    st.just(([(2, 3), (1, 3)], {})),
    dtypes=(I32, F64),
)


@st.composite
def stack_cases(draw):
    shape = draw(shapes())
    n = draw(st.integers(1, 3))
    return [shape] * n, {"axis": draw(st.integers(-len(shape) - 1, len(shape)))}


record("stack", lambda m, *xs, axis: m.stack(xs, axis=axis), stack_cases(), dtypes=ALL)


@st.composite
def split_cases(draw):
    shape = list(draw(shapes(min_dims=1)))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    if draw(st.booleans()):
        sections = draw(st.sampled_from([1, 2, 3]))
        shape[axis] = sections * draw(st.sampled_from([0, 1, 2]))
        return [tuple(shape)], {"how": sections, "axis": axis}
    points = draw(st.lists(st.integers(-4, 5), max_size=3))
    return [tuple(shape)], {"how": points, "axis": axis}


record("split", lambda m, x, how, axis: m.split(x, how, axis=axis), split_cases())


# --- linear algebra ----------------------------------------------------------------------


@st.composite
def matmul_cases(draw):
    n, k, m = draw(SIDES), draw(SIDES), draw(SIDES)
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    ba, bb = batch.input_shapes
    kind = draw(st.sampled_from(["mm", "mm", "vec_lhs", "vec_rhs", "vv", "fold"]))
    if kind == "vv":
        return [(k,), (k,)], {}
    if kind == "vec_lhs":
        return [(k,), (*bb, k, m)], {}
    if kind == "vec_rhs":
        return [(*ba, n, k), (k,)], {}
    if kind == "fold":
        return [(*ba, n, k), (k, m)], {}
    return [(*ba, n, k), (*bb, k, m)], {}


record("matmul", lambda m, x, y: m.matmul(x, y), matmul_cases(), dtypes=NUMERIC)
record("matmul_operator", lambda m, x, y: x @ y, matmul_cases())


@st.composite
def dot_cases(draw):
    k = draw(SIDES)
    a = (*draw(shapes(max_dims=2)), k)
    if draw(st.booleans()):
        b = (k,)
    else:
        b = (*draw(shapes(max_dims=2)), k, draw(SIDES))
    if draw(st.integers(0, 4)) == 0:
        a, b = (), draw(shapes())
    return [a, b], {}


record("dot", lambda m, x, y: m.dot(x, y), dot_cases(), dtypes=NUMERIC)
record("dot_method", lambda m, x, y: x.dot(y), dot_cases())
record(
    "outer",
    lambda m, x, y: m.outer(x, y),
    st.tuples(shapes(), shapes()).map(lambda s: (list(s), {})),
    dtypes=NUMERIC,
)
record(
    "tensordot",
    lambda m, x, y, axes: m.tensordot(x, y, axes),
    st.sampled_from(
        [
            ([(2, 3, 4), (3, 4, 2)], {"axes": 2}),
            ([(2, 3), (3, 2)], {"axes": 1}),
            ([(2, 3), (4,)], {"axes": 0}),
            ([(2, 3, 4), (4, 2, 3)], {"axes": ([1, 2], [2, 0])}),
        ]
    ),
)

EINSUM_SPECS = [
    "ij,jk->ik",
    "ij,jk",
    "i,i",
    "i,i->i",
    "ij->ji",
    "ii->i",
    "ii",
    "bij,bjk->bik",
    "...ij,...jk->...ik",
    "ij,kj->ik",
    "i,j->ij",
    "ij,j->i",
    "ij->",
    "ijk,ikl,il->jl",
    "i,i,i->",
    "ab,bc,cd->ad",
    "iij->ij",
    "...i,...i",
    "ij,ij->ij",
    "bi,bi->b",
    "ji",
    "i",
    "ij->j",
    "ijk->kji",
    "ab,cd->abcd",
    "ab,ba",
    "Ab,bA->A",
]


@st.composite
def einsum_cases(draw):
    spec = draw(st.sampled_from(EINSUM_SPECS))
    inputs = spec.split("->")[0].split(",")
    sizes = {ch: draw(SIDES) for ch in set(spec) if ch.isalpha()}
    ell = draw(hnp.mutually_broadcastable_shapes(num_shapes=len(inputs), max_dims=2, max_side=3))
    operand_shapes = []
    for term, ell_shape in zip(inputs, ell.input_shapes, strict=True):
        before, _, after = term.partition("...")
        shape = [sizes[ch] for ch in before]
        if "..." in term:
            shape += list(ell_shape)
        shape += [sizes[ch] for ch in after]
        # A label of size 1 in one operand broadcasts against the others, as in NumPy.
        if shape and len(set(term)) == len(term) and draw(st.integers(0, 5)) == 0:
            shape[draw(st.integers(0, len(shape) - 1))] = 1
        operand_shapes.append(tuple(shape))
    return operand_shapes, {"spec": spec}


record("einsum", lambda m, *xs, spec: m.einsum(spec, *xs), einsum_cases(), dtypes=NUMERIC)
record("trace", lambda m, x: m.trace(x), st.just(([(3, 3)], {})))
record(
    "diagonal",
    lambda m, x, **kw: m.diagonal(x, **kw),
    st.sampled_from(
        [
            ([(3, 4)], {"offset": 1}),
            ([(2, 3, 4)], {"axis1": 2, "axis2": 0}),
            ([(4, 3)], {"offset": -2}),
        ]
    ),
)
record(
    "flip",
    lambda m, x, **kw: m.flip(x, **kw),
    reduction().map(lambda c: (c[0], {"axis": c[1]["axis"]})),
)
record(
    "hstack_vstack",
    lambda m, x, y: m.vstack([m.hstack([x, y]), m.hstack([y, x])]),
    st.sampled_from([([(2,), (2,)], {}), ([(2, 3), (2, 1)], {})]),
)
record(
    "take",
    lambda m, x, **kw: m.take(x, np.array([[0, -1], [1, 0]]), **kw),
    st.sampled_from([([(3, 2)], {"axis": 0}), ([(2, 3)], {"axis": -1}), ([(2, 2)], {})]),
)
record(
    "take_along_axis",
    lambda m, x, i, **kw: m.take_along_axis(x, i, **kw),
    st.sampled_from(
        [
            ([(3, 2), np.array([[2, 0], [1, 1]])], {"axis": 0}),
            ([(2, 3), np.array([[2], [0]])], {"axis": 1}),
        ]
    ),
)
record(
    "astype",
    lambda m, x, dtype: x.astype(dtype),
    st.tuples(shapes(), st.sampled_from(ALL)).map(lambda c: ([c[0]], {"dtype": c[1]})),
    dtypes=NUMERIC,
)


# --- creation under a trace (np.array/np.zeros do not dispatch: no check 4) ------------

record(
    "array_of_tracers",
    lambda m, x: m.array([x.sum(), x.max(), 2.0]),
    unary(sides=st.sampled_from([1, 2, 3])),
    numpy_dispatch=False,
    dtypes=NUMERIC,
)
record(
    "array_nested",
    lambda m, x, y: m.array([[x, y], [y, x]]),
    st.just(([(2,), (2,)], {})),
    numpy_dispatch=False,
)
record(
    "array_dtype",
    lambda m, x: m.array(x, dtype=np.float32, ndmin=3),
    unary(),
    numpy_dispatch=False,
    dtypes=ALL,
)
record("asarray_dtype", lambda m, x: m.asarray(x, np.int32), unary(), numpy_dispatch=False)
record(
    "zeros_like_ones_like",
    lambda m, x: m.zeros_like(x) + m.ones_like(x) * x,
    unary(),
    dtypes=ALL[:4],
)
record("full_like", lambda m, x: m.full_like(x, 3), unary(), dtypes=ALL[:4])
record("full_traced", lambda m, x: m.full((2, 3), x.sum()), unary(), numpy_dispatch=False)
record(
    "zeros_ones_eye",
    lambda m, x: m.zeros((2,)) + m.ones(2) + m.eye(2) @ x,
    st.just(([(2,)], {})),
    numpy_dispatch=False,
)
record("arange", lambda m, x: m.arange(3) * x, st.just(([(3,)], {})), numpy_dispatch=False)
record(
    "linspace",
    lambda m, x, y, **kw: m.linspace(x, y, **kw),
    st.tuples(shapes(max_dims=1), st.integers(0, 5), st.booleans()).map(
        lambda c: ([c[0], c[0]], {"num": c[1], "endpoint": c[2]})
    ),
)


# --- indexing -----------------------------------------------------------------------------


@st.composite
def mixed_index(draw, shape):
    """Ints, slices (any step), ``None``, ``...`` and integer arrays in random order."""
    index_shape = draw(shapes(max_dims=2, sides=st.sampled_from([1, 2, 3])))
    per_axis = []
    for n in shape:
        kinds = ["slice", "none"] + (["int", "array"] if n else [])
        kind = draw(st.sampled_from(kinds))
        items = []
        if kind == "none":
            items.append(None)
            kind = "slice"
        if kind == "slice":
            bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
            step = st.one_of(st.none(), st.integers(-3, 3).filter(bool))
            items.append(slice(draw(bound), draw(bound), draw(step)))
        elif kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
        else:
            sub = index_shape[draw(st.integers(0, len(index_shape))) :]
            items.append(draw(hnp.arrays(np.int64, sub, elements=st.integers(-n, n - 1))))
        per_axis.append(items)
    a = draw(st.integers(0, len(shape)))
    index = [item for items in per_axis[:a] for item in items]
    if draw(st.booleans()):  # an ellipsis standing for axes a..b-1
        b = draw(st.integers(a, len(shape)))
        index += [Ellipsis] + [item for items in per_axis[b:] for item in items]
    if draw(st.booleans()):
        index.insert(draw(st.integers(0, len(index))), None)
    return tuple(index)


@st.composite
def index_cases(draw, kind):
    shape = draw(shapes(max_dims=4))
    if kind == "basic":
        index = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    elif kind == "array":
        assume(0 not in shape and shape)
        index = draw(hnp.integer_array_indices(shape, result_shape=shapes(max_dims=2)))
    else:
        index = draw(mixed_index(shape))
    return [shape], {"index": index}


for _kind in ("basic", "array", "mixed"):
    record("getitem_" + _kind, lambda m, x, index: x[index], index_cases(_kind), dtypes=ALL)


@st.composite
def traced_index_cases(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, sides=st.sampled_from([1, 2, 3])))
    n = shape[0]
    idx = np.asarray(
        draw(hnp.arrays(np.int64, draw(shapes(max_dims=2)), elements=st.integers(-n, n - 1)))
    )
    where = draw(st.sampled_from(["front", "after_slice", "with_int"]))
    if where == "after_slice" and len(shape) > 1:
        idx = np.asarray(idx % shape[1])
        return [shape, idx], {"template": (slice(None), "i")}
    if where == "with_int" and len(shape) > 2:
        return [shape, idx], {"template": ("i", slice(None), 0)}
    return [shape, idx], {"template": ("i",)}


record(
    "getitem_traced_index",
    lambda m, x, i, template: x[tuple(i if t == "i" else t for t in template)],
    traced_index_cases(),
)
record("getitem_bool_mask", lambda m, x: x[np.array([True, False, True])], st.just(([(3, 2)], {})))


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------


def _tolerance(dtype):
    return (
        dict(rtol=2e-5, atol=2e-5)
        if np.dtype(dtype) in (np.float32, np.float16)
        else dict(rtol=1e-11, atol=1e-11)
    )


def assert_same(got, want, exact, what):
    got_leaves, want_leaves = tree_leaves(got), tree_leaves(want)
    assert len(got_leaves) == len(want_leaves), (what, got, want)
    for g, w in zip(got_leaves, want_leaves, strict=True):
        g_arr, w_arr = np.asarray(g), np.asarray(w)
        assert g_arr.dtype == w_arr.dtype, f"{what}: dtype {g_arr.dtype} != {w_arr.dtype}"
        assert g_arr.shape == w_arr.shape, f"{what}: shape {g_arr.shape} != {w_arr.shape}"
        if exact:
            assert type(g) is type(w), f"{what}: type {type(g)} != {type(w)}"
            np.testing.assert_array_equal(g_arr, w_arr, err_msg=what)
        elif w_arr.dtype.kind in "fc":
            np.testing.assert_allclose(g_arr, w_arr, err_msg=what, **_tolerance(w_arr.dtype))
        else:
            np.testing.assert_array_equal(g_arr, w_arr, err_msg=what)


def run_record(rec: Record, data) -> None:
    operands, params = data.draw(rec.cases, label="case")
    dtype = data.draw(st.sampled_from(rec.dtypes), label="dtype")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    args = [
        o if isinstance(o, (np.ndarray, np.generic)) else np.asarray(rec.domain(rng, o, dtype))
        for o in operands
    ]
    with_np = lambda *a: rec.fun(np, *a, **params)  # noqa: E731
    with_fnp = lambda *a: rec.fun(fnp, *a, **params)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = with_np(*args)
        got = with_fnp(*args)
        assert_same(got, want, True, f"{rec.name}: eager")  # 1
        closed = ft.make_jaxpr(with_fnp)(*args)
        typecheck_jaxpr(closed.jaxpr)  # 3
        staged = ft.eval_jaxpr(closed.jaxpr, closed.consts, *args)
        assert_same(staged, want, False, f"{rec.name}: eval_jaxpr\n{closed}")  # 2
        if rec.numpy_dispatch:
            assert str(ft.make_jaxpr(with_np)(*args)) == str(closed), rec.name  # 4


@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r.name)
@settings(max_examples=int(os.environ.get("FNP_EXAMPLES", 25)), **SETTINGS)
@given(data=st.data())
def test_record(rec, data):
    run_record(rec, data)


def test_every_spec_function_has_a_record():
    spec = [
        "array",
        "asarray",
        "zeros",
        "ones",
        "zeros_like",
        "ones_like",
        "full",
        "arange",
        "eye",
        "linspace",
        "add",
        "subtract",
        "multiply",
        "divide",
        "true_divide",
        "negative",
        "power",
        "square",
        "sqrt",
        "abs",
        "sign",
        "exp",
        "log",
        "log1p",
        "expm1",
        "sin",
        "cos",
        "tan",
        "tanh",
        "arctan",
        "maximum",
        "minimum",
        "clip",
        "where",
        "equal",
        "not_equal",
        "less",
        "less_equal",
        "greater",
        "greater_equal",
        "sum",
        "mean",
        "max",
        "min",
        "prod",
        "var",
        "std",
        "argmax",
        "argmin",
        "reshape",
        "transpose",
        "swapaxes",
        "moveaxis",
        "expand_dims",
        "squeeze",
        "broadcast_to",
        "concatenate",
        "stack",
        "split",
        "ravel",
        "matmul",
        "dot",
        "outer",
        "einsum",
    ]
    for name in spec:
        assert callable(getattr(fnp, name)), name
    covered = " ".join(r.name for r in RECORDS)
    assert not [n for n in spec if n not in covered]
    for name in ("float32", "float64", "int32", "int64"):
        assert getattr(fnp, name) is getattr(np, name)


# ---------------------------------------------------------------------------
# Lowerings: what the jaxpr of a NumPy call looks like
# ---------------------------------------------------------------------------


def _prims(closed):
    return [e.primitive.name for e in closed.jaxpr.eqns]


def test_matmul_folds_batched_lhs_into_one_gemm():
    closed = ft.make_jaxpr(lambda x, w: x @ w)(np.ones((4, 5, 3)), np.ones((3, 2)))
    assert _prims(closed) == ["reshape", "matmul", "reshape"]
    (mm,) = [e for e in closed.jaxpr.eqns if e.primitive.name == "matmul"]
    assert [v.aval.shape for v in mm.invars] == [(20, 3), (3, 2)]


def test_matmul_broadcasts_unequal_batch_dims_explicitly():
    closed = ft.make_jaxpr(fnp.matmul)(np.ones((2, 1, 3, 4)), np.ones((5, 4, 2)))
    assert _prims(closed) == ["broadcast_in_dim", "broadcast_in_dim", "matmul"]
    assert closed.out_avals[0].shape == (2, 5, 3, 2)


def test_matmul_vector_with_stack_of_matrices():
    for a, b in [((3,), (2, 3, 4)), ((2, 4, 3), (3,))]:
        x, y = np.arange(np.prod(a)).reshape(a) * 1.0, np.arange(np.prod(b)).reshape(b) * 1.0
        closed = ft.make_jaxpr(fnp.matmul)(x, y)
        typecheck_jaxpr(closed.jaxpr)
        assert _prims(closed).count("matmul") == 1
        np.testing.assert_allclose(closed(x, y)[0], x @ y)


def test_einsum_uses_matmul_and_gather_for_a_trace():
    closed = ft.make_jaxpr(lambda a, b: fnp.einsum("bij,bjk->bik", a, b))(
        np.ones((2, 3, 4)), np.ones((2, 4, 5))
    )
    assert _prims(closed) == ["matmul"]
    closed = ft.make_jaxpr(lambda a: fnp.einsum("ii->", a))(np.ones((3, 3)))
    assert _prims(closed) == ["gather", "reduce_sum"]


def test_basic_indexing_is_static():
    closed = ft.make_jaxpr(lambda x: x[::-1, 1])(np.ones((3, 4)))
    assert _prims(closed) == ["rev", "slice", "reshape"]
    closed = ft.make_jaxpr(lambda x: x[1:, 1, None])(np.ones((3, 4)))
    assert _prims(closed) == ["slice"]
    closed = ft.make_jaxpr(lambda x: x[:, None])(np.ones((3, 4)))
    assert _prims(closed) == ["broadcast_in_dim"]
    closed = ft.make_jaxpr(lambda x: x[...])(np.ones((3, 4)))
    assert _prims(closed) == []


def test_keepdims_is_a_reshape_and_mean_of_ints_is_float64():
    closed = ft.make_jaxpr(lambda x: fnp.mean(x, axis=1, keepdims=True))(np.ones((2, 3), np.int32))
    assert _prims(closed) == ["convert_element_type", "reduce_sum", "div", "reshape"]
    assert closed.out_avals[0].dtype == np.float64


def test_float32_stays_float32_with_python_scalars():
    closed = ft.make_jaxpr(lambda x: fnp.exp(x) * 2 + 1.5 - x**2 / 3)(np.ones(3, np.float32))
    assert all(e.outvars[0].aval.dtype == np.float32 for e in closed.jaxpr.eqns)
    # A Python (or NumPy) integer exponent stays a static integer_pow, not a float pow.
    assert "integer_pow" in _prims(closed) and "pow" not in _prims(closed)
    closed = ft.make_jaxpr(lambda x: fnp.power(x, np.int64(3)) + fnp.square(x))(np.ones(2))
    assert _prims(closed) == ["integer_pow", "integer_pow", "add"]


# ---------------------------------------------------------------------------
# Interop: NumPy on tracers, tracers in NumPy expressions
# ---------------------------------------------------------------------------


def test_numpy_array_on_the_left_of_a_tracer():
    w = np.arange(6.0).reshape(2, 3)

    def f(x):
        return w @ x + np.float32(1.0) * x[:2] - np.ones(2) / (1.0 + x[1:])

    x = np.array([1.0, 2.0, 3.0])
    closed = ft.make_jaxpr(f)(x)
    np.testing.assert_allclose(closed(x)[0], f(x))


def test_plain_numpy_functions_dispatch_to_fnp():
    def f(x):
        return np.sum(np.tanh(x) * np.exp(-x), axis=0) + np.mean(np.maximum(x, 0.0))

    x = np.linspace(-1, 1, 6).reshape(2, 3)
    np.testing.assert_allclose(ft.make_jaxpr(f)(x)(x)[0], f(x))
    np.testing.assert_allclose(
        ft.grad(lambda x: f(x).sum())(x),
        ft.grad(
            lambda x: fnp.sum(
                fnp.sum(fnp.tanh(x) * fnp.exp(-x), axis=0) + fnp.mean(fnp.maximum(x, 0.0))
            )
        )(x),
    )


def test_unsupported_numpy_function_names_itself_and_an_alternative():
    with pytest.raises(TypeError, match=r"numpy\.cumsum .*nearest: functrans\.numpy\.sum"):
        ft.make_jaxpr(lambda x: np.cumsum(x))(np.ones(3))
    with pytest.raises(TypeError, match=r"numpy.linalg.inv"):
        ft.make_jaxpr(lambda x: np.linalg.inv(x))(np.eye(2))
    with pytest.raises(TypeError, match=r"numpy\.add\.reduce"):
        ft.make_jaxpr(lambda x: np.add.reduce(x))(np.ones(3))
    with pytest.raises(TypeError, match="convert a traced array"):
        ft.make_jaxpr(lambda x: np.asarray(x))(np.ones(3))


def test_tracer_methods_and_properties():
    x = np.arange(24.0).reshape(2, 3, 4)

    def f(x):
        return (
            x.T.sum(axis=(0, -1), keepdims=True).squeeze().astype(np.float32),
            x.reshape(6, 4).mT.shape,
            x.ndim,
            x.size,
            x.dtype,
            len(x),
            [row.shape for row in x],
            x.swapaxes(0, 2).shape,
            x.transpose(2, 0, 1).shape,
            x.transpose((1, 2, 0)).shape,
            fnp.shape(x),
            fnp.ndim(x),
            fnp.size(x, 1),
        )

    traced = []
    ft.make_jaxpr(lambda x: traced.append(f(x)[1:]) or f(x)[0])(x)
    assert traced[0] == f(x)[1:]


def test_zeros_like_is_a_numpy_constant_under_a_trace():
    seen = []
    ft.make_jaxpr(lambda x: seen.append(fnp.zeros_like(x)) or x)(np.ones((2, 3), np.float32))
    assert type(seen[0]) is np.ndarray and seen[0].dtype == np.float32 and seen[0].shape == (2, 3)


def test_grads_through_compositions():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))
    w = rng.standard_normal((4, 3))
    check_grads(lambda x, w: fnp.einsum("bij,jk->bik", x, w), (x, w), order=2)
    check_grads(lambda x, w: (x @ w)[:, ::-1, None, 1:], (x, w), order=1)
    check_grads(lambda x: x[np.array([1, 0, 1]), :, np.array([0, 3, 3])], (x,), order=2)
    check_grads(lambda x: fnp.var(x, axis=(0, 2), ddof=1) + fnp.std(x), (x,), order=2)
    check_grads(lambda x: fnp.einsum("ii->i", x[0, :, :3]), (x,), order=1)
    check_grads(lambda x: fnp.concatenate(fnp.split(x, [1, 3], axis=2)[::-1], axis=-1), (x,))


def test_vmap_of_numpy_functions():
    x = np.random.default_rng(1).standard_normal((5, 3, 4))
    f = lambda x: fnp.einsum("ij,kj->ik", x, x)[::2] @ x.mean(1) + x[[0, 2], -1].sum()  # noqa: E731
    np.testing.assert_allclose(ft.vmap(f)(x), np.stack([f(xi) for xi in x]), rtol=1e-12)


# ---------------------------------------------------------------------------
# Errors: our own messages, naming the operation and every operand shape
# ---------------------------------------------------------------------------

SHAPE_ERRORS = [
    (
        lambda a, b: fnp.matmul(a, b),
        [(2, 3), (4,)],
        r"matmul: incompatible shapes \(2, 3\) and \(4,\)",
    ),
    (
        lambda a, b: fnp.matmul(a, b),
        [(2, 2, 3), (3, 3, 1)],
        r"matmul: incompatible shapes \(2, 2, 3\) and \(3, 3, 1\)",
    ),
    (lambda a, b: fnp.matmul(a, b), [(), (3,)], r"matmul: incompatible shapes \(\) and \(3,\)"),
    (
        lambda a, b: fnp.dot(a, b),
        [(2, 3), (2, 3)],
        r"dot: incompatible shapes \(2, 3\) and \(2, 3\)",
    ),
    (lambda a, b: fnp.add(a, b), [(2, 3), (4,)], r"add: incompatible shapes \(2, 3\) and \(4,\)"),
    (
        lambda a, b: fnp.where(a > 0, a, b),
        [(2,), (3,)],
        r"where: incompatible shapes \(2,\) and \(2,\) and \(3,\)",
    ),
    (
        lambda a: fnp.reshape(a, (4, -1)),
        [(2, 3)],
        r"reshape: cannot reshape array of shape \(2, 3\) into shape \(4, -1\)",
    ),
    (
        lambda a, b: fnp.concatenate([a, b], axis=1),
        [(2, 3), (3, 3)],
        r"concatenate: incompatible shapes \(2, 3\), \(3, 3\) along axis 1",
    ),
    (lambda a, b: fnp.stack([a, b]), [(2,), (3,)], r"stack: .*same shape.*\(2,\), \(3,\)"),
    (
        lambda a, b: fnp.einsum("ij,jk->ik", a, b),
        [(2, 3), (4, 2)],
        r"einsum: label 'j' has sizes 3 and 4 \(operand shapes \(2, 3\), \(4, 2\)\)",
    ),
    (lambda a: fnp.broadcast_to(a, (2, 4)), [(3,)], r"broadcast_to: .*\(3,\) to \(2, 4\)"),
    (lambda a: fnp.squeeze(a, 0), [(2, 1)], r"squeeze: .*axis 0 of shape \(2, 1\)"),
    (lambda a: fnp.split(a, 3), [(4,)], r"split: .*equal division.*\(4,\)"),
    (lambda a: fnp.max(a, axis=0), [(0, 2)], r"max: zero-size .*shape \(0, 2\)"),
    (lambda a: fnp.argmax(a), [(0,)], r"argmax: .*empty.*\(0,\)"),
    (lambda a: fnp.transpose(a, (0, 0)), [(2, 2)], r"transpose: .*\(2, 2\)"),
    (lambda a: fnp.sum(a, axis=2), [(2, 2)], r"sum: axis 2 is out of bounds .*dimension 2"),
    (lambda a, b: fnp.tensordot(a, b, 1), [(2, 3), (2,)], r"tensordot: .*\(2, 3\) and \(2,\)"),
    (
        lambda a, b: fnp.clip(a, b, 1.0),
        [(3,), (2,)],
        r"clip: incompatible shapes \(3,\) and \(2,\) and \(\)$",
    ),
    (
        lambda a, b, c: fnp.clip(a, min=b, max=c),
        [(2, 3), (3,), (2,)],
        r"clip: incompatible shapes \(2, 3\) and \(3,\) and \(2,\)$",
    ),
    (lambda a, b: fnp.floor_divide(a, b), [(2,), (3,)], r"floor_divide: incompatible shapes"),
    (lambda a, b: fnp.mod(a, b), [(2,), (3,)], r"remainder: incompatible shapes \(2,\) and \(3,\)"),
    (lambda a, b: fnp.fmod(a, b), [(2,), (3,)], r"fmod: incompatible shapes \(2,\) and \(3,\)"),
    (lambda a, b: fnp.divmod(a, b), [(2,), (3,)], r"divmod: incompatible shapes \(2,\) and"),
    (lambda a: fnp.trace(a), [(3,)], r"trace: array of shape \(3,\) must be at least 2-D"),
    (lambda a: fnp.full((2, 3), a), [(4,)], r"full: cannot broadcast .*\(4,\) to \(2, 3\)"),
    (lambda a, b: fnp.full_like(a, b), [(3,), (4,)], r"full_like: .*\(4,\) to \(3,\)"),
    (lambda a, b: fnp.vstack([a, b]), [(2, 3), (2, 4)], r"vstack: incompatible shapes \(2, 3\)"),
    (lambda a, b: fnp.hstack([a, b]), [(2, 3), (3, 4)], r"hstack: incompatible shapes \(2, 3\)"),
    (lambda a: fnp.std(a, axis=2), [(2, 3)], r"std: axis 2 is out of bounds"),
    (
        lambda a, i: fnp.take_along_axis(a, i.astype(int), axis=0),
        [(2, 3), (2, 4)],
        r"take_along_axis: indices of shape \(2, 4\) .* arr of shape \(2, 3\)",
    ),
]


@pytest.mark.parametrize("fun, shapes, message", SHAPE_ERRORS)
@pytest.mark.parametrize("mode", ["eager", "traced"])
def test_shape_errors_name_operation_and_shapes(fun, shapes, message, mode):
    args = [np.ones(s) for s in shapes]
    call = fun if mode == "eager" else ft.make_jaxpr(fun)
    with pytest.raises((ValueError, TypeError)) as info:
        call(*args)
    assert re.match(message, str(info.value)), str(info.value)


INDEX_ERRORS = [
    (lambda x: x[3], IndexError, r"index 3 is out of bounds for axis 0 with size 3.*\(3, 2\)"),
    (lambda x: x[:, -3], IndexError, r"index -3 is out of bounds for axis 1 .*\(3, 2\)"),
    (lambda x: x[np.array([0, 5])], IndexError, r"index 5 is out of bounds.*\(3, 2\)"),
    (lambda x: x[0, 0, 0], IndexError, r"too many indices.*\(3, 2\)"),
    (lambda x: x[..., ...], IndexError, "single ellipsis"),
    (lambda x: x[1.5], IndexError, "only integers"),
    (lambda x: x[np.array([0, 1]), np.array([0, 1, 0])], IndexError, "shape mismatch"),
    (lambda x: x[x > 0], TypeError, r"traced boolean mask .*shape \(3, 2\)"),
    (lambda x: x[x.sum().astype(int) :], ConcretizationTypeError, "index"),
]


@pytest.mark.parametrize("fun, error, message", INDEX_ERRORS)
def test_indexing_errors(fun, error, message):
    with pytest.raises(error, match=message):
        ft.make_jaxpr(fun)(np.ones((3, 2)))


def test_setitem_on_a_tracer_is_a_clear_type_error():
    def f(x):
        x[0] = 1.0
        return x

    with pytest.raises(TypeError, match="immutable"):
        ft.make_jaxpr(f)(np.ones(3))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: fnp.sum("abc"), r"sum: argument 0 \(a\) .* str"),
        (lambda: fnp.exp(["a", "b"]), r"exp: argument 0 \(x\)"),
        (lambda: fnp.add(1.0, "x"), r"add: argument 1 \(x2\) .* str"),
        (lambda: fnp.array("abc"), r"array: argument 0 \(object\) .* str"),
        (lambda: fnp.asarray(object()), r"asarray: argument 0 \(a\) .* object"),
        (lambda: fnp.array([[1.0, 2.0], [3.0]]), "ragged"),
        (lambda: fnp.concatenate([np.ones(2), "ab"]), "concatenate: argument 1"),
        (lambda: fnp.matmul(np.ones(2), None), r"matmul: argument 1 \(x2\) .* NoneType"),
    ],
)
def test_invalid_inputs_are_type_errors_naming_the_argument(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_invalid_inputs_next_to_tracers_are_type_errors():
    with pytest.raises(TypeError, match=r"multiply: argument 1 \(x2\) .* str"):
        ft.make_jaxpr(lambda x: x * "a")(np.ones(2))
    with pytest.raises(TypeError, match=r"ragged"):
        ft.make_jaxpr(lambda x: fnp.array([x, [1.0, 2.0, 3.0]]))(np.ones(2))
    with pytest.raises(TypeError, match="where: .*three-argument"):
        ft.make_jaxpr(lambda x: fnp.where(x > 0))(np.ones(2))


def test_integer_power_errors_and_dtypes():
    with pytest.raises(ValueError, match=r"power: integers to negative integer powers"):
        ft.make_jaxpr(lambda x: x**-1)(np.ones(2, np.int64))
    x = np.array([1, 2, 3], np.int32)
    e = np.array([3, 0, 2], np.int32)
    closed = ft.make_jaxpr(fnp.power)(x, e)
    got = closed(x, e)[0]
    assert got.dtype == np.int32 and (got == x**e).all()
    # Exact beyond float64's 2**53, as NumPy's integer loop is.
    big = np.array([35, 39, 40])
    for f in (lambda e: 3**e, ft.jit(lambda e: 3**e), ft.vmap(lambda e: fnp.power(3, e))):
        np.testing.assert_array_equal(f(big), 3**big)
    with pytest.raises(ValueError, match="negative integer powers"):  # as NumPy, at run time
        ft.jit(lambda x, e: x**e)(x, -e)


def test_python_int_exponent_of_a_float_is_integer_pow():
    closed = ft.make_jaxpr(lambda x: x**2)(np.ones(2))
    assert [e.primitive.name for e in closed.eqns] == ["integer_pow"]
    assert closed.eqns[0].params == {"y": 2}


# ---------------------------------------------------------------------------
# Regressions: the var() method on staged tracers, small-integer reductions
# ---------------------------------------------------------------------------


def test_var_method_on_tracers():
    x = np.arange(6.0).reshape(2, 3)
    closed = ft.make_jaxpr(lambda x: x.var(axis=0))(x)
    np.testing.assert_allclose(closed(x)[0], x.var(axis=0))


def test_reduce_sum_impl_keeps_small_int_dtypes():
    from functrans import lax

    x = np.ones((2, 2), np.int32)
    closed = ft.make_jaxpr(lambda x: lax.reduce_sum(x, (0,)))(x)
    assert closed.out_avals[0].dtype == np.int32
    assert closed(x)[0].dtype == np.int32


# ---------------------------------------------------------------------------
# Floor division and remainders: NumPy's results and warnings, also at zero divisors
# ---------------------------------------------------------------------------

DIVISION_OPERANDS = [
    (np.array([7, -7, 7, -7, 0, 5]), np.array([2, 2, -2, -2, 0, 0])),
    (np.array([7, -7, 3], np.int32), np.array([0, 3, -2], np.int32)),
    (np.array([True, False, True]), np.array([True, True, False])),
    (np.array([5.5, -5.5, 1.0, -1.0, 0.0, -1e-20]), np.array([2.0, 2.0, 0.0, -0.0, 0.0, 1.0])),
    (np.array([5.5, -5.5, 1.0], np.float32), np.array([-2.0, 0.0, 0.0], np.float32)),
]


def _messages(caught, name: str) -> set[str]:
    # A traced divmod warns from floor_divide and remainder where NumPy's divmod warns in
    # its own name: for it, only the kinds ("divide by zero", "invalid value") compare.
    messages = {str(w.message).replace("scalar ", "") for w in caught}
    return {m.split(" encountered")[0] for m in messages} if name == "divmod" else messages


@pytest.mark.parametrize("name", ["floor_divide", "remainder", "mod", "fmod", "divmod"])
@pytest.mark.parametrize("mode", ["eager", "jit", "make_jaxpr", "vmap"])
def test_division_matches_numpy_with_its_warnings(name, mode):
    fun = getattr(fnp, name)
    run = {
        "eager": fun,
        "jit": ft.jit(fun),
        "make_jaxpr": lambda x, y: ft.make_jaxpr(fun)(x, y)(x, y),
        "vmap": ft.vmap(fun),
    }[mode]
    for x, y in DIVISION_OPERANDS:
        with warnings.catch_warnings(record=True) as expected:
            warnings.simplefilter("always")
            want = getattr(np, name)(x, y)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = run(x, y)
        assert_same(tuple(got) if name == "divmod" else got, want, False, f"{name} {x.dtype}")
        assert _messages(caught, name) == _messages(expected, name), (x.dtype, caught)


def test_division_operators_on_tracers():
    x = np.array([7.5, -7.5, 3.0])
    y = np.array([2.0, 2.0, -2.0])
    ops = {
        "x // y": lambda x: x // y,
        "y // x": lambda x: y // x,
        "x % 2": lambda x: x % 2,
        "2 % x": lambda x: 2 % x,
        "3 // x": lambda x: 3 // x,
        "divmod(x, y)": lambda x: divmod(x, y),
        "divmod(2, x)": lambda x: divmod(2.0, x),
        "np.mod": lambda x: np.mod(x, y),
        "np.divmod": lambda x: np.divmod(y, x),
    }
    for what, f in ops.items():
        assert_same(ft.jit(f)(x), f(x), False, what)
        assert_same(ft.make_jaxpr(f)(x)(x), tree_leaves(f(x)), False, what)
    # The array on the left of a tracer: ndarray.__floordiv__ dispatches to fnp.
    source = ft.jit(lambda x: (y // x, y % x)).source(x)
    assert "//" in source and "%" in source
    closed = ft.make_jaxpr(lambda x: (x // y, x % y, fnp.fmod(x, y)))(x)
    assert _prims(closed) == ["floor_divide", "remainder", "fmod"]


def test_remainder_and_fmod_derivatives():
    x = np.array([5.5, -5.5, 5.5, -5.5])
    y = np.array([2.0, 2.0, -2.0, -2.0])
    sum_of = lambda f: lambda x, y: fnp.sum(f(x, y))  # noqa: E731
    gx, gy = ft.grad(sum_of(fnp.remainder), (0, 1))(x, y)
    np.testing.assert_array_equal(gx, np.ones(4))
    np.testing.assert_array_equal(gy, -np.floor_divide(x, y))
    gx, gy = ft.grad(sum_of(fnp.fmod), (0, 1))(x, y)
    np.testing.assert_array_equal(gx, np.ones(4))
    np.testing.assert_array_equal(gy, -np.trunc(x / y))
    gx, gy = ft.grad(sum_of(fnp.floor_divide), (0, 1))(x, y)
    np.testing.assert_array_equal(gx, np.zeros(4))
    np.testing.assert_array_equal(gy, np.zeros(4))
    # Integer division has no derivative: integers are not differentiable inputs.
    with pytest.raises(TypeError):
        ft.grad(lambda x: fnp.sum(x // 2))(np.array([3, 4]))


# ---------------------------------------------------------------------------
# reshape's signature is NumPy's; order 'C' and 'F' only for traced values
# ---------------------------------------------------------------------------


def test_reshape_signature_is_numpys():
    import inspect

    assert inspect.signature(fnp.reshape) == inspect.signature(np.reshape)
    x = np.arange(6.0)
    for f in (fnp.reshape, ft.jit(fnp.reshape, static_argnames="shape")):
        np.testing.assert_array_equal(f(x, shape=(2, 3)), x.reshape(2, 3))
    want = np.reshape(x, (3, 2), "F")
    np.testing.assert_array_equal(ft.jit(lambda x: fnp.reshape(x, (3, 2), "F", copy=True))(x), want)
    for call in (lambda x: fnp.reshape(x, newshape=(2, 3)), lambda x: fnp.reshape(x)):
        with pytest.raises(TypeError):
            call(x)
        with pytest.raises(TypeError):
            ft.make_jaxpr(call)(x)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: fnp.reshape(x, (2, 3), order="A"), r"reshape: order='A' .*memory layout"),
        (lambda x: fnp.reshape(x, (2, 3), order="K"), r"reshape: order must be one of"),
        (lambda x: x.reshape(2, 3, order="X"), r"reshape: order must be one of"),
        (lambda x: fnp.ravel(x, order="K"), r"ravel: order='K' .*memory layout"),
        (lambda x: x.flatten("A"), r"flatten: order='A'"),
    ],
)
def test_reshape_orders_that_need_a_memory_layout_are_rejected_when_traced(call, message):
    with pytest.raises(ValueError, match=message):
        ft.jit(call)(np.arange(6.0))
