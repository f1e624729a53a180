"""The rules of docs/architecture.md, checked on the source: each package imports only what the table of
docs/architecture.md allows (``ALLOWED_IMPORTS``, which must say what the table says), the library never
reaches up into applications, only tests import the test helpers, nothing imports the CLI and only the CLI
prints, no module borrows another's private names, and there is no import cycle between modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "regionspot"
# The library: what `import regionspot` and the predictor need. Applications sit on top of it.
LIBRARY = ("backbones", "cache", "data", "inference", "masks", "modeling", "text", "utils",
           "checkpoint", "config", "errors", "model", "registry", "version", "weights",
           "export", "runtime", "video")
APPLICATIONS = ("engine", "evaluation", "cli", "demo", "shapesworld", "testing")
LEAVES = frozenset({"config", "errors", "masks", "utils", "version"})
EVERYTHING = frozenset(LIBRARY + APPLICATIONS)

# What each package (or one module, "package.module") may import of regionspot besides itself: the "may import"
# column of docs/architecture.md's table, one line per row. An entry "a.b" allows regionspot.a.b and below.
# A new package is one line here and one row there.
ALLOWED_IMPORTS: dict[str, frozenset[str]] = {
    "errors": frozenset({"config", "utils"}),
    "config": frozenset({"errors", "utils"}),
    "utils": frozenset({"errors", "config"}),
    "version": frozenset(),
    "masks": frozenset({"errors", "utils"}),
    "data": LEAVES | {"text.templates"},
    "backbones": LEAVES | {"data"},
    "text": LEAVES,
    "modeling": LEAVES,
    "cache": LEAVES | {"backbones", "data", "registry"},
    "checkpoint": LEAVES | {"data", "backbones", "text", "modeling", "model", "registry", "weights.home"},
    "model": LEAVES | {"data", "backbones", "text", "modeling", "checkpoint", "registry", "weights.home"},
    "registry": LEAVES | {"data", "backbones", "text", "modeling", "checkpoint", "model", "weights.home"},
    "weights": LEAVES,
    "export": frozenset(LIBRARY),
    "runtime": frozenset({"data.images", "data.pixels", "text.templates", "errors", "version", "export.format",
                          "modeling.rejection", "masks.base"}),
    "weights.install": LEAVES | {"checkpoint", "backbones.convert"},
    "inference": frozenset(LIBRARY),
    "video": frozenset(LIBRARY),
    "evaluation": frozenset(LIBRARY),
    "engine": frozenset(LIBRARY) | {"evaluation"},
    "shapesworld": EVERYTHING - {"cli", "testing"},
    "demo": frozenset(LIBRARY),
    "testing": EVERYTHING,
    "cli": EVERYTHING,
}
# Imports the code has that the table does not allow yet, each to be removed (the test fails once one is gone,
# so this list cannot outlive them): (importing module, imported module).
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


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


def _table_rows(text: str) -> dict[str, str]:
    """{package or module: its "may import" cell} from the package table of docs/architecture.md."""
    rows, in_table = {}, False
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if cells[:1] == ["package"] and cells[-1] == "may import":
            in_table = True
        elif in_table and not cells:
            break
        elif in_table and not set(cells[0]) <= {"-"}:
            for name in re.findall(r"`([\w.]+?)(?:\.py|/)?`", cells[0]):
                rows[name] = cells[-1]
    return rows


def _allowed_by(cell: str, row: set[str]) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """The set a "may import" cell allows, and its per-module extras ("; `install.py` also `a`, `b`")."""
    main, *clauses = [c.strip() for c in cell.split(";")]
    allowed: set[str] = set()
    for term in (t.strip() for t in main.split(",")):
        if term in ("nothing of regionspot but each other", "each other"):
            allowed |= row
        elif term == "nothing of regionspot":
            pass
        elif term == "leaves":
            allowed |= LEAVES
        elif term == "the library":
            allowed |= set(LIBRARY)
        elif term == "anything":
            allowed |= EVERYTHING
        elif match := re.fullmatch(r"everything but ((?:`\w+`(?:, | and )?)+)", term):
            allowed |= EVERYTHING - set(re.findall(r"`(\w+)`", match.group(1)))
        elif re.fullmatch(r"`[\w.]+`", term):
            allowed.add(term.strip("`"))
        else:
            raise AssertionError(f"docs/architecture.md: unknown term {term!r} in the may-import column")
    extras = {}
    for clause in clauses:
        if match := re.fullmatch(r"`(\w+)\.py` also (.+)", clause):
            extras[match.group(1)] = frozenset(allowed | set(re.findall(r"`([\w.]+)`", match.group(2))))
        elif clause != "nothing imports it":  # checked by test_nothing_imports_the_cli
            raise AssertionError(f"docs/architecture.md: unknown clause {clause!r} in the may-import column")
    return frozenset(allowed), extras


def documented_imports(text: str) -> dict[str, frozenset[str]]:
    """ALLOWED_IMPORTS as the table of docs/architecture.md (``text``) states it."""
    rows = _table_rows(text)
    groups: dict[str, set[str]] = {}
    for name, cell in rows.items():
        groups.setdefault(cell, set()).add(name)
    documented = {}
    for name, cell in rows.items():
        allowed, extras = _allowed_by(cell, groups[cell])
        documented[name] = allowed
        documented.update({f"{name}.{module}": extra for module, extra in extras.items()})
    return documented


def _besides_itself(table: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """A package may always import itself: the table without that."""
    return {name: allowed - {name.split(".")[0]} for name, allowed in table.items()}


def _target(module: str, names: list[str]) -> list[str]:
    """The regionspot modules an import statement reaches (``from regionspot import x`` reaches regionspot.x;
    ``import regionspot``, the package root, is allowed nowhere)."""
    if module == "regionspot":
        return [f"regionspot.{name}" for name in names] or [module]
    return [module] if module.startswith("regionspot.") else []


def _permits(allowed: frozenset[str], target: str) -> bool:
    dotted = target.removeprefix("regionspot.")
    return any(dotted == entry or dotted.startswith(entry + ".") for entry in allowed)


def table_violations(modules: dict[str, list[tuple[str, list[str]]]],
                     allowed_imports: dict[str, frozenset[str]]) -> list[tuple[str, str]]:
    """(module, imported module) for each import outside ``allowed_imports``; the package root (its lazy
    re-exports) is exempt. A module with an entry of its own (``package.module``) uses it, others their package's."""
    bad = []
    for module, imports in modules.items():
        package = _top(module)
        if not package:
            continue
        own = ".".join(module.split(".")[1:3])
        allowed = allowed_imports.get(own, allowed_imports.get(package))
        for statement, names in imports:
            for target in _target(statement, names):
                if _top(target) != package and (allowed is None or not _permits(allowed, target)):
                    bad.append((module, target))
    return bad


def test_the_import_table_is_the_one_the_docs_state():
    documented = documented_imports((ROOT / "docs" / "architecture.md").read_text())
    assert _besides_itself(documented) == _besides_itself(ALLOWED_IMPORTS)


def test_every_package_has_a_row_of_the_table():
    packages = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
                if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert packages == set(LIBRARY + APPLICATIONS) == {name for name in ALLOWED_IMPORTS if "." not in name}


def test_each_package_imports_only_what_the_table_allows():
    bad = set(table_violations(MODULES, ALLOWED_IMPORTS))
    assert bad - KNOWN_EXCEPTIONS == set(), sorted(bad - KNOWN_EXCEPTIONS)
    assert KNOWN_EXCEPTIONS <= bad, f"gone, remove from KNOWN_EXCEPTIONS: {sorted(KNOWN_EXCEPTIONS - bad)}"


def test_the_table_check_can_fail():
    modules = {"regionspot.text.embeddings": [("regionspot.backbones.base", ["VisionLanguage"])],
               "regionspot.data.images": [("regionspot", ["text"])],
               "regionspot.weights.install": [("regionspot.checkpoint", ["load"])],
               "regionspot.weights.home": [("regionspot.checkpoint", ["load"])],
               "regionspot.cache.extract": [("regionspot", []), ("regionspot", ["__version__"])]}
    assert table_violations(modules, ALLOWED_IMPORTS) == [
        ("regionspot.text.embeddings", "regionspot.backbones.base"), ("regionspot.data.images", "regionspot.text"),
        ("regionspot.weights.home", "regionspot.checkpoint"), ("regionspot.cache.extract", "regionspot"),
        ("regionspot.cache.extract", "regionspot.__version__")]


def test_library_never_imports_applications():
    bad = [(m, target) for m, imports in MODULES.items() if _top(m) in LIBRARY
           for target, _ in imports if _top(target) in APPLICATIONS]
    assert not bad, bad


def test_leaves_import_only_leaves():
    bad = [(m, target) for m, imports in MODULES.items() if _top(m) in LEAVES
           for target, _ in imports if target.startswith("regionspot") and _top(target) not in LEAVES]
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
