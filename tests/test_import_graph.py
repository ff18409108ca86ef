"""The import graph of the core and the first-party plugins, built from the source (AST), not from what happens to
be imported at run time.

Edges: every ``import`` and ``from ... import`` statement, at module level AND inside functions (a lazy import still
ties two modules together). ``from pkg import name`` is an edge to ``pkg.name`` when that is a module of the
repository, else to ``pkg``; relative imports are resolved; a package is the node of its ``__init__.py``, so a
submodule importing its own package (``from ganzoo_core.ops import x`` in ``ganzoo_core/ops/bias_act.py``) is an edge
to that package's node.

Parent packages are NOT edges: importing ``ganzoo_core.ops.bias_act`` runs ``ganzoo_core/__init__.py`` and
``ganzoo_core/ops/__init__.py`` first, but counting that would put every re-exporting ``__init__`` on a cycle with
the modules it re-exports. What makes a package's re-exports safe is that none of its own submodules imports the
package's ``__init__`` back. For the top package this is asserted directly (no ``ganzoo_core`` submodule imports
``ganzoo_core`` itself, e.g. ``from ganzoo_core import create``; submodules import the module that defines a name).
With that, the cycle check runs on ALL edges, ``__init__`` re-exports included: no edge is excluded, and any cycle
left, through a sub-package ``__init__`` or not, is reported with the file and line of each import on it.

Then: the core imports no plugin package; a plugin imports only itself, the core and third-party packages (never
another plugin: plugins reach each other through the registry); ``experiments/`` and ``benchmarks/`` import no plugin
package either.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
from conftest import REPO

CORE = "ganzoo_core"
Edge = tuple[str, str, int]  # (target module, file, line)


def module_name(path: Path, base: Path) -> str:
    """The dotted name of the module at ``path``, ``base`` being the folder that holds its top package."""
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def repo_modules(root: Path = REPO) -> dict[str, Path]:
    """Every module of the core and of the first-party plugins: dotted name -> file."""
    modules = {module_name(p, root): p for p in sorted((root / CORE).rglob("*.py"))}
    for package in sorted(root.glob("plugins/*/ganzoo_*")):
        if package.is_dir():
            modules |= {module_name(p, package.parent): p for p in sorted(package.rglob("*.py"))}
    return modules


def imports_of(path: Path, name: str | None, known: Iterable[str]) -> list[Edge]:
    """Every import in the file at ``path`` (module ``name``; None for a script), as (target, file, line)."""
    known = set(known)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = (name or "").split(".") if path.name == "__init__.py" else (name or "").split(".")[:-1]
    edges: list[Edge] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            edges += [(alias.name, str(path), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                edges.append((sub if sub in known else source, str(path), node.lineno))
    return edges


def build_graph(modules: Mapping[str, Path]) -> dict[str, list[Edge]]:
    """module -> its imports of other repository modules (self-imports dropped)."""
    return {name: [e for e in imports_of(path, name, modules) if e[0] in modules and e[0] != name]
            for name, path in modules.items()}


def cycles(graph: Mapping[str, list[Edge]], nodes: set[str]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), among ``nodes``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, _, _ in graph[v]:
            if w not in nodes:
                continue
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
                found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def describe(component: list[str], graph: Mapping[str, list[Edge]]) -> str:
    inside = set(component)
    lines = [f"{a} -> {t}  ({Path(f).relative_to(REPO)}:{line})"
             for a in component for t, f, line in graph[a] if t in inside]
    return "cycle among " + ", ".join(component) + ":\n  " + "\n  ".join(lines)


def top(name: str) -> str:
    return name.split(".", 1)[0]


def is_plugin_package(name: str) -> bool:
    return top(name).startswith("ganzoo_") and top(name) != CORE


MODULES = repo_modules()
GRAPH = build_graph(MODULES)
PLUGIN_PACKAGES = sorted({top(m) for m in MODULES if is_plugin_package(m)})


def where(edge: Edge) -> str:
    return f"{Path(edge[1]).relative_to(REPO)}:{edge[2]} imports {edge[0]}"


def test_the_graph_sees_lazy_relative_and_submodule_imports(tmp_path: Path) -> None:
    """The builder itself: a function-level import, ``from pkg import module``, a relative import, and a cycle."""
    pkg = tmp_path / "ganzoo_core"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from ganzoo_core.a import f\n")
    (pkg / "a.py").write_text("def f():\n    from ganzoo_core.sub import b\n    return b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from .. import a\nfrom ..a import f\nimport torch\n")
    modules = repo_modules(tmp_path)
    assert set(modules) == {"ganzoo_core", "ganzoo_core.a", "ganzoo_core.sub", "ganzoo_core.sub.b"}
    graph = build_graph(modules)
    assert [t for t, _, _ in graph["ganzoo_core.a"]] == ["ganzoo_core.sub.b"]  # inside a function, to the module
    assert [t for t, _, _ in graph["ganzoo_core.sub.b"]] == ["ganzoo_core.a", "ganzoo_core.a"]  # relative
    assert [t for t, _, _ in graph["ganzoo_core"]] == ["ganzoo_core.a"]  # a name of a module: the module
    assert cycles(graph, set(modules)) == [["ganzoo_core.a", "ganzoo_core.sub.b"]]


def test_the_graph_covers_the_core_and_every_plugin() -> None:
    assert {"ganzoo_core", "ganzoo_core.cli", "ganzoo_core.ops._dispatch", "ganzoo_core.runconfig"} <= set(MODULES)
    assert {"ganzoo_dcgan", "ganzoo_stargan", "ganzoo_cyclegan"} <= set(PLUGIN_PACKAGES)
    assert any(t == "ganzoo_core.data.cli" for t, _, _ in GRAPH["ganzoo_core.data"])  # a lazy import is an edge


def test_no_core_submodule_imports_the_core_package_itself() -> None:
    """What keeps ``ganzoo_core/__init__.py``'s re-exports off every cycle (see the module docstring)."""
    back = [where(e) for name, edges in GRAPH.items() if name.startswith(CORE + ".")
            for e in edges if e[0] == CORE]
    assert back == [], "\n".join(back)


def test_the_core_has_no_import_cycle() -> None:
    core = {m for m in MODULES if top(m) == CORE}
    found = cycles(GRAPH, core)
    assert found == [], "\n".join(describe(c, GRAPH) for c in found)


def test_the_core_imports_no_plugin() -> None:
    bad = [where(e) for name, path in MODULES.items() if top(name) == CORE
           for e in imports_of(path, name, MODULES) if is_plugin_package(e[0])]
    assert bad == [], "\n".join(bad)


@pytest.mark.parametrize("package", PLUGIN_PACKAGES)
def test_a_plugin_imports_only_itself_the_core_and_third_party_packages(package: str) -> None:
    bad = [where(e) for name, path in MODULES.items() if top(name) == package
           for e in imports_of(path, name, MODULES) if is_plugin_package(e[0]) and top(e[0]) != package]
    assert bad == [], "\n".join(bad)


def test_experiments_and_benchmarks_reach_plugins_through_the_registry() -> None:
    files = [p for folder in ("experiments", "benchmarks") for p in sorted((REPO / folder).rglob("*.py"))]
    assert any(p.parent.name == "benchmarks" for p in files)
    bad = list(dict.fromkeys(where(e) for path in files for e in imports_of(path, None, MODULES)
                             if is_plugin_package(e[0])))
    assert bad == [], "\n".join(bad)
