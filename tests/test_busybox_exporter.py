"""The busybox exporter (scrape mode in a cluster) serves what the local exporter serves, byte for byte, with this
machine's static busybox (the one testbed puts in the tools image): awk alone, then the CGI program under
busybox httpd, as in the exporter pod."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import proc
from harness.loads.busybox_exporter import awk_argv, cgi_script, scrapes
from harness.loads.tsdb import make_layout
from harness.loads.tsdb_scrape import SyntheticExporter, render_exposition
from harness.scenario.model import TsdbLoad
from harness.wait import wait_for

BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="no busybox (Debian busybox-static)")
START_S = 1_796_316_000.0


def _load(**kw: object) -> TsdbLoad:
    return TsdbLoad.model_validate(
        {"mode": "scrape", "series": 103, "metrics": 7, "label_cardinality": 5, "interval": "250ms", **kw}
    )


def _awk(load: TsdbLoad, now: float) -> str:
    assert BUSYBOX is not None
    layout = make_layout(load, "ab12cd", START_S)
    argv = awk_argv(layout, repr(now), busybox=BUSYBOX)
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.mark.parametrize("churn", [None, {"every": "2s", "fraction": 0.3}, {"every": "1s", "fraction": 1.0}])
def test_awk_renders_what_the_local_exporter_renders(churn: dict[str, object] | None) -> None:
    load = _load(churn=churn)
    exporter = SyntheticExporter(load, "ab12cd", port=0, start_unix_s=START_S)
    # Before the first tick, on it, across churn epochs, and a month later.
    for dt in (-1.0, 0.1, 0.3, 2.1, 7.6, 1000.2, 86400 * 30 + 0.1):
        assert _awk(load, START_S + dt) == exporter.render(START_S + dt), dt
    assert exporter.render(START_S - 1.0) == ""


@pytest.fixture
def httpd(tmp_path: Path) -> Iterator[tuple[str, Path, TsdbLoad, float]]:
    """busybox httpd serving the CGI program as the exporter pod does (its stderr is the pod's log)."""
    if not Path("/bin/busybox").is_file():
        pytest.skip("the CGI program's interpreter is /bin/busybox, as in the tools image")
    assert BUSYBOX is not None
    load = _load(series=30, metrics=3, interval="1s")
    start = time.time() - 5
    layout = make_layout(load, "ab12cd", start)
    cgi = tmp_path / "www" / "cgi-bin" / "metrics"
    cgi.parent.mkdir(parents=True)
    cgi.write_text(cgi_script(layout))
    cgi.chmod(0o555)
    port = proc.free_port()
    stderr = tmp_path / "httpd.log"
    with stderr.open("w") as err:
        server = subprocess.Popen(
            [BUSYBOX, "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", str(tmp_path / "www")], stderr=err
        )
    try:
        yield f"http://127.0.0.1:{port}/cgi-bin/metrics", stderr, load, start
    finally:
        server.terminate()
        server.wait(10)


def _get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (loopback)
        return resp.headers["Content-Type"], resp.read().decode()


def test_the_cgi_program_serves_the_exposition_and_logs_each_scrape(
    httpd: tuple[str, Path, TsdbLoad, float],
) -> None:
    url, stderr, load, start = httpd
    layout = make_layout(load, "ab12cd", start)
    at = f"{(layout.start_ms + 2 * layout.interval_ms + 500) / 1000:.3f}"
    content_type, body = wait_for(
        lambda: _try_get(f"{url}?at={at}"), what="busybox httpd to answer", timeout_s=10, interval_s=0.1
    )
    assert content_type == "text/plain; version=0.0.4"
    assert body == render_exposition(layout, float(at))
    assert stderr.read_text() == ""  # ?at= is the harness's self-check, not a scrape

    before = time.time()
    _, body = _get(url)
    after = time.time()
    [(scraped, client)] = scrapes(stderr.read_text())
    assert before - 0.01 <= scraped <= after + 0.01
    assert body == render_exposition(layout, scraped)
    assert client == "127.0.0.1"  # the scraper: the harness tells the current Prometheus by its pod IP


def _try_get(url: str) -> tuple[str, str] | None:
    try:
        return _get(url)
    except OSError:
        return None


def test_scrapes_are_read_from_the_log_with_their_client() -> None:
    log = (
        "scrape 1796316797.585618 [::ffff:10.244.1.2]\n[::1]:4242: response:404\nscrape\n"
        "scrape 1796316798.5 [fd00::7]\nscrape 17963167\n"
    )
    assert scrapes(log) == [(1796316797.585618, "10.244.1.2"), (1796316798.5, "fd00::7")]
