"""The primitive registry: every primitive functrans defines has every rule each
transform needs, and a primitive without a rule fails with an error that names the
primitive, the transform and the fix."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import functrans as ft
from functrans.core import Primitive, ShapedArray, registered_primitives
from functrans.primitives import all_primitives


def _ours() -> list[Primitive]:
    return [p for p in registered_primitives() if p.module.startswith("functrans.")]


def test_the_registry_holds_every_primitive_functrans_defines():
    names = {p.name for p in _ours()}
    for expected in ("add", "matmul", "broadcast_in_dim", "reduce_sum", "erf", "cond", "jit"):
        assert expected in names
    assert {p.name for p in all_primitives()} <= names


def test_every_registered_primitive_has_every_rule():
    missing = []
    for prim in _ours():
        needed = ["impl", "abstract_eval", "jvp", "batch"]
        if prim.differentiable and prim.reverse is None:
            needed.append("vjp")
        missing += [f"{prim.name}.{slot}" for slot in needed if getattr(prim, slot) is None]
    assert not missing, f"primitives without rules: {missing}"


def test_primitives_remember_where_they_are_defined():
    by_name = {p.name: p for p in _ours()}
    assert by_name["add"].module == "functrans.primitives.arithmetic"
    assert by_name["matmul"].module == "functrans.primitives.linalg"
    assert by_name["reduce_max"].module == "functrans.primitives.reductions"  # via a helper


def _half_defined(name: str, **slots) -> Primitive:
    """A doubling primitive with impl and shape rule, plus the given rules only."""
    prim = Primitive(name)
    prim.def_impl(lambda x: 2 * x)
    prim.def_abstract_eval(lambda x: ShapedArray(x.shape, x.dtype))
    for slot, rule in slots.items():
        setattr(prim, slot, rule)
    return prim


def test_a_primitive_without_a_batching_rule_names_what_to_add():
    prim = _half_defined("double_without_batch")
    with pytest.raises(NotImplementedError) as info:
        ft.vmap(prim.bind)(np.ones((3, 2)))
    message = str(info.value)
    assert "vmap" in message and "'double_without_batch'" in message
    assert "batching" in message and "def_batch" in message
    assert __name__ in message  # where the primitive was defined


def test_a_primitive_without_derivative_rules_names_what_to_add():
    prim = _half_defined("double_without_derivatives")
    with pytest.raises(NotImplementedError, match=r"jvp: .*'double_without_derivatives'.*def_jvp"):
        ft.jvp(prim.bind, (np.ones(2),), (np.ones(2),))
    with pytest.raises(NotImplementedError, match=r"grad: .*'double_without_derivatives'.*def_vjp"):
        ft.grad(lambda x: prim.bind(x).sum())(np.ones(2))


def test_a_primitive_without_a_shape_rule_cannot_be_staged():
    prim = Primitive("double_without_shape_rule")
    prim.def_impl(lambda x: 2 * x)
    np.testing.assert_array_equal(prim.bind(np.ones(2)), [2.0, 2.0])  # eager: the impl
    with pytest.raises(
        NotImplementedError, match=r"'double_without_shape_rule'.*def_abstract_eval"
    ):
        ft.make_jaxpr(prim.bind)(np.ones(2))


def test_a_primitive_without_an_impl_cannot_be_evaluated():
    prim = Primitive("shape_only")
    prim.def_abstract_eval(lambda x: ShapedArray(x.shape, x.dtype))
    with pytest.raises(NotImplementedError, match=r"'shape_only'.*def_impl"):
        prim.bind(np.ones(2))


def test_a_new_transform_keeps_its_rules_in_the_rules_table():
    prim = _half_defined("double_with_a_cost")
    prim.def_rule("cost_model", lambda *avals: 1)
    assert prim.rules["cost_model"]() == 1


def test_primitives_made_and_dropped_leave_the_registry():
    gc.collect()
    before = len(registered_primitives())
    _half_defined("short_lived")
    gc.collect()
    assert len(registered_primitives()) == before
