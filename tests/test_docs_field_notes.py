"""*The field notes, replayed* (docs/field-notes.md) says what the harness does: each step's section is on the page,
each scenario it names is shipped with a conformance row (whose verdicts the page's tables are generated from), each
trap's ``--set`` settings are ones the scenario takes, and the traps on the local runtime end as the page says when
run as it writes them (the kubernetes one is held by its test in tests/k8s/, named on the page)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.docs_gen import field_notes
from harness.docs_gen.field_notes import STEPS, Shipped, Trap
from harness.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "field-notes.md"
TRAPS = [r for step in STEPS for r in step.replays if isinstance(r, Trap)]
_SERVERS = {"nfs": "ganesha.nfsd", "iscsi": "tgtd"}  # the embedded server a trap's storage starts


def test_the_page_includes_every_step_under_its_heading() -> None:
    text = PAGE.read_text()
    for n, step in enumerate(STEPS, 1):
        assert f'--8<-- "reference/_field-notes.md:{step.section}"' in text, step.section
        assert re.search(rf"^## {n}\. {re.escape(step.title)} \{{#{step.section}\}}$", text, re.M), step.title
    assert '--8<-- "reference/_field-notes.md:summary"' in text


def test_every_scenario_a_step_names_is_shipped_with_a_conformance_row() -> None:
    for step in STEPS:
        for replay in step.replays:
            assert (ROOT / replay.file).is_file(), replay.file
            field_notes.row(replay.file)  # a KeyError names a file without a row
            if isinstance(replay, Shipped):
                assert field_notes.lines(step), f"{replay.file}: no outcome on the runtimes the step shows"


@pytest.mark.parametrize("trap", TRAPS, ids=lambda t: f"{Path(t.file).stem}-{t.runtime}")
def test_a_traps_settings_are_ones_its_scenario_takes(trap: Trap) -> None:
    load_scenario(ROOT / trap.file, trap.sets)
    assert trap.held_by.split("::")[0] and (ROOT / trap.held_by.split("::")[0]).is_file(), trap.held_by


@pytest.mark.root(reason="the embedded NFS-Ganesha and tgt, and the export's chown, need root")
@pytest.mark.parametrize(
    "trap",
    [t for t in TRAPS if t.runtime == "local"],
    ids=lambda t: Path(t.file).stem,
)
def test_a_local_trap_ends_as_the_page_says(trap: Trap, tmp_path: Path, public_tmp: Path) -> None:
    """Run as the page writes it (``harness`` is this checkout's, the run's files go to temporary directories); the
    doctor stops it before Prometheus starts, so it takes seconds."""
    scenario = load_scenario(ROOT / trap.file)
    server = _SERVERS.get(scenario.storage.backend)
    if server and shutil.which(server) is None:
        pytest.skip(f"{server} is not installed (scripts/debian-packages.txt)")
    argv = trap.argv()
    assert shlex.join(argv) in (ROOT / "docs" / "reference" / "_field-notes.md").read_text()
    where = ["--reports", str(tmp_path / "reports"), "--workdir", str(public_tmp)]
    run = subprocess.run(
        [sys.executable, "-m", "harness.cli", *argv[1:], *where],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    out = run.stdout + run.stderr
    assert run.returncode == trap.exit_code, out
    assert trap.says in out, out
    assert "Traceback" not in out
