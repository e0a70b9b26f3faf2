"""``functrans.viz``: draw a jaxpr as a data-flow graph (Graphviz DOT).

``to_dot`` needs nothing but the standard library; ``render`` runs the Graphviz
``dot`` program to write SVG, PNG or PDF.

The picture follows the printed jaxpr: inputs are blue ellipses named as in
``print(jaxpr)``, each equation is one box with its output names, its primitive, its
parameters and its output type, outputs are green, constants grey, and every edge
carries a value from the equation that makes it to the one that uses it. Sub-jaxprs
(the bodies of ``custom_vjp`` calls, ``cond`` branches, ``scan`` bodies, ...) are
drawn as clusters attached to their equation with a dashed edge.

>>> import numpy as np, functrans as ft
>>> dot = to_dot(ft.make_jaxpr(lambda x: ft.numpy.tanh(x) * 2.0)(np.ones(3)))
>>> print(dot.splitlines()[0])
digraph jaxpr {
>>> "tanh" in dot and "f64[3]" in dot
True
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from functrans.ir import ClosedJaxpr, Jaxpr, Literal, var_names
from functrans.tree_util import PyTreeDef

__all__ = ["GraphvizNotFoundError", "render", "to_dot"]

_FORMATS = ("svg", "png", "pdf")
_MAX_PARAM_CHARS = 40
_MAX_CONST_SIZE = 4

_STYLE = {
    "input": 'shape=ellipse style=filled fillcolor="#cfe2f3" color="#3d85c6"',
    "const": 'shape=box style="filled,dashed" fillcolor="#eeeeee" color="#999999"',
    "literal": 'shape=plaintext fontcolor="#555555" fontsize=10',
    "eqn": 'shape=box style="rounded,filled" fillcolor="#ffffff" color="#444444"',
    "output": 'shape=ellipse style=filled fillcolor="#d9ead3" color="#6aa84f"',
}


class GraphvizNotFoundError(RuntimeError):
    """The Graphviz ``dot`` program is not installed (or not on ``PATH``).

    ``render`` needs it to turn DOT text into SVG, PNG or PDF. Install Graphviz
    (Debian/Ubuntu: ``apt-get install graphviz``; macOS: ``brew install graphviz``;
    conda: ``conda install graphviz``), or write the text of ``to_dot`` to a ``.dot``
    file and render it elsewhere.
    """


def to_dot(
    jaxpr: ClosedJaxpr | Jaxpr,
    *,
    rankdir: str = "TB",
    in_names: Sequence[str] | None = None,
    out_names: Sequence[str] | None = None,
    name: str = "jaxpr",
) -> str:
    """The Graphviz DOT text of ``jaxpr``'s data-flow graph.

    ``rankdir`` is Graphviz's layout direction: ``"TB"`` (top to bottom) or ``"LR"``
    (left to right). Variable names match ``print(jaxpr)``; ``in_names`` and
    ``out_names`` (one per input / output) add readable names such as ``"W1"``.

    >>> import numpy as np, functrans as ft
    >>> cj = ft.make_jaxpr(lambda x, y: x * y + 1.0)(np.ones(2), np.ones(2))
    >>> print(to_dot(cj, rankdir="LR"))  # doctest: +ELLIPSIS
    digraph jaxpr {
      rankdir=LR;
      ...
      n0 [label="a\\nf64[2]" ...];
      n1 [label="b\\nf64[2]" ...];
      n2 [label="c = mul\\nf64[2]" ...];
      n0 -> n2;
      n1 -> n2;
      n3 [label="1.0" ...];
      n4 [label="d = add\\nf64[2]" ...];
      n2 -> n4;
      n3 -> n4;
      n5 [label="out\\nf64[2]" ...];
      n4 -> n5;
    }
    """
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"to_dot: rankdir must be 'TB', 'LR', 'BT' or 'RL', got {rankdir!r}")
    if not isinstance(jaxpr, (ClosedJaxpr, Jaxpr)):
        raise TypeError(
            f"to_dot: expected a ClosedJaxpr (from ft.make_jaxpr) or a Jaxpr, "
            f"got {type(jaxpr).__name__}"
        )
    inner, consts = _split(jaxpr)
    in_names = _check_names("in_names", in_names, len(inner.invars))
    out_names = _check_names("out_names", out_names, len(inner.outvars))
    writer = _DotWriter()
    writer.jaxpr(inner, consts, "  ", in_names, out_names)
    head = [
        f"digraph {_quote_id(name)} {{",
        f"  rankdir={rankdir};",
        '  graph [fontname="Helvetica" nodesep=0.25 ranksep=0.35 compound=true];',
        '  node [fontname="Helvetica" fontsize=11 margin="0.12,0.04" height=0.3];',
        '  edge [color="#666666" arrowsize=0.6];',
    ]
    return "\n".join([*head, *writer.lines, "}"]) + "\n"


def render(
    jaxpr: ClosedJaxpr | Jaxpr,
    path: str | os.PathLike[str],
    *,
    rankdir: str = "TB",
    in_names: Sequence[str] | None = None,
    out_names: Sequence[str] | None = None,
    format: str | None = None,
    dpi: int | None = None,
) -> str:
    """Draw ``jaxpr`` with Graphviz into ``path``; returns the path written.

    The format comes from ``format`` or the file suffix: ``.svg``, ``.png`` or
    ``.pdf`` run the ``dot`` program (raising ``GraphvizNotFoundError`` with install
    instructions when it is missing); ``.dot`` / ``.gv`` write the DOT text itself.
    ``rankdir``, ``in_names`` and ``out_names`` are as for ``to_dot``; ``dpi`` sets
    the resolution of a PNG.

    >>> import numpy as np, functrans as ft, tempfile, pathlib
    >>> cj = ft.make_jaxpr(lambda x: ft.numpy.exp(x))(np.ones(2))
    >>> out = render(cj, pathlib.Path(tempfile.mkdtemp()) / "exp.dot")
    >>> out.endswith("exp.dot")
    True
    """
    path = os.fspath(path)
    fmt = (format or os.path.splitext(path)[1].lstrip(".")).lower()
    text = to_dot(jaxpr, rankdir=rankdir, in_names=in_names, out_names=out_names)
    if fmt in ("dot", "gv"):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path
    if fmt not in _FORMATS:
        raise ValueError(
            f"render: cannot tell the output format of {path!r}; use a .svg, .png, .pdf or "
            f".dot suffix, or pass format= one of {', '.join(_FORMATS)}"
        )
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizNotFoundError(
            f"render: writing {path!r} needs the Graphviz 'dot' program, which is not on "
            "PATH. Install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew "
            "install graphviz; conda: conda install graphviz), or write DOT text with "
            "functrans.viz.to_dot / a .dot path instead."
        )
    cmd = [dot, f"-T{fmt}", "-o", path]
    if dpi is not None:
        cmd.insert(1, f"-Gdpi={int(dpi)}")
    proc = subprocess.run(cmd, input=text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"render: dot failed writing {path!r}: {proc.stderr.strip()}")
    return path


# ---------------------------------------------------------------------------
# The writer
# ---------------------------------------------------------------------------


class _DotWriter:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.count = 0
        self.clusters = 0

    def node(self, indent: str, label: str, kind: str) -> str:
        node_id = f"n{self.count}"
        self.count += 1
        self.lines.append(f"{indent}{node_id} [label={_quote(label)} {_STYLE[kind]}];")
        return node_id

    def edge(self, indent: str, src: str, dst: str, attrs: str = "") -> None:
        self.lines.append(f"{indent}{src} -> {dst}{f' [{attrs}]' if attrs else ''};")

    def jaxpr(
        self,
        jaxpr: Jaxpr,
        consts: list[Any] | None,
        indent: str,
        in_names: list[str] | None = None,
        out_names: list[str] | None = None,
    ) -> None:
        names = var_names()
        source: dict[int, str] = {}  # id(Var) -> node id of the value's producer

        for i, v in enumerate(jaxpr.constvars):
            label = f"{next(names)}\n{v.aval.str_short()}"
            if consts is not None and i < len(consts):
                value = _const_text(consts[i])
                label = f"const {label}" + (f"\n= {value}" if value else "")
            source[id(v)] = self.node(indent, label, "const")
        for i, v in enumerate(jaxpr.invars):
            title = next(names)
            if in_names is not None:
                title = f"{in_names[i]} ({title})"
            source[id(v)] = self.node(indent, f"{title}\n{v.aval.str_short()}", "input")

        def read(x: Any) -> str:
            if type(x) is Literal:
                return self.node(indent, _literal_text(x.val), "literal")
            return source[id(x)]

        for eqn in jaxpr.eqns:
            srcs = [read(x) for x in eqn.invars]
            outs = " ".join(next(names) for _ in eqn.outvars)
            types = " ".join(v.aval.str_short() for v in eqn.outvars)
            params = [f"{k}={_param_text(v)}" for k, v in sorted(eqn.params.items()) if _shown(v)]
            label = "\n".join([f"{outs} = {eqn.primitive.name}", *params, types])
            node = self.node(indent, label, "eqn")
            for src in srcs:
                self.edge(indent, src, node)
            for v in eqn.outvars:
                source[id(v)] = node
            for key, sub in _sub_jaxprs(eqn.params):
                self.cluster(indent, node, f"{eqn.primitive.name}: {key}", sub)

        many = len(jaxpr.outvars) > 1
        for i, x in enumerate(jaxpr.outvars):
            src = read(x)
            title = out_names[i] if out_names is not None else f"out{f' {i}' if many else ''}"
            label = f"{title}\n{x.aval.str_short()}"
            self.edge(indent, src, self.node(indent, label, "output"))

    def cluster(self, indent: str, owner: str, title: str, sub: ClosedJaxpr | Jaxpr) -> None:
        cid = f"cluster_{self.clusters}"
        self.clusters += 1
        inner, consts = _split(sub)
        self.lines.append(f"{indent}subgraph {cid} {{")
        self.lines.append(
            f'{indent}  label={_quote(title)}; style="rounded,dashed"; color="#999999"; '
            "fontsize=10;"
        )
        first = self.count
        self.jaxpr(inner, consts, indent + "  ")
        self.lines.append(f"{indent}}}")
        if self.count > first:  # an empty sub-jaxpr has no node to point at
            self.edge(indent, owner, f"n{first}", f'style=dashed lhead="{cid}" arrowhead=odot')


def _split(jaxpr: ClosedJaxpr | Jaxpr) -> tuple[Jaxpr, list[Any] | None]:
    if isinstance(jaxpr, ClosedJaxpr):
        return jaxpr.jaxpr, list(jaxpr.consts)
    return jaxpr, None


def _check_names(what: str, names: Sequence[str] | None, count: int) -> list[str] | None:
    if names is None:
        return None
    names = [str(n) for n in names]
    if len(names) != count:
        raise ValueError(f"to_dot: {what} has {len(names)} names for {count} values")
    return names


def _shown(value: Any) -> bool:
    """Parameters worth a line in a node: not sub-jaxprs (drawn as clusters), not the
    Python callables and tree structures that calls carry for their own use."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    return not any(
        isinstance(v, (Jaxpr, ClosedJaxpr, PyTreeDef)) or (callable(v) and not isinstance(v, type))
        for v in items
    )


def _sub_jaxprs(params: dict[str, Any]) -> Iterator[tuple[str, ClosedJaxpr | Jaxpr]]:
    for key, value in sorted(params.items()):
        if isinstance(value, (tuple, list)):
            subs = [v for v in value if isinstance(v, (Jaxpr, ClosedJaxpr))]
            for i, sub in enumerate(subs):
                yield (f"{key}[{i}]" if len(subs) > 1 else key), sub
        elif isinstance(value, (Jaxpr, ClosedJaxpr)):
            yield key, value


def _param_text(value: Any) -> str:
    if isinstance(value, np.dtype):
        text = value.name
    elif isinstance(value, type) and issubclass(value, np.generic):
        text = np.dtype(value).name
    else:
        text = repr(value)
    return text if len(text) <= _MAX_PARAM_CHARS else text[: _MAX_PARAM_CHARS - 3] + "..."


def _literal_text(val: Any) -> str:
    if isinstance(val, (bool, np.bool_)):
        return str(bool(val))
    if isinstance(val, (int, np.integer)):
        return str(int(val))
    if isinstance(val, (float, np.floating)):
        return f"{float(val):.6g}" if float(val) != int(float(val)) else repr(float(val))
    return _param_text(val)


def _const_text(value: Any) -> str:
    """The value of a small constant, or '' for a large one (its type is shown)."""
    try:
        arr = np.asarray(value)
    except Exception:  # a tracer of an enclosing transform: no value to show
        return ""
    if arr.dtype == object or arr.size > _MAX_CONST_SIZE:
        return ""
    if arr.ndim == 0:
        return _literal_text(arr[()])
    return np.array2string(arr, precision=4, separator=", ")


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _quote_id(name: str) -> str:
    return name if name.isidentifier() else _quote(name)
