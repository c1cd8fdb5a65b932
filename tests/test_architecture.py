"""The layering docs/architecture.md states, checked on the source: generic code names no
framework, framework packages import neither the tools nor each other, no module imports another's
private names, and the import graph has no cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from apical.circuits import registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"models": "apical.models", "circuits": "apical.circuits", "analysis": "apical.analysis",
            "runs": "apical.runs"}


def module_files() -> dict[str, Path]:
    """Every module of the four installed packages, by its dotted name."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = module_files()


def imports_of(name: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in a module, wherever it
    stands (a function-level import counts: it is a dependency all the same)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, [alias.name for alias in node.names], node.lineno))
    return found


def resolve(target: str, names: list[str]) -> list[str]:
    """The project modules an import reaches: the module itself, or submodules imported by name."""
    reached = []
    for name in names:
        if f"{target}.{name}" in MODULES:
            reached.append(f"{target}.{name}")
    if target in MODULES and len(reached) < max(len(names), 1):
        reached.append(target)
    return reached


def framework_package(name: str) -> str | None:
    """``apical.circuits.<framework>`` for a module inside a framework package, else None."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[1] == "circuits" and f"apical.circuits.{parts[2]}" in MODULES \
            and MODULES[f"apical.circuits.{parts[2]}"].name == "__init__.py":
        return ".".join(parts[:3])
    return None


def test_the_built_in_frameworks_are_registered():
    assert {"biograd", "bp", "bioleaf", "scmicro"} <= set(registry.names())


def test_generic_code_names_no_framework():
    names = "|".join(re.escape(name) for name in registry.names())
    pattern = re.compile(rf"[\"']({names})[\"']")
    offenders = []
    for name, path in MODULES.items():
        if name.split(".")[1] in ("runs", "analysis", "models"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("layer", ["models", "analysis"])
def test_layers_above_the_frameworks_do_not_import_them(layer):
    offenders = []
    for name in MODULES:
        if name.split(".")[1] != layer:
            continue
        for target, names, line in imports_of(name):
            for reached in resolve(target, names):
                if framework_package(reached) or reached.startswith("apical.runs") or (
                        layer == "models" and not reached.startswith("apical.models")):
                    offenders.append(f"{name}:{line} imports {reached}")
    assert not offenders, "\n".join(offenders)


def test_framework_packages_import_neither_the_tools_nor_each_other():
    offenders = []
    for name in MODULES:
        own = framework_package(name)
        if own is None:
            continue
        for target, names, line in imports_of(name):
            for reached in resolve(target, names):
                other = framework_package(reached)
                if reached.startswith("apical.runs") or (other is not None and other != own):
                    offenders.append(f"{name}:{line} imports {reached}")
    assert not offenders, "\n".join(offenders)


def test_no_module_imports_another_modules_private_names():
    offenders = [f"{name}:{line} imports {target}.{taken}"
                 for name in MODULES for target, names, line in imports_of(name) if target in MODULES
                 for taken in names if taken.startswith("_") and target != name]
    assert not offenders, "\n".join(offenders)


def test_the_import_graph_has_no_cycle():
    graph = {name: {reached for target, names, _ in imports_of(name) for reached in resolve(target, names)
                    if reached != name} for name in MODULES}
    # A package's __init__ is imported with each of its submodules: an edge to a package that only
    # re-exports is not a dependency on every module of it, so packages are followed as declared.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            assert cycle is None, " -> ".join(cycle)
