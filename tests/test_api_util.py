"""The transforms' front door for arguments (the order in which modules import each
other is checked by ``test_layers.py``)."""

import numpy as np
import pytest

import functrans as ft
from functrans.transforms import api_util


def test_argnums_are_checked_once_in_the_same_words():
    assert api_util.argnums_tuple("grad(f)", "argnums", np.int64(1)) == (1,)
    assert api_util.argnums_tuple("grad(f)", "argnums", [0, -1]) == (0, -1)
    with pytest.raises(TypeError, match=r"grad\(f\): argnums must be an int or a tuple"):
        api_util.argnums_tuple("grad(f)", "argnums", True)
    with pytest.raises(TypeError, match="nondiff_argnums must be a tuple of ints"):
        api_util.argnums_tuple("custom_jvp", "nondiff_argnums", (0, "x"))
    assert api_util.static_argnums_tuple("jit(f)", None) == ()
    assert api_util.argnum_positions("f", "argnums", (0, -1), 3) == (0, 2)
    with pytest.raises(ValueError, match=r"-4 is out of range for a call with 3 positional"):
        api_util.argnum_positions("f", "static_argnums", (-4,), 3)


def test_static_argnames():
    assert api_util.static_argnames_tuple("jit(f)", "n") == ("n",)
    assert api_util.static_argnames_tuple("jit(f)", ["n", "m"]) == ("n", "m")
    assert api_util.static_argnames_tuple("jit(f)", None) == ()
    with pytest.raises(TypeError, match="static_argnames must be a str or a tuple of str"):
        api_util.static_argnames_tuple("jit(f)", 1)
    with pytest.raises(TypeError, match="static_argnames must be a tuple of str"):
        api_util.static_argnames_tuple("jit(f)", ("n", 1))


def test_flattened_functions_and_their_arguments():
    in_tree = ft.tree_util.tree_flatten(((1.0, 2.0), {"a": 3.0}))[1]
    flat, out_tree = api_util.flatten_fun(lambda p, d: {"s": p[0] + d["a"]}, in_tree)
    assert flat(1.0, 2.0, 3.0) == [4.0]
    assert out_tree() == ft.tree_util.tree_flatten({"s": 0.0})[1]
    with pytest.raises(TypeError, match=r"vjp\(f\): with has_aux=True"):
        api_util.flatten_fun(lambda p, d: p[0], in_tree, has_aux=True, what="vjp(f)")[0](1, 2, 3)
    tree = ft.tree_util.tree_flatten([(0.0, 0.0)])[1]
    partial = api_util.argnums_partial(lambda a, b, c: (a, b, c), ("a", "b", "c"), (1,), tree)
    assert partial(1, 2) == ("a", (1, 2), "c")


def test_positional_parameters():
    def f(a, b=1, *args, c, **kw):
        pass

    assert api_util.positional_params(api_util.signature_of(f)) == (["a", "b"], True)
    assert api_util.positional_params(api_util.signature_of(lambda x, /, y: x)) == (
        ["x", "y"],
        False,
    )
    assert api_util.positional_params(None) == ([], True)
    assert api_util.fun_name(f) == "f" and api_util.fun_name(np.add) == "add"


def test_array_arguments():
    assert api_util.as_array_arg([1, 2], "f").tolist() == [1, 2]
    assert type(api_util.as_input(2.0, "f")) is np.float64
    assert api_util.abstractify(2.0).weak_type
    with pytest.raises(TypeError, match="ragged"):
        api_util.as_array_arg([[1.0], [1.0, 2.0]], "f")
    with pytest.raises(TypeError, match="f: expected an array"):
        api_util.as_array_arg("abc", "f")
    with pytest.raises(TypeError, match="allow_int=True"):
        api_util.check_differentiable("grad(f)", np.arange(3), allow_int=False)
