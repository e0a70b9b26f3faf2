"""Pytrees: nested containers of arrays that every transform accepts and returns.

Containers are tuples, lists, dicts (flattened in sorted key order), ``None`` (no
leaves), namedtuples, ``collections.OrderedDict`` (in insertion order, which is part
of its structure), ``collections.defaultdict`` (sorted keys, as a dict; its
``default_factory`` is part of its structure) and registered classes; everything else
is a leaf. Other subclasses of dict are leaves unless registered.

>>> leaves, treedef = tree_flatten({"b": (1, 2), "a": [3]})
>>> leaves
[3, 1, 2]
>>> tree_unflatten(treedef, [x * 10 for x in leaves])
{'a': [30], 'b': (10, 20)}
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Hashable, Iterable
from typing import Any, NamedTuple, TypeVar

__all__ = [
    "PyTreeDef",
    "broadcast_prefix",
    "leaf_paths",
    "register_dataclass",
    "register_pytree_node",
    "tree_flatten",
    "tree_leaves",
    "tree_map",
    "tree_structure",
    "tree_unflatten",
]

T = TypeVar("T")


class _NodeType(NamedTuple):
    flatten: Callable[[Any], tuple[Iterable[Any], Hashable]]
    unflatten: Callable[[Hashable, Iterable[Any]], Any]


def _flatten_dict(d: dict) -> tuple[list, tuple]:
    keys = tuple(sorted(d))
    return [d[k] for k in keys], keys


def _flatten_ordered_dict(d: collections.OrderedDict) -> tuple[list, tuple]:
    keys = tuple(d)
    return [d[k] for k in keys], keys


def _flatten_defaultdict(d: collections.defaultdict) -> tuple[list, tuple]:
    values, keys = _flatten_dict(d)
    return values, (d.default_factory, keys)


def _unflatten_defaultdict(aux: tuple, xs: Iterable[Any]) -> collections.defaultdict:
    factory, keys = aux
    return collections.defaultdict(factory, zip(keys, xs, strict=True))


_registry: dict[type, _NodeType] = {
    tuple: _NodeType(lambda t: (t, None), lambda _, xs: tuple(xs)),
    list: _NodeType(lambda t: (t, None), lambda _, xs: list(xs)),
    dict: _NodeType(_flatten_dict, lambda keys, xs: dict(zip(keys, xs, strict=True))),
    type(None): _NodeType(lambda _: ((), None), lambda _, __: None),
    collections.OrderedDict: _NodeType(
        _flatten_ordered_dict,
        lambda keys, xs: collections.OrderedDict(zip(keys, xs, strict=True)),
    ),
    collections.defaultdict: _NodeType(_flatten_defaultdict, _unflatten_defaultdict),
}


def register_pytree_node(
    nodetype: type,
    flatten_func: Callable[[Any], tuple[Iterable[Any], Hashable]],
    unflatten_func: Callable[[Hashable, Iterable[Any]], Any],
) -> None:
    """Make instances of ``nodetype`` containers: ``flatten_func(x) -> (children,
    aux_data)`` and ``unflatten_func(aux_data, children) -> x``. ``aux_data`` must be
    hashable; it is part of the tree structure (and so of ``jit``'s cache key)."""
    if nodetype in _registry:
        raise ValueError(f"register_pytree_node: {nodetype.__name__} is already registered")
    _registry[nodetype] = _NodeType(flatten_func, unflatten_func)


def register_dataclass(cls: type[T]) -> type[T]:
    """Class decorator: a dataclass whose fields are children, except fields whose
    metadata marks them ``static=True``, which become part of the tree structure.

    >>> import dataclasses
    >>> @register_dataclass
    ... @dataclasses.dataclass
    ... class Layer:
    ...     w: float
    ...     name: str = dataclasses.field(default="dense", metadata=dict(static=True))
    >>> tree_leaves(Layer(2.0))
    [2.0]
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"register_dataclass: {cls.__name__} is not a dataclass")
    fields = [f for f in dataclasses.fields(cls) if f.init]
    data = tuple(f.name for f in fields if not f.metadata.get("static", False))
    static = tuple(f.name for f in fields if f.metadata.get("static", False))

    def flatten(obj):
        return [getattr(obj, n) for n in data], tuple(getattr(obj, n) for n in static)

    def unflatten(aux, children):
        kwargs = dict(zip(data, children, strict=True))
        kwargs.update(zip(static, aux, strict=True))
        return cls(**kwargs)

    register_pytree_node(cls, flatten, unflatten)
    return cls


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


class PyTreeDef:
    """The structure of a pytree, without its leaves. Hashable and comparable."""

    __slots__ = ("node_type", "aux", "children", "num_leaves", "_hash")

    def __init__(self, node_type: type | None, aux: Hashable, children: tuple[PyTreeDef, ...]):
        self.node_type = node_type  # None for a leaf
        self.aux = aux
        self.children = children
        self.num_leaves = 1 if node_type is None else sum(c.num_leaves for c in children)
        self._hash = hash((node_type, aux, children))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PyTreeDef)
            and self._hash == other._hash
            and self.node_type is other.node_type
            and self.aux == other.aux
            and self.children == other.children
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        if self.node_type is None:
            return "*"
        inner = ", ".join(map(repr, self.children))
        if self.node_type is tuple:
            return f"({inner}{',' if len(self.children) == 1 else ''})"
        if self.node_type is list:
            return f"[{inner}]"
        if self.node_type is dict:
            return self._items(self.aux)
        if self.node_type is collections.OrderedDict:
            return f"OrderedDict({self._items(self.aux)})"
        if self.node_type is collections.defaultdict:
            factory, keys = self.aux
            return f"defaultdict({factory!r}, {self._items(keys)})"
        if self.node_type is type(None):
            return "None"
        return f"{self.node_type.__name__}({inner})"

    def _items(self, keys: tuple) -> str:
        items = (f"{k!r}: {c!r}" for k, c in zip(keys, self.children, strict=True))
        return "{" + ", ".join(items) + "}"


_LEAF = PyTreeDef(None, None, ())


def _flatten(tree: Any, leaves: list, is_leaf: Callable[[Any], bool] | None) -> PyTreeDef:
    if is_leaf is not None and is_leaf(tree):
        leaves.append(tree)
        return _LEAF
    node_type = type(tree)
    entry = _registry.get(node_type)
    if entry is None:
        if _is_namedtuple(tree):
            children = tuple(_flatten(c, leaves, is_leaf) for c in tree)
            return PyTreeDef(node_type, None, children)
        leaves.append(tree)
        return _LEAF
    child_values, aux = entry.flatten(tree)
    children = tuple(_flatten(c, leaves, is_leaf) for c in child_values)
    return PyTreeDef(node_type, aux, children)


def tree_flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, PyTreeDef]:
    """Split a pytree into its list of leaves and its structure."""
    leaves: list = []
    treedef = _flatten(tree, leaves, is_leaf)
    return leaves, treedef


def _unflatten(treedef: PyTreeDef, leaves: Iterable[Any]) -> Any:
    if treedef.node_type is None:
        return next(leaves)
    children = [_unflatten(c, leaves) for c in treedef.children]
    entry = _registry.get(treedef.node_type)
    if entry is None:  # namedtuple
        return treedef.node_type(*children)
    return entry.unflatten(treedef.aux, children)


def tree_unflatten(treedef: PyTreeDef, leaves: Iterable[Any]) -> Any:
    """Rebuild a pytree of structure ``treedef`` from ``leaves``."""
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(
            f"tree_unflatten: the structure {treedef} has {treedef.num_leaves} leaves, "
            f"got {len(leaves)}"
        )
    return _unflatten(treedef, iter(leaves))


def tree_leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list:
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> PyTreeDef:
    return tree_flatten(tree, is_leaf)[1]


def tree_map(
    f: Callable[..., Any],
    tree: Any,
    *rest: Any,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """Apply ``f`` to corresponding leaves of ``tree`` and of each tree in ``rest``.

    >>> tree_map(lambda x, y: x + y, {"a": 1, "b": (2, 3)}, {"a": 10, "b": (20, 30)})
    {'a': 11, 'b': (22, 33)}
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = []
    for other in rest:
        other_leaves, other_def = tree_flatten(other, is_leaf)
        if other_def != treedef:
            raise ValueError(f"tree_map: tree structures differ: {treedef} and {other_def}")
        others.append(other_leaves)
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others, strict=True)])


def broadcast_prefix(prefix: Any, tree: Any, what: str = "prefix") -> list:
    """One entry of ``prefix`` per leaf of ``tree``, where ``prefix`` is a pytree prefix
    of ``tree`` (a leaf of ``prefix`` stands for a whole subtree of ``tree``).
    ``None`` in the prefix is a leaf, as for ``vmap``'s ``in_axes``."""
    out: list = []

    def go(p: Any, t: Any, path: str) -> None:
        if p is None or _registry.get(type(p)) is None and not _is_namedtuple(p):
            out.extend([p] * tree_structure(t).num_leaves)
            return
        p_children, p_def = _children(p)
        t_children, t_def = _children(t)
        if t_def is None or p_def != t_def or len(p_children) != len(t_children):
            raise ValueError(
                f"{what} {prefix!r} is not a tree prefix of the structure "
                f"{tree_structure(tree)} it applies to (mismatch at {path or 'the root'})"
            )
        for i, (pc, tc) in enumerate(zip(p_children, t_children, strict=True)):
            go(pc, tc, f"{path}[{i}]")

    go(prefix, tree, "")
    return out


def _children(x: Any) -> tuple[list, Any]:
    entry = _registry.get(type(x))
    if entry is not None:
        children, aux = entry.flatten(x)
        return list(children), (type(x), aux)
    if _is_namedtuple(x):
        return list(x), (type(x), None)
    return [], None


def leaf_paths(tree: Any, root: str) -> list[str]:
    """A readable path for each leaf of ``tree``, in flattening order, for error
    messages.

    >>> leaf_paths({"b": [1.0, 2.0], "a": 3.0}, "xs")
    ["xs['a']", "xs['b'][0]", "xs['b'][1]"]
    """
    paths: list[str] = []

    def go(x: Any, path: str) -> None:
        if x is None:
            return
        if isinstance(x, tuple) and hasattr(type(x), "_fields"):
            for field, child in zip(x._fields, x, strict=True):
                go(child, f"{path}.{field}")
        elif type(x) in (tuple, list):
            for i, child in enumerate(x):
                go(child, f"{path}[{i}]")
        elif type(x) in (dict, collections.defaultdict, collections.OrderedDict):
            # In flattening order: sorted keys, but an OrderedDict's own order.
            keys = list(x) if type(x) is collections.OrderedDict else sorted(x)
            for key in keys:
                go(x[key], f"{path}[{key!r}]")
        else:
            leaves, treedef = tree_flatten(x)
            if treedef.node_type is None:
                paths.append(path)
            else:
                kind = type(x).__name__
                paths.extend(f"{path}<{kind} leaf {j}>" for j in range(len(leaves)))

    go(tree, root)
    return paths
