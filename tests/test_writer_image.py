"""The writer image's contents, read without a cluster: which site-packages its module discovery picks, where the
harness comes from, that its tag follows the checkout, and the interpreter's symlink in the layer.
tests/k8s/test_writer_image.py runs the image in pods."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from testbed import oci, writer_image


@pytest.fixture(scope="module")
def writer_plan() -> writer_image.Plan:
    return writer_image.plan()


def test_discovery_picks_what_the_writer_imports_and_nothing_else(writer_plan: writer_image.Plan) -> None:
    assert {"numpy", "cramjam", "pydantic", "google/protobuf"} <= set(writer_plan.packages)
    # Installed here (pandas for prometheus_api_client's DataFrame helpers, the rest for the tests and the harness'
    # other parts) but never imported by the writer.
    assert not {"pandas", "kubernetes", "matplotlib", "_pytest"} & set(writer_plan.packages)
    assert any(at.startswith(f"{writer_image.LIB_DIR}/numpy.libs/") for at in writer_plan.files)
    assert not [at for at in writer_plan.files if "/__pycache__/" in at or "/lib-dynload/_test" in at]
    assert not [at for at in writer_plan.files if "/site-packages/" in at or "/python3.11/test/" in at]


def test_discovery_follows_the_modules_asked_for() -> None:
    """The same discovery asked for pandas as well puts it in: what is left out above is left out because the
    writer does not load it, not because discovery cannot see it."""
    planned = writer_image.plan(["harness.loads.tsdb_writer", "pandas"])
    assert "pandas" in planned.packages


def test_harness_comes_from_the_source_tree(writer_plan: writer_image.Plan) -> None:
    at = f"{writer_image.LIB_DIR}/harness/loads/tsdb_writer.py"
    assert writer_plan.files[at] == writer_image.harness_source() / "loads" / "tsdb_writer.py"
    assert not [a for a in writer_plan.files if "__editable__" in a]
    assert f"PYTHONPATH={writer_image.LIB_DIR}" in writer_plan.env


def test_tag_follows_the_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = tmp_path / "harness"
    shutil.copytree(writer_image.harness_source(), source, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(writer_image, "harness_source", lambda: source)
    before = writer_image.plan()
    assert writer_image.plan().tag == before.tag  # the same inputs, the same tag
    ledger = source / "loads" / "ledger.py"
    ledger.write_text(ledger.read_text().replace("import math", "import math  # edited"))
    after = writer_image.plan()
    assert after.tag != before.tag
    assert after.ref.startswith(f"{writer_image.REPO}:") and len(after.tag) == 12


def test_symlinks_land_in_the_layer(tmp_path: Path) -> None:
    spec = oci.ImageSpec(ref="localhost/t:1", contents={"/bin/x": b"x"}, symlinks={"/usr/bin/python3": "/bin/x"})
    oci.write_archive(spec, tmp_path / "a.tar")
    with tarfile.open(tmp_path / "a.tar") as archive:
        blobs = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]
    index = json.loads(blobs["index.json"])
    manifest = json.loads(blobs["blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]])
    layer = blobs["blobs/sha256/" + manifest["layers"][0]["digest"].split(":")[1]]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        link = tar.getmember("usr/bin/python3")
    assert link.issym() and link.linkname == "/bin/x"
