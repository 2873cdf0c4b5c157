"""README.md is the front door and cannot drift from the code: it stays short (the rest is the documentation site
under docs/), every relative link in it names a file that exists, every `harness SUBCOMMAND` it shows is one the
parser has, every `nox -s NAME` a session of noxfile.py, and its test command is the one CI runs (.ci/run)."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from harness.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 200
TEST_COMMAND = "python3 -m nox -s tests"

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
SUBCOMMAND = re.compile(r"(?:^|&&\s*|\$\(\s*)harness ([a-z][a-z-]*)", re.M)  # a command, not prose about it
SESSION = re.compile(r"\bnox -s ([A-Za-z0-9_*-]+)")


def _text() -> str:
    return README.read_text()


def _code(text: str) -> list[str]:
    """What the README shows as code: its fenced blocks, then its code spans outside them."""
    blocks = FENCE.findall(text)
    return [*blocks, *SPAN.findall(FENCE.sub("", text))]


def _commands(text: str) -> list[str]:
    """The shell the README shows: its ``sh`` blocks, then its code spans outside any block."""
    blocks = [m.group(1) for m in re.finditer(r"^```sh\n(.*?)^```", text, re.S | re.M)]
    return [*blocks, *SPAN.findall(FENCE.sub("", text))]


def subcommands() -> set[str]:
    parser = build_parser()
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(found) == 1, "harness.cli.build_parser() should have one set of subcommands"
    return set(found[0].choices)


def sessions() -> set[str]:
    """The session names noxfile.py registers: each ``@nox.session``'s ``name=``, else its function's name."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    names: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            if ast.unparse(target) != "nox.session":
                continue
            name = node.name
            if isinstance(deco, ast.Call):
                for kw in deco.keywords:
                    if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                        name = str(kw.value.value)
            names.add(name)
    return names


def test_the_readme_is_short() -> None:
    lines = len(_text().splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines (at most {MAX_LINES}): move the detail into docs/"


def test_every_relative_link_names_an_existing_file() -> None:
    targets = [t for t in LINK.findall(_text()) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert targets, "README.md should link into the documentation site"
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert missing == [], f"README.md links to files that do not exist: {missing}"


def test_the_next_steps_link_into_the_docs() -> None:
    docs = {t.split("#", 1)[0] for t in LINK.findall(_text()) if t.startswith("docs/")}
    for page in ("docs/concepts/kubernetes.md", "docs/concepts/storage.md", "docs/operations/nightly.md"):
        assert page in docs, f"README.md's next steps should link {page}"


def test_every_harness_subcommand_shown_is_real() -> None:
    known = subcommands()
    shown = {m for code in _commands(_text()) for m in SUBCOMMAND.findall(code)}
    assert shown, "README.md should show some harness commands"
    assert shown - known == set(), f"not subcommands of harness (it has {sorted(known)})"


def test_every_nox_session_shown_is_real() -> None:
    known = sessions()
    assert {"demo", "tests", "lint", "docs"} <= known, known
    shown = {m for code in _code(_text()) for m in SESSION.findall(code)}
    assert {"demo", "tests"} <= shown
    unknown = {s for s in shown if not any(re.fullmatch(s.replace("*", ".*"), k) for k in known)}
    assert unknown == set(), f"not sessions of noxfile.py (it has {sorted(known)})"


def test_the_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^{re.escape(TEST_COMMAND)}\b", ci, re.M), f".ci/run no longer runs `{TEST_COMMAND}`"
    line = f"python3 -m pip install nox && {TEST_COMMAND}    # the test suite (real prometheus, fio, ...)"
    assert line in _text().splitlines(), f"README.md should show the test command as CI runs it: {line}"
    assert "python3 -m pip install nox && python3 -m nox -s demo" in _text()
