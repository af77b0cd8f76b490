"""The package's import graph has no cycle, counting imports inside functions.

A cycle closed by an import inside a function runs, but hides a module's dependencies from its
header and makes the order of the package's layers a matter of luck; this test keeps the graph a
DAG. It reads the source with `ast` (nothing is imported), so `import_graph` also serves the
negative test below, which adds a cycle on purpose to a copy of the package.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import lengthgen

PACKAGE = Path(lengthgen.__file__).parent


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of a source file under `root` (the directory holding the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Absolute dotted names an import statement may refer to (a module, or a name inside one)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
        return []
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its file (functions included)."""
    root = package.parent
    files = {module_name(f, root): f for f in package.rglob("*.py")}
    graph = {}
    for module, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for name in imported_names(node, module, path.name == "__init__.py"):
                while name and name not in files:  # a name inside a module: its module
                    name = name.rpartition(".")[0]
                if name and name != module:
                    deps.add(name)
        graph[module] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, colours white/grey/black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    copy = tmp_path / "lengthgen"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert find_cycle(import_graph(copy)) is None
    # errors.py is a leaf every module may import; a deferred import of the trainer closes a loop.
    errors = copy / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef _late():\n    from .train import Trainer\n    return Trainer\n")
    cycle = find_cycle(import_graph(copy))
    assert cycle is not None and "lengthgen.errors" in cycle and "lengthgen.train" in cycle
    assert cycle[0] == cycle[-1]


def test_relative_imports_resolve_to_modules_and_packages(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\nfrom .sub.c import thing\n")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("import os\n")
    (pkg / "sub" / "c.py").write_text("def f():\n    from ..a import x\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b", "pkg.sub.c"}
    assert graph["pkg.sub"] == {"pkg.sub.b"}
    assert graph["pkg.sub.c"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.c", "pkg.a"]
