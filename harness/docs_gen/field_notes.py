"""``_field-notes.md``: the commands and verdicts of *The field notes, replayed* (``docs/field-notes.md``), one
section per step of the story, which the page includes (``--8<-- "reference/_field-notes.md:SECTION"``).

A step replays what the field notes hit with shipped scenarios: a file run as shipped, whose verdict on each runtime
is its row of ``harness.conformance`` (so the page says what the conformance tests hold), or a file with ``--set``
settings that walk into the trap itself (``Trap``), whose verdict is held by the test this module names for it
(``tests/test_docs_field_notes.py`` runs the local ones; the kubernetes ones are tests of ``tests/k8s/``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from harness import conformance
from harness.docs_gen.markdown import banner, cell

# What the commands name for a cluster: the README's and getting started's context, node and directory.
CONTEXT, NODE, NODE_PATH = "lab", "node-1", "/mnt/disks/prom"


@dataclass(frozen=True)
class Shipped:
    """A shipped file as it is: its command and verdict on each runtime its conformance row has an outcome for
    (of ``runtimes``); ``note`` says what it is where the row says no why."""

    file: str
    note: str = ""
    runtimes: tuple[str, ...] = ("local", "kubernetes")


@dataclass(frozen=True)
class Trap:
    """A shipped file with settings that walk into the trap; how the run ends, and the test that holds it."""

    file: str
    sets: tuple[str, ...]
    runtime: str  # local | kubernetes
    exit_code: int
    says: str  # words of what the run prints (the test looks for them)
    held_by: str  # the test that runs it
    root: bool = True  # local runtime: the embedded servers need root

    def argv(self) -> list[str]:
        argv = ["harness", "run", self.file]
        if self.runtime == "kubernetes":
            argv += ["--runtime", "kubernetes", "--context", CONTEXT]
        for setting in self.sets:
            argv += ["--set", setting]
        return argv


@dataclass(frozen=True)
class Step:
    section: str  # the section of the generated file docs/field-notes.md includes
    title: str  # what the field notes hit, in a few words
    replays: tuple[Shipped | Trap, ...]


_VERDICT = {0: "PASSED", 1: "FAILED", 2: "ERROR"}

STEPS: tuple[Step, ...] = (
    Step("emptydir", "The emptyDir loses the history", (Shipped("scenarios/ephemeral-baseline.yaml"),)),
    Step(
        "local-pv",
        "A local PV keeps it, on its node only",
        (
            Shipped("scenarios/local-pv.yaml", "an ext4 image, loop-mounted: SIGKILL every 20 s and a reschedule"),
            Shipped("scenarios/demo.yaml", runtimes=("kubernetes",)),
        ),
    ),
    Step(
        "nfs",
        "NFS and the uid trap",
        (
            Shipped(
                "scenarios/nfs.yaml",
                "the export owned 1000:2000, the chart's uid:gid: a pod restart, SIGKILLs and a reschedule",
            ),
            Trap(
                "scenarios/nfs.yaml",
                ('storage.embedded.owner="472:472"',),
                "local",
                2,
                "Permission denied: Prometheus (uid 1000) cannot write",
                "tests/test_docs_field_notes.py",
            ),
            Shipped(
                "scenarios/nfs-second-writer.yaml",
                "Grafana's chown: Prometheus refuses writes while its files are 472's, and loses none it acknowledged",
            ),
        ),
    ),
    Step(
        "redeploy",
        "The claim Pending after a redeploy",
        (
            Trap(
                "scenarios/demo.yaml",
                (f"storage.node={NODE}", f"storage.path={NODE_PATH}", "faults=[{action: redeploy, at: 10s}]"),
                "kubernetes",
                1,
                "is Released and still carries claimRef",
                "tests/k8s/test_runtime_kubernetes.py::test_redeploy_on_a_retained_pv_hits_the_stale_claim_ref",
                root=False,
            ),
        ),
    ),
    Step(
        "iscsi",
        "iSCSI and the partitioned LUN",
        (
            Shipped("scenarios/iscsi.yaml", "a blank LUN, formatted whole-disk as the kubelet does"),
            Trap(
                "scenarios/iscsi.yaml",
                ("storage.embedded.layout=partitioned",),
                "local",
                2,
                "The LUN is partitioned (GPT); Kubernetes mounts the whole disk and will fail",
                "tests/test_docs_field_notes.py",
            ),
        ),
    ),
)


def row(file: str) -> conformance.Row:
    """The conformance row of a shipped file (a KeyError names a file that has none)."""
    rows = {r.file: r for r in conformance.CONFORMANCE}
    if file not in rows:
        raise KeyError(f"{file} has no row in harness/conformance.py")
    return rows[file]


def _command(argv: list[str]) -> str:
    return "`" + shlex.join(argv) + "`"


def _checks(expect: conformance.Expect) -> str:
    return ", ".join(f"{check} {status}" for check, status in expect.checks.items())


@dataclass(frozen=True)
class Line:
    """One command of a step with how it ends."""

    command: str
    runtime: str
    code: int
    verdict: str
    why: str


def _shipped(replay: Shipped) -> list[Line]:
    r = row(replay.file)
    out = []
    if r.local is not None and "local" in replay.runtimes:
        code = r.local.exit_code
        verdict = f"**exit {code}**, {_VERDICT[code]}: {_checks(r.local)}"
        out.append(Line(_command(["harness", "run", r.file]), "local", code, verdict, cell(r.why or replay.note)))
    if r.kubernetes is not None and "kubernetes" in replay.runtimes:
        argv = ["harness", "run", r.file, "--runtime", "kubernetes", "--context", CONTEXT]
        for setting in r.pv.overrides(NODE, NODE_PATH) if r.pv else ():
            argv += ["--set", setting]
        code = r.kubernetes.exit_code
        verdict = f"**exit {code}**, {_VERDICT[code]}: {_checks(r.kubernetes)}"
        out.append(Line(_command(argv), "kubernetes", code, verdict, cell(r.why_kubernetes or r.why)))
    return out


def _trap(trap: Trap) -> Line:
    runtime = trap.runtime + (" (root)" if trap.root and trap.runtime == "local" else "")
    verdict = f'**exit {trap.exit_code}**, {_VERDICT[trap.exit_code]}: "{cell(trap.says)}"'
    return Line(_command(trap.argv()), runtime, trap.exit_code, verdict, f"the trap itself; held by `{trap.held_by}`")


def lines(step: Step) -> list[Line]:
    return [line for r in step.replays for line in (_shipped(r) if isinstance(r, Shipped) else [_trap(r)])]


def field_notes_page() -> str:
    parts = [
        banner("harness/docs_gen/field_notes.py and harness/conformance.py"),
        "Sections of docs/field-notes.md, which includes each (pymdownx.snippets); not a page of its own.\n",
    ]
    for step in STEPS:
        table = [f"| {x.command} | {x.runtime} | {x.verdict} | {x.why} |" for x in lines(step)]
        parts += [
            f"<!-- --8<-- [start:{step.section}] -->",
            "| command | runtime | verdict | what it shows |\n| --- | --- | --- | --- |",
            *table,
            "",
            "*Generated from `harness/conformance.py`, whose rows the conformance tests hold, and "
            "`harness/docs_gen/field_notes.py`, each trap held by the test it names.*",
            f"<!-- --8<-- [end:{step.section}] -->",
            "",
        ]
    summary = ["| step | scenario | runtime | exit code |", "| --- | --- | --- | ---: |"]
    for n, step in enumerate(STEPS, 1):
        for replay in step.replays:
            what = f"`{replay.file}`" + (" with `--set`: the trap" if isinstance(replay, Trap) else "")
            for x in _shipped(replay) if isinstance(replay, Shipped) else [_trap(replay)]:
                summary.append(f"| {n}. [{step.title}](#{step.section}) | {what} | {x.runtime} | {x.code} |")
    parts += ["<!-- --8<-- [start:summary] -->", *summary, "<!-- --8<-- [end:summary] -->", ""]
    return "\n".join(parts)
