"""Every package ``tgs`` imports is declared, so ``pip install tgs`` gives a package whose main job works.

The scan reads every module under ``tgs/`` with ``ast`` and maps each third-party import to
its distribution through the installed metadata (``PIL`` -> pillow, ``yaml`` -> PyYAML).
A distribution must be a core requirement, or belong to an extra and then be imported lazily
(inside a function), so that ``import tgs`` and the commands that do not need the extra work
without it.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_norm(Requirement(r).name) for r in project["dependencies"]}
    extras = {
        extra: {_norm(Requirement(r).name) for r in reqs}
        for extra, reqs in project["optional-dependencies"].items()
        if extra != "dev"  # dev tools are not run-time requirements
    }
    return core, extras


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(top-level module, line, imported at module level) for each absolute run-time import.

    Imports under ``if TYPE_CHECKING:`` never run and are left out.
    """
    tree = ast.parse(path.read_text(), str(path))
    lazy_lines: set[int] = set()
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy_lines.update(n.lineno for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                typing_only.update(n.lineno for n in ast.walk(child) if isinstance(n, (ast.Import, ast.ImportFrom)))
    out = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out.extend((n.split(".")[0], node.lineno, node.lineno not in lazy_lines) for n in names)
    return out


def _third_party(top: str) -> bool:
    return top not in sys.stdlib_module_names and top not in ("tgs", "__future__")


def test_every_import_is_declared() -> None:
    core, extras = _declared()
    dists = packages_distributions()
    problems = []
    for path in sorted((ROOT / "tgs").rglob("*.py")):
        for top, line, eager in _imports(path):
            if not _third_party(top):
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            names = {_norm(d) for d in dists.get(top, [])}
            if not names:
                problems.append(f"{where}: {top} is not installed, so it cannot be mapped to a distribution")
                continue
            if names & core:
                continue
            in_extras = sorted(e for e, reqs in extras.items() if names & reqs)
            if not in_extras:
                problems.append(f"{where}: {top} ({', '.join(sorted(names))}) is not declared in pyproject.toml")
            elif eager:
                problems.append(f"{where}: {top} belongs to extra {in_extras} but is imported at module level")
    assert not problems, "\n".join(problems)


def test_scan_maps_import_names_to_distributions() -> None:
    """The mapping the scan relies on: import names that differ from their distribution's name."""
    dists = packages_distributions()
    assert "pillow" in {_norm(d) for d in dists["PIL"]}
    assert "pyyaml" in {_norm(d) for d in dists["yaml"]}
    assert "huggingface-hub" in {_norm(d) for d in dists["huggingface_hub"]}


def test_scan_catches_an_undeclared_import(tmp_path: Path) -> None:
    """The scan itself can fail: a module importing torchvision is caught when it is not declared."""
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nimport torchvision\nif TYPE_CHECKING:\n    import ray\n"
        "def f():\n    import gradio\n"
    )
    assert _imports(module) == [("typing", 1, True), ("torchvision", 2, True), ("gradio", 6, False)]


def test_transformers_pinned_to_one_minor_version() -> None:
    """tgs relies on transformers internals: the pin must cover one tested minor version only."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [Requirement(r).specifier for r in project["dependencies"] if Requirement(r).name == "transformers"]
    from importlib.metadata import version

    installed = version("transformers")
    assert installed in spec
    major, minor = (int(x) for x in installed.split(".")[:2])
    assert f"{major}.{minor + 1}.0" not in spec and f"{major}.{minor - 1}.0" not in spec
