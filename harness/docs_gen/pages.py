"""The other generated pages: the command line (``cli.md``), the settings (``settings.md``), the result schema
(``results.md``) and the conformance table (``conformance.md``)."""

from __future__ import annotations

import argparse
import inspect
import re

from harness import cli, conformance, settings
from harness.docs_gen.markdown import banner, cell, md, note
from harness.results import model as results_model

# --- the command line ---------------------------------------------------------------------------------------------


def _option_row(action: argparse.Action) -> str:
    names = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}`"
    if action.nargs == 0:
        value = "flag"
    elif action.choices is not None:
        value = "one of " + ", ".join(f"`{c}`" for c in action.choices)
    else:
        value = f"`{action.metavar or action.dest.upper()}`"
    if isinstance(action, argparse._AppendAction):
        value += ", repeatable"
    if action.nargs in ("+", "*"):
        value += ", one or more" if action.nargs == "+" else ", any number"
    if not action.option_strings:
        default = "required" if action.nargs != "*" else ""
    elif action.default in (None, False, [], argparse.SUPPRESS) or action.nargs == 0:
        default = ""
    else:
        default = f"`{action.default}`"
    return f"| {names} | {value} | {default} | {cell(action.help or '')} |"


def _options(parser: argparse.ArgumentParser) -> str:
    rows = [
        _option_row(a)
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction | argparse._VersionAction)
    ]
    if not rows:
        return ""
    return "\n".join(["| argument | value | default | description |", "| --- | --- | --- | --- |", *rows]) + "\n"


def cli_page() -> str:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    parts = [
        banner("the argument parser of harness/cli.py"),
        "# Command line\n",
        note("the argument parser of `harness/cli.py` (`harness.cli.build_parser`)"),
        f"{md(parser.description or '')} Every command takes `-h` for its help; `harness --version` prints the "
        "version.\n",
        "Exit codes (all commands): **0** passed; **1** a finding (a check failed, a regression, a blocker); **2** "
        "bad input or a broken environment (the message says what to fix); **130** interrupted.\n",
        "## Options of `harness`\n",
        _options(parser),
        "| command | what it does |\n| --- | --- |",
        *[f"| [`harness {name}`](#harness-{name}) | {cell(helps.get(name, ''))} |" for name in sub.choices],
        "",
    ]
    for name, command in sub.choices.items():
        parts.append(f"## `harness {name}`\n")
        parts.append(f"{cell(helps.get(name, ''))}.\n")
        if command.description:
            parts.append(f"{cell(command.description)}\n")
        parts.append(_options(command))
    return "\n".join(parts)


# --- settings, results, conformance -------------------------------------------------------------------------------


def settings_page() -> str:
    return "\n".join(
        [
            banner("harness/settings.py"),
            "# Environment settings\n",
            note("`harness.settings.VARIABLES` (`harness.settings.markdown_table`)"),
            "The settings of the harness host and its cluster that come from the environment, not from the "
            "scenario. A variable that is set but means nothing is refused before anything runs (exit 2).\n",
            settings.markdown_table() + "\n",
        ]
    )


def results_page() -> str:
    doc = inspect.cleandoc(results_model.__doc__ or "")
    history = doc.split("Format history:", 1)[1] if "Format history:" in doc else ""
    rows = []
    for line in inspect.cleandoc(history).splitlines():
        m = re.match(r"^(\d+)\s+(.*)$", line)
        if m:
            rows.append([m.group(1), m.group(2)])
        elif rows:
            rows[-1][1] += " " + line.strip()
    table = ["| version | what changed |", "| ---: | --- |", *[f"| {v} | {cell(t)} |" for v, t in rows]]
    return "\n".join(
        [
            banner("harness/results/model.py"),
            "# Result schema\n",
            note("`harness/results/model.py` (`RESULT_SCHEMA_VERSION` and its format history)"),
            f"A run's `result.json` carries `schema_version`: now **{results_model.RESULT_SCHEMA_VERSION}**. Older "
            "files are migrated when read (`harness.results.migrate`), so any old run can be re-rendered and "
            "compared; a file from a newer harness is refused with a message saying so.\n",
            "## Format history\n",
            "\n".join(table) + "\n",
        ]
    )


def _expect(expect: conformance.Expect | None, why: str) -> str:
    if expect is None:
        return f"not run: {cell(why)}" if why else "not run"
    checks = ", ".join(f"{k} {v}" for k, v in expect.checks.items())
    return f"exit {expect.exit_code} ({checks})"


def conformance_page() -> str:
    rows = []
    for row in conformance.CONFORMANCE:
        local = _expect(row.local, row.why if row.local is None else "")
        kube = _expect(row.kubernetes, row.why_not_kubernetes)
        if row.testbed and row.kubernetes is not None:
            kube += f", with {row.testbed} started on the local cluster ({conformance.TESTBED_TESTS[row.testbed]})"
        why = row.why if row.local is not None else ""
        if row.why_kubernetes:
            why = f"{why}; on kubernetes: {row.why_kubernetes}" if why else f"on kubernetes: {row.why_kubernetes}"
        nightly = "yes" if row.nightly and row.local is not None else ""
        rows.append(f"| `{row.file}` | {nightly} | {local} | {kube} | {cell(why)} |")
    night = conformance.nightly_set()
    return "\n".join(
        [
            banner("harness/conformance.py"),
            "# Conformance and the nightly set\n",
            note("`harness.conformance.CONFORMANCE` and `harness.conformance.nightly_set()`"),
            "Every file in `scenarios/`, the runtimes it runs on as shipped and how it must end there: its exit code "
            "and the status of each check it stores. `tests/test_conformance.py` runs every local row through "
            "`harness nightly`; `tests/k8s/test_conformance_cluster.py` runs the kubernetes rows on the local "
            "cluster.\n",
            "## The nightly set\n",
            "What `harness nightly` runs without `--set`, each file with the exit code it must end with:\n",
            "| scenario | exit code |\n| --- | ---: |",
            *[f"| `{file}` | {code} |" for file, code in night.items()],
            "",
            "## Every shipped scenario\n",
            "| scenario | nightly | local runtime | kubernetes runtime (local cluster) | why |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
