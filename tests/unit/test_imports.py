# SPDX-License-Identifier: Apache-2.0
"""The package's modules import each other without cycles.

A cycle makes import order matter and hides a layering mistake (a source
that reaches back into the sensor, a host fact that needs an event source).
Imports inside functions are deliberate lazy loads and ``if TYPE_CHECKING:``
blocks never run, so only the imports that run at module level count.
Importing ``a.b.c`` runs ``a`` and ``a.b`` first: those edges count too,
except towards the importer's own parent packages, which are already running.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "ebpfsensor"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported."""
    out: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            todo += node.body + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
    return out


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules importing it runs first."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _top_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
                continue
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import mod` imports the submodule mod; pkg itself
            # counts only for the names that are not submodules
            submodules = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules}
            targets |= submodules
            if len(submodules) < len(node.names):
                targets.add(target)
        own_parents = set(_parents(name))
        for target in targets:
            if target not in modules:
                continue
            graph[name].add(target)
            graph[name] |= {p for p in _parents(target) if p in modules and p not in own_parents}
        graph[name].discard(name)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 30, "the package was not found"
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_check_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walker sees relative, parent-package and `from . import` edges."""
    pkg = tmp_path / "ebpfsensor"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from .. import a\n")
    (pkg / "sub" / "b.py").write_text("X = 1\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", pkg)
    assert find_cycles(import_graph()) == [["ebpfsensor.a", "ebpfsensor.sub"]]


def test_layers() -> None:
    """host/ knows nothing of event sources or the sensor; sources know
    nothing of the sensor; events know nothing of either."""
    graph = import_graph()
    rules = {
        "ebpfsensor.events": ("ebpfsensor.sources", "ebpfsensor.sensor", "ebpfsensor.host"),
        "ebpfsensor.host": ("ebpfsensor.sources", "ebpfsensor.sensor", "ebpfsensor.status"),
        "ebpfsensor.sources": ("ebpfsensor.sensor", "ebpfsensor.probe", "ebpfsensor.cli"),
    }
    wrong = [
        f"{mod} imports {dep}"
        for mod, deps in graph.items()
        for layer, forbidden in rules.items()
        if mod == layer or mod.startswith(layer + ".")
        for dep in deps
        if any(dep == f or dep.startswith(f + ".") for f in forbidden)
    ]
    assert not wrong, wrong
