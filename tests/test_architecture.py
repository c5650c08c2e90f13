"""The package's layer order (docs/ARCHITECTURE.md): each layer imports only the layers below it.

Every ``import`` in ``src/tnml`` counts, at module level or inside a function, so a lazy import
cannot hide an upward dependency. Modules in one layer that belong to different packages do
not import each other either (``quantum`` and ``explain`` are peers).
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"

#: Low to high. A module may import its own package and any package of a lower rank.
LAYERS: list[set[str]] = [
    {"exceptions", "_version"},
    {"_files", "_validation"},
    {"tensor"},
    {"features"},
    {"data"},
    {"preprocessing"},
    {"nn"},
    {"train"},
    {"estimators"},
    {"quantum", "explain", "structure", "compression"},
    {"io", "plot"},
    {"workflows"},
    {"cli"},
    {"models"},  # the round-1 name of nn + estimators, an alias
    {""},  # the package top re-exports the public names
]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[str, bool]]:
    """``(imported tnml module, at module level?)`` for every import statement in ``source``."""
    tree = ast.parse(source)
    top_level = {id(node) for node in tree.body}
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from tnml import io`` imports the module tnml.io, not only the package top.
            names = [
                f"{target}.{alias.name}" if _is_module(f"{target}.{alias.name}") else target
                for alias in node.names
            ]
        else:
            continue
        found += [(name, id(node) in top_level) for name in names if name.split(".")[0] == "tnml"]
    return found


def _is_module(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def layer_of(module: str) -> str:
    """``tnml.train.sweep`` -> ``train``; ``tnml`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward_imports(modules: dict[str, list[tuple[str, bool]]]) -> list[str]:
    """Each import that reaches a higher layer or a peer package of the same layer."""
    bad = []
    for module, imports in sorted(modules.items()):
        here = layer_of(module)
        if here not in RANK:
            bad.append(f"{module}: package {here!r} has no place in LAYERS")
            continue
        for target, _ in imports:
            there = layer_of(target)
            if there == here:
                continue
            if there not in RANK or RANK[there] >= RANK[here]:
                bad.append(f"{module} imports {target}")
    return bad


def import_cycles(modules: dict[str, list[tuple[str, bool]]]) -> list[list[str]]:
    """Cycles among module-level imports between modules (a package's ``__init__`` re-exporting
    its own submodules is not a cycle)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module, imports in modules.items():
        for target, top_level in imports:
            if top_level and target != module and not module.startswith(f"{target}."):
                if not target.startswith(f"{module}."):
                    graph[module].add(target)
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def scan() -> dict[str, list[tuple[str, bool]]]:
    return {
        module_name(path): imported_modules(
            path.read_text(), module_name(path), path.name == "__init__.py"
        )
        for path in sorted((SRC / "tnml").rglob("*.py"))
    }


def test_no_layer_imports_a_higher_one() -> None:
    assert upward_imports(scan()) == []


def test_no_import_cycles() -> None:
    assert import_cycles(scan()) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "tnml.tensor.mps",
            "from tnml.train.sweep import x",
            ["tnml.tensor.mps imports tnml.train.sweep"],
        ),
        (
            "tnml.nn.mps",
            "def f():\n    from tnml.estimators import X",
            ["tnml.nn.mps imports tnml.estimators"],
        ),
        (
            "tnml.quantum.a",
            "import tnml.explain.entropy",
            ["tnml.quantum.a imports tnml.explain.entropy"],
        ),
        ("tnml.train.sweep", "from ..nn import mps", []),
        ("tnml.estimators.x", "from tnml import io", ["tnml.estimators.x imports tnml.io"]),
    ],
)
def test_the_checker_catches_what_it_should(module: str, source: str, expected: list[str]) -> None:
    imports = imported_modules(source, module, is_package=False)
    assert upward_imports({module: imports}) == expected


def test_the_checker_finds_a_cycle() -> None:
    modules = {
        "tnml.train.a": [("tnml.train.b", True)],
        "tnml.train.b": [("tnml.train.a", True)],
        "tnml.train.c": [("tnml.train.a", False)],
    }
    assert import_cycles(modules) == [["tnml.train.a", "tnml.train.b", "tnml.train.a"]]
