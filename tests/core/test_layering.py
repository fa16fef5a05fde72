"""Imports flow one way: no import cycles among tgs modules, and no layer imports a layer above it.

Read from the source with ``ast`` (nothing is imported): every ``import`` and ``from ...
import`` naming a ``tgs`` module counts, at module level or inside a function (a lazy
import is still a dependency), except under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "tgs"

# Layers, lowest first: a module may import its own layer and the layers below it only.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tgs", "tgs.types", "tgs.errors", "tgs.devices", "tgs.fast_paths", "tgs.safety", "tgs.publish", "tgs.cpu_memory",
     "tgs.resize", "tgs.run_store"),
    ("tgs.models", "tgs.data", "tgs.sources"),
    ("tgs.think", "tgs.ground", "tgs.segment", "tgs.presets", "tgs.viz", "tgs.video_out"),
    ("tgs.eval", "tgs.ground_segment", "tgs.model_cache", "tgs.model_fetch", "tgs.dense_outputs", "tgs.masks_jsonl",
     "tgs.testing"),
    ("tgs.core",),
    ("tgs.runners", "tgs.train"),
    ("tgs.report", "tgs.app"),
    ("tgs.cli",),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The tgs modules ``path`` imports (a name imported from a package counts as its submodule if one exists)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "tgs")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                base = ".".join(parent[: len(parent) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "tgs":
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    found.discard(name)
    return {m for m in found if m in modules}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    paths = sorted(ROOT.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
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
            strong(v)
    return out


def _layer(module: str) -> int:
    best, level = -1, -1
    for position, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), position
    return level


def _package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between packages of one level below ``tgs`` (tgs.core, tgs.runners, ...)."""
    def top(module: str) -> str:
        return ".".join(module.split(".")[:2])

    out: dict[str, set[str]] = {}
    for source, targets in graph.items():
        out.setdefault(top(source), set()).update(top(t) for t in targets if top(t) != top(source))
    return out


def test_there_are_modules_and_edges(graph: dict[str, set[str]]) -> None:
    assert "tgs.core.flow" in graph and "tgs.runners.executor" in graph
    assert "tgs.core.flow" in graph["tgs.runners.workers"]  # the reader sees imports, lazy ones too


def test_no_import_cycles_between_modules(graph: dict[str, set[str]]) -> None:
    assert _cycles(graph) == []


def test_no_import_cycles_between_packages(graph: dict[str, set[str]]) -> None:
    assert _cycles(_package_edges(graph)) == []


def test_every_module_has_a_layer(graph: dict[str, set[str]]) -> None:
    assert [m for m in graph if _layer(m) < 0] == []


def test_no_module_imports_a_layer_above_it(graph: dict[str, set[str]]) -> None:
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if _layer(target) > _layer(source)
    )
    assert upward == []


@pytest.mark.parametrize(
    ("lower", "upper"),
    [("tgs.eval", "tgs.runners"), ("tgs.core", "tgs.runners"), ("tgs.core", "tgs.cli"), ("tgs.ground_segment", "tgs.core"),
     ("tgs.think", "tgs.core"), ("tgs.runners", "tgs.cli")],
)
def test_named_layers_stay_apart(graph: dict[str, set[str]], lower: str, upper: str) -> None:
    offending = [
        (s, t) for s, targets in graph.items() for t in targets
        if (s == lower or s.startswith(lower + ".")) and (t == upper or t.startswith(upper + "."))
    ]
    assert offending == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
