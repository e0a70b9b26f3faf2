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
