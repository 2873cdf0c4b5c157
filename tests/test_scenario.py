"""Scenario files: every shipped one validates; bad ones give every problem with file:line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.scenario.loader import load_scenario
from harness.scenario.model import EphemeralStorage, LocalStorage, NfsStorage, json_schema
from harness.scenario.units import parse_duration_s, parse_size_bytes
from tests.cli import harness_cli

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenarios_validate(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem


def test_units_are_parsed_into_named_fields(tmp_path: Path) -> None:
    s = load_scenario(
        write(
            tmp_path,
            "name: u\nduration: 2m\nstorage: {backend: local, image: {size: 512Mi}}\n"
            "faults: [{action: sigkill, every: 30s, count: 2}]\n",
        )
    )
    assert s.duration_s == 120.0
    assert isinstance(s.storage, LocalStorage)
    assert s.storage.image is not None and s.storage.image.size_bytes == 512 * 1024**2
    assert s.faults[0].every_s == 30.0


def test_defaults_follow_the_field_notes(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, "name: d\nduration: 10s\nstorage: {backend: nfs, server: h, export: /e}\n"))
    assert isinstance(s.storage, NfsStorage)
    assert s.storage.claim.storage_class == ""  # static NFS PVs have no class
    sc = s.prometheus.security_context
    assert (sc.run_as_user, sc.run_as_group, sc.fs_group) == (1000, 2000, 2000)  # kube-prometheus-stack


def test_every_problem_is_reported_with_line_and_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: bad\n"  # 1
        "duration: 60\n"  # 2  no unit
        "storage:\n"  # 3
        "  backend: local\n"  # 4
        "  pth: /tmp/x\n"  # 5  unknown key
        "loads:\n"  # 6
        "  tsdb:\n"  # 7
        "    series: lots\n"  # 8  wrong type
        "    interval: 5 parsecs\n"  # 9  bad unit
        "faults:\n"  # 10
        "  - action: explode\n"  # 11 not allowed
        "    at: 10s\n",
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    problems = {(p.line, p.key_path): p.message for p in info.value.problems}
    assert set(problems) == {
        (2, "duration"),
        (5, "storage.pth"),
        (8, "loads.tsdb.series"),
        (9, "loads.tsdb.interval"),
        (11, "faults[0].action"),
    }
    assert "needs a unit" in problems[(2, "duration")]
    assert "unknown key" in problems[(5, "storage.pth")]
    assert "parsecs" in problems[(9, "loads.tsdb.interval")] and "allowed units" in problems[(9, "loads.tsdb.interval")]
    assert "sigkill" in problems[(11, "faults[0].action")]
    assert all(p.file == str(path) for p in info.value.problems)


def test_missing_keys_point_at_the_parent(tmp_path: Path) -> None:
    path = write(tmp_path, "name: m\nduration: 5s\nstorage:\n  backend: nfs\n  server: h\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    [problem] = info.value.problems
    assert problem.key_path == "storage.export"
    assert problem.line == 3
    assert "missing" in problem.message


def test_unknown_backend_lists_the_allowed_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "name: m\nduration: 5s\nstorage:\n  backend: ceph\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    [problem] = info.value.problems
    assert problem.line == 4 and problem.key_path == "storage.backend"
    assert "local" in problem.message and "ephemeral" in problem.message


def test_fault_after_the_end_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path, "name: f\nduration: 10s\nstorage: {backend: ephemeral}\nfaults: [{action: sigkill, at: 10s}]\n"
    )
    with pytest.raises(ScenarioError, match="not before the end"):
        load_scenario(path)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nstorage: [unclosed\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.problems[0].line is not None
    assert "invalid YAML" in info.value.problems[0].message


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nname: y\nduration: 1s\nstorage: {backend: ephemeral}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.problems[0].line == 2


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90.0), ("5m", 300.0), ("1.5h", 5400.0), ("250ms", 0.25), (0, 0.0)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize(("text", "size"), [("2Gi", 2 * 1024**3), ("200G", 200 * 10**9), ("512Mi", 512 * 1024**2)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size_bytes(text) == size


@pytest.mark.parametrize("bad", ["10 GB", "fast", "12", True, "1.2.3Gi"])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size_bytes(bad)


def test_json_schema_uses_the_keys_people_write() -> None:
    schema = json_schema()
    text = json.dumps(schema)
    assert '"duration"' in text and '"duration_s"' not in text
    assert schema["additionalProperties"] is False


def test_dump_roundtrips(tmp_path: Path) -> None:
    s = load_scenario(SCENARIOS[0])
    dumped = s.model_dump(mode="json", by_alias=True)
    again = type(s).model_validate(dumped)
    assert again == s


def test_ephemeral_is_a_backend(tmp_path: Path) -> None:
    s = load_scenario(ROOT / "scenarios" / "ephemeral-baseline.yaml")
    assert isinstance(s.storage, EphemeralStorage)


def test_cli_validate_bad_file_exits_2_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "name: bad\nduration: 60\nstorage: {backend: local, pth: x}\n")
    proc = harness_cli("validate", str(path)).expect(2)
    assert "Traceback" not in proc.stderr
    assert f"{path}:2:1: duration:" in proc.stderr
    assert f"{path}:3:" in proc.stderr and "storage.pth" in proc.stderr


def test_cli_run_bad_file_exits_2_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "name: bad\nduration: 10s\nstorage: {backend: local}\nloads: {tsdb: {series: -1}}\n")
    proc = harness_cli("run", str(path), "--reports", str(tmp_path / "reports")).expect(2)
    assert "Traceback" not in proc.stderr
    assert "loads.tsdb.series" in proc.stderr
    assert not (tmp_path / "reports").exists()  # nothing is created for bad input


def test_cli_validate_good_files() -> None:
    harness_cli("validate", *map(str, SCENARIOS)).expect(0)


def test_cli_schema(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    harness_cli("schema", "-o", str(out)).expect(0)
    assert json.loads(out.read_text())["title"]


def test_shipped_json_schema_is_current() -> None:
    shipped = json.loads((ROOT / "scenarios" / "scenario.schema.json").read_text())
    assert shipped == json.loads(json.dumps(json_schema())), "run: harness schema -o scenarios/scenario.schema.json"


def test_an_embedded_iscsi_target_is_asked_for_by_its_portal(tmp_path: Path) -> None:
    head = "name: e\nduration: 10s\nstorage:\n  backend: iscsi\n  iqn: iqn.2020-02.com:wsg\n"
    s = load_scenario(write(tmp_path, head + "  target_portal: embedded\n  lun: 1\n"))
    assert s.storage.embedded_lun is not None and s.storage.embedded_lun.layout == "blank"  # type: ignore[union-attr]
    for tail, says in (
        ("  target_portal: 10.0.0.1:3260\n  lun: 1\n  embedded: {layout: gpt}\n", "storage.embedded.layout"),
        ("  target_portal: 10.0.0.1:3260\n  lun: 1\n  embedded: {layout: blank}\n", "describes the LUN of"),
        ("  target_portal: embedded\n", "keeps LUN 0 for its controller"),
    ):
        with pytest.raises(ScenarioError) as info:
            load_scenario(write(tmp_path, head + tail))
        problems = [str(p) for p in info.value.problems]
        assert says in "\n".join(problems), problems
        assert all(p.startswith(str(tmp_path / "s.yaml") + ":") for p in problems)


def test_the_data_path_client_is_auto_kernel_or_user_space(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, "name: c\nduration: 5s\nstorage: {backend: nfs, server: embedded}\n"))
    assert s.storage.client == "auto"  # type: ignore[union-attr]
    with pytest.raises(ScenarioError) as info:
        load_scenario(
            write(tmp_path, "name: c\nduration: 5s\nstorage: {backend: nfs, server: h, export: /e, client: fuse}\n")
        )
    [problem] = info.value.problems
    assert problem.key_path == "storage.client" and "user-space" in problem.message


def test_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    """``harness values --set``: a setting replaces or adds a key before validation; a bad value is reported with
    the file and its key path, the line of its nearest key written in the file."""
    path = write(tmp_path, "name: s\nduration: 10s\nstorage:\n  backend: local\n")
    s = load_scenario(path, ["storage.node=node-2", "storage.claim.size=8Gi", "prometheus.retention=15d"])
    assert isinstance(s.storage, LocalStorage)
    assert (s.storage.node, s.storage.claim.size_bytes, s.prometheus.retention_s) == ("node-2", 8 * 1024**3, 15 * 86400)
    with pytest.raises(ScenarioError) as e:
        load_scenario(path, ["storage.claim.size=lots"])
    [problem] = e.value.problems
    assert (problem.line, problem.key_path) == (3, "storage.claim.size")
    for bad, why in [("storage.node", "KEY.PATH=VALUE"), ("name.x=1", "name is no mapping"), ("a=[", "invalid YAML")]:
        with pytest.raises(ScenarioError) as e:
            load_scenario(path, [bad])
        assert why in str(e.value.problems[0])
