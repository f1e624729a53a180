"""Design measures of a regionspot source tree, printed as Markdown: what a redesign is judged by.

    python scripts/design_metrics.py                 # this checkout
    python scripts/design_metrics.py --root OTHER    # another tree (e.g. `git archive REV | tar -x -C OTHER`)

The measuring stick is always this checkout's: the layer lists and the import table come from its
tests/test_architecture.py, whatever tree is measured.

(a) options of `eval` and `predict`: for each option (the Typer command's parameter, a Python identifier),
    how often the identifier is spelled in regionspot/: as a whole word anywhere (``words``, docstrings and
    messages included) and in how many files; as a code name (``code``: identifier tokens, no strings or
    comments); and as a declaration or hand-over (``decl``: a function parameter, a keyword argument of a
    call, or a field of a class body); totals and means per option.
(a') the lists that spell a command's options: every function signature, call (its keyword names) and class
    body (its fields) in regionspot/ naming 4 or more of the command's options; for each option, in how
    many of those lists it is spelled (the Typer declaration is one of them).
(b) imports that point up: library -> applications (test_architecture's LIBRARY / APPLICATIONS), and every
    import outside the per-package table (test_architecture's ALLOWED_IMPORTS; the package root exempt).
(c) copies of the scoring formula logit_scale * cos(head(tokens, map), text): functions that use the head's
    output (``.region_embeddings`` or a call of ``head``) and scale a product by ``logit_scale`` (a call of
    ``region_text_logits`` or ``logit_scale * (a @ b)``); the bare scale * product sites are listed too.
(d) DataLoader users: modules that construct ``torch.utils.data.DataLoader``, and users of the image feeder
    ``regionspot.data.feeder``.
(e) modules over 400 lines; (f) functions over 80 lines (def to last line);
(g) ``duplicates --repo regionspot`` pairs, when the ``duplicates`` command is on PATH.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import io
import re
import shutil
import subprocess
import sys
import tokenize
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
MODULE_LINES, FUNCTION_LINES = 400, 80
LIST_MIN_OPTIONS = 4


def architecture():
    """This checkout's tests/test_architecture.py, as a module (the measuring stick)."""
    spec = importlib.util.spec_from_file_location("_design_architecture", HERE / "tests" / "test_architecture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sources(root: Path) -> dict[str, tuple[Path, str]]:
    """{dotted module name: (path, text)} of every .py under root/regionspot."""
    found = {}
    for path in sorted((root / "regionspot").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = (path, path.read_text())
    return found


def cli_group(root: Path):
    """The click group of the tree's Typer app (the tree's regionspot first on the import path)."""
    sys.path.insert(0, str(root))
    import typer.main

    from regionspot.cli import app

    return typer.main.get_command(app)


def command_callbacks(group) -> set[str]:
    """"module:function" of every command's callback in ``group`` (other commands' signatures are not hand-overs)."""
    found = set()
    stack = [group]
    while stack:
        command = stack.pop()
        stack.extend(getattr(command, "commands", {}).values())
        if command.callback is not None:
            found.add(f"{command.callback.__module__}:{command.callback.__name__}")
    return found


def command_options(group) -> dict[str, list[str]]:
    """{command: its parameters' Python names} for `eval` and `predict` of ``group``."""
    return {name: [param.name for param in group.commands[name].params] for name in ("eval", "predict")}


def _code_names(text: str) -> Counter:
    names: Counter = Counter()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.NAME:
            names[token.string] += 1
    return names


def _declared_names(tree: ast.AST) -> Counter:
    """Parameter names, keyword-argument names and class-body field names."""
    names: Counter = Counter()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            names.update(a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs))
        elif isinstance(node, ast.keyword) and node.arg:
            names[node.arg] += 1
        elif isinstance(node, ast.ClassDef):
            names.update(s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name))
    return names


def option_table(root: Path, files: dict[str, tuple[Path, str]]) -> list[str]:
    code, declared = Counter(), Counter()
    for _path, text in files.values():
        code += _code_names(text)
        declared += _declared_names(ast.parse(text))
    lines = ["## (a) Where each `eval` / `predict` option is spelled in regionspot/", "",
             "| command | option | words | files | code | decl |", "|---|---|---:|---:|---:|---:|"]
    for command, options in command_options(cli_group(root)).items():
        totals = Counter()
        for option in options:
            word = re.compile(rf"\b{re.escape(option)}\b")
            hits = [len(word.findall(text)) for _path, text in files.values()]
            row = {"words": sum(hits), "files": sum(1 for h in hits if h), "code": code[option], "decl": declared[option]}
            totals.update(row)
            lines.append(f"| {command} | `{option}` | {row['words']} | {row['files']} | {row['code']} | {row['decl']} |")
        n = len(options)
        lines.append(f"| **{command}: {n} options, total** | | {totals['words']} | {totals['files']} | {totals['code']} | "
                     f"{totals['decl']} |")
        lines.append(f"| **{command}: mean per option** | | {totals['words'] / n:.1f} | {totals['files'] / n:.1f} | "
                     f"{totals['code'] / n:.1f} | {totals['decl'] / n:.1f} |")
    return lines


def _spelled_lists(tree: ast.AST):
    """(line, kind, name, names it spells) for every signature, call and class body of a module."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            yield node.lineno, "def", node.name, {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "?")
            yield node.lineno, "call", called, {k.arg for k in node.keywords if k.arg}
        elif isinstance(node, ast.ClassDef):
            yield node.lineno, "class", node.name, {s.target.id for s in node.body
                                                    if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}


def option_lists(root: Path, files: dict[str, tuple[Path, str]]) -> list[str]:
    trees = {path.relative_to(root): ast.parse(text) for path, text in files.values()}
    group = cli_group(root)
    callbacks = command_callbacks(group)
    lines = ["## (a') Lists that spell a command's options (signatures, calls, class bodies naming 4 or more of them)", ""]
    for command, options in command_options(group).items():
        wanted = set(options)
        own = group.commands[command].callback
        others = callbacks - {f"{own.__module__}:{own.__name__}"}
        found = [(where, line, kind, name, names & wanted) for where, tree in trees.items()
                 for line, kind, name, names in _spelled_lists(tree) if len(names & wanted) >= LIST_MIN_OPTIONS
                 and not (kind == "def" and f"{'.'.join(where.with_suffix('').parts)}:{name}" in others)]
        per_option = {o: sum(o in spelled for *_rest, spelled in found) for o in options}
        counts = sorted(per_option.values())
        whole = sum(len(spelled) * 2 >= len(options) for *_rest, spelled in found)
        lines.append(f"**{command}** ({len(options)} options): {len(found)} lists, {whole} of them naming half or more "
                     f"of the options; places per option: min {counts[0]}, median {counts[len(counts) // 2]}, max {counts[-1]}")
        lines += [f"- {where}:{line} {kind} `{name}` ({len(spelled)}/{len(options)})"
                  for where, line, kind, name, spelled in found]
        lines.append("")
    return lines


def upward_imports(files: dict[str, tuple[Path, str]]) -> list[str]:
    arch = architecture()
    modules = {name: arch._imports(path) for name, (path, _text) in files.items()}
    up = sorted({(m, t) for m, imports in modules.items() if arch._top(m) in arch.LIBRARY
                 for t, _names in imports if arch._top(t) in arch.APPLICATIONS})
    outside = sorted(set(arch.table_violations(modules, arch.ALLOWED_IMPORTS)))
    lines = ["## (b) Imports that point up", "", f"library -> applications: **{len(up)}**"]
    lines += [f"- `{m}` -> `{t}`" for m, t in up]
    lines += ["", f"outside the per-package import table of docs/architecture.md: **{len(outside)}**"]
    lines += [f"- `{m}` -> `{t}`" for m, t in outside]
    return lines


def _scales_a_product(node: ast.AST) -> bool:
    """``region_text_logits(...)``, or one expression multiplying by ``logit_scale`` and taking a matrix product."""
    if isinstance(node, ast.Call):
        func = node.func
        return (func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")) == "region_text_logits"
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.MatMult)):
        ops = {type(n.op) for n in ast.walk(node) if isinstance(n, ast.BinOp)}
        return {ast.Mult, ast.MatMult} <= ops and "logit_scale" in ast.unparse(node)
    return False


def _own_nodes(function: ast.AST):
    """The nodes of a function's body, without those of the functions defined inside it."""
    stack = list(function.body)
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node)
                     if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))


def _uses_head(function: ast.AST) -> bool:
    for node in _own_nodes(function):
        if isinstance(node, ast.Attribute) and node.attr == "region_embeddings":
            return True
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "head") or (isinstance(func, ast.Attribute) and func.attr == "head"):
                return True
    return False


def scoring_copies(root: Path, files: dict[str, tuple[Path, str]]) -> list[str]:
    copies, products = [], []
    for path, text in files.values():
        tree = ast.parse(text)
        where = path.relative_to(root)
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            sites = [n for n in _own_nodes(function) if _scales_a_product(n)]
            products += [f"{where}:{n.lineno} ({function.name})" for n in sites]
            if sites and _uses_head(function):
                copies.append(f"{where}:{function.lineno} ({function.name})")
    lines = ["## (c) The scoring formula logit_scale * cos(head(tokens, map), text)", "",
             f"functions computing it: **{len(copies)}**"]
    lines += [f"- {c}" for c in copies]
    lines += ["", f"scale * product sites (the formula's last step, any caller): {len(products)}"]
    lines += [f"- {p}" for p in sorted(set(products))]
    return lines


def dataloader_users(root: Path, files: dict[str, tuple[Path, str]]) -> list[str]:
    loaders, feeders = [], []
    for name, (path, text) in files.items():
        where = path.relative_to(root)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if called == "DataLoader":
                    loaders.append(f"{where}:{node.lineno}")
            elif isinstance(node, ast.ImportFrom) and name != "regionspot.data.feeder" and (
                    node.module == "regionspot.data.feeder"
                    or (node.module == "regionspot.data" and any(a.name == "feeder" for a in node.names))):
                feeders.append(f"{where}:{node.lineno} imports {', '.join(a.name for a in node.names)}")
    lines = ["## (d) DataLoader users", "", f"modules constructing a DataLoader: **{len({site.split(':')[0] for site in loaders})}**"]
    lines += [f"- {loader}" for loader in loaders]
    feeder = (root / "regionspot" / "data" / "feeder.py").is_file()
    lines += ["", f"users of regionspot.data.feeder: **{len({site.split(':')[0] for site in feeders})}**"
              + ("" if feeder else " (regionspot/data/feeder.py does not exist in this tree)")]
    lines += [f"- {f}" for f in feeders]
    return lines


def sizes(root: Path, files: dict[str, tuple[Path, str]]) -> list[str]:
    long_modules = sorted(((len(text.splitlines()), path.relative_to(root)) for path, text in files.values()), reverse=True)
    long_modules = [(n, p) for n, p in long_modules if n > MODULE_LINES]
    long_functions = []
    for path, text in files.values():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > FUNCTION_LINES:
                    long_functions.append((length, f"{path.relative_to(root)}:{node.lineno} {node.name}"))
    lines = [f"## (e) Modules over {MODULE_LINES} lines: **{len(long_modules)}**", ""]
    lines += [f"- {p}: {n}" for n, p in long_modules]
    lines += ["", f"## (f) Functions over {FUNCTION_LINES} lines: **{len(long_functions)}**", ""]
    lines += [f"- {where}: {n}" for n, where in sorted(long_functions, reverse=True)]
    return lines


def duplicate_pairs(root: Path) -> list[str]:
    if shutil.which("duplicates") is None:
        return ["## (g) duplicates", "", "`duplicates` is not on PATH: not measured."]
    done = subprocess.run(["duplicates", "--repo", str(root / "regionspot"), "--seconds", "120"],
                          capture_output=True, text=True, cwd=root)
    first = done.stdout.splitlines()[0] if done.stdout else done.stderr.strip()
    count = re.match(r"(\d+) pairs?", first)
    return ["## (g) duplicates --repo regionspot", "", f"pairs: **{count.group(1) if count else 0}**", "",
            f"`{first}`"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=HERE, help="the source tree to measure (default: this checkout)")
    args = parser.parse_args()
    root = args.root.resolve()
    files = sources(root)
    sections = [option_lists(root, files), option_table(root, files), upward_imports(files), scoring_copies(root, files),
                dataloader_users(root, files), sizes(root, files), duplicate_pairs(root)]
    print(f"# Design measures of {root}\n")
    print("\n\n".join("\n".join(section) for section in sections))


if __name__ == "__main__":
    main()
