"""Every external program the harness, its tests and testbed call is installed by scripts/debian-packages.txt,
or the calling module looks it up with ``shutil.which`` first (and skips or errors naming the package).

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
from pathlib import Path

import pytest

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


def _programs(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = _call_name(node)
        if _VARIADIC_CALLS.match(name):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
            continue
        if not _ARGV_CALLS.match(name):
            continue
        for arg in node.args:
            if isinstance(arg, (ast.List, ast.Tuple)) and arg.elts:
                first = arg.elts[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value)
                break
    return {p for p in found if _PROGRAM.match(p) and "/" not in p}


def _guarded(source: str, program: str) -> bool:
    """The module looks the program up itself before calling it (shutil.which / proc.which / a skip helper)."""
    return re.search(rf"""which\(\s*["']{re.escape(program)}["']""", source) is not None


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
    assert _programs(tree) == {"modprobe", "ip", "tgtd"}
    assert not _guarded('subprocess.run(["modprobe", "nfs"])', "modprobe")
    assert _guarded('if shutil.which("modprobe"):\n    subprocess.run(["modprobe"])', "modprobe")


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian/Ubuntu system: no dpkg-query")
def test_every_external_program_is_installed_or_looked_up_first() -> None:
    declared = _declared_packages()
    problems: list[str] = []
    for path in sorted(SOURCES):
        source = path.read_text()
        for program in sorted(_programs(ast.parse(source, filename=str(path)))):
            if program in PYTHON_ENV_PROGRAMS or _guarded(source, program):
                continue
            where = shutil.which(program)
            rel = path.relative_to(ROOT)
            if where is None:
                problems.append(f"{rel}: calls {program!r}, which is not installed and not looked up with which()")
                continue
            package = _owner(where)
            if package is None:
                problems.append(f"{rel}: calls {program!r} ({where}), which no Debian package owns")
            elif package not in declared and not _essential(package):
                problems.append(
                    f"{rel}: calls {program!r} from Debian package {package!r}, which scripts/debian-packages.txt "
                    "does not list (add it, or look the program up with shutil.which and skip with the reason)"
                )
    assert not problems, "\n".join(problems)
