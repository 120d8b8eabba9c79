"""The READMEs' code examples work: every ```python block of README.md (and of fastdiff/README.md) runs in a fresh
interpreter, and every command a ```bash block names exists.

A block that needs a network, a GPU or minutes of compute says so in the README itself, with an HTML comment on the
line before its fence, ``<!-- not run in the tests: needs a GPU -->``; exactly those are skipped, with that reason,
and even then their imports must resolve. Bash blocks are not executed: each ``fastdiff <subcommand>`` must be one
of ``fastdiff --help``'s subcommands (its ``--options`` among the subcommand's), each ``python <file>.py`` and
``papermill <notebook>`` must name a file of the repository (its ``--options`` and ``-p`` parameters found in it),
each ``python -m fastdiff.<module>`` an importable module, and a ``fastdiff train`` recipe or a ``--model`` zoo entry
must exist.
"""
from __future__ import annotations

import ast
import contextlib
import functools
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", ROOT / "fastdiff" / "README.md"]
NOT_RUN = re.compile(r"<!--\s*not run in the tests:\s*(.+?)\s*-->")
TIMEOUT_S = 120          # a block runs in seconds; this only stops a hung one


@dataclass
class Block:
    readme: Path
    line: int            # the line of the opening fence (1-based)
    language: str
    code: str
    not_run: str | None  # the reason given in the comment on the line before, if any

    @property
    def id(self) -> str:
        return f"{self.readme.relative_to(ROOT)}:{self.line}"


def code_blocks(readme: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the "not run in the tests" reason of the line before each."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = re.match(r"\s*```(\w*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"{readme.name}:{i + 1}: a code block is never closed"
        before = NOT_RUN.search(lines[i - 1]) if i > 0 else None
        blocks.append(Block(readme, i + 1, opening.group(1).lower(), "\n".join(lines[i + 1:end]) + "\n",
                            before.group(1) if before else None))
        i = end + 1
    return blocks


BLOCKS = [b for readme in READMES for b in code_blocks(readme)]
PYTHON = [b for b in BLOCKS if b.language == "python"]
BASH = [b for b in BLOCKS if b.language in ("bash", "sh", "shell", "console")]


def _env() -> dict:
    # each example runs quietly on one thread (as every test worker does; the suite runs one worker per core)
    return {**os.environ, "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}


def test_the_readmes_have_examples():
    assert PYTHON and BASH, "README.md lost its code examples, or this test no longer finds them"
    languages = {b.language for b in BLOCKS}
    assert languages <= {"python", "bash", "sh", "shell", "console", "text", ""}, \
        f"a code block in a language this test neither runs nor checks: {languages}"


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.id)
def test_python_block_runs(block: Block, tmp_path):
    if block.not_run:
        pytest.skip(f"{block.id}: {block.not_run} (marked in the README)")
    result = subprocess.run([sys.executable, "-c", block.code], cwd=tmp_path, env=_env(), capture_output=True,
                            text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, (f"the example at {block.id} fails:\n{block.code}\n--- stderr ---\n"
                                    f"{result.stderr[-4000:]}")


@pytest.mark.parametrize("block", [b for b in PYTHON if b.not_run], ids=lambda b: b.id)
def test_python_block_not_run_still_imports(block: Block):
    """A block the tests do not run still parses, and its imports resolve (in this process: imports are cheap here)."""
    tree = ast.parse(block.code, filename=block.id)
    imports = ast.Module([node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))], [])
    exec(compile(imports, block.id, "exec"), {})


# ------------------------------------------------------------------------------------------------- bash blocks

def commands(block: Block) -> list[list[str]]:
    """Each command of a bash block as its words: comments dropped, ``&&``, ``;`` and ``|`` split."""
    out = []
    for line in block.code.splitlines():
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for word in words + [";"]:
            if word in ("&&", ";", "|", "||"):
                if current:
                    out.append(current)
                current = []
            else:
                current.append(word)
    return out


def _options(words: list[str]) -> list[str]:
    return [w.split("=")[0] for w in words if w.startswith("--")]


def _help(argv: list[str]) -> str:
    """What ``fastdiff <argv> --help`` prints (in this process: the console script runs the same `main`)."""
    from fastdiff.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([*argv, "--help"])
    return out.getvalue()


@pytest.fixture(scope="module")
def fastdiff_subcommands() -> set[str]:
    usage = _help([])
    found = re.search(r"\{([\w,-]+)\}", usage)
    assert found, f"no subcommand list in `fastdiff --help`:\n{usage}"
    return set(found.group(1).split(","))


@functools.cache
def _recipes() -> set[str]:
    from fastdiff.studies.zoo_recipes import recipes
    return set(recipes())


@functools.cache
def _zoo_entries() -> set[str]:
    from fastdiff import zoo
    return set(zoo.entries())


def _notebook_parameters(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert tagged, f"{path.name} has no cell tagged parameters"
    return "".join(tagged[0]["source"])


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def check_command(words: list[str], subcommands: set[str]) -> list[str]:
    """What is wrong with one command of a bash block (nothing for commands outside this repository)."""
    problems = []
    program, args = words[0], words[1:]
    if program == "fastdiff":
        if not args or args[0] not in subcommands:
            return [f"`fastdiff {' '.join(args[:1])}` is not a subcommand of `fastdiff --help` ({sorted(subcommands)})"]
        known = _help([args[0]])
        problems += [f"`fastdiff {args[0]}` has no option {o}" for o in _options(args) if o not in known]
        if args[0] == "train" and len(args) > 1 and not args[1].startswith("-") and args[1] not in _recipes():
            problems.append(f"`fastdiff train {args[1]}`: no such recipe (`fastdiff train` lists them)")
    elif program in ("python", "python3", "torchrun"):
        if "-m" in args:
            module = args[args.index("-m") + 1]
            if module.startswith("fastdiff") and not _module_exists(module):
                problems.append(f"no module {module}")
            elif module.startswith("fastdiff"):
                source = Path(importlib.util.find_spec(module).origin).read_text(encoding="utf-8")
                rest = args[args.index("-m") + 2:]
                problems += [f"`python -m {module}` has no option {o}" for o in _options(rest)
                             if f'"{o}"' not in source]
                entry = rest[rest.index("--model") + 1] if "--model" in rest else None
                if entry and not entry.endswith(".pt") and entry not in _zoo_entries():
                    problems.append(f"--model {entry}: no such zoo entry (`fastdiff zoo` lists them)")
        elif program != "torchrun":
            scripts = [a for a in args if a.endswith(".py")]
            for script in scripts[:1]:
                path = ROOT / script
                if not path.is_file():
                    problems.append(f"no file {script}")
                else:
                    source = path.read_text(encoding="utf-8")
                    rest = args[args.index(script) + 1:]
                    problems += [f"{script} has no option {o}" for o in _options(rest) if f'"{o}"' not in source]
    elif program == "papermill":
        notebook = ROOT / args[0]
        if not notebook.is_file():
            return [f"no notebook {args[0]}"]
        parameters = _notebook_parameters(notebook)
        names = [args[i + 1] for i, a in enumerate(args) if a in ("-p", "--parameters")]
        problems += [f"{args[0]} has no parameter {n!r} in its parameters cell" for n in names
                     if not re.search(rf"^{re.escape(n)}\s*=", parameters, re.M)]
    elif program == "jupyter":
        problems += [f"no folder {a}" for a in args[1:] if not a.startswith("-") and not (ROOT / a).exists()]
    return problems


@pytest.mark.parametrize("block", BASH, ids=lambda b: b.id)
def test_bash_block_names_what_exists(block: Block, fastdiff_subcommands):
    problems = [f"{' '.join(words)}: {p}" for words in commands(block) for p in check_command(words,
                                                                                              fastdiff_subcommands)]
    assert not problems, f"the commands at {block.id} name what does not exist:\n" + "\n".join(problems)


def test_bash_checks_catch_a_wrong_name(fastdiff_subcommands):
    """The bash checks are not vacuous: a stale subcommand, file, module, option or parameter is caught."""
    for wrong in ("fastdiff reproduces", "fastdiff train --epochs 3", "fastdiff train basics/no-such-recipe",
                  "python benchmarks/no_such.py", "python -m fastdiff.swin_torchrun sample --model swin/no-such-entry",
                  "python -m fastdiff.no_such", "python benchmarks/performance.py --no-such-option",
                  "papermill notebooks/00_diffusion_basics.ipynb out.ipynb -p no_such_parameter 1"):
        block = Block(ROOT / "README.md", 0, "bash", wrong + "\n", None)
        assert check_command(commands(block)[0], fastdiff_subcommands), f"not caught: {wrong}"
    right = Block(ROOT / "README.md", 0, "bash", "pip install -e . && fastdiff zoo --json  # a comment\n", None)
    assert [check_command(c, fastdiff_subcommands) for c in commands(right)] == [[], []]
