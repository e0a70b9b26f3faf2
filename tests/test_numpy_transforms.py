"""Every ``functrans.numpy`` function under the transforms, from the same records as
``test_numpy.py``: derivatives against finite differences (forward and reverse, first
and second order) and ``vmap`` against a Python loop over random ``in_axes``."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_numpy import RECORDS, SETTINGS, assert_same

import functrans as ft
import functrans.numpy as fnp
from functrans.test_util import check_grads
from functrans.tree_util import tree_leaves, tree_map

EXAMPLES = int(os.environ.get("FNP_EXAMPLES", 6))

# Derivatives are not defined (or finite differences cannot see them) for these; and
# concatenate_mixed computes in float32 on purpose, below float64 finite differences.
NOT_SMOOTH = {
    "sign",
    "floor",
    "abs",
    "absolute",
    "clip",
    "maximum",
    "minimum",
    "max",
    "min",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "where",
    "concatenate_mixed",
}


def _draw_case(rec, data, dtype):
    operands, params = data.draw(rec.cases, label="case")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    args = [
        o if isinstance(o, (np.ndarray, np.generic)) else np.asarray(rec.domain(rng, o, dtype))
        for o in operands
    ]
    return args, params, rng


def _float_output(out) -> bool:
    """Float and finite: finite differences say nothing about nan or inf outputs."""
    leaves = [np.asarray(leaf) for leaf in tree_leaves(out)]
    return all(v.dtype.kind == "f" and np.isfinite(v).all() for v in leaves)


DIFFERENTIABLE = [
    r
    for r in RECORDS
    if np.float64 in r.dtypes
    and r.name.split("_")[0] not in NOT_SMOOTH
    and r.name not in NOT_SMOOTH
]


@pytest.mark.parametrize("rec", DIFFERENTIABLE, ids=lambda r: r.name)
@settings(max_examples=EXAMPLES, **SETTINGS)
@given(data=st.data())
def test_derivatives_match_finite_differences(rec, data):
    args, params, _ = _draw_case(rec, data, np.float64)
    diff = [i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f"]
    if not diff:
        return

    def f(*xs):
        full = list(args)
        for i, x in zip(diff, xs, strict=True):
            # Perturbed 0-d inputs come back as NumPy scalars, which lack array methods.
            full[i] = np.asarray(x) if isinstance(x, np.generic) else x
        return rec.fun(fnp, *full, **params)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = f(*[args[i] for i in diff])
        if not _float_output(out):
            return
        if rec.name.startswith("std") and any(np.any(v == 0) for v in tree_leaves(out)):
            return  # sqrt at 0: a group of one element (or of equal ones) has no derivative
        check_grads(f, tuple(args[i] for i in diff), order=2, modes=("fwd", "rev"))


def _same_case(one, other) -> bool:
    """Two drawn cases with the same static parameters and operand shapes (only those
    can be stacked into one batch)."""
    (ops_a, params_a, _), (ops_b, params_b, _) = one, other
    if [np.shape(a) for a in ops_a] != [np.shape(b) for b in ops_b]:
        return False
    return repr(params_a) == repr(params_b)  # params hold slices, Ellipsis and arrays


def _batch(arrays, axis):
    return np.stack(arrays, axis=axis)


@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r.name)
@settings(max_examples=EXAMPLES, **SETTINGS)
@given(data=st.data())
def test_vmap_matches_a_loop(rec, data):
    dtype = data.draw(st.sampled_from(rec.dtypes), label="dtype")
    size = data.draw(st.sampled_from([3, 1, 0]), label="batch size")
    samples = [_draw_case(rec, data, dtype) for _ in range(max(size, 1))]
    operands, params = samples[0][0], samples[0][1]
    if any(not _same_case(s, samples[0]) for s in samples):
        samples = [(operands, params, None)] * max(size, 1)
    mapped = data.draw(
        st.lists(st.booleans(), min_size=len(operands), max_size=len(operands)), label="mapped"
    )
    if not any(mapped) or rec.name.endswith("_method") or rec.name.startswith("getitem"):
        # A receiver must be a tracer: ndarray.dot(tracer) and ndarray[tracer] are NumPy's
        # own methods, which convert their argument (use fnp.dot / fnp.take instead).
        mapped[0] = True
    in_axes, batched = [], []
    for i, a in enumerate(operands):
        if not mapped[i]:
            in_axes.append(None)
            batched.append(a)
            continue
        ndim = np.ndim(a) + 1
        axis = data.draw(st.integers(-ndim, ndim - 1), label=f"axis {i}")
        in_axes.append(axis)
        column = [np.asarray(s[0][i]) for s in samples][:size] if size else []
        if size == 0:
            empty_shape = list(np.shape(a))
            empty_shape.insert(axis % ndim, 0)
            batched.append(np.zeros(empty_shape, np.asarray(a).dtype))
        else:
            batched.append(_batch(column, axis % ndim))

    def f(*xs):
        return rec.fun(fnp, *xs, **params)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if size == 0:
            try:
                f(*operands)  # an empty batch of a case that is itself an error: skip it
            except Exception:
                return
        got = ft.vmap(f, in_axes=tuple(in_axes))(*batched)
        if size == 0:
            for leaf in tree_leaves(got):
                assert np.shape(leaf)[0] == 0
            return
        rows = []
        for k in range(size):
            row_args = [
                a if ax is None else np.asarray(np.take(a, k, axis=ax % a.ndim))
                for a, ax in zip(batched, in_axes, strict=True)
            ]
            rows.append(f(*row_args))
        want = tree_map(lambda *leaves: np.stack([np.asarray(v) for v in leaves]), *rows)
        if dtype == np.float32:
            # Computed in float32 (a batch may sum in another order), maybe stored wider.
            want = tree_map(
                lambda v: (
                    v.astype(np.promote_types(v.dtype, np.float32)) if v.dtype.kind == "f" else v
                ),
                want,
            )
            for g, w in zip(tree_leaves(got), tree_leaves(want), strict=True):
                assert np.asarray(g).dtype == w.dtype, (rec.name, in_axes)
                np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5, err_msg=rec.name)
            return
        assert_same(got, want, False, f"{rec.name}: vmap in_axes={in_axes}")
