"""The layering docs/architecture.md draws, checked on the source: the four folders import in the
order drawn there, generic code names no framework, framework packages import neither the tools
nor each other, the circuit core imports no framework, no module imports another's private names
or reads another object's private attributes, every core module and framework package is drawn,
and the import graph has no cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from apical.circuits import registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"models": "apical.models", "circuits": "apical.circuits", "analysis": "apical.analysis",
            "runs": "apical.runs"}
#: The folders as docs/architecture.md draws them, top to bottom: each imports only from itself
#: and those above it.
LAYERS = ("models", "analysis", "circuits", "runs")
ARCHITECTURE = ROOT / "docs" / "architecture.md"


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


def layer_of(name: str) -> str:
    return name.split(".")[1]


def against_the_arrow(importer: str, imported: str) -> bool:
    """Whether ``importer`` importing ``imported`` goes up the drawing: a folder importing one
    drawn below it."""
    return LAYERS.index(layer_of(imported)) > LAYERS.index(layer_of(importer))


def project_imports(name: str) -> list[tuple[str, int]]:
    """(project module reached, line) for every import of a module."""
    return [(reached, line) for target, names, line in imports_of(name) for reached in resolve(target, names)]


def drawn_block() -> list[str]:
    """The lines of the drawing in docs/architecture.md (its first code block)."""
    text = ARCHITECTURE.read_text()
    return text.split("```")[1].splitlines()


def test_the_drawing_shows_the_folders_in_the_tested_order():
    drawn = [match.group(1) for line in drawn_block() if (match := re.match(r"(\w+)/\s", line))]
    assert tuple(drawn) == LAYERS


def test_the_arrow_check_tells_a_downward_import_from_an_upward_one():
    assert against_the_arrow("apical.analysis.readout", "apical.circuits.registry")
    assert against_the_arrow("apical.models.soma", "apical.analysis.figures")
    assert not against_the_arrow("apical.circuits.biograd.claims", "apical.analysis.report")
    assert not against_the_arrow("apical.runs.train", "apical.models.encoders")


def test_each_folder_imports_only_from_itself_and_the_folders_drawn_above_it():
    offenders = [f"{name}:{line} imports {reached}" for name in MODULES for reached, line in project_imports(name)
                 if against_the_arrow(name, reached)]
    assert not offenders, "\n".join(offenders)


def test_every_core_module_and_framework_package_is_drawn():
    drawn = "\n".join(drawn_block())
    core = [path.name for path in sorted((ROOT / "circuits").glob("*.py")) if path.name != "__init__.py"]
    packages = [f"{name.rpartition('.')[2]}/" for name in MODULES if framework_package(name) == name]
    missing = [entry for entry in core + packages if not re.search(rf"(?<![\w/]){re.escape(entry)}", drawn)]
    assert not missing, f"docs/architecture.md does not draw {missing}"


def test_the_circuit_core_imports_no_framework_and_the_tools_only_the_core():
    offenders = [f"{name}:{line} imports {reached}" for name in MODULES
                 if layer_of(name) in ("circuits", "runs") and framework_package(name) is None
                 for reached, line in project_imports(name) if framework_package(reached)]
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


def is_private(attribute: str) -> bool:
    return attribute.startswith("_") and not attribute.startswith("__")


def test_no_object_has_its_private_attributes_read_from_outside():
    """A private attribute or method a project class defines (``self._x = ...``, ``def _x``) is read
    through ``self`` or ``cls`` only. Libraries' private names (Brian2's ``Synapses._pathways``) are
    not the project's to make public, and are left alone."""
    trees = {name: ast.parse(path.read_text()) for name, path in MODULES.items()}
    defined = set()
    for tree in trees.values():
        for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
            for node in ast.walk(cls):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and is_private(node.name):
                    defined.add(node.name)
                elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and is_private(node.attr)
                      and isinstance(node.value, ast.Name) and node.value.id == "self"):
                    defined.add(node.attr)
    offenders = [f"{name}:{node.lineno} reads {ast.unparse(node)}" for name, tree in trees.items()
                 for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in defined
                 and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))]
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
