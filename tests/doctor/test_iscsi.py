"""iSCSI layout checks against real tgt LUNs on 127.0.0.1, backed by image files the tests build:
whole-disk ext4, GPT-partitioned (sgdisk, ext4 inside the partition), MBR-partitioned, blank, whole-disk xfs,
and one smaller than the claim. Layout detection is also checked directly on the image bytes.
"""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import proc
from harness.cli import main
from harness.datapath.servers import IscsiTarget
from harness.doctor.iscsi import check_iscsi, detect_layout
from harness.errors import MissingBinary
from harness.results.model import DoctorFinding, Severity
from harness.scenario.model import IscsiStorage
from tests.doctor.scenarios import write_scenario

MiB = 1024**2


def _image(path: Path, size_mib: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size_mib * MiB)
    return path


def whole_disk_ext4(path: Path) -> Path:
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "promdata", str(_image(path, 64))], check=True)
    return path


def gpt_partitioned(path: Path) -> Path:
    """What the field notes' LUN looked like: a GPT with one partition at 1 MiB holding the ext4."""
    try:
        proc.which("sgdisk")
    except MissingBinary as e:
        pytest.skip(str(e))
    _image(path, 64)
    subprocess.run(
        ["sgdisk", "-n", "1:2048:0", "-c", "1:prometheus", "-t", "1:8300", str(path)], check=True, capture_output=True
    )
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "inpart", "-E", f"offset={MiB}", str(path), "60M"], check=True)
    return path


def mbr_partitioned(path: Path) -> Path:
    """A DOS partition table written by hand: one Linux (0x83) partition from sector 2048 to the end."""
    _image(path, 64)
    sectors = 64 * MiB // 512
    entry = bytes([0x00, 0, 0, 0, 0x83, 0, 0, 0]) + struct.pack("<II", 2048, sectors - 2048)
    with path.open("r+b") as f:
        f.seek(446)
        f.write(entry)
        f.seek(510)
        f.write(b"\x55\xaa")
    return path


def whole_disk_xfs(path: Path) -> Path:
    try:
        proc.which("mkfs.xfs")
    except MissingBinary as e:
        pytest.skip(str(e))
    subprocess.run(["mkfs.xfs", "-q", "-f", "-L", "xfsdata", str(_image(path, 320))], check=True)
    return path


@pytest.fixture
def lun(iscsi_target: IscsiTarget) -> Iterator[Any]:
    """Attach an image as LUN 1 for one test; detached afterwards."""
    attached: list[int] = []

    def attach(image: Path) -> IscsiStorage:
        iscsi_target.add_lun(1, image)
        attached.append(1)
        return IscsiStorage.model_validate(
            {
                "backend": "iscsi",
                "target_portal": iscsi_target.portal,
                "iqn": iscsi_target.iqn,
                "lun": 1,
                "claim": {"storage_class": "", "size": "64Mi"},
            }
        )

    yield attach
    for n in attached:
        iscsi_target.remove_lun(n)


def layout_finding(findings: list[DoctorFinding]) -> DoctorFinding:
    (f,) = [f for f in findings if f.check == "iscsi.layout"]
    return f


def test_whole_disk_ext4_passes(lun: Any, tmp_path: Path) -> None:
    findings = check_iscsi(lun(whole_disk_ext4(tmp_path / "ext4.img")))
    f = layout_finding(findings)
    assert f.severity is Severity.INFO
    assert f.title == "Whole-disk ext4 on the LUN: ext4 label 'promdata', 64Mi"
    assert "ext4 magic 0xEF53 at byte 1080" in f.evidence
    assert "64Mi (131072 x 512 B blocks)" in f.evidence
    assert all(f.severity is Severity.INFO for f in findings)


def test_gpt_partitioned_lun_is_a_blocker(lun: Any, tmp_path: Path) -> None:
    f = layout_finding(check_iscsi(lun(gpt_partitioned(tmp_path / "gpt.img"))))
    assert f.severity is Severity.BLOCKER
    assert "partitioned (GPT)" in f.title
    assert "'EFI PART' at byte 512" in f.evidence
    assert "partition 1 'prometheus' at 1Mi" in f.evidence
    assert "holding ext4 label 'inpart', 60Mi" in f.evidence
    assert "Can't find ext4 filesystem" in f.why
    assert "wipefs -a /dev/sdX && mkfs.ext4" in f.fix


def test_mbr_partitioned_lun_is_a_blocker(lun: Any, tmp_path: Path) -> None:
    f = layout_finding(check_iscsi(lun(mbr_partitioned(tmp_path / "mbr.img"))))
    assert f.severity is Severity.BLOCKER
    assert "partitioned (MBR)" in f.title
    assert "0x55AA at byte 510" in f.evidence
    assert "partition 1 'type 0x83'" in f.evidence


def test_blank_lun_says_the_kubelet_will_format_it(lun: Any, tmp_path: Path) -> None:
    f = layout_finding(check_iscsi(lun(_image(tmp_path / "blank.img", 64))))
    assert f.severity is Severity.WARNING
    assert f.title == "The LUN is blank: the kubelet will format it as ext4 on first mount"
    assert "fsType ext4" in f.why
    assert "without fsType on the PV it would not format" in f.why


def test_xfs_when_the_pv_says_ext4(lun: Any, tmp_path: Path) -> None:
    f = layout_finding(check_iscsi(lun(whole_disk_xfs(tmp_path / "xfs.img"))))
    assert f.severity is Severity.BLOCKER
    assert f.title == "The LUN holds xfs, but the PV says fsType ext4"
    assert "xfs label 'xfsdata'" in f.evidence


def test_lun_smaller_than_the_claim(lun: Any, tmp_path: Path) -> None:
    spec = lun(whole_disk_ext4(tmp_path / "small.img"))
    findings = check_iscsi(
        spec.model_copy(update={"claim": spec.claim.model_copy(update={"size_bytes": 200 * 1024**3})})
    )
    (cap,) = [f for f in findings if f.check == "iscsi.capacity"]
    assert cap.severity is Severity.BLOCKER
    assert cap.title == "The LUN (64Mi) is smaller than the claim (200Gi)"


def test_login_failure(iscsi_target: IscsiTarget) -> None:
    spec = IscsiStorage.model_validate(
        {"backend": "iscsi", "target_portal": iscsi_target.portal, "iqn": "iqn.2020-02.com:nope", "lun": 1}
    )
    (f,) = check_iscsi(spec)
    assert (f.check, f.severity) == ("iscsi.login", Severity.BLOCKER)
    assert "Target not found" in f.evidence


def test_doctor_on_a_partitioned_lun_scenario(
    iscsi_target: IscsiTarget, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It must show (2): `harness doctor` on an iSCSI scenario pointing at a partitioned LUN."""
    iscsi_target.add_lun(2, gpt_partitioned(tmp_path / "gpt.img"))
    try:
        storage = {
            "backend": "iscsi",
            "target_portal": iscsi_target.portal,
            "iqn": iscsi_target.iqn,
            "lun": 2,
            "fs_type": "ext4",
            "claim": {"storage_class": "", "size": "60Mi"},
        }
        code = main(["doctor", str(write_scenario(tmp_path, storage)), "--json"])
    finally:
        iscsi_target.remove_lun(2)
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    (f,) = [f for f in doc["findings"] if f["check"] == "iscsi.layout"]
    assert f["severity"] == "BLOCKER"
    assert "Kubernetes mounts the whole disk and will fail" in f["title"]


@pytest.mark.parametrize(
    ("build", "kind"),
    [(whole_disk_ext4, "ext4"), (gpt_partitioned, "gpt"), (mbr_partitioned, "mbr"), (whole_disk_xfs, "xfs")],
)
def test_detect_layout_on_image_files(build: Any, kind: str, tmp_path: Path) -> None:
    image = build(tmp_path / "x.img")

    def read(offset: int, length: int) -> bytes:
        with image.open("rb") as f:
            f.seek(offset)
            return f.read(length)

    layout = detect_layout(read(0, MiB), 512, read)
    assert layout.kind == kind


def test_detect_layout_blank_and_unknown() -> None:
    assert detect_layout(bytes(MiB), 512, lambda o, n: bytes(n)).kind == "blank"
    junk = bytearray(MiB)
    junk[5000] = 7
    assert detect_layout(bytes(junk), 512, lambda o, n: bytes(n)).evidence.endswith("first non-zero byte at 5000")
