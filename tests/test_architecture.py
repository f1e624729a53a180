"""The rules of docs/architecture.md, checked on the source: imports point down (the library never reaches
up into applications), only tests import the test helpers, nothing imports the CLI and only the CLI
prints, no module borrows another's private names, and there is no import cycle between modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "regionspot"
# The library: what `import regionspot` and the predictor need. Applications sit on top of it.
LIBRARY = ("backbones", "cache", "data", "inference", "modeling", "text", "utils",
           "checkpoint", "config", "errors", "model", "registry", "weights", "export", "runtime")
APPLICATIONS = ("engine", "evaluation", "cli", "demo", "shapesworld", "testing")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every absolute import in ``path``, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def _sources(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in sorted(folder.rglob("*.py"))]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "regionspot" else ""


MODULES = {_module_name(p): _imports(p) for p in _sources(PACKAGE)}


def test_library_never_imports_applications():
    bad = [(m, target) for m, imports in MODULES.items() if _top(m) in LIBRARY
           for target, _ in imports if _top(target) in APPLICATIONS]
    assert not bad, bad


def test_nothing_imports_the_cli():
    bad = [(m, t) for m, imports in MODULES.items() if _top(m) != "cli" for t, _ in imports if _top(t) == "cli"]
    assert not bad, bad


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


def test_modules_import_no_cycle():
    graph = {m: {t for t, names in imports if t in MODULES} | {f"{t}.{n}" for t, names in imports
                                                               for n in names if f"{t}.{n}" in MODULES}
             for m, imports in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt == node or nxt == "regionspot":
                continue
            if state.get(nxt) == 1:
                return path + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for module in graph:
        if module not in state:
            cycle = visit(module, [module])
            assert cycle is None, " -> ".join(cycle)
