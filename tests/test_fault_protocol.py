"""The fault layer's control protocol (``harness.datapath.fault_protocol``) on its own: the commands the runtimes
encode are
the ones the layer decodes, its answers read back as they were written, and which operations an I/O fault matches.
No FUSE: ``tests/test_io_faults.py`` and ``tests/test_power_loss.py`` speak it to a real layer."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.capabilities.fault_layer import IoFault
from harness.datapath import fault_protocol
from harness.datapath.fault_protocol import (
    IO_SET,
    CutReport,
    IoCounts,
    LayerIoFault,
    cut_report,
    io_counts,
    io_set_command,
    parse_io_set,
    split_command,
    under,
)
from harness.runtime.fault_layer import io_set_command as runtime_io_set_command

ROOT = Path(__file__).resolve().parent.parent


def test_what_the_runtime_sends_is_what_the_layer_sets() -> None:
    fault = IoFault(methods=("write", "fsync"), percent=50, errno_name="EIO", delay_s=0.25, path="wal")
    command, argument = split_command(runtime_io_set_command(fault).encode() + b"\n")
    assert command == IO_SET.encode()
    layer = parse_io_set(argument)
    assert (layer.methods, layer.percent, layer.errno, layer.delay_s, layer.path) == (
        frozenset({"write", "fsync"}),
        50,
        errno.EIO,
        0.25,
        "wal",
    )
    assert json.loads(argument)["methods"] == ["write", "fsync"]  # in the scenario's order


def test_io_set_defaults_and_path_normalisation() -> None:
    fault = parse_io_set(b'{"path": "/wal/"}')
    assert (fault.methods, fault.percent, fault.errno, fault.delay_s, fault.path) == (frozenset(), 100, None, 0, "wal")
    assert parse_io_set(b'{"path": ""}').path is None


@pytest.mark.parametrize(
    "argument",
    [
        b'{"methods": ["explode"]}',
        b'{"percent": 101}',
        b'{"percent": -1}',
        b'{"delay_s": -0.1}',
        b'{"errno": 0}',
        b'{"errno": "EIO"}',
        b"not json",
        b"[1, 2]",
    ],
)
def test_io_set_refuses_what_the_layer_does_not_know(argument: bytes) -> None:
    with pytest.raises(ValueError):  # the layer turns any of them into EINVAL
        parse_io_set(argument)


def test_which_operations_a_fault_matches() -> None:
    anywhere = LayerIoFault(methods=frozenset(), percent=100, errno=None, delay_s=0, path=None)
    assert anywhere.matches("statfs", ["."])
    wal_writes = LayerIoFault(methods=frozenset({"write"}), percent=100, errno=None, delay_s=0, path="wal")
    assert wal_writes.matches("write", ["wal/00000001"])
    assert wal_writes.matches("write", ["wal"])
    assert not wal_writes.matches("fsync", ["wal/00000001"])
    assert not wal_writes.matches("write", ["wal.tmp/00000001"])  # a sibling whose name starts the same
    assert not wal_writes.matches("write", ["chunks_head/000001"])
    renames = LayerIoFault(methods=frozenset({"rename"}), percent=100, errno=None, delay_s=0, path="wal")
    assert renames.matches("rename", ["wal.tmp", "wal"])  # by either name
    assert under("a/b", "a")
    assert not under("ab", "a")


def test_io_clear_answer_reads_back() -> None:
    fault = LayerIoFault(methods=frozenset(), percent=100, errno=5, delay_s=0, path=None, set_at=12.5)
    fault.counts["write"] = IoCounts(matched=3, failed=2)
    fault.counts["fsync"] = IoCounts(matched=1, delayed=1)
    answer = json.loads(json.dumps(fault.report()))
    assert answer == {
        "set_at_unix_s": 12.5,
        "counts": {
            "fsync": {"matched": 1, "failed": 0, "delayed": 1},
            "write": {"matched": 3, "failed": 2, "delayed": 0},
        },
    }
    assert io_counts(answer) == {"fsync": IoCounts(1, 0, 1), "write": IoCounts(3, 2, 0)}


def test_cut_answer_reads_back() -> None:
    cut = CutReport(
        cut_at_unix_s=100.0,
        reverted=["wal/00000002", "wal/00000001"],
        removed=["chunks_head/000002"],
        dropped_bytes=4096,
        last_fsync_unix_s={"wal/00000001": 90.0, "wal": 95.0, "walrus": 99.0, "chunks_head/000001": 98.0},
    )
    answer = json.loads(json.dumps(cut.answer()))
    assert answer["reverted"] == ["wal/00000001", "wal/00000002"]
    back = cut_report(answer)
    assert back.last_fsync_under("wal") == 95.0  # not walrus
    assert back.last_fsync_under("index") is None
    assert back.dropped_bytes == 4096


def test_io_set_command_keeps_its_wire_form() -> None:
    text = io_set_command(methods=["write"], percent=100, errno=None, delay_s=0.1, path=None)
    assert text == 'io-set {"methods": ["write"], "percent": 100, "errno": null, "delay_s": 0.1, "path": null}'


def test_the_protocol_needs_nothing_beyond_the_standard_library() -> None:
    """The layer's process (a sidecar image on a cluster) imports it: no site-packages, no other harness module."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
        "import harness.datapath.fault_protocol, harness.datapath.fault_durability; "
        "print(sorted(m for m in sys.modules if m.startswith('harness')))"
    )
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(
        ["harness", "harness.datapath", "harness.datapath.fault_durability", "harness.datapath.fault_protocol"]
    )
    assert fault_protocol.CONTROL_NAME == ".harness-control"
