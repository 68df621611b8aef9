"""The package's layers: each module imports only from layers before its own.

The order is the one docs/design.md draws. Imports made for type checking only are not
counted; a function-level import is, since it runs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dbos_typed"

# Each entry is a layer: a top-level module or subpackage of dbos_typed.
LAYERS = [
    "errors",
    "_sysdb",
    "_core",
    "_messaging",
    "_queues",
    "_schedules",
    "_workflows",
    "_management",
    "_app",
    "aio",
    "cli",
    "testing",
    "__init__",
    "__main__",
]
# Inside _core, the modules in the order they may import each other.
CORE = [
    "version",
    "crash",
    "validate",
    "clock",
    "config",
    "telemetry",
    "serialization",
    "registry",
    "hand_off",
    "runtime",
    "context",
    "identity",
    "durable",
    "status",
    "handle",
    "execution",
]


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _name(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path) -> list[tuple[str, ...]]:
    """The dbos_typed modules `path` imports at run time, as name parts."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, ...]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = tuple(node.module.split("."))
            if parts[0] == "dbos_typed":
                base = parts[1:]
                if base:
                    found.append(base)
                else:
                    found.extend((alias.name,) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = tuple(alias.name.split("."))
                if parts[0] == "dbos_typed" and parts[1:]:
                    found.append(parts[1:])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _rank(parts: tuple[str, ...]) -> tuple[int, int]:
    layer = LAYERS.index(parts[0])
    inner = CORE.index(parts[1]) if parts[0] == "_core" and len(parts) > 1 else -1
    return layer, inner


def test_every_module_belongs_to_a_layer() -> None:
    for path in _modules():
        parts = _name(path)
        assert parts[0] in LAYERS, f"{path.name} is in no layer"
        if parts[0] == "_core" and len(parts) > 1:
            assert parts[1] in CORE, f"_core/{path.name} has no place in the core order"


def test_no_module_imports_a_later_layer() -> None:
    upward = []
    for path in _modules():
        own = _name(path)
        for imported in _imports(path):
            if imported[0] == own[0] != "_core":
                continue  # within one feature package, modules import each other freely
            if _rank(imported) >= _rank(own):
                upward.append(f"{'.'.join(own)} imports {'.'.join(imported)}")
    assert upward == []


def test_the_storage_layer_imports_only_errors() -> None:
    for path in (PACKAGE / "_sysdb").glob("*.py"):
        assert {i[0] for i in _imports(path)} <= {"errors", "_sysdb"}, path.name


def test_the_layer_map_in_the_design_notes_names_every_module() -> None:
    design = (PACKAGE.parent / "docs" / "design.md").read_text()
    missing = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if not re.search(rf"(?<![\w.]){re.escape(path.name)}(?!\w)", design)
    ]
    assert missing == []
