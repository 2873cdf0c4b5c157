"""README.md is the front door and cannot drift from the code: it stays short (the rest is the documentation site
under docs/), every relative link in it names a file that exists, every `harness SUBCOMMAND` it shows is one the
parser has, every `nox -s NAME` a session of noxfile.py, and its test command is the one CI runs (.ci/run). Every
command it shows runs as written, or, where it needs a cluster, your storage server or stored runs, or takes minutes,
as its own --help with its arguments parsed by the harness's parser (WAYS says which and why)."""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import docs_gen
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


# --- every command of the README, run as written or, where it cannot run here, as its --help ----------------------

RUN, HELP, LIST = "run as written", "its --help", "nox --list"

# How each command the README shows is exercised here (the first pattern that matches), and why where it is not run
# as written. Each one runs in a temporary directory holding a copy of scenarios/, with `harness`, `python` and
# `python3` being this checkout's harness and the interpreter running the tests. A command that matches no pattern
# fails test_every_readme_command_is_exercised: say here how to exercise it.
WAYS: tuple[tuple[str, str, str], ...] = (
    (r"cp ", RUN, ""),
    (r"harness validate ", RUN, ""),
    (r"harness cleanup .*--dry-run", RUN, "a dry run lists what it would remove and removes nothing"),
    (
        r"python -m harness\.docs_gen --write ",
        RUN,
        "into the temporary directory, which must then equal docs/reference",
    ),
    (r"python3 -m venv ", RUN, ""),
    (r"harness run .*--runtime kubernetes", HELP, "it needs a Kubernetes cluster"),
    (r"harness run ", HELP, "the edited file names your NFS server, and a run takes minutes"),
    (r"harness (doctor|values) ", HELP, "the doctor (values prints its findings) connects to your NFS server"),
    (
        r"harness nightly ",
        HELP,
        "it runs the whole nightly set, many minutes (tests/test_nightly.py runs a short night)",
    ),
    (
        r"harness compare ",
        HELP,
        "<a> and <b> are stored runs of the demo (tests/test_compare_real.py compares real runs)",
    ),
    (r"harness trend ", HELP, "it needs stored nights (tests/test_trend.py draws trends of real runs)"),
    (
        r"(\S*pip|python3? -m pip) install ",
        HELP,
        "it installs from PyPI: the network, and into the environment running these tests",
    ),
    (
        r"(python3 -m )?nox -s ",
        LIST,
        "a session builds its virtualenv from PyPI (minutes), and `tests` is this suite",
    ),
)
# What the README asks the reader to do by hand after a command (its comment says it): done here as it says.
NFS_SERVER, NFS_EXPORT = "172.17.73.37", "/vol/k8s-prometheus/prometheus_db"  # the field notes' server


def _name_your_server(workspace: Path) -> None:
    """`cp scenarios/nfs.yaml my-nfs.yaml   # then name your server and export in place of server: embedded`."""
    from ruamel.yaml import YAML

    yaml = YAML()
    path = workspace / "my-nfs.yaml"
    doc = yaml.load(path.read_text())
    storage = doc["storage"]
    storage.insert(list(storage).index("server") + 1, "export", NFS_EXPORT)
    storage["server"] = NFS_SERVER
    del storage["embedded"]
    with path.open("w") as f:
        yaml.dump(doc, f)


AFTER = {"cp scenarios/nfs.yaml my-nfs.yaml": _name_your_server}


def readme_commands() -> list[list[str]]:
    """The README's commands, block by block (each ``sh`` block, then the code spans that are commands): one entry
    per simple command (``a && b`` is two), continuation lines joined, comments dropped."""
    text = _text()
    blocks = [m.group(1) for m in re.finditer(r"^```sh\n(.*?)^```", text, re.S | re.M)]
    spans = [s for s in SPAN.findall(FENCE.sub("", text)) if re.match(r"(harness|nox|python3?|pip|cp) ", s)]
    out = []
    for block in [*blocks, "\n".join(spans)]:
        commands = []
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            commands += [" ".join(shlex.quote(w) for w in part) for part in _split_and(words) if part]
        out.append(commands)
    return out


def _split_and(words: list[str]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            parts.append([])
        else:
            parts[-1].append(word)
    return parts


def way(command: str) -> tuple[str, str]:
    for pattern, how, why in WAYS:
        if re.match(pattern, command):
            return how, why
    return "", ""


def test_every_readme_command_is_exercised() -> None:
    commands = [c for block in readme_commands() for c in block]
    assert len(commands) > 10, commands
    assert [c for c in commands if not way(c)[0]] == [], "say in WAYS how to exercise these"
    assert all(why for c in commands if way(c)[0] != RUN for why in [way(c)[1]]), "say why it is not run as written"


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A directory with a copy of scenarios/, and an environment whose `harness`, `python` and `python3` are this
    checkout's harness and this interpreter (whatever is first on the PATH of the machine)."""
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    bin_dir = tmp_path / ".readme-bin"
    bin_dir.mkdir()
    for name, program in (("harness", f'"{sys.executable}" -m harness.cli'), ("python", f'"{sys.executable}"')):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {program} "$@"\n')
        (bin_dir / name).chmod(0o755)
    (bin_dir / "python3").symlink_to(bin_dir / "python")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    return tmp_path, env


def _sh(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300
    )


def _help_form(argv: list[str]) -> list[str]:
    """The command's own --help: ``harness SUB --help``, ``... pip install --help``."""
    if argv[0] == "harness":
        return [*argv[:2], "--help"]
    return [*argv[: argv.index("install") + 1], "--help"]


@pytest.mark.parametrize("block", range(len(readme_commands())), ids=lambda i: f"block{i + 1}")
def test_the_readme_commands_work(block: int, workspace: tuple[Path, dict[str, str]]) -> None:
    """Each block's commands in order, in one directory, as the README shows them."""
    cwd, env = workspace
    for command in readme_commands()[block]:
        how, _ = way(command)
        argv = shlex.split(command)
        if how == RUN:
            done = _sh(command, cwd, env)
            assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout}{done.stderr}"
            if command in AFTER:
                AFTER[command](cwd)
            if "docs_gen --write" in command:
                target = cwd / argv[argv.index("--write") + 1]
                for name in docs_gen.PAGES:
                    assert (target / name).read_text() == (ROOT / "docs" / "reference" / name).read_text(), name
        elif how == HELP:
            if argv[0] == "harness":
                parser = build_parser()
                with contextlib.redirect_stderr(io.StringIO()) as err:
                    try:
                        parser.parse_args(argv[1:])
                    except SystemExit:
                        pytest.fail(f"{command}: the parser refuses it: {err.getvalue().strip()}")
            done = _sh(shlex.join(_help_form(argv)), cwd, env)
            assert done.returncode == 0 and "usage:" in done.stdout.lower(), f"{command}: {done.stdout}{done.stderr}"
        else:
            assert how == LIST, f"{command}: say in WAYS how to exercise it"
            nox = _nox()
            if nox is None:
                continue  # test_every_nox_session_shown_is_real holds the name to noxfile.py
            session = argv[argv.index("-s") + 1]
            listed = subprocess.run(
                [*nox, "--list", "-f", str(ROOT / "noxfile.py")],
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
            assert listed.returncode == 0 and re.search(rf"^\W*{re.escape(session)}\b", listed.stdout, re.M), (
                f"{command}: nox --list does not show the session\n{listed.stdout}{listed.stderr}"
            )


def _nox() -> list[str] | None:
    """nox as the README runs it (`python3 -m nox`), from the PATH's python3 or nox; None where neither has it."""
    for candidate in (["python3", "-m", "nox"], ["nox"]):
        if shutil.which(candidate[0]) is None:
            continue
        probe = subprocess.run([*candidate, "--version"], capture_output=True, text=True, check=False, timeout=60)
        if probe.returncode == 0:
            return candidate
    return None
