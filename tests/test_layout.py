"""Rules of the package layout that imports alone do not enforce."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "regionspot"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every absolute import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def _sources(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in sorted(folder.rglob("*.py"))]


def test_only_tests_import_the_testing_package():
    outside = [p for p in _sources(PACKAGE, ROOT / "benchmarks") if "testing" not in p.relative_to(PACKAGE.parent).parts]
    offenders = [str(p) for p in outside for module, _ in _imports(p) if module.startswith("regionspot.testing")]
    assert not offenders


def test_no_module_imports_a_private_name_of_another():
    offenders = [
        f"{p}: {module}.{name}"
        for p in _sources(PACKAGE, ROOT / "tests", ROOT / "benchmarks")
        for module, names in _imports(p)
        if module.startswith("regionspot")
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not offenders


def test_only_the_cli_prints():
    offenders = [
        str(p)
        for p in _sources(PACKAGE)
        if "cli" not in p.relative_to(PACKAGE).parts
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]
    assert not offenders
