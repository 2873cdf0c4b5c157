"""Every external program the harness, its tests and testbed call is installed by scripts/debian-packages.txt,
or each call site makes sure it is there first: the function making the call looks it up with ``which`` before it
(a skipif decorator counts; so does a call, first, to a function of the module that looks it up, such as a
``_can_...()`` that returns the reason to skip), or the call goes through ``proc.run`` / ``proc.start_daemon``, whose
``proc.which`` names the Debian package from ``proc.PACKAGES``. A ``which`` somewhere else in the module guards
nothing: it used to excuse every call in the file, also calls in functions that never ran it.

Written after `modprobe` (Debian `kmod`) was called unguarded by a test: it passed only where kmod happened to be
installed, and failed on a fresh machine with ``FileNotFoundError``. The scan is static (the AST of every module), so
a new unguarded call fails this test on any machine, not only on one that lacks the package.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.proc import PACKAGES

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    *(ROOT / "harness").rglob("*.py"),
    *(ROOT / "tests").rglob("*.py"),
    *(ROOT / "benchmarks").rglob("*.py"),
    *(ROOT / "testbed").rglob("*.py"),
]
SOURCES.append(ROOT / "noxfile.py")

# Call names that take a command line as their first list/tuple argument, and the variadic helpers that take it as
# their string arguments (testbed's `_run("ip", "link", ...)`).
_ARGV_CALLS = re.compile(r"^(run|Popen|check_output|check_call|call|start_daemon|_spawn)$")
_VARIADIC_CALLS = re.compile(r"^(_run|_sh)$")
# Programs the project's own Python environment provides (pyproject.toml and nox install them), not Debian.
PYTHON_ENV_PROGRAMS = {"harness", "python", "pytest", "mypy", "ruff", "lint-imports"}
_PROGRAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _dotted(node: ast.Call) -> str:
    """The callee as written: ``proc.run``, ``subprocess.run``, ``_run``."""
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return _call_name(node)


def _program(node: ast.Call) -> str | None:
    """The program a call runs, when its command line is written out (a literal first element)."""
    if not node.args:
        return None
    name = _call_name(node)
    first: ast.expr | None = None
    if _VARIADIC_CALLS.match(name):
        first = node.args[0]
    elif _ARGV_CALLS.match(name):
        argv = next((a for a in node.args if isinstance(a, (ast.List, ast.Tuple)) and a.elts), None)
        first = argv.elts[0] if argv is not None else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        program = first.value
        if _PROGRAM.match(program) and "/" not in program:
            return program
    return None


Scope = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Call:
    program: str
    line: int
    callee: str  # as written: "proc.run", "subprocess.run", "_run"
    scope: Scope  # the innermost function the call is in (the module for a call at module level)


def _calls(tree: ast.Module) -> list[Call]:
    found: list[Call] = []

    def visit(scope: Scope) -> None:
        for node in _own_nodes(scope):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(node)
            elif isinstance(node, ast.Call) and (program := _program(node)) is not None:
                found.append(Call(program, node.lineno, _dotted(node), scope))

    visit(tree)
    return found


def _own_nodes(scope: Scope) -> Iterator[ast.AST]:
    """The nodes of ``scope`` itself: a function's decorators (a skipif) and body, the functions defined in it but
    not what is inside them (a ``which`` in a nested function guards no call outside it)."""
    todo: list[ast.AST] = [*scope.body]
    if not isinstance(scope, ast.Module):
        todo += scope.decorator_list
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))
        elif isinstance(node, ast.ClassDef):
            todo.extend(node.body)


def _looks_up(nodes: Iterable[ast.AST], program: str, before: int) -> bool:
    """Among ``nodes``, a ``which("program")`` (shutil.which, proc.which) on a line up to ``before``."""
    return any(
        isinstance(n, ast.Call)
        and _call_name(n) == "which"
        and n.args
        and isinstance(n.args[0], ast.Constant)
        and n.args[0].value == program
        and n.lineno <= before
        for n in nodes
    )


def _resolvers() -> set[str]:
    """The harness.proc functions that resolve their command's program with ``proc.which`` (``which(argv[0])``),
    whose MissingBinary names the Debian package from ``proc.PACKAGES``: read from proc.py, so they stay true."""
    tree = ast.parse((ROOT / "harness" / "proc.py").read_text())
    found = set()
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and any(
            isinstance(n, ast.Call) and _call_name(n) == "which" and n.args and ast.unparse(n.args[0]) == "argv[0]"
            for n in ast.walk(fn)
        ):
            found.add(f"proc.{fn.name}")
    return found


def _guard(call: Call, helpers: dict[str, ast.FunctionDef], resolvers: set[str]) -> str | None:
    """How this call site makes sure the program is there, or None: through a harness.proc function that resolves
    it and names its Debian package; a ``which`` of it in the same function, before the call (a skipif decorator
    counts); or a call, in that function and before, to a function of the module that looks it up itself."""
    if call.callee in resolvers and call.program in PACKAGES:
        return f"{call.callee} names Debian package {PACKAGES[call.program]!r}"
    own = list(_own_nodes(call.scope))
    if _looks_up(own, call.program, call.line):
        return "looked up in the same function"
    for node in own:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.lineno <= call.line:
            helper = helpers.get(node.func.id)
            if helper is not None and _looks_up(_own_nodes(helper), call.program, helper.end_lineno or 0):
                return f"looked up by {helper.name}(), called first in the same function"
    return None


def _helpers(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _unguarded(source: str) -> list[Call]:
    tree = ast.parse(source)
    helpers, resolvers = _helpers(tree), _resolvers()
    return [c for c in _calls(tree) if c.program not in PYTHON_ENV_PROGRAMS and _guard(c, helpers, resolvers) is None]


def _declared_packages() -> set[str]:
    text = (ROOT / "scripts" / "debian-packages.txt").read_text()
    return {line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()}


def _owner(path: str) -> str | None:
    """The Debian package that owns ``path`` (usrmerge: the file may be registered under /bin or /usr/bin)."""
    real = os.path.realpath(path)
    candidates = {path, real}
    for p in list(candidates):
        if p.startswith("/usr/"):
            candidates.add(p[len("/usr") :])
        else:
            candidates.add("/usr" + p)
    for candidate in sorted(candidates):
        out = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            return out.stdout.split(":")[0].split(",")[0].strip()
    return None


def _essential(package: str) -> bool:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Essential} ${Priority}", package], capture_output=True, text=True, check=False
    )
    return out.returncode == 0 and (out.stdout.startswith("yes") or "required" in out.stdout)


def test_the_scan_finds_the_programs_it_must() -> None:
    """The scanner itself can fail: it finds the calls it is there to check, including the one that broke CI."""
    tree = ast.parse('subprocess.run(["modprobe", "nfs"]); _run("ip", "link"); start_daemon("x", ["tgtd", "-f"])')
    assert {c.program for c in _calls(tree)} == {"modprobe", "ip", "tgtd"}


GUARDS = """
import shutil, subprocess, pytest
from harness import proc

def guarded():
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "nfs"])

def elsewhere():
    subprocess.run(["modprobe", "nfs"])  # the which() above is another function's

def too_late():
    subprocess.run(["modprobe", "nfs"])
    shutil.which("modprobe")

def in_a_nested_function():
    def look():
        return shutil.which("modprobe")
    subprocess.run(["modprobe", "nfs"])

@pytest.mark.skipif(shutil.which("modprobe") is None, reason="kmod")
def skipped_without_it():
    subprocess.run(["modprobe", "nfs"])

def _can_load():
    return shutil.which("modprobe") is not None

def by_helper():
    if _can_load():
        subprocess.run(["modprobe", "nfs"])

def through_proc():
    proc.run(["modprobe", "nfs"], timeout_s=5)

def through_proc_unknown_package():
    proc.run(["no-such-program"], timeout_s=5)
"""


def test_a_guard_counts_only_at_its_call_site() -> None:
    """A ``which`` anywhere in the module used to excuse every call in it: now only one in the calling function
    before the call (or a helper that function calls first, or harness.proc naming the package) does."""
    unguarded = {(c.scope.name if not isinstance(c.scope, ast.Module) else "", c.program) for c in _unguarded(GUARDS)}
    assert unguarded == {
        ("elsewhere", "modprobe"),
        ("too_late", "modprobe"),
        ("in_a_nested_function", "modprobe"),
        ("through_proc_unknown_package", "no-such-program"),
    }
    assert {"proc.run", "proc.start_daemon"} <= _resolvers()


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian/Ubuntu system: no dpkg-query")
def test_every_external_program_is_installed_or_looked_up_first() -> None:
    declared = _declared_packages()
    problems: list[str] = []
    for path in sorted(SOURCES):
        rel = path.relative_to(ROOT)
        by_program: dict[str, list[int]] = {}
        for call in _unguarded(path.read_text()):
            by_program.setdefault(call.program, []).append(call.line)
        for program, lines in sorted(by_program.items()):
            where = shutil.which(program)
            at = f"{rel}:{','.join(map(str, sorted(lines)))}"
            if where is None:
                problems.append(
                    f"{at}: calls {program!r}, which is not installed and not looked up with which() in the calling "
                    "function first"
                )
                continue
            package = _owner(where)
            if package is None:
                problems.append(f"{at}: calls {program!r} ({where}), which no Debian package owns")
            elif package not in declared and not _essential(package):
                problems.append(
                    f"{at}: calls {program!r} from Debian package {package!r}, which scripts/debian-packages.txt "
                    "does not list (add it, or look the program up with shutil.which in the calling function and "
                    "skip with the reason)"
                )
    assert not problems, "\n".join(problems)
