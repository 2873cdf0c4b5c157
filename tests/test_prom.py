"""The Prometheus API wrapper against the real ``prometheus`` binary: status, typed queries, raw samples, errors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import cramjam
import pytest

from harness import proc
from harness.errors import PrometheusError
from harness.exposition import parse_exposition
from harness.loads import remote_pb2
from harness.prom import PromClient, WriteOutcome, labels_key, selector, stream_vector
from tests.prometheus_fixture import PrometheusLauncher, RunningPrometheus, prometheus_launcher


@pytest.fixture
def prom(tmp_path: Path) -> Iterator[RunningPrometheus]:
    launcher: PrometheusLauncher
    for launcher in prometheus_launcher(tmp_path):
        yield launcher.start(tmp_path / "data")


def _write(client: PromClient, labels: dict[str, str], samples: list[tuple[int, float]]) -> WriteOutcome:
    req = remote_pb2.WriteRequest()
    ts = req.timeseries.add()
    for name, value in sorted(labels.items()):
        ts.labels.add(name=name, value=value)
    for t, v in samples:
        ts.samples.add(timestamp=t, value=v)
    return client.remote_write(bytes(cramjam.snappy.compress_raw(req.SerializeToString())))


def test_status_endpoints(prom: RunningPrometheus) -> None:
    assert prom.client.ready()
    assert prom.client.healthy()
    assert prom.client.build_version().startswith(("2.", "3."))


def test_remote_write_then_raw_samples_are_exact(prom: RunningPrometheus) -> None:
    now_ms = int(time.time() * 1000) // 1000 * 1000
    labels = {"__name__": "prom_test", "run_id": "t1", "series": "0"}
    samples = [(now_ms - 5000 + i * 1000, 0.25 * i + 1e-3) for i in range(5)]
    assert _write(prom.client, labels, samples) is WriteOutcome.ACKED

    raw = prom.client.raw_samples('prom_test{run_id="t1"}', window_s=10.0, at_unix_s=now_ms / 1000)
    assert raw == {labels_key(labels): samples}

    instant = prom.client.instant('prom_test{run_id="t1"}', at_unix_s=(now_ms - 1000) / 1000)
    assert len(instant) == 1
    assert instant[0].value == samples[-1][1]
    assert instant[0].metric_name == "prom_test"
    assert prom.client.count('prom_test{run_id="t1"}', at_unix_s=(now_ms - 1000) / 1000) == 1
    assert prom.client.count('prom_test{run_id="nope"}') == 0
    assert prom.client.instant("1 + 1")[0].value == 2.0  # a scalar result
    assert selector(labels_key(labels)) == 'prom_test{run_id="t1",series="0"}'


def test_out_of_order_write_is_rejected_not_acked(prom: RunningPrometheus) -> None:
    now_ms = int(time.time() * 1000)
    labels = {"__name__": "prom_test", "run_id": "t2"}
    assert _write(prom.client, labels, [(now_ms, 1.0)]) is WriteOutcome.ACKED
    assert _write(prom.client, labels, [(now_ms - 60_000, 2.0)]) is WriteOutcome.REJECTED


def test_server_writes_are_prometheus_own_count_by_status(prom: RunningPrometheus) -> None:
    """Read from its /metrics: the remote writes it answered, by status, and the samples it appended (this
    Prometheus scrapes nothing, so only the written one)."""
    now_ms = int(time.time() * 1000)
    labels = {"__name__": "prom_test", "run_id": "t3"}
    before = prom.client.server_writes()
    assert before.write_requests == {} and before.accepted_requests == 0 and before.samples_appended == 0
    assert _write(prom.client, labels, [(now_ms, 1.0)]) is WriteOutcome.ACKED
    assert _write(prom.client, labels, [(now_ms - 60_000, 2.0)]) is WriteOutcome.REJECTED
    after = prom.client.server_writes()
    assert after.write_requests == {"204": 1, "400": 1}
    assert (after.accepted_requests, after.samples_appended) == (1, 1)
    assert after.process_start_unix_s == before.process_start_unix_s
    assert before.process_start_unix_s is not None and time.time() - 120 < before.process_start_unix_s < time.time()


def test_bad_query_raises_prometheus_error_with_query(prom: RunningPrometheus) -> None:
    with pytest.raises(PrometheusError) as info:
        prom.client.instant("sum(")
    assert info.value.query == "sum("
    assert prom.url in info.value.url


def test_unreachable_server() -> None:
    client = PromClient(f"http://127.0.0.1:{proc.free_port()}", timeout_s=2.0)
    assert not client.ready()
    assert not client.healthy()
    assert client.remote_write(b"") is WriteOutcome.UNREACHABLE
    with pytest.raises(PrometheusError):
        client.build_version()
    with pytest.raises(PrometheusError):
        client.instant("up")
    with pytest.raises(PrometheusError, match="cannot read its own metrics"):
        client.server_writes()


def test_the_exposition_parser_reads_labels_with_spaces_escapes_and_timestamps() -> None:
    text = (
        "# HELP a something\n# TYPE a counter\n"
        'a{x="1 2",y="q\\"\\\\\\n",} 3 1000\na 4\nab{x="1"} 9\na{ } 6\na{z="w" } +Inf\n'
    )
    got = list(parse_exposition(text, {"a"}))
    assert got == [
        ("a", {"x": "1 2", "y": 'q"\\\n'}, 3.0),
        ("a", {}, 4.0),
        ("a", {}, 6.0),
        ("a", {"z": "w"}, float("inf")),
    ]
    for bad in ("a{x=1} 2", 'a{x="1" y="2"} 3', 'a{x="1"}', 'a{x="1"'):
        with pytest.raises(ValueError):
            list(parse_exposition(bad, {"a"}))


def test_a_vector_answer_streams_item_by_item_however_the_bytes_are_cut() -> None:
    """The drill-down reads per-series answers of a million series: one item at a time, never the whole document."""
    items = [{"metric": {"series": str(i), "ü": 'é\\"]'}, "value": [1.5, str(i)]} for i in range(300)]
    answer = {"status": "success", "data": {"resultType": "vector", "result": items}, "warnings": ["x"]}
    doc = json.dumps(answer, ensure_ascii=False, indent=1).encode()
    for size in (1, 2, 7, 100, 4096, len(doc)):
        assert list(stream_vector(doc[i : i + size] for i in range(0, len(doc), size))) == items, size
    empty = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
    assert list(stream_vector([empty[:30], empty[30:]])) == []
    with pytest.raises(ValueError, match="ended inside"):
        list(stream_vector([doc[: len(doc) // 2]]))
    with pytest.raises(ValueError, match="not an object"):
        list(stream_vector([b'{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}']))
    with pytest.raises(ValueError, match="before its result"):
        list(stream_vector([b'{"status":"error","error":"bad"}']))


def test_instant_stream_against_prometheus(prom: RunningPrometheus) -> None:
    now_ms = int(time.time() * 1000)
    for i in range(3):
        assert _write(prom.client, {"__name__": "streamed", "i": str(i)}, [(now_ms, float(i))]) is WriteOutcome.ACKED
    got = prom.client.instant_stream("streamed", now_ms / 1000)
    assert sorted((dict(s.labels)["i"], s.value) for s in got) == [("0", 0.0), ("1", 1.0), ("2", 2.0)]
    with pytest.raises(PrometheusError, match="HTTP 400"):
        list(prom.client.instant_stream("streamed[", now_ms / 1000))
