"""``reports/`` has no import cycle, and every one of its modules compiles and is found (default set)
and imports (``-m slow``; ``__main__`` runs the CLI when imported, so it is only compiled).

The graph is read from the source (``ast``): each ``import reports.x`` and ``from reports.x import
y`` — at module level or inside a function, since a function-level import closes a cycle as surely
when it runs — is an edge from the importing module to the imported one (``from reports.render
import cnn`` to ``reports.render.cnn`` where that is a module). A cycle is any path back to its
start (depth-first search); the checker is shown one where it must fail.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "jaxlib", "optax", "matplotlib")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, package: str = "reports") -> dict[str, set[str]]:
    """module → the modules of ``package`` it imports (anywhere in its source)."""
    paths = sorted((root / package).rglob("*.py"))
    modules = {module_name(path, root) for path in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        name = module_name(path, root)
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                           else node.module for alias in node.names]
            else:
                continue
            edges |= {target for target in targets if target in modules and target != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, …, a]``, or ``None``."""
    state: dict[str, int] = {}                  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_reports_has_no_import_cycle():
    graph = import_graph(ROOT)
    assert len(graph) > 40 and "reports.render.document" in graph, sorted(graph)
    assert "reports.render.blocks" in graph["reports.render.document"], "edges are read"
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph))


def test_the_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    package = tmp_path / "reports"
    (package / "render").mkdir(parents=True)
    for folder in (package, package / "render"):
        (folder / "__init__.py").write_text("")
    (package / "render" / "document.py").write_text(
        "from reports.render.blocks import Table\n\ndef sections():\n    from reports.render import cnn\n")
    (package / "render" / "cnn.py").write_text("from reports.render.document import Table\n")
    (package / "render" / "blocks.py").write_text("Table = object\n")
    cycle = find_cycle(import_graph(tmp_path))
    assert cycle is not None and set(cycle) == {"reports.render.document", "reports.render.cnn"}, cycle
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


MODULES = sorted(import_graph(ROOT))


@pytest.mark.parametrize("name", MODULES)
def test_every_reports_module_compiles_and_is_found(name):
    """Cheap (no module runs): the tree's source compiles and the import system finds the module
    where its name says — in this tree, or in the installed package tox tests (the same relative
    path). Importing every module (framework imports, close to a minute) is the slow test below."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None, name
    package = Path(*name.split("."))
    is_package = spec.submodule_search_locations is not None
    expected = package / "__init__.py" if is_package else package.with_suffix(".py")
    found = Path(spec.origin).as_posix()
    assert found.endswith("/" + expected.as_posix()), f"{name} resolves to {found}, not .../{expected}"
    source = ROOT / expected
    compile(source.read_text(encoding="utf-8"), str(source), "exec")


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in MODULES if not name.endswith("__main__")])
def test_every_reports_module_imports(name):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:          # a framework absent from a NumPy-only install
        if (error.name or "").split(".")[0] not in FRAMEWORKS:
            raise
        pytest.skip(f"{name} needs {error.name}")
