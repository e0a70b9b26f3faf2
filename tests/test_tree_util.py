"""Pytrees: flattening, rebuilding, registration."""

import collections
import dataclasses

import numpy as np
import pytest

import functrans as ft
from functrans import tree_util as tu

Point = collections.namedtuple("Point", ["x", "y"])


def test_round_trip_of_nested_containers():
    tree = {"b": [1, (2, None)], "a": Point(3, {"z": 4})}
    leaves, treedef = tu.tree_flatten(tree)
    assert leaves == [3, 4, 1, 2]
    assert tu.tree_unflatten(treedef, leaves) == tree
    assert treedef.num_leaves == 4


def test_dict_keys_flatten_sorted_and_structure_hashable():
    one = tu.tree_structure({"b": 1, "a": 2})
    two = tu.tree_structure({"a": 5, "b": 6})
    assert one == two and hash(one) == hash(two)
    assert tu.tree_structure((1, 2)) != tu.tree_structure([1, 2])


def test_tree_map_with_several_trees_and_mismatch():
    assert tu.tree_map(lambda a, b: a * b, (1, [2]), (3, [4])) == (3, [8])
    with pytest.raises(ValueError, match="structures differ"):
        tu.tree_map(lambda a, b: a, (1, 2), [1, 2])


def test_unflatten_wrong_number_of_leaves():
    _, treedef = tu.tree_flatten((1, 2))
    with pytest.raises(ValueError, match="has 2 leaves, got 3"):
        tu.tree_unflatten(treedef, [1, 2, 3])


def test_register_pytree_node_and_use_under_grad():
    class Pair:
        def __init__(self, a, b):
            self.a, self.b = a, b

    tu.register_pytree_node(Pair, lambda p: ((p.a, p.b), None), lambda _, c: Pair(*c))
    g = ft.grad(lambda p: p.a * p.b)(Pair(2.0, 5.0))
    assert isinstance(g, Pair) and (float(g.a), float(g.b)) == (5.0, 2.0)
    with pytest.raises(ValueError, match="already registered"):
        tu.register_pytree_node(Pair, lambda p: ((), None), lambda _, c: Pair(0, 0))


def test_register_dataclass_static_fields():
    @tu.register_dataclass
    @dataclasses.dataclass
    class Layer:
        w: np.ndarray
        b: np.ndarray
        activation: str = dataclasses.field(default="tanh", metadata=dict(static=True))

    layer = Layer(np.ones(2), np.zeros(2))
    leaves, treedef = tu.tree_flatten(layer)
    assert len(leaves) == 2
    rebuilt = tu.tree_unflatten(treedef, leaves)
    assert rebuilt.activation == "tanh"
    assert tu.tree_structure(Layer(1, 2, "relu")) != tu.tree_structure(Layer(1, 2, "tanh"))


def test_register_dataclass_rejects_plain_class():
    with pytest.raises(TypeError, match="not a dataclass"):
        tu.register_dataclass(int)


def test_broadcast_prefix():
    assert tu.broadcast_prefix((0, None), ((1, 2), {"a": 3})) == [0, 0, None]
    with pytest.raises(ValueError, match="not a tree prefix"):
        tu.broadcast_prefix((0, 1, 2), (1, 2))


def test_ordered_dict_is_a_container_in_insertion_order():
    tree = collections.OrderedDict([("b", 1.0), ("a", (2.0, 3.0))])
    leaves, treedef = tu.tree_flatten(tree)
    assert leaves == [1.0, 2.0, 3.0]
    rebuilt = tu.tree_unflatten(treedef, leaves)
    assert type(rebuilt) is collections.OrderedDict and list(rebuilt) == ["b", "a"]
    assert rebuilt == tree
    # The order is part of the structure, and an OrderedDict is not a dict.
    reordered = collections.OrderedDict([("a", (2.0, 3.0)), ("b", 1.0)])
    assert tu.tree_structure(reordered) != treedef
    assert tu.tree_structure(dict(tree)) != treedef
    assert repr(treedef) == "OrderedDict({'b': *, 'a': (*, *)})"
    with pytest.raises(ValueError, match="structures differ"):
        tu.tree_map(lambda x, y: x, tree, reordered)


def test_defaultdict_is_a_container_that_keeps_its_factory():
    tree = collections.defaultdict(list, {"b": 1.0, "a": [2.0]})
    leaves, treedef = tu.tree_flatten(tree)
    assert leaves == [2.0, 1.0]  # sorted keys, as a dict
    rebuilt = tu.tree_map(lambda x: x * 10, tree)
    assert type(rebuilt) is collections.defaultdict and rebuilt.default_factory is list
    assert rebuilt == {"a": [20.0], "b": 10.0}
    assert rebuilt["missing"] == []
    assert tu.tree_structure(collections.defaultdict(int, tree)) != treedef
    assert tu.tree_structure(dict(tree)) != treedef
    assert repr(treedef) == "defaultdict(<class 'list'>, {'a': [*], 'b': *})"


def test_dict_subclasses_under_the_transforms():
    ordered = collections.OrderedDict([("w", np.array([1.0, 2.0])), ("b", np.float64(0.5))])
    default = collections.defaultdict(float, {"w": np.array([1.0, 2.0]), "b": np.float64(0.5)})
    for params in (ordered, default):
        # Rebuilt in flattening order: insertion order, or sorted keys for a defaultdict.
        keys = list(params) if type(params) is collections.OrderedDict else sorted(params)
        loss = lambda p: (p["w"] * p["w"]).sum() * p["b"]
        g = ft.grad(loss)(params)
        assert type(g) is type(params) and list(g) == keys
        np.testing.assert_allclose(g["w"], [1.0, 2.0])
        np.testing.assert_allclose(g["b"], 5.0)
        f = ft.jit(lambda p: tu.tree_map(lambda x: 2 * x, p))
        for _ in range(2):
            out = f(params)
            assert type(out) is type(params) and list(out) == keys
            np.testing.assert_allclose(out["w"], [2.0, 4.0])
        assert f.cache_info().hits == 1 and f.cache_info().misses == 1
        if type(params) is collections.defaultdict:
            assert out.default_factory is float
        stacked = tu.tree_map(lambda x: np.stack([x, x]), params)
        batched = ft.vmap(lambda p: p["w"] * p["b"])(stacked)
        np.testing.assert_allclose(batched, [[0.5, 1.0], [0.5, 1.0]])
