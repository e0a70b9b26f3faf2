"""Every primitive, every rule: one record per primitive, every check applied to every
record.

A record draws a *case* with hypothesis: operand shapes (size-0 and size-1 axes and
rank-0 operands where the primitive allows them), static parameters (axes,
permutations, slice bounds, padding, index arrays), and a sampler of operand values
in the primitive's domain. The checks, for each case:

* the shape rule (``abstract_eval``) agrees with the NumPy implementation;
* JVP and VJP agree with central finite differences in float64, to second order
  (``check_grads(order=2)`` on the primitive applied with its parameters);
* float32 operands give float32 tangents and cotangents, also checked against
  finite differences;
* ``vmap`` over random ``in_axes`` (some operands unmapped) equals a loop-and-stack,
  for batch sizes 0, 1 and 3.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import functrans as ft
from functrans import lax
from functrans.core import Primitive, ShapedArray, get_aval
from functrans.primitives import all_primitives
from functrans.test_util import check_grads

SETTINGS = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------
# Value domains: a sampler is ``(rng, shape) -> float64 array``
# ---------------------------------------------------------------------------

Sampler = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def real(rng, shape):
    return rng.standard_normal(shape)


def uniform(lo: float, hi: float) -> Sampler:
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def away_from_zero(rng, shape):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)


def between_integers(rng, shape):
    # floor is piecewise constant: keep finite-difference steps away from the jumps.
    return rng.integers(-3, 3, shape) + rng.uniform(0.2, 0.8, shape)


def divisors(rng, shape):
    # floor_divide, remainder, fmod: with dividends from between_integers, x / y stays at
    # least 0.07 away from the integers where the quotient (and so the remainder) jumps.
    return rng.choice([-2.0, -1.0, 1.0, 2.0], shape) * rng.uniform(1.0, 1.02, shape)


def distinct(rng, shape):
    # Reductions to an extremum: no ties within 0.25 of each other.
    n = int(np.prod(shape, dtype=np.int64))
    return (rng.permutation(n) * 0.25 - n * 0.1 + rng.uniform(0, 0.05)).reshape(shape)


def with_zeros(rng, shape):
    # Products: exact zeros (one or several per group) exercise the zero-safe rules.
    x = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 1.5, shape)
    return np.where(rng.random(shape) < 0.25, 0.0, x)


def with_nonfinite(rng, shape):
    # is_finite: infinities of both signs and NaNs among ordinary numbers.
    special = rng.choice([np.inf, -np.inf, np.nan], shape)
    return np.where(rng.random(shape) < 0.4, special, rng.standard_normal(shape))


# ---------------------------------------------------------------------------
# Cases and records
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    """One draw: static ``params`` and, per operand, how to sample it.

    ``operands[i]`` is ``(shape, kind, sampler)`` with ``kind`` one of ``"float"``
    (sampled in the test's float dtype), ``"bool"`` or ``"index"`` (the sampler
    returns the final array)."""

    params: dict
    operands: list[tuple[tuple[int, ...], str, Sampler]]

    def sample(self, rng: np.random.Generator, dtype: Any = np.float64) -> list[np.ndarray]:
        out = []
        for shape, kind, sampler in self.operands:
            value = np.asarray(sampler(rng, shape))
            out.append(value.astype(dtype) if kind == "float" else value)
        return out


@dataclasses.dataclass
class Record:
    prim: Primitive
    cases: st.SearchStrategy  # of Case
    # False where the derivative is deliberately not the function's (stop_gradient).
    finite_differences: bool = True


RECORDS: dict[str, Record] = {}


def record(prim: Primitive, cases: st.SearchStrategy, **kwargs: Any) -> None:
    RECORDS[prim.name] = Record(prim, cases, **kwargs)


# Axis sizes: mostly 2-4, with size-1 axes (broadcasting corners) and size-0 axes
# (empty arrays) drawn often enough to be covered but not so often that they crowd out
# the cases with values in them.
SIDES = st.sampled_from([2, 3, 1, 4, 0, 2, 3])


def small_shapes(min_dims=0, max_dims=3):
    return st.lists(SIDES, min_size=min_dims, max_size=max_dims).map(tuple)


def float_operand(shape, sampler=real):
    return (tuple(shape), "float", sampler)


@st.composite
def unary_cases(draw, sampler=real, **params):
    shape = draw(small_shapes())
    return Case(dict(params), [float_operand(shape, sampler)])


@st.composite
def binary_shapes(draw, n=2):
    """Operand shapes of an elementwise primitive: one shape, some operands rank 0."""
    shape = draw(small_shapes())
    scalars = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return [() if s else shape for s in scalars]


@st.composite
def binary_cases(draw, x_sampler=real, y_sampler=real):
    xs, ys = draw(binary_shapes())
    return Case({}, [float_operand(xs, x_sampler), float_operand(ys, y_sampler)])


def _lattice(offset: float) -> Sampler:
    return lambda rng, shape: rng.integers(-3, 3, shape) + offset + rng.uniform(0, 0.2, shape)


@st.composite
def separated_pair_cases(draw):
    """max/min: operands at least 0.3 apart everywhere (ties have their own test)."""
    xs, ys = draw(binary_shapes())
    return Case({}, [float_operand(xs, _lattice(0.0)), float_operand(ys, _lattice(0.5))])


def _bool_operand(shape):
    return (tuple(shape), "bool", lambda rng, s: rng.random(s) < 0.5)


def _index_operand(shape, bound):
    return (tuple(shape), "index", lambda rng, s: rng.integers(0, bound, s))


@st.composite
def comparison_cases(draw):
    xs, ys = draw(binary_shapes())

    def y_sampler(rng, shape):
        # Some exact ties, so that eq/ne/le/ge see both outcomes.
        y = real(rng, shape)
        return np.where(rng.random(shape) < 0.3, np.round(y), y)

    return Case(
        {}, [float_operand(xs, lambda rng, s: np.round(real(rng, s))), float_operand(ys, y_sampler)]
    )


@st.composite
def logical_cases(draw, n=2):
    shapes = draw(binary_shapes(n))
    return Case({}, [_bool_operand(s) for s in shapes])


@st.composite
def select_cases(draw):
    shapes = draw(binary_shapes(3))
    pred, on_true, on_false = shapes
    return Case({}, [_bool_operand(pred), float_operand(on_true), float_operand(on_false)])


@st.composite
def integer_pow_cases(draw):
    y = draw(st.integers(-3, 4))
    shape = draw(small_shapes())
    return Case({"y": y}, [float_operand(shape, away_from_zero)])


@st.composite
def convert_cases(draw):
    new_dtype = draw(st.sampled_from([np.float32, np.float64, np.int32, np.bool_]))
    shape = draw(small_shapes())
    params = {"new_dtype": np.dtype(new_dtype)}
    if draw(st.booleans()):
        params["weak_type"] = True  # typed as a Python number would be (a loop index)
    return Case(params, [float_operand(shape, uniform(0.2, 3.0))])


# --- structural --------------------------------------------------------------------------


@st.composite
def broadcast_in_dim_cases(draw):
    shape = draw(small_shapes())
    out_rank = draw(st.integers(len(shape), len(shape) + 2))
    dims = sorted(draw(st.permutations(range(out_rank)))[: len(shape)])
    out = [draw(st.integers(0, 3)) for _ in range(out_rank)]
    for size, d in zip(shape, dims, strict=True):
        out[d] = draw(st.integers(0, 3)) if size == 1 else size
    params = dict(shape=tuple(out), broadcast_dimensions=tuple(dims))
    return Case(params, [float_operand(shape)])


def _group(factors, cuts):
    """Multiply consecutive runs of ``factors`` split at ``cuts`` (an empty run is 1)."""
    bounds = [0, *sorted(cuts), len(factors)]
    runs = zip(bounds, bounds[1:], strict=False)
    return tuple(int(np.prod(factors[a:b], dtype=np.int64)) for a, b in runs)


@st.composite
def reshape_cases(draw):
    factors = draw(st.lists(st.integers(0, 3), max_size=4))
    cut = st.lists(st.integers(0, len(factors)), max_size=3)
    shape, new_sizes = _group(factors, draw(cut)), _group(factors, draw(cut))
    return Case(dict(new_sizes=new_sizes), [float_operand(shape)])


@st.composite
def transpose_cases(draw):
    shape = draw(small_shapes(max_dims=4))
    permutation = tuple(draw(st.permutations(range(len(shape)))))
    return Case(dict(permutation=permutation), [float_operand(shape)])


@st.composite
def rev_cases(draw):
    shape = draw(small_shapes())
    dims = tuple(sorted(draw(st.sets(st.integers(0, len(shape) - 1))))) if shape else ()
    return Case(dict(dimensions=dims), [float_operand(shape)])


@st.composite
def slice_cases(draw):
    shape = draw(small_shapes(min_dims=1))
    start, limit = [], []
    for n in shape:
        a = draw(st.integers(0, n))
        start.append(a)
        limit.append(draw(st.integers(a, n)))
    strides = draw(st.none() | st.tuples(*[st.integers(1, 3) for _ in shape]))
    params = dict(start_indices=tuple(start), limit_indices=tuple(limit), strides=strides)
    return Case(params, [float_operand(shape)])


@st.composite
def pad_cases(draw):
    shape = draw(small_shapes())
    config = tuple(
        (draw(st.integers(0, 2)), draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in shape
    )
    return Case(dict(padding_config=config), [float_operand(shape)])


@st.composite
def concatenate_cases(draw):
    shape = draw(small_shapes(min_dims=1))
    dimension = draw(st.integers(0, len(shape) - 1))
    operands = []
    for _ in range(draw(st.integers(1, 3))):
        s = list(shape)
        s[dimension] = draw(st.integers(0, 3))
        operands.append(float_operand(s))
    return Case(dict(dimension=dimension), operands)


@st.composite
def _indexing(draw):
    """An operand shape whose first ``k`` axes are indexed by ``k`` integer arrays of
    one shape (repeated indices included)."""
    shape = draw(small_shapes(min_dims=1))
    k = draw(st.integers(1, len(shape)))
    shape = tuple(max(n, 1) if i < k else n for i, n in enumerate(shape))
    index_shape = draw(small_shapes(max_dims=2))
    indices = [_index_operand(index_shape, shape[i]) for i in range(k)]
    return shape, index_shape, indices


@st.composite
def gather_cases(draw):
    shape, _, indices = draw(_indexing())
    return Case({}, [float_operand(shape), *indices])


@st.composite
def scatter_add_cases(draw):
    shape, index_shape, indices = draw(_indexing())
    updates = index_shape + shape[len(indices) :]
    return Case({}, [float_operand(shape), float_operand(updates), *indices])


# --- reductions and matmul ------------------------------------------------------------------


@st.composite
def reduction_cases(draw, sampler=real, nonempty=False):
    shape = draw(small_shapes())
    axes = tuple(sorted(draw(st.sets(st.integers(0, len(shape) - 1))))) if shape else ()
    if nonempty:  # an extremum of nothing is an error
        shape = tuple(max(n, 1) if i in axes else n for i, n in enumerate(shape))
    return Case(dict(axes=axes), [float_operand(shape, sampler)])


@st.composite
def arg_reduction_cases(draw):
    shape = draw(small_shapes(min_dims=1))
    axis = draw(st.integers(0, len(shape) - 1))
    shape = tuple(max(n, 1) if i == axis else n for i, n in enumerate(shape))
    index_dtype = np.dtype(draw(st.sampled_from([np.int32, np.int64])))
    return Case(dict(axis=axis, index_dtype=index_dtype), [float_operand(shape, distinct)])


@st.composite
def matmul_cases(draw):
    side = st.integers(0, 3)
    n, k, m = draw(side), draw(side), draw(side)
    batch = tuple(draw(small_shapes(max_dims=2)))
    kind = draw(st.sampled_from(["vv", "vm", "mv", "mm", "batched"]))
    x, y = {
        "vv": ((k,), (k,)),
        "vm": ((k,), (k, m)),
        "mv": ((n, k), (k,)),
        "mm": ((n, k), (k, m)),
        "batched": ((*batch, n, k), (*batch, k, m)),
    }[kind]
    return Case({}, [float_operand(x), float_operand(y)])


# --- the table -----------------------------------------------------------------------------

for _name, _sampler in [
    ("neg", real),
    ("exp", real),
    ("log", uniform(0.3, 3.0)),
    ("log1p", uniform(-0.5, 2.0)),
    ("expm1", real),
    ("tanh", real),
    ("sigmoid", real),
    ("sin", real),
    ("cos", real),
    ("tan", uniform(-1.2, 1.2)),
    ("atan", real),
    ("erf", uniform(-3.0, 3.0)),
    ("sqrt", uniform(0.3, 3.0)),
    ("abs", away_from_zero),
    ("sign", away_from_zero),
    ("floor", between_integers),
]:
    record(getattr(lax, f"{_name}_p"), unary_cases(_sampler))

record(lax.stop_gradient_p, unary_cases(), finite_differences=False)
record(lax.add_p, binary_cases())
record(lax.sub_p, binary_cases())
record(lax.mul_p, binary_cases())
record(lax.div_p, binary_cases(real, away_from_zero))
record(lax.pow_p, binary_cases(uniform(0.3, 3.0), real))
record(lax.floor_divide_p, binary_cases(between_integers, divisors))
record(lax.remainder_p, binary_cases(between_integers, divisors))
record(lax.fmod_p, binary_cases(between_integers, divisors))
record(lax.max_p, separated_pair_cases())
record(lax.min_p, separated_pair_cases())
record(lax.integer_pow_p, integer_pow_cases())
for _name in ["eq", "ne", "lt", "le", "gt", "ge"]:
    record(getattr(lax, f"{_name}_p"), comparison_cases())
record(lax.and_p, logical_cases())
record(lax.or_p, logical_cases())
record(lax.not_p, logical_cases(1))
record(lax.is_finite_p, unary_cases(with_nonfinite), finite_differences=False)
record(lax.select_p, select_cases())
record(lax.convert_element_type_p, convert_cases())
record(lax.broadcast_in_dim_p, broadcast_in_dim_cases())
record(lax.reshape_p, reshape_cases())
record(lax.transpose_p, transpose_cases())
record(lax.rev_p, rev_cases())
record(lax.slice_p, slice_cases())
record(lax.pad_p, pad_cases())
record(lax.concatenate_p, concatenate_cases())
record(lax.gather_p, gather_cases())
record(lax.scatter_add_p, scatter_add_cases())
record(lax.reduce_sum_p, reduction_cases())
record(lax.reduce_max_p, reduction_cases(distinct, nonempty=True))
record(lax.reduce_min_p, reduction_cases(distinct, nonempty=True))
record(lax.reduce_prod_p, reduction_cases(with_zeros))
record(lax.argmax_p, arg_reduction_cases())
record(lax.argmin_p, arg_reduction_cases())
record(lax.matmul_p, matmul_cases())

NAMES = sorted(RECORDS)


def applied(prim: Primitive, params: dict) -> Callable[..., Any]:
    """The primitive as a function of its operands, with ``params`` fixed."""
    return lambda *operands: prim.bind(*operands, **params)


def rng_from(data) -> np.random.Generator:
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


# ---------------------------------------------------------------------------
# Completeness
# ---------------------------------------------------------------------------


def test_every_primitive_has_every_rule():
    missing = []
    for prim in all_primitives():
        for slot in ("impl", "abstract_eval", "jvp", "vjp", "batch"):
            if getattr(prim, slot) is None:
                missing.append(f"{prim.name}.{slot}")
    assert not missing, f"primitives without rules: {missing}"


def test_the_table_covers_every_primitive():
    names = {p.name for p in all_primitives()}
    untested, unknown = names - set(RECORDS), set(RECORDS) - names
    assert not untested, f"primitives without a test record: {sorted(untested)}"
    assert not unknown, f"records of unknown primitives: {sorted(unknown)}"


# ---------------------------------------------------------------------------
# The checks, applied to every record
# ---------------------------------------------------------------------------


def _aval_matches(name: str, aval: ShapedArray, value: Any) -> None:
    value = np.asarray(value)
    assert aval.shape == value.shape, f"{name}: shape rule {aval.shape}, impl {value.shape}"
    assert aval.dtype == value.dtype, f"{name}: dtype rule {aval.dtype}, impl {value.dtype}"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_shape_rule_matches_impl(name, data):
    rec = RECORDS[name]
    case = data.draw(rec.cases, label="case")
    rng = rng_from(data)
    for dtype in (np.float64, np.float32):
        operands = case.sample(rng, dtype)
        out = rec.prim.impl(*operands, **case.params)
        aval = rec.prim.abstract_eval(*[get_aval(x) for x in operands], **case.params)
        if rec.prim.multiple_results:
            for a, o in zip(aval, out, strict=True):
                _aval_matches(name, a, o)
        else:
            _aval_matches(name, aval, out)
        # Binding outside any transform runs the implementation.
        np.testing.assert_array_equal(applied(rec.prim, case.params)(*operands), out)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_derivatives_match_finite_differences_to_second_order(name, data):
    rec = RECORDS[name]
    case = data.draw(rec.cases, label="case")
    operands = case.sample(rng_from(data))
    f = applied(rec.prim, case.params)
    if rec.finite_differences:
        check_grads(f, operands, order=2)
    else:
        _check_zero_derivative(f, operands)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=15, **SETTINGS)
@given(data=st.data())
def test_float32_derivatives_are_float32(name, data):
    rec = RECORDS[name]
    case = data.draw(rec.cases, label="case")
    operands = case.sample(rng_from(data), np.float32)
    f = applied(rec.prim, case.params)
    if rec.finite_differences:
        # Also checks that tangents and cotangents keep their primals' dtypes.
        check_grads(f, operands, order=1)
    floats = [i for i, x in enumerate(operands) if x.dtype == np.float32]
    if not floats:
        return
    out, tangent = ft.jvp(f, operands, [_tangent(x) for x in operands])
    if np.asarray(out).dtype.kind == "f":
        assert np.asarray(tangent).dtype == np.asarray(out).dtype
    restricted = lambda *fl: f(*_with(operands, floats, fl))
    _, pullback = ft.vjp(restricted, *[operands[i] for i in floats])
    ct = np.ones(np.shape(out), np.asarray(out).dtype)
    for c in pullback(ct):
        assert np.asarray(c).dtype == np.float32, (name, np.asarray(c).dtype)


def _tangent(x: np.ndarray) -> np.ndarray:
    return np.ones_like(x) if x.dtype.kind == "f" else np.zeros(x.shape, x.dtype)


def _with(operands, positions, values):
    full = list(operands)
    for i, v in zip(positions, values, strict=True):
        full[i] = v
    return full


def _check_zero_derivative(f, operands):
    floats = [i for i, x in enumerate(operands) if x.dtype.kind == "f"]
    out, tangent = ft.jvp(f, operands, [_tangent(x) for x in operands])
    np.testing.assert_array_equal(tangent, np.zeros_like(out))
    restricted = lambda *fl: f(*_with(operands, floats, fl))
    _, pullback = ft.vjp(restricted, *[operands[i] for i in floats])
    for c, i in zip(pullback(np.ones_like(out)), floats, strict=True):
        np.testing.assert_array_equal(c, np.zeros_like(operands[i]))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=15, **SETTINGS)
@given(data=st.data())
def test_compiled_code_matches_the_implementation(name, data):
    # Each primitive's NumPy lowering in the generated source (or its impl fallback),
    # against its implementation: values, dtypes and shapes, float64 and float32.
    rec = RECORDS[name]
    case = data.draw(rec.cases, label="case")
    rng = rng_from(data)
    for dtype in (np.float64, np.float32):
        operands = case.sample(rng, dtype)
        want = rec.prim.impl(*operands, **case.params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # e.g. 1/0 in both
            got = ft.jit(applied(rec.prim, case.params))(*operands)
        pairs = zip(got, want, strict=True) if rec.prim.multiple_results else [(got, want)]
        for g, w in pairs:
            assert np.asarray(g).dtype == np.asarray(w).dtype, (name, g, w)
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_vmap_matches_a_loop(name, data):
    rec = RECORDS[name]
    case = data.draw(rec.cases, label="case")
    rng = rng_from(data)
    f = applied(rec.prim, case.params)
    ranks = [len(shape) for shape, _, _ in case.operands]
    # Drawn from the seeded generator: uniform over None and every valid axis.
    in_axes = [None if rng.random() < 0.3 else int(rng.integers(-r - 1, r + 1)) for r in ranks]
    if all(a is None for a in in_axes):
        i = int(rng.integers(len(ranks)))
        in_axes[i] = int(rng.integers(0, ranks[i] + 1))
    for size in (0, 1, 3):
        examples = [case.sample(rng) for _ in range(max(size, 1))]
        batched = []
        for i, ax in enumerate(in_axes):
            if ax is None:
                batched.append(examples[0][i])
            elif size == 0:
                shape = list(examples[0][i].shape)
                shape.insert(ax % (ranks[i] + 1), 0)
                batched.append(np.zeros(shape, examples[0][i].dtype))
            else:
                stacked = [examples[b][i] for b in range(size)]
                batched.append(np.stack(stacked, axis=ax % (ranks[i] + 1)))
        got = ft.vmap(f, in_axes=tuple(in_axes))(*batched)
        per_example = [
            [examples[0][i] if ax is None else examples[b][i] for i, ax in enumerate(in_axes)]
            for b in range(size)
        ]
        if size:
            expected = np.stack([np.asarray(f(*ops)) for ops in per_example])
        else:
            aval = rec.prim.abstract_eval(*[get_aval(x) for x in examples[0]], **case.params)
            expected = np.zeros((0, *aval.shape), aval.dtype)
        got = np.asarray(got)
        assert got.shape == expected.shape, (name, in_axes, size, got.shape, expected.shape)
        assert got.dtype == expected.dtype, (name, in_axes, size, got.dtype, expected.dtype)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=f"{in_axes}")


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=10, **SETTINGS)
@given(data=st.data())
def test_vmap_of_the_derivative_rules_matches_a_loop(name, data):
    """The JVP and VJP rules are batched too (per-example derivatives)."""
    rec = RECORDS[name]
    case = data.draw(rec.cases, label="case")
    rng = rng_from(data)
    f = applied(rec.prim, case.params)
    examples = [case.sample(rng) for _ in range(3)]
    floats = [i for i, x in enumerate(examples[0]) if x.dtype.kind == "f"]
    out = np.asarray(f(*examples[0]))
    if not floats or out.dtype.kind != "f":
        return
    ops = [np.stack([ex[i] for ex in examples]) for i in range(len(examples[0]))]
    tangents = [rng.standard_normal(ops[i].shape) for i in floats]
    cotangent = rng.standard_normal((3, *out.shape))

    def derivatives(ops, tangents, cotangent):
        restricted = lambda *fl: f(*_with(ops, floats, fl))
        primals = [ops[i] for i in floats]
        _, t = ft.jvp(restricted, primals, tangents)
        return t, ft.vjp(restricted, *primals)[1](cotangent)

    got = ft.vmap(derivatives)(ops, tangents, cotangent)
    for b in range(3):
        expected = derivatives([o[b] for o in ops], [t[b] for t in tangents], cotangent[b])
        np.testing.assert_allclose(got[0][b], expected[0], rtol=1e-12, atol=1e-12)
        for g, e in zip(got[1], expected[1], strict=True):
            np.testing.assert_allclose(g[b], e, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# vmap adds no per-example work: the same program for every batch size
# ---------------------------------------------------------------------------

BATCH_PROGRAMS = {
    "matmul, batched matrix": (lambda w, x: lax.matmul(w, x), ((3, 4), (4,)), (0, None)),
    "matmul, batched vector": (lambda w, x: lax.matmul(w, x), ((3, 4), (4,)), (None, 0)),
    "matmul, both batched": (lambda w, x: lax.matmul(w, x), ((3, 4), (4, 2)), (0, 1)),
    "gather, batched operand": (lambda x: lax.gather(x, [np.array([0, 2, 2])]), ((4, 3),), (1,)),
    "gather, batched indices": (lambda x, i: lax.gather(x, [i]), ((4, 3), "index"), (None, 0)),
    "scatter_add, both batched": (
        lambda o, u, i: lax.scatter_add(o, u, [i]),
        ((4, 2), (3, 2), "index"),
        (0, 0, 0),
    ),
    "reduce_sum": (lambda x: lax.reduce_sum(x, (1,)), ((2, 3),), (1,)),
    "reduce_prod": (lambda x: lax.reduce_prod(x, (0, 1)), ((2, 3),), (0,)),
    "concatenate, one unbatched": (
        lambda x, y: lax.concatenate([x, y], 0),
        ((2, 3), (1, 3)),
        (0, None),
    ),
    "mul, batched scalar": (lambda s, x: lax.mul(s, x), ((), (2, 3)), (0, None)),
    "transpose": (lambda x: lax.transpose(x, (2, 0, 1)), ((2, 3, 4),), (2,)),
    "select": (lambda x, y: lax.select(lax.gt(x, y), x, y), ((2, 3), (2, 3)), (0, 1)),
}


def _batched_inputs(shapes, in_axes, size, rng):
    out = []
    for shape, ax in zip(shapes, in_axes, strict=True):
        if shape == "index":
            value = rng.integers(0, 4, (3,))
        else:
            value = rng.standard_normal(shape)
        if ax is not None:
            value = np.stack([value] * size, axis=ax)
        out.append(value)
    return out


@pytest.mark.parametrize("program", sorted(BATCH_PROGRAMS))
def test_vmap_program_size_does_not_grow_with_the_batch(program):
    f, shapes, in_axes = BATCH_PROGRAMS[program]
    rng = np.random.default_rng(0)
    counts = {}
    for size in (1, 7, 1000):
        args = _batched_inputs(shapes, in_axes, size, rng)
        counts[size] = len(ft.make_jaxpr(ft.vmap(f, in_axes=in_axes))(*args).eqns)
        got = ft.vmap(f, in_axes=in_axes)(*args)
        assert np.shape(got)[0] == size
    assert len(set(counts.values())) == 1, counts


# ---------------------------------------------------------------------------
# Higher order through composites: forward-over-reverse and reverse-over-reverse
# ---------------------------------------------------------------------------


def _scalar(x):
    return np.float64(x)


def _mlp(x):
    w1 = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    w2 = np.linspace(0.5, -0.5, 6).reshape(2, 3)
    b1 = np.array([0.1, -0.2, 0.3])
    h = lax.sigmoid(lax.add(lax.matmul(w1, x), b1))
    return lax.reduce_sum(lax.integer_pow(lax.tanh(lax.matmul(w2, h)), 2), (0,))


def _logsumexp(x):
    peak = lax.stop_gradient(lax.reduce_max(x, (0,)))
    shifted = lax.sub(x, lax.broadcast_in_dim(peak, x.shape, ()))
    return lax.add(lax.log(lax.reduce_sum(lax.exp(shifted), (0,))), peak)


def _structural(x):
    z = lax.concatenate([lax.rev(x, (0,)), lax.integer_pow(x, 2)], 0)
    g = lax.gather(z, [np.array([0, 3, 3, 7, 1])])
    padded = lax.pad(lax.slice(g, (1,), (5,), (2,)), ((1, 0, 1),))
    return lax.reduce_sum(lax.mul(padded, lax.sin(padded)), (0,))


def _product(x):
    squares = lax.add(lax.mul(x, x), _scalar(0.5))
    return lax.div(lax.sqrt(lax.reduce_prod(squares, (0,))), lax.reduce_sum(lax.exp(x), (0,)))


COMPOSITES = {"mlp": _mlp, "logsumexp": _logsumexp, "structural": _structural, "product": _product}


def _vdot(a, b):
    return lax.reduce_sum(lax.mul(a, b), (0,))


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_forward_over_reverse_and_reverse_over_reverse(name):
    f = COMPOSITES[name]
    rng = np.random.default_rng(7)
    x = rng.uniform(-1.0, 1.0, 4)
    v = rng.standard_normal(4)
    eps = 1e-5
    hvp_fd = (ft.grad(f)(x + eps * v) - ft.grad(f)(x - eps * v)) / (2 * eps)

    _, fwd_over_rev = ft.jvp(ft.grad(f), (x,), (v,))
    rev_over_rev = ft.grad(lambda y: _vdot(ft.grad(f)(y), v))(x)
    hessian = ft.hessian(f)(x)
    np.testing.assert_allclose(fwd_over_rev, hvp_fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(rev_over_rev, hvp_fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(hessian @ v, hvp_fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(hessian, hessian.T, rtol=1e-10, atol=1e-12)
    # Third derivatives: the gradient's own derivatives to second order.
    check_grads(ft.grad(f), (x,), order=2)


# ---------------------------------------------------------------------------
# Points the random records avoid: ties, zeros, Python scalars
# ---------------------------------------------------------------------------


def test_ties_share_the_derivative_of_max_and_min():
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([1.0, 0.0, 3.0])
    for prim in (lax.max, lax.min):
        gx, gy = ft.grad(lambda a, b, p=prim: lax.reduce_sum(p(a, b), (0,)), (0, 1))(x, y)
        assert gx[0] == gy[0] == 0.5 and gx[2] == gy[2] == 0.5
        assert gx[1] + gy[1] == 1.0


def test_ties_share_the_derivative_of_reduce_max():
    x = np.array([[2.0, 2.0, 1.0], [0.0, 5.0, 5.0]])
    g = ft.grad(lambda a: lax.reduce_sum(lax.reduce_max(a, (1,)), (0,)))(x)
    np.testing.assert_array_equal(g, [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])


def test_prod_derivatives_at_zeros_match_the_closed_form():
    a, b = 1.5, -0.7
    f = lambda x: lax.reduce_prod(x, (0,))
    # d prod / dx_i = product of the others; d^2 prod / dx_i dx_j = product of the rest.
    np.testing.assert_allclose(ft.grad(f)(np.array([0.0, a, b])), [a * b, 0.0, 0.0])
    np.testing.assert_allclose(
        ft.hessian(f)(np.array([0.0, a, b])), [[0, b, a], [b, 0, 0], [a, 0, 0]], atol=1e-15
    )
    np.testing.assert_allclose(
        ft.hessian(f)(np.array([0.0, 0.0, b])), [[0, b, 0], [b, 0, 0], [0, 0, 0]], atol=1e-15
    )


def test_pow_derivative_at_a_zero_base():
    # d/dy 0**y is 0 (the limit for y > 0), not nan from log(0).
    gx, gy = ft.grad(lambda x, y: lax.pow(x, y), (0, 1))(np.float64(0.0), np.float64(2.0))
    assert gx == 0.0 and gy == 0.0


def test_pow_derivative_for_a_zero_exponent():
    # x**0 is constant, also at x = 0: d/dx is 0 there, not 0 * inf.
    x, y = np.array([0.0, 2.0]), np.array([0.0, 0.0])
    np.testing.assert_array_equal(ft.grad(lambda x: lax.reduce_sum(lax.pow(x, y), (0,)))(x), 0)
    _, t = ft.jvp(lambda x: lax.pow(x, 0.0), (x,), (np.ones(2),))
    np.testing.assert_array_equal(t, 0)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow", "max", "min"])
@pytest.mark.parametrize("scalar_first", [False, True])
def test_python_scalar_operands_keep_float32_derivatives(name, scalar_first):
    op = getattr(lax, name)
    f = (lambda x: op(1.5, x)) if scalar_first else (lambda x: op(x, 1.5))
    x = np.array([0.5, 2.5], np.float32)
    ones = np.ones(2, np.float32)
    assert f(x).dtype == np.float32
    assert np.asarray(ft.jvp(f, (x,), (ones,))[1]).dtype == np.float32
    assert ft.vjp(f, x)[1](ones)[0].dtype == np.float32
    # Staged, a float64 constant would be a dtype error rather than a silent upcast.
    loss = lambda x: lax.reduce_sum(f(x), (0,))
    assert ft.make_jaxpr(ft.grad(loss))(x).out_avals[0].dtype == np.float32
    check_grads(f, (x,), order=2)


def test_a_weak_type_conversion_changes_only_the_type():
    aval = lax.convert_element_type_p.abstract_eval(
        ShapedArray((3,), np.int64), new_dtype=np.dtype(np.int64), weak_type=True
    )
    assert aval.weak_type and aval.dtype == np.int64
    i = np.arange(3)
    weak = lambda i: lax.convert_element_type(i, np.int64, weak_type=True)
    for f in (weak, ft.jit(weak), ft.vmap(weak)):
        np.testing.assert_array_equal(f(i), i)
    # A float32 array plus the weakly typed value stays float32, as with a Python int.
    x = np.ones(3, np.float32)
    added = ft.make_jaxpr(lambda x, i: x + weak(i))(x, i)
    assert added.out_avals[0].dtype == np.float32
    np.testing.assert_array_equal(ft.jit(lambda x, i: x + weak(i))(x, i), x + i.astype(np.float32))
