"""functrans.viz: DOT text of jaxprs and rendering through Graphviz."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

import functrans as ft
from functrans import lax, viz
from functrans.ir import Literal

HAVE_DOT = shutil.which("dot") is not None
NODE = re.compile(r"^\s*(n\d+) \[label=\"((?:[^\"\\]|\\.)*)\"", re.M)
EDGE = re.compile(r"^\s*(n\d+) -> (n\d+)", re.M)


def two_layer_loss(W1, b1, W2, b2, x, y):
    h = ft.nn.sigmoid(lax.matmul(W1, x) + b1)
    z = lax.matmul(W2, h) + b2
    return 0.5 * lax.reduce_sum((z - y) ** 2, (0,))


ARGS = [np.ones((3, 4)), np.ones(3), np.ones((2, 3)), np.ones(2), np.ones(4), np.ones(2)]


def expected_counts(jaxpr):
    """Nodes: consts, inputs, one per equation, one per literal use, outputs. Edges:
    one per equation operand and one per output."""
    literals = sum(type(x) is Literal for e in jaxpr.eqns for x in e.invars)
    literals += sum(type(x) is Literal for x in jaxpr.outvars)
    nodes = len(jaxpr.constvars) + len(jaxpr.invars) + len(jaxpr.eqns) + literals
    nodes += len(jaxpr.outvars)
    edges = sum(len(e.invars) for e in jaxpr.eqns) + len(jaxpr.outvars)
    return nodes, edges


@pytest.fixture(params=["forward", "gradient"])
def closed(request):
    if request.param == "forward":
        return ft.make_jaxpr(two_layer_loss)(*ARGS)
    return ft.make_jaxpr(ft.grad(two_layer_loss, argnums=(0, 1, 2, 3)))(*ARGS)


def test_one_node_per_equation_and_one_edge_per_operand(closed):
    dot = viz.to_dot(closed)
    nodes, edges = expected_counts(closed.jaxpr)
    assert len(NODE.findall(dot)) == nodes
    assert len(EDGE.findall(dot)) == edges
    assert dot.startswith("digraph jaxpr {") and dot.rstrip().endswith("}")


def test_labels_follow_the_printed_jaxpr(closed):
    labels = [label for _, label in NODE.findall(viz.to_dot(closed))]
    printed = re.findall(r"^\s+(\w+):(\S+) = (\w+)", str(closed), re.M)
    assert printed, str(closed)
    for name, typ, prim in printed:
        assert any(
            label.startswith(f"{name} = {prim}") and label.endswith(typ) for label in labels
        ), (name, prim, typ, labels)
    for v in closed.jaxpr.invars:
        assert any(v.aval.str_short() in label for label in labels)


def test_forward_graph_edges_follow_data_flow():
    dot = viz.to_dot(ft.make_jaxpr(two_layer_loss)(*ARGS))
    ids = {label.split("\\n")[0]: node for node, label in NODE.findall(dot)}
    edges = set(EDGE.findall(dot))
    assert (ids["a"], ids["g = matmul"]) in edges  # W1 feeds the first matmul
    assert (ids["e"], ids["g = matmul"]) in edges  # and so does x
    assert (ids["h = add"], ids["i = sigmoid"]) in edges
    assert (ids["i = sigmoid"], ids["j = matmul"]) in edges
    assert (ids["0.5"], ids["o = mul"]) in edges  # a literal is a node of its own
    assert (ids["o = mul"], ids["out"]) in edges


def test_input_and_output_names():
    closed = ft.make_jaxpr(ft.grad(two_layer_loss, argnums=(0, 1)))(*ARGS)
    names = ["W1", "b1", "W2", "b2", "x", "y"]
    dot = viz.to_dot(closed, in_names=names, out_names=["dW1", "db1"], rankdir="LR")
    assert "rankdir=LR;" in dot
    assert re.search(r'label="W1 \(\w+\)\\nf64\[3,4\]"', dot), dot
    assert 'label="dW1\\nf64[3,4]"' in dot and 'label="db1\\nf64[3]"' in dot
    with pytest.raises(ValueError, match="in_names has 2 names for 6 values"):
        viz.to_dot(closed, in_names=["W1", "b1"])


def test_small_constants_show_their_value():
    closed = ft.make_jaxpr(lambda x: x * np.array([2.0, 3.0]))(np.ones(2))
    dot = viz.to_dot(closed)
    assert len(closed.jaxpr.constvars) == 1
    assert "const a\\nf64[2]\\n= [2., 3.]" in dot
    closed = ft.make_jaxpr(lambda x: x * np.arange(10.0))(np.ones(10))
    assert "= [" not in viz.to_dot(closed)  # large constants show only their type


def test_sub_jaxprs_are_clusters():
    @ft.custom_vjp
    def f(x):
        return ft.numpy.sin(x) * 2.0

    f.defvjp(lambda x: (f(x), ft.numpy.cos(x)), lambda r, g: (2.0 * r * g,))
    dot = viz.to_dot(ft.make_jaxpr(lambda x: f(x) + 1.0)(np.ones(3)))
    assert "subgraph cluster_0 {" in dot
    assert 'label="custom_vjp_call: call_jaxpr"' in dot
    assert 'lhead="cluster_0"' in dot
    assert "b = sin" in dot  # the body's equations are drawn, named as printed
    assert "fwd=" not in dot  # Python callables are not parameters worth showing


def test_a_plain_jaxpr_is_accepted_and_labels_are_escaped():
    jaxpr = ft.make_jaxpr(lambda x: ft.numpy.exp(x))(np.ones(2)).jaxpr
    assert "exp" in viz.to_dot(jaxpr, name="my graph")
    assert viz.to_dot(jaxpr, name="my graph").startswith('digraph "my graph" {')
    assert viz._quote('say "hi"\\n') == '"say \\"hi\\"\\\\n"'


def test_outputs_that_are_inputs_or_literals():
    closed = ft.make_jaxpr(lambda x: (x, 1.0))(np.ones(2))
    dot = viz.to_dot(closed)
    ids = {label.split("\\n")[0]: node for node, label in NODE.findall(dot)}
    edges = set(EDGE.findall(dot))
    assert (ids["a"], ids["out 0"]) in edges and (ids["1.0"], ids["out 1"]) in edges
    assert len(NODE.findall(dot)) == expected_counts(closed.jaxpr)[0] == 4


def test_errors_name_the_problem():
    closed = ft.make_jaxpr(lambda x: ft.numpy.exp(x))(np.ones(2))
    with pytest.raises(TypeError, match="to_dot: expected a ClosedJaxpr"):
        viz.to_dot("not a jaxpr")
    with pytest.raises(ValueError, match="rankdir"):
        viz.to_dot(closed, rankdir="up")
    with pytest.raises(ValueError, match=r"\.svg, \.png"):
        viz.render(closed, "graph.jpeg2000")


def test_render_dot_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    closed = ft.make_jaxpr(two_layer_loss)(*ARGS)
    out = viz.render(closed, tmp_path / "net.dot")
    with open(out) as f:
        assert f.read() == viz.to_dot(closed)


def test_missing_graphviz_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    closed = ft.make_jaxpr(two_layer_loss)(*ARGS)
    with pytest.raises(viz.GraphvizNotFoundError, match="apt-get install graphviz"):
        viz.render(closed, tmp_path / "net.png")
    assert not (tmp_path / "net.png").exists()


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz is not installed")
@pytest.mark.parametrize(
    "suffix, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")]
)
def test_render_writes_images(tmp_path, suffix, magic, closed):
    out = viz.render(closed, tmp_path / f"net.{suffix}", dpi=72 if suffix == "png" else None)
    with open(out, "rb") as f:
        assert f.read(len(magic)) == magic


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz is not installed")
def test_graphviz_parses_the_graph(closed):
    nodes, edges = expected_counts(closed.jaxpr)
    proc = subprocess.run(
        ["dot", "-Tjson0"], input=viz.to_dot(closed), capture_output=True, text=True, check=True
    )
    graph = json.loads(proc.stdout)
    assert len([o for o in graph["objects"] if "nodes" not in o]) == nodes
    assert len(graph["edges"]) == edges


@pytest.mark.skipif(not hasattr(lax, "cond"), reason="lax.cond is not available")
def test_each_branch_of_a_cond_is_a_cluster():
    def f(x):
        return lax.cond(ft.numpy.sum(x) > 0, lambda x: x * 2.0, ft.numpy.sin, x)

    dot = viz.to_dot(ft.make_jaxpr(f)(np.ones(3)))
    assert "subgraph cluster_0 {" in dot and "subgraph cluster_1 {" in dot
    assert 'label="cond: branches[0]"' in dot and 'label="cond: branches[1]"' in dot
    assert "= sin" in dot and "= mul" in dot
