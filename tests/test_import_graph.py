"""No import circles among sri's modules, counting imports inside functions too (issue 25)."""
from __future__ import annotations

import ast
from pathlib import Path

SRI = Path(__file__).resolve().parent.parent / "sri"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRI.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """sri module -> the sri modules it imports anywhere in its file (a package import counts as
    importing its __init__; `from pkg import mod` counts as importing pkg.mod when that is a module)."""
    mods = {module_name(p): p for p in SRI.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != m and t.startswith("sri"):
                    graph[m].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    graph = import_graph()
    assert len(graph) > 50 and "sri.configs" in graph["sri.train.trainer"]
    assert cycles(graph) == []


def private_imports(root: Path = SRI) -> list[str]:
    """`file: from sri.x import _name` for every import of another sri module's private name."""
    found = []
    for p in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sri") and not node.level:
                found += [f"{p.relative_to(root.parent)}: from {node.module} import {a.name}"
                          for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_the_private_import_checker_finds_one(tmp_path):
    pkg = tmp_path / "sri"
    pkg.mkdir()
    (pkg / "a.py").write_text("from sri.b import _hidden, public\nfrom sri.b import __version__\n")
    assert private_imports(pkg) == ["sri/a.py: from sri.b import _hidden"]


def test_no_module_imports_another_modules_private_names():
    assert private_imports() == []
