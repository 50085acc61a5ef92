"""Who may import whom, read from the source with ``ast`` (nothing is imported):

- ``emulator/`` is local Azure and knows nothing of the app: no ``shared``, ``functions``,
  ``function_app`` or ``devtools``;
- ``shared/`` (the app's rules and adapters) imports neither ``functions``, ``emulator`` nor ``devtools``;
- ``functions/`` (the triggers) imports only ``shared`` among the project's packages;
- inside ``shared/``, the inventory of recovery points (``shared/points``) sits below the capabilities that
  use it (retention, restore, compliance, drills and the rest): it imports none of them, and reads the
  tables they write rather than their code;
- compliance and drills take recovery points from the inventory, not from the restore API's modules
  (compliance imports nothing of ``shared/restore``; drills call the restore service, never its catalogue
  or reads).

Every import counts, lazy ones inside functions too; a relative import counts as the package it
resolves to, and ``importlib.import_module("…")`` with a literal name counts as an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"node_modules", "__pycache__"}

RULES = {  # package: project packages it must not import (None: every one but itself and those allowed)
    "emulator": {"shared", "functions", "function_app", "devtools"},
    "shared": {"functions", "function_app", "emulator", "devtools"},
}
ALLOWED = {"functions": {"functions", "shared"}}
# Layers inside shared: a package, and the modules of shared above it (it must import none of them).
ABOVE = {
    "shared/points": {"shared.retention", "shared.restore", "shared.compliance", "shared.drill", "shared.report",
                      "shared.schedule", "shared.autoprotect", "shared.cli", "shared.queue", "shared.wiring"},
}
# Capabilities that use the inventory take it from shared/points, not through another capability.
NOT_THROUGH = {
    "shared/compliance": {"shared.restore", "shared.report"},  # the report shows what compliance decides
    "shared/drill": {"shared.restore.catalogue", "shared.restore.reads"},
}


def project_packages() -> set[str]:
    """Top-level names the repository's own code is imported by: folders holding Python files,
    and the modules at the root."""
    names = {p.stem for p in ROOT.glob("*.py")}
    for p in ROOT.iterdir():
        if p.is_dir() and not p.name.startswith(".") and p.name not in SKIP and any(p.glob("*.py")):
            names.add(p.name)
    return names


def _module_of(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_of(path) if path.name == "__init__.py" else _module_of(path)[:-1]  # what "." means
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.level - 1 < len(package), f"{path}:{node.lineno}: relative import above the root"
                base = package[: len(package) - (node.level - 1)]
                found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                found.append((node.lineno, node.module or ""))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def files_of(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if not SKIP & set(p.parts))


def violations(package: str) -> list[str]:
    project = project_packages()
    forbidden = RULES.get(package)
    if forbidden is None:
        forbidden = project - ALLOWED[package]
    out = []
    for path in files_of(package):
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            if top in forbidden:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return out


@pytest.mark.parametrize("package", ["emulator", "shared", "functions"])
def test_package_imports_only_what_its_layer_may(package):
    assert files_of(package), f"no Python files under {package}/"
    assert violations(package) == []


def test_the_reader_sees_relative_and_lazy_imports():
    """The checker itself: relative imports resolve to their package, lazy and importlib imports count."""
    modules = {m for _, m in imported_modules(ROOT / "emulator" / "compute" / "responses.py")}
    assert {"emulator.core.arm", "emulator.compute", "emulator.compute.fleet"} <= modules  # from . import models
    providers = {m for _, m in imported_modules(ROOT / "emulator" / "core" / "providers.py")}
    assert "emulator.core.routing" in providers
    assert {"shared", "emulator", "functions", "devtools", "function_app"} <= project_packages()


def layer_violations(package: str, rules: dict[str, set[str]] = ABOVE) -> list[str]:
    above = rules[package]
    out = []
    for path in files_of(package):
        for line, module in imported_modules(path):
            if any(module == name or module.startswith(name + ".") for name in above):
                out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return out


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_the_inventory_of_points_sits_below_what_uses_it(package):
    assert files_of(package), f"no Python files under {package}/"
    assert layer_violations(package) == []
    users = {m for p in files_of("shared/retention") for _, m in imported_modules(p)}
    assert "shared.points.pins" in users  # retention stands on it (so the rule above is not vacuous)


@pytest.mark.parametrize("package", sorted(NOT_THROUGH))
def test_compliance_and_drills_take_points_from_the_inventory_not_from_restore(package):
    assert files_of(package), f"no Python files under {package}/"
    assert layer_violations(package, NOT_THROUGH) == []
