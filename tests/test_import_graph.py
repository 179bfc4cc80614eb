"""The library's import graph (read with ast, nothing imported): dependencies point one way.

Every `import` / `from ... import` inside edge_jepa/ counts, at module level or inside a function (a lazy
import is still a dependency); only imports under `if TYPE_CHECKING:` are left out. A `__main__.py` is a
command-line entry point (`python -m edge_jepa.stream`) and may import the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "edge_jepa"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The edge_jepa modules `path` imports (a `from pkg import name` that is a submodule counts as it)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base
                                                                                                   else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name.startswith("edge_jepa"):  # importing a.b.c runs a/__init__ and a/b/__init__ first
                if name in modules:
                    found.add(name)
                name = name.rpartition(".")[0]
    own_packages = {".".join(this.split(".")[:i]) for i in range(1, this.count(".") + 1)}
    found -= {this, *own_packages}  # a module's own packages are already being imported when it runs
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(files)) for name, path in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _edges(graph: dict[str, set[str]], source: str, target: str) -> list[str]:
    def inside(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + ".")

    return sorted(f"{a} -> {b}" for a, deps in graph.items() if inside(a, source) and not a.endswith("__main__")
                  for b in deps if inside(b, target))


def test_the_library_has_no_import_cycle():
    assert _cycles(import_graph()) == []


def test_nothing_in_the_library_imports_the_cli():
    graph = import_graph()
    library = {name: deps for name, deps in graph.items() if not name.startswith("edge_jepa.cli")}
    assert _edges(library, "edge_jepa", "edge_jepa.cli") == []


def test_the_runtime_never_imports_the_exporters():
    assert _edges(import_graph(), "edge_jepa.runtime", "edge_jepa.export") == []


def test_the_graph_sees_real_edges():
    """The checks above would pass on an empty graph: make sure known edges are found (lazy ones included)."""
    graph = import_graph()
    assert "edge_jepa.runtime.base" in graph["edge_jepa.runtime.bundle"]
    assert "edge_jepa.runtime.manifest" in graph["edge_jepa.runtime.base"]  # a lazy import inside Runner.open
    assert "edge_jepa.formats" in graph["edge_jepa.export.bundle"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
