"""The CI examples of docs/operations/ci.md are ones a user can copy: each is valid YAML of its CI's shape, every
``harness`` command in them parses with the harness's own argument parser (subcommand, options, choices; the value
of ``--compare-args`` with ``harness compare``'s), and each keeps the results between nights, also after a night that
failed, and publishes tonight's JUnit."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from harness.cli import build_parser

PAGE = Path(__file__).resolve().parent.parent / "docs" / "operations" / "ci.md"
# A harness command where a shell command starts: a line, or after &&, ||, ; or $( (the venv's bin/harness too).
HARNESS = re.compile(r"(?:^|&&|\|\||;|\$\()\s*((?:\S*/)?harness\s[^;&|)\n]*)", re.M)


def examples() -> dict[str, Any]:
    """The page's YAML blocks by CI: GitHub's workflow has ``jobs``, GitLab's file a job with a ``script``."""
    found: dict[str, Any] = {}
    for block in re.findall(r"^```yaml\n(.*?)^```", PAGE.read_text(), re.S | re.M):
        doc = YAML(typ="safe", pure=True).load(block)
        if "jobs" in doc:
            found["github"] = doc
        elif any(isinstance(job, dict) and "script" in job for job in doc.values()):
            found["gitlab"] = doc
    return found


def shell(ci: str, doc: dict[str, Any]) -> list[str]:
    """Every shell script of the example, each a string (GitHub's ``run:``, GitLab's script sections' lines)."""
    if ci == "github":
        return [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]
    return [
        line
        for job in doc.values()
        if isinstance(job, dict)
        for section in ("before_script", "script", "after_script")
        for line in job.get(section, [])
    ]


def harness_commands(script: str) -> list[list[str]]:
    script = script.replace("\\\n", " ")  # a continued line is one command
    return [shlex.split(m.group(1), comments=True) for m in HARNESS.finditer(script)]


def parses(parser: argparse.ArgumentParser, argv: list[str]) -> str:
    """'' when ``parser`` takes ``argv``, else what argparse said."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parser.parse_args(argv)
    except SystemExit:
        return err.getvalue().strip().splitlines()[-1]
    return ""


def test_the_page_has_both_examples() -> None:
    assert set(examples()) == {"github", "gitlab"}


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_every_harness_command_is_one_the_parser_takes(ci: str) -> None:
    commands = [c for script in shell(ci, examples()[ci]) for c in harness_commands(script)]
    assert any(c[1] == "nightly" for c in commands), f"the {ci} example runs no harness nightly"
    for argv in commands:
        assert parses(build_parser(), argv[1:]) == "", shlex.join(argv)
        for arg in argv:
            if arg.startswith("--compare-args="):
                compare = ["compare", *shlex.split(arg.split("=", 1)[1]), "base", "new"]
                assert parses(build_parser(), compare) == "", f"harness compare does not take {arg}"


def test_the_check_finds_an_option_the_parser_lacks() -> None:
    [argv] = harness_commands("touch x && .venv/bin/harness nightly --results r --tonight")
    assert argv[0] == ".venv/bin/harness"
    assert "unrecognized arguments: --tonight" in parses(build_parser(), argv[1:])


def test_github_keeps_the_results_after_a_failed_night_and_publishes_junit() -> None:
    steps = next(iter(examples()["github"]["jobs"].values()))["steps"]
    uses = {step.get("uses", "").split("@")[0]: step for step in steps}
    assert "actions/cache" not in uses, "actions/cache saves only after a job that succeeded"
    restore, save = uses["actions/cache/restore"], uses["actions/cache/save"]
    assert save.get("if") == "always()" and save["with"]["path"] == restore["with"]["path"] == "nightly-results"
    assert restore["with"]["restore-keys"] and save["with"]["key"].startswith(restore["with"]["restore-keys"])
    junit = [s for s in steps if "junit" in s.get("uses", "")]
    assert junit and junit[0]["with"]["report_paths"] == "tonight/night/nightly.xml" and junit[0]["if"] == "always()"


def test_gitlab_keeps_the_results_after_a_failed_night_and_publishes_junit() -> None:
    job = next(job for job in examples()["gitlab"].values() if isinstance(job, dict) and "script" in job)
    assert job["cache"]["when"] == "always" and job["cache"]["paths"] == ["nightly-results/"]
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == "tonight/night/nightly.xml"
