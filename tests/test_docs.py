"""Every example in the user docs (README.md, docs/*.md, each command's --help) runs, or where it cannot run
here, at least parses against the command line as it is.

The rules:

- Fenced ``bash`` and ``python`` blocks are read from README.md and docs/*.md. A block right after a
  ``<!-- needs: REASON -->`` line is not run, for one of the reasons in ``NEEDS`` (real weights, which tests
  never download; files the reader brings; the network; a long-running server; minutes of CPU). Every
  other block **is run**, offline, with the embedded ShapesWorld model, in a temporary folder of its page
  that starts with ``photo.jpg`` (the bundled example image, saved as JPEG) and nothing else; blocks run
  in page order, so a block may read what an earlier block of its page wrote; a block that fails fails
  its test.
- Every ``regionspot ...`` command of every block, run or not, is parsed by the real command line
  (``typer.main.get_command(app)`` + click's ``make_context``), which catches a removed or renamed command or
  option and a value that does not convert, without loading a model. ``...`` in a command stands for
  options left out (then a missing required option is accepted) and ``[--opt]`` for an optional one.
  ``train`` overrides are also applied to the recipe they name.
- In a bash block, shell loops (``for ...; do``, ``done``, ``IFS=: read ...``) are skipped and the commands
  inside them parsed (``$name`` stays a literal word). Environment set-up (``python3 -m venv``, ``pip install``) is not run: these tests run in
  the environment it makes. ``bash scripts/test.sh`` is this test suite: only its existence is checked.
  ``python benchmarks/X.py --flag`` / ``python scripts/X.py``: the script must exist and define each flag.
  Any other command is an error here until a rule for it is added.
- Python blocks that are not run are compiled.
- ``--help`` of every command renders; each ``regionspot ...`` command quoted in a help text parses;
  examples given in option help (``train``'s overrides, the files ``eval`` writes) are checked against
  what the code does.
- User docs and help texts carry no issue numbers, commit hashes, dated notes or developer paths, and
  every relative link points at a file (and heading) that exists.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from regionspot.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NEEDS = {
    "real-weights": "the official weights (tests never download them)",
    "your-data": "datasets or files the reader brings (LVIS, COCO_ROOT, names.txt ...)",
    "network": "package indexes or the PyTorch wheel index",
    "server": "a long-running server (regionspot serve) or a client of one",
    "slow": "minutes of CPU",
    "minutes": "minutes of CPU",
    "gpu": "a CUDA GPU",
}
README_MAX_LINES = 250
SHELL_CONTROL = re.compile(r"^\s*(for\b.*;\s*do|while\b.*;\s*do|done|IFS=\S*\s+read\b.*)\s*$")
NEEDS_LINE = re.compile(r"^<!--\s*needs:\s*([\w-]+)\s*-->$")
SETUP = (("python3", "-m", "venv"), ("python", "-m", "venv"), ("pip", "install"), (".venv/bin/pip", "install"),
         ("python", "-m", "pip"), ("python3", "-m", "pip"))
ROOT_COMMAND = typer.main.get_command(app)
# the exceptions of the click that typer runs on (typer may vendor its own copy of click)
ERRORS = sys.modules[typer.BadParameter.__module__]
runner = CliRunner()


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    text: str
    needs: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    """The fenced bash/python blocks of a Markdown file, with the ``needs`` mark just above each."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = re.match(r"^```(\w*)\s*$", lines[i])
        if not match:
            i += 1
            continue
        start, lang = i, match.group(1)
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        mark = NEEDS_LINE.match(before)
        if lang in ("bash", "python"):
            blocks.append(Block(path, start + 1, lang, "\n".join(lines[start + 1:end]), mark.group(1) if mark else None))
        i = end + 1
    return blocks


BLOCKS = [b for path in DOCS for b in read_blocks(path)]


def bash_commands(text: str) -> list[list[str]]:
    """Shell words of each command: continuations joined, comments dropped, ``&&`` chains split."""
    commands = []
    for line in text.replace("\\\n", " ").splitlines():
        if SHELL_CONTROL.match(line):
            continue
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for word in [*words, "&&"]:
            if word == "&&":
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(word)
    return commands


def strip_prefixes(words: list[str]) -> list[str]:
    """``nice -n 15 env A=1 B=2 cmd ...`` -> ``cmd ...``."""
    while words:
        if words[0] == "nice":
            words = words[3:] if len(words) > 2 and words[1] == "-n" else words[1:]
        elif words[0] == "env" or re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]
        else:
            return words
    return words


def regionspot_args(words: list[str]) -> list[str] | None:
    """The arguments after ``regionspot`` (or ``python -m regionspot.cli``, as under accelerate/torchrun)."""
    if words and words[0] in ("regionspot", ".venv/bin/regionspot"):
        return words[1:]
    if "-m" in words:
        k = words.index("-m")
        if k + 1 < len(words) and words[k + 1] == "regionspot.cli":
            return words[k + 2:]
    return None


def resolve(args: list[str]):
    """The (sub)command the words name, its name path and its own arguments."""
    command, names = ROOT_COMMAND, ["regionspot"]
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        sub = command.commands.get(args[0])
        assert sub is not None, f"`{' '.join(names)}` has no command {args[0]!r} (it has {sorted(command.commands)})"
        command, names, args = sub, [*names, args[0]], args[1:]
    return command, names, args


def check_parses(args: list[str], where: str) -> None:
    """Parse ``regionspot ARGS`` with the real command line; fail on unknown commands/options, bad values."""
    elided = "..." in args
    cleaned = []
    for k, word in enumerate(args):
        if word == "...":
            if k and args[k - 1].startswith("--"):
                cleaned.append("VALUE")  # `--config ...`: the option's value is left out
            continue
        if word.startswith("[") and word.endswith("]"):
            cleaned.extend(shlex.split(word[1:-1]))
        elif word.startswith("["):
            cleaned.append(word[1:])
        elif word.endswith("]") and not word.startswith("datasets="):
            cleaned.append(word[:-1])
        else:
            cleaned.append(word)
    command, names, rest = resolve(cleaned)
    try:
        ctx = command.make_context(names[-1], list(rest))
    except typer.Exit:  # --version / --help: eager options that end parsing
        return
    except ERRORS.MissingParameter as error:
        assert elided, f"{where}: `{' '.join(names)}` misses a required parameter ({error.format_message()})"
        return
    except ERRORS.UsageError as error:
        raise AssertionError(f"{where}: `regionspot {' '.join(args)}` does not parse: {error.format_message()}") from None
    if names[-1] == "train" and ctx.params.get("config") is not None:
        from regionspot.engine.config import TrainConfig

        config = ROOT / ctx.params["config"]
        if config.is_file():  # a recipe of this repository: the overrides must apply to it
            TrainConfig.from_yaml(config, list(ctx.params.get("overrides") or []))


def check_script(words: list[str], where: str) -> None:
    """``python benchmarks/X.py --flag ...``: the script exists and defines every flag used."""
    script = ROOT / words[1]
    assert script.is_file(), f"{where}: {words[1]} does not exist"
    source = script.read_text()
    if script.parent == ROOT / "benchmarks" / "speed":
        source += (ROOT / "benchmarks" / "speed" / "speed_tools.py").read_text()
    for word in words[2:]:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            assert f'"{flag}"' in source, f"{where}: {words[1]} has no option {flag}"


def classify(words: list[str]) -> str:
    words = strip_prefixes(words)
    if any(tuple(words[: len(s)]) == s for s in SETUP):
        return "setup"
    if words[:2] == ["bash", "scripts/test.sh"]:
        return "suite"
    if regionspot_args(words) is not None:
        return "regionspot"
    if words and words[0] in ("python", "python3") and len(words) > 1 and words[1].endswith(".py"):
        return "script"
    return "unknown"


def check_command(words: list[str], where: str) -> None:
    kind = classify(words)
    words = strip_prefixes(words)
    if kind == "regionspot":
        check_parses(regionspot_args(words), where)
    elif kind == "script":
        check_script(words, where)
    elif kind == "suite":
        assert (ROOT / "scripts" / "test.sh").is_file()
    elif kind == "unknown":
        raise AssertionError(f"{where}: no rule for the command {' '.join(words)!r}; add one to tests/test_docs.py")


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "bash"], ids=lambda b: b.id)
def test_every_command_in_the_docs_parses(block):
    assert block.needs is None or block.needs in NEEDS, f"{block.id}: unknown needs: {block.needs} (known: {sorted(NEEDS)})"
    for words in bash_commands(block.text):
        check_command(words, block.id)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "python" and b.needs], ids=lambda b: b.id)
def test_python_blocks_that_need_what_tests_lack_compile(block):
    assert block.needs in NEEDS, f"{block.id}: unknown needs: {block.needs}"
    compile(block.text, block.id, "exec")


def with_photo(folder: Path) -> Path:
    """``folder`` holding photo.jpg (the bundled example image, saved as JPEG)."""
    from PIL import Image

    from regionspot.registry import assets_dir

    Image.open(assets_dir() / "shapesworld" / "example.png").convert("RGB").save(folder / "photo.jpg", quality=95)
    return folder


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """An empty folder holding photo.jpg (the bundled example), made the current directory."""
    monkeypatch.chdir(with_photo(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


PAGE_FOLDERS: dict[Path, Path] = {}


@pytest.fixture()
def page_workdir(block, tmp_path_factory, monkeypatch):
    """One folder per page, made the current directory: a page reads top to bottom, so a block may use what
    an earlier block of the same page wrote (blocks run in page order)."""
    if block.path not in PAGE_FOLDERS:
        PAGE_FOLDERS[block.path] = with_photo(tmp_path_factory.mktemp(block.path.stem))
    monkeypatch.chdir(PAGE_FOLDERS[block.path])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return PAGE_FOLDERS[block.path]


RUNNABLE = [b for b in BLOCKS if b.needs is None]


def run_example(words: list[str], where: str) -> None:
    """``python examples/X.py ...`` in a subprocess of this interpreter, in the page's folder."""
    import os
    import subprocess

    check_script(words, where)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(ROOT / words[1]), *words[2:]], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, f"{where}: `{' '.join(words)}` exited {result.returncode}:\n{result.stderr[-2000:]}"


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_runnable_blocks_run(block, page_workdir):
    if block.lang == "python":
        exec(compile(block.text, block.id, "exec"), {"__name__": "__docs__"})
        return
    ran = 0
    for words in bash_commands(block.text):
        kind = classify(words)
        if kind in ("setup", "suite"):
            check_command(words, block.id)
            ran += kind == "suite"  # this very suite: running it here would recurse
            continue
        if kind == "script" and strip_prefixes(words)[1].startswith("examples/"):  # an example script, as a reader runs it
            run_example(strip_prefixes(words), block.id)
            ran += 1
            continue
        assert kind == "regionspot", f"{block.id}: only regionspot commands and examples/ scripts run here; mark the block with needs:"
        args = regionspot_args(strip_prefixes(words))
        assert "..." not in args, f"{block.id}: a runnable command cannot leave options out: {' '.join(words)}"
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{block.id}: `regionspot {' '.join(args)}` exited {result.exit_code}:\n{result.output}"
        ran += 1
    assert ran, f"{block.id}: nothing ran"


def test_readme_first_command_writes_what_it_says(workdir):
    """The README's first command (after set-up): the bundled example labelled, JSON and picture written."""
    import json

    from regionspot.registry import assets_dir

    first = read_blocks(ROOT / "README.md")[0]
    assert first.needs is None and "--index-url https://download.pytorch.org/whl/cpu" in first.text
    args = regionspot_args([w for w in bash_commands(first.text) if classify(w) == "regionspot"][0])
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads((workdir / "result.json").read_text())
    spec = json.loads((assets_dir() / "shapesworld" / "example.json").read_text())
    assert len(payload["regions"]) == len(spec["boxes"])
    assert [r["known"] for r in payload["regions"]].count(False) == 1  # the region none of the names fits
    assert (workdir / "result.png").stat().st_size > 0


def all_commands(command=ROOT_COMMAND, names: tuple[str, ...] = ()):
    yield names, command
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from all_commands(sub, (*names, name))


COMMANDS = list(all_commands())


@pytest.mark.parametrize("names", [n for n, _ in COMMANDS], ids=lambda n: " ".join(n) or "regionspot")
def test_every_help_renders_and_its_quoted_commands_parse(names):
    result = runner.invoke(app, [*names, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command = dict(COMMANDS)[names]
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    for text in texts:
        for quoted in re.findall(r"`([^`]*regionspot(?:\.cli)? [^`]*)`", text):
            words = shlex.split(quoted)
            if words[-1].startswith("--") and len(words) > 2:  # `regionspot eval --boxes`: names an option
                words.append("...")
            check_command(words, f"--help of regionspot {' '.join(names)}")


def param_help(names: tuple[str, ...], param: str) -> str:
    command = dict(COMMANDS)[names]
    return next(p.help for p in command.params if p.name == param)


def test_train_help_override_example_applies():
    from regionspot.engine.config import TrainConfig

    text = param_help(("train",), "overrides")
    example = re.search(r"e\.g\. (.+?)\.$", text)
    assert example, text
    config = TrainConfig.from_yaml(ROOT / "configs" / "shapesworld_tiny.yaml", example.group(1).split())
    assert config.to_dict() != TrainConfig.from_yaml(ROOT / "configs" / "shapesworld_tiny.yaml").to_dict()


def test_eval_help_names_the_files_eval_writes():
    from regionspot.evaluation.report import REPORT_FILES

    text = param_help(("eval",), "out")
    named = set(re.findall(r"[\w.]+\.(?:json|md|csv|png)", text))
    assert named and named <= set(REPORT_FILES.values()), (named, REPORT_FILES)


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"


FORBIDDEN = [
    (re.compile(r"\bissues?\s*#?\d+", re.I), "an issue number"),
    (re.compile(r"(?<![\w/&])#\d+\b"), "an issue/PR number"),
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b"), "a commit hash"),
    (re.compile(r"\b20\d\d-[01]\d(-[0-3]\d)?\b"), "a date"),
    (re.compile(r"\bthis (session|round|branch|task)\b", re.I), "a note about the work, not the software"),
    (re.compile(r"/work/|\.\./shared|DESIGN\.md"), "a developer's path or an unpublished file"),
]
URL = re.compile(r"https?://\S+")


def forbidden_in(text: str) -> list[str]:
    text = URL.sub("", text)
    return [f"{why}: {m.group(0)!r}" for pattern, why in FORBIDDEN for m in pattern.finditer(text)]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_docs_speak_to_users(path):
    problems = [f"line {n}: {p}" for n, line in enumerate(path.read_text().splitlines(), 1) for p in forbidden_in(line)]
    assert not problems, "\n".join(problems)


def test_help_texts_speak_to_users():
    problems = []
    for names, _ in COMMANDS:
        output = runner.invoke(app, [*names, "--help"], terminal_width=200).output
        problems += [f"regionspot {' '.join(names)} --help: {p}" for p in forbidden_in(output)]
    assert not problems, "\n".join(problems)


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_what_exists(path):
    text = path.read_text()
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md":
            headings = [slug(h) for h in re.findall(r"^#+\s+(.+)$", linked.read_text(), re.M)]
            if anchor not in headings:
                problems.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not problems, "\n".join(problems)


def test_the_benchmarks_index_lists_every_benchmark_with_a_command_that_parses():
    """benchmarks/README.md: one row per script of each benchmarks/<kind>/ folder, and its command exists."""
    rows = re.findall(r"^## (\w+)/|^\| `(\w+\.py)` \|.*\| `?([^|`]*)`? \|$", (ROOT / "benchmarks" / "README.md").read_text(),
                      flags=re.M)
    listed, kind = set(), None
    for folder, script, command in rows:
        kind = folder or kind
        if script:
            listed.add(f"{kind}/{script}")
            if command.startswith("python "):
                assert command.split()[1] == f"benchmarks/{kind}/{script}", command
                check_script(shlex.split(command), f"benchmarks/README.md: {script}")
    present = {p.relative_to(ROOT / "benchmarks").as_posix() for p in (ROOT / "benchmarks").glob("*/*.py")}
    assert listed == present, (sorted(present - listed), sorted(listed - present))
    assert not list((ROOT / "benchmarks").glob("*.py")), "a benchmark belongs in one of the kind folders"


def test_the_license_is_the_one_pyproject_names():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()
