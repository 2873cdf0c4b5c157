"""Scenario overrides: ``harness run --set KEY.PATH=VALUE`` (or ``--override``) and ``harness nightly --override``
set what a file cannot name for its user (a node, a path) before it is validated. A bad setting is refused like a bad
file (exit 2, the file, the key path, what is allowed there, the setting it came from; nothing created, no
traceback), and a run that had any records them: it is a run of the file as modified, not as shipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import ScenarioError
from harness.report.html import render_html
from harness.results.store import load_result
from harness.scenario.loader import load_scenario
from tests.leftovers import ROOT
from tests.test_report import make_result

DEMO = str(ROOT / "scenarios" / "demo.yaml")
BASELINE = str(ROOT / "scenarios" / "ephemeral-baseline.yaml")


def test_a_problem_an_override_caused_names_it_and_what_is_allowed_there() -> None:
    with pytest.raises(ScenarioError) as e:
        load_scenario(Path(DEMO), ["storage.node=node-1", "storage.nod=node-2"], flag="--override")
    [problem] = e.value.problems
    # The line is the nearest key the file has (storage:), since the file says nothing of storage.nod.
    assert (problem.line, problem.key_path) == (9, "storage.nod")
    assert problem.message == (
        "unknown key; allowed here: backend, claim, image, node, path, volume (from --override storage.nod=node-2)"
    )
    with pytest.raises(ScenarioError) as e:
        load_scenario(Path(BASELINE), ["storage.path=/x"])
    # The keys of the storage the file names (its backend picks them): an emptyDir has no path.
    assert e.value.problems[0].message == "unknown key; allowed here: backend, size_limit (from --set storage.path=/x)"
    with pytest.raises(ScenarioError) as e:
        load_scenario(Path(DEMO), ["storage.node=5"])
    assert str(e.value.problems[0]).endswith(
        "storage.node: input should be a valid string, got 5 (from --set storage.node=5)"
    )


def test_the_last_setting_of_a_key_is_the_one_that_takes() -> None:
    scenario = load_scenario(Path(DEMO), ["storage.node=node-1", "storage.node=node-2", "storage.path=/mnt/a=b"])
    assert scenario.storage.model_dump(include={"node", "path"}) == {"node": "node-2", "path": "/mnt/a=b"}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--set", "storage.nod=x"], "storage.nod: unknown key; allowed here: backend, claim, image, node, path"),
        (["--override", "storage.node"], "storage.node: --set 'storage.node': use KEY.PATH=VALUE"),
        (["--set", "storage.claim.size=lots"], "storage.claim.size: 'lots' is not a size"),
        (["--set", "name.x=1"], "name: --set name.x: name is no mapping"),
    ],
)
def test_run_refuses_a_bad_setting_with_exit_2_before_anything_is_created(
    args: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    assert main(["run", DEMO, "--reports", str(reports), *args]) == 2
    err = capsys.readouterr().err
    assert f"{DEMO}" in err and said in err and "Traceback" not in err
    assert not reports.exists()


def test_nightly_refuses_a_setting_one_file_of_the_set_does_not_take(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    argv = ["nightly", "--results", str(results), "--set", f"{DEMO}=0,{BASELINE}=1"]
    assert main([*argv, "--override", "storage.path=/x"]) == 2
    err = capsys.readouterr().err
    assert f"{BASELINE}:9:1: storage.path: unknown key; allowed here: backend, size_limit (from --override" in err
    assert main([*argv, "--override", "storage.path"]) == 2
    assert "--override 'storage.path': use KEY.PATH=VALUE" in capsys.readouterr().err
    assert not results.exists()  # refused before the night's directory was made


def test_run_and_nightly_name_the_option_alike() -> None:
    for command in ("run", "nightly"):
        out = subprocess.run(
            [sys.executable, "-m", "harness.cli", command, "--help"], capture_output=True, text=True, check=True
        ).stdout
        assert "--override KEY.PATH=VALUE" in out, out


def test_a_run_with_overrides_records_them_and_its_report_says_so(public_tmp: Path, tmp_path: Path) -> None:
    """A fio-only file (a second of fio, no Prometheus) run on a directory it does not name."""
    scenario = tmp_path / "fio-only.yaml"
    scenario.write_text(
        "name: fio-override\nduration: 10m\nstorage: {backend: local}\n"
        "loads: {tsdb: null, fio: [{profile: wal-append, runtime: 1s, size: 8Mi}]}\n"
    )
    disk = public_tmp / "disk"
    disk.mkdir()
    reports, summary = tmp_path / "reports", tmp_path / "run.json"
    settings = [f"storage.path={disk}"]
    argv = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(scenario),
        "--reports",
        str(reports),
        "--json",
        str(summary),
    ]
    argv += ["--workdir", str(public_tmp), *(a for s in settings for a in ("--set", s))]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"scenario file {scenario} overridden: storage.path={disk}" in proc.stdout + proc.stderr
    [run_dir] = [p.parent for p in reports.glob("*/*/result.json")]
    result = load_result(run_dir)
    assert result.overrides == settings and result.scenario["storage"]["path"] == str(disk)
    assert result.fio[0].directory.startswith(str(disk))  # measured where the setting said
    assert json.loads(summary.read_text())["overrides"] == settings
    html = (run_dir / "report.html").read_text()
    assert "<b>overridden</b>:" in html and f"<code>storage.path={disk}</code>" in html


def test_a_report_of_the_file_as_written_says_nothing_of_overrides() -> None:
    assert "overridden" not in render_html(make_result())
