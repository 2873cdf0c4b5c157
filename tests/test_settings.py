"""The harness host's settings (``harness.settings``): read once by the CLI from the environment, a bad value exit 2
naming its variable; what they fill into a scenario that leaves it open; the docs' table generated from the same
table of variables; and no other module of the harness reading the environment for them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.config import config_path
from harness.errors import UsageError
from harness.faults.node_loss import NodeLoss
from harness.scenario.host_defaults import with_host_defaults
from harness.scenario.model import IscsiStorage, NfsStorage, NodeControl, NodeLossFault, Scenario
from harness.settings import VARIABLES, Settings, markdown_table
from tests.cli import ROOT, harness_cli

SETTINGS_PAGE = ROOT / "docs" / "reference" / "settings.md"
GUIDE = ROOT / "docs" / "getting-started.md"


def test_the_settings_page_carries_the_generated_table() -> None:
    """The site's settings page (written by ``python -m harness.docs_gen --write docs/reference``) holds the table
    ``markdown_table()`` makes now, once; the getting-started guide's settings section links to it."""
    text = SETTINGS_PAGE.read_text()
    assert text.count(markdown_table()) == 1, (
        f"{SETTINGS_PAGE.relative_to(ROOT)} lacks the table harness.settings.markdown_table() makes now: "
        "run python -m harness.docs_gen --write docs/reference"
    )
    assert "](reference/settings.md)" in GUIDE.read_text(), "docs/getting-started.md should link the settings page"


def test_every_variable_is_in_the_table_once() -> None:
    names = [v.name for v in VARIABLES]
    assert len(names) == len(set(names))
    table = markdown_table()
    for name in names:
        assert f"| `{name}` |" in table


def test_nothing_set_gives_the_defaults() -> None:
    assert Settings.from_environ({}) == Settings()
    blank = {v.name: "  " for v in VARIABLES}  # set but empty: as if unset
    assert Settings.from_environ(blank) == Settings()


def test_each_variable_sets_its_setting() -> None:
    env = {
        "HARNESS_K8S_REACH": "api-proxy",
        "HARNESS_K8S_TOOLS_IMAGE": "busybox:1.36",
        "HARNESS_K8S_FIO_IMAGE": "fio:1",
        "HARNESS_K8S_WRITER_IMAGE": "writer:2",
        "HARNESS_K8S_OPERATOR_WAIT": "5.5",
        "HARNESS_NODE_STOP": "ssh {node} 'poweroff -f'",
        "HARNESS_NODE_START": "cloud start {node}",
        "HARNESS_NFS_MOUNT": "/mnt/nfs",
        "HARNESS_ISCSI_MOUNT": "/mnt/lun",
        "HARNESS_CONFIG": "/etc/harness.yaml",
        "XDG_CONFIG_HOME": "/xdg",
        "UNRELATED": "x",
    }
    assert {v.name for v in VARIABLES} <= env.keys()  # a new variable gets a line here
    assert Settings.from_environ(env) == Settings(
        k8s_reach="api-proxy",
        k8s_tools_image="busybox:1.36",
        k8s_fio_image="fio:1",
        k8s_writer_image="writer:2",
        k8s_operator_wait_s=5.5,
        node_stop=("ssh", "{node}", "poweroff -f"),
        node_start=("cloud", "start", "{node}"),
        mounts={"nfs": "/mnt/nfs", "iscsi": "/mnt/lun"},
        config_file="/etc/harness.yaml",
        xdg_config_home="/xdg",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HARNESS_K8S_REACH", "maybe"),
        ("HARNESS_K8S_OPERATOR_WAIT", "soon"),
        ("HARNESS_K8S_OPERATOR_WAIT", "0"),
        ("HARNESS_K8S_OPERATOR_WAIT", "-3"),
        ("HARNESS_NODE_STOP", "ssh 'unclosed"),
    ],
)
def test_a_value_that_means_nothing_is_a_usage_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(UsageError, match=f"^{name}"):
        Settings.from_environ({name: value})


def test_a_bad_setting_stops_the_cli_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nduration: 5s\nstorage: {backend: ephemeral}\n")
    done = harness_cli("run", str(scenario), "--reports", str(tmp_path / "reports"), env={"HARNESS_K8S_REACH": "maybe"})
    done.expect(2)
    assert "HARNESS_K8S_REACH='maybe'" in done.stderr and "Traceback" not in done.output
    assert not (tmp_path / "reports").exists()


def test_the_config_file_is_the_settings_one() -> None:
    assert config_path(Settings(config_file="/etc/h.yaml")) == Path("/etc/h.yaml")
    assert config_path(Settings(xdg_config_home="/xdg")) == Path("/xdg/prom-harness/config.yaml")
    assert config_path(Settings()) == Path.home() / ".config" / "prom-harness" / "config.yaml"


# --- what the settings fill into a scenario -------------------------------------------------------------------

NODE_LOSS = {"action": "node_loss", "at": "5s"}


def _scenario(storage: dict[str, object], *faults: dict[str, object]) -> Scenario:
    return Scenario.model_validate({"name": "s", "duration": "20s", "storage": storage, "faults": list(faults)})


def test_node_loss_without_node_control_takes_the_settings_commands() -> None:
    settings = Settings(node_stop=("stop", "{node}"), node_start=("start", "{node}"))
    scenario = with_host_defaults(_scenario({"backend": "ephemeral"}, NODE_LOSS), settings)
    spec = scenario.faults[0]
    assert isinstance(spec, NodeLossFault)
    assert spec.node_control == NodeControl(stop=["stop", "{node}"], start=["start", "{node}"])
    assert NodeLoss().refusal(spec) is None


def test_the_scenarios_node_control_wins() -> None:
    own = {**NODE_LOSS, "node_control": {"stop": ["mine"], "start": ["mine-too"]}}
    settings = Settings(node_stop=("stop",), node_start=("start",))
    spec = with_host_defaults(_scenario({"backend": "ephemeral"}, own), settings).faults[0]
    assert isinstance(spec, NodeLossFault) and spec.node_control == NodeControl(stop=["mine"], start=["mine-too"])


@pytest.mark.parametrize("settings", [Settings(), Settings(node_stop=("stop",))], ids=["neither", "stop only"])
def test_node_loss_is_refused_without_both_commands(settings: Settings) -> None:
    scenario = _scenario({"backend": "ephemeral"}, NODE_LOSS)
    assert with_host_defaults(scenario, settings) is scenario  # nothing filled
    spec = scenario.faults[0]
    assert isinstance(spec, NodeLossFault)
    refusal = NodeLoss().refusal(spec)
    assert refusal is not None and "HARNESS_NODE_STOP and HARNESS_NODE_START" in refusal


def test_a_mount_setting_fills_its_backends_mount_path_only_when_the_scenario_sets_none() -> None:
    settings = Settings(mounts={"nfs": "/mnt/nfs", "iscsi": "/mnt/lun"})
    nfs = {"backend": "nfs", "server": "10.0.0.1", "export": "/e"}
    filled = with_host_defaults(_scenario(nfs), settings).storage
    assert isinstance(filled, NfsStorage) and filled.mount_path == "/mnt/nfs"
    own = with_host_defaults(_scenario({**nfs, "mount_path": "/mine"}), settings).storage
    assert isinstance(own, NfsStorage) and own.mount_path == "/mine"
    iscsi = {"backend": "iscsi", "target_portal": "t.example:3260", "iqn": "iqn.x:y"}
    lun = with_host_defaults(_scenario(iscsi), settings).storage
    assert isinstance(lun, IscsiStorage) and lun.mount_path == "/mnt/lun"
    only_nfs = with_host_defaults(_scenario(iscsi), Settings(mounts={"nfs": "/mnt/nfs"})).storage
    assert isinstance(only_nfs, IscsiStorage) and only_nfs.mount_path is None
    local = _scenario({"backend": "ephemeral"})
    assert with_host_defaults(local, settings) is local


def test_a_run_uses_the_mount_the_settings_name(tmp_path: Path) -> None:
    """`harness run` fills storage.mount_path from HARNESS_NFS_MOUNT as it loads the scenario: the run goes to that
    directory (refused here, it is no mount) and its result records the scenario as filled in."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nduration: 5s\nstorage: {backend: nfs, server: 127.0.0.1, export: /e}\n")
    not_a_mount = tmp_path / "mnt"
    not_a_mount.mkdir()
    done = harness_cli(
        "run", str(scenario), "--reports", str(tmp_path / "reports"), "--skip-doctor", "--no-report",
        env={"HARNESS_NFS_MOUNT": str(not_a_mount)},
    )  # fmt: skip
    done.expect(2)
    assert f"{str(not_a_mount)!r} is not a mount point" in done.output and "HARNESS_NFS_MOUNT" in done.output
    assert done.result.scenario["storage"]["mount_path"] == str(not_a_mount)


# --- nobody else reads the environment ------------------------------------------------------------------------

HARNESS = ROOT / "harness"
ENV_READ = re.compile(r"os\.environ|os\.getenv|getenv\(|environ\.get")
# Where the environment may be read, and why: the CLI reads the settings once (harness.settings parses them); a child
# process gets a copy of it (harness.proc); a child program of the harness reads its own input in its entry point.
# datapath/__init__.py: the FUSE programs pin libfuse3 for mfusepy, which reads FUSE_LIBRARY_NAME when imported.
ALLOWED_MODULES = {"cli.py", "settings.py", "proc.py", "datapath/__init__.py"}
CHILD_PROGRAMS = {"loads/shard.py", "datapath/nfs_fuse.py", "datapath/fault_fuse.py"}  # in their main() only
# KUBECONFIG is kubectl's own convention, read where a kubeconfig is looked for (or an option's default).
KUBECONFIG_READ = re.compile(r"os\.environ\.get\(\"KUBECONFIG\"\)")


def _env_reads() -> list[str]:
    """Every line of harness/ that reads the environment where it may not: ``path:line: text``."""
    bad = []
    for path in sorted(HARNESS.rglob("*.py")):
        rel = path.relative_to(HARNESS).as_posix()
        if rel in ALLOWED_MODULES:
            continue
        function = ""
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith("def "):
                function = line.split("(")[0].removeprefix("def ")
            elif line and not line[0].isspace():
                function = ""
            if not ENV_READ.search(line) or line.lstrip().startswith("#"):
                continue
            if KUBECONFIG_READ.search(line):
                continue
            if rel in CHILD_PROGRAMS and function == "main":
                continue
            bad.append(f"harness/{rel}:{number}: {line.strip()}")
    return bad


# Being made a package by another branch, which replaces these reads with its Settings: allowed until it lands.
def test_only_the_cli_reads_the_environment_for_settings() -> None:
    bad = _env_reads()
    assert not bad, (
        "read the setting in harness.settings (one VARIABLES entry, a Settings field) and hand it down from the CLI; "
        "the environment is read only by harness/cli.py, harness/settings.py, harness/proc.py (a child's copy), a "
        "child program's main() and KUBECONFIG look-ups:\n" + "\n".join(bad)
    )


def test_the_grep_sees_a_read() -> None:
    """The check above would catch a read: the child programs' own reads are found, then let through as main()'s."""
    for path in ("loads/shard.py", "datapath/nfs_fuse.py"):
        text = (HARNESS / path).read_text()
        assert ENV_READ.search(text), path
