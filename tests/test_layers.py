"""The package's import graph, read from its source: imports flow downward through the
layers of ``docs/design.md`` and never in a circle, and no function imports a functrans
module late (the usual way to hide a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

import functrans

ROOT = Path(functrans.__file__).parent

# Lowest first. A module may import modules of its own layer or of a layer below;
# a module belongs to the first (longest) prefix that matches its name.
LAYERS: list[tuple[str, ...]] = [
    ("functrans.errors", "functrans.config"),
    ("functrans.core",),
    ("functrans.ir", "functrans.tree_util"),
    ("functrans.primitives",),
    ("functrans.numpy",),
    ("functrans.transforms.jaxpr_passes", "functrans.transforms.api_util"),
    ("functrans.transforms.staging",),
    ("functrans.transforms.batching",),
    ("functrans.transforms.autodiff.forward",),
    ("functrans.transforms.autodiff.reverse",),
    ("functrans.transforms.autodiff.custom_call",),
    ("functrans.transforms.autodiff.custom",),
    ("functrans.transforms.autodiff.jacobians", "functrans.transforms.autodiff"),
    ("functrans.transforms.derived",),
    ("functrans.transforms.jit",),
    ("functrans.transforms",),
    ("functrans.control_flow",),
    ("functrans.lax", "functrans.scipy", "functrans.test_util", "functrans.viz",
     "functrans.datasets"),
    ("functrans.nn", "functrans.extend"),
    ("functrans.optim",),
    ("functrans",),
]  # fmt: skip


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The functrans module an imported name refers to (a module, or the module that
    defines an imported attribute)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> tuple[set[str], list[str]]:
    """The functrans modules ``module`` imports at its top level, and the late
    (function-level) imports of functrans modules, as ``line: text`` strings."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top: set[str] = set()
    late: list[str] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        return [f"{base}.{a.name}" for a in node.names] + [base]

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found = {m for t in targets(child) if (m := _resolve(t)) and m != module}
                if isinstance(child, ast.ImportFrom) and child.module == "__future__":
                    continue
                if nested and found:
                    late.append(f"{path.name}:{child.lineno}: {ast.unparse(child)}")
                elif not nested:
                    top.update(found)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # imports for annotations only
            else:
                visit(child, nested)

    visit(tree, False)
    # ``from package import submodule`` names the submodule, not the package: keep
    # only the most specific module of each import.
    return {m for m in top if not any(o.startswith(m + ".") for o in top)}, late


def _is_type_checking(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Name)
        and test.id == "TYPE_CHECKING"
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


GRAPH: dict[str, set[str]] = {}
LATE: list[str] = []
for _name, _path in MODULES.items():
    GRAPH[_name], _late = _imports(_name, _path)
    LATE += _late


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and docs/design.md"
    return best


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_imports_flow_downward():
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in GRAPH.items()
        for target in targets
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    cycles = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(GRAPH.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t) :] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_late_imports_of_functrans_modules():
    assert not LATE, "function-level imports of functrans modules:\n" + "\n".join(LATE)
