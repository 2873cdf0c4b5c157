"""The synthetic exporter as a CGI program for a static busybox (``httpd``, ``sh``, ``ts``, ``awk``), for where the
harness cannot listen itself: a pod in a cluster whose pods cannot reach the harness host.

It serves exactly what ``SyntheticExporter.render`` serves at the same time, byte for byte: the samples of the latest
grid tick of every series, values from ``SeriesLayout.value_units``, explicit timestamps. awk computes in float64,
so every product is reduced modulo the value modulus first and stays far below 2**53, where float64 integers are
exact; the timestamp is printed with ``%.0f`` because busybox awk's ``%d`` is 32 bits wide.

Each scrape writes ``scrape <unix seconds.microseconds> <client address>`` to stderr (the container's log, read back
through the API): when it was scraped is all the harness needs from it. ``?at=<unix seconds>`` renders another time
and logs nothing, so the harness can compare the pod's output with its own rendering before Prometheus starts.
"""

from __future__ import annotations

import shlex

from harness.loads.ledger import GEN_WEIGHT, METRIC_PREFIX, SLOT_WEIGHT, TICK_WEIGHT, VALUE_MODULUS, SeriesLayout

SCRAPE_LOG_PREFIX = "scrape "
BUSYBOX = "/bin/busybox"

# Mirrors SeriesLayout.gens/value_units/labels and SyntheticExporter.render; tests/test_busybox_exporter.py compares
# the outputs. Python's -((slot - covered) // series) is the ceiling of (covered - slot) / series when positive.
AWK_PROGRAM = r"""
BEGIN {
    tick = int(now * 1000 / interval_ms)
    ts = tick * interval_ms
    if (ts < start_ms) exit
    covered = 0
    if (churn_every_ms > 0) covered = int((ts - start_ms) / churn_every_ms) * churn_size
    tick_part = (tick % modulus) * tick_weight % modulus
    frac[0] = ".0"; frac[1] = ".25"; frac[2] = ".5"; frac[3] = ".75"
    for (m = 0; m < metrics; m++) {
        name = prefix m
        printf "# TYPE %s gauge\n", name
        for (slot = m; slot < series; slot += metrics) {
            gen = 0
            if (covered > slot) gen = int((covered - slot + series - 1) / series)
            u = ((slot % modulus) * slot_weight + (gen % modulus) * gen_weight + tick_part) % modulus
            printf "%s{run_id=\"%s\",series=\"%d\",gen=\"%d\",shard=\"%d\"} %d%s %.0f\n", \
                name, run_id, slot, gen, int(slot / metrics) % cardinality, int(u / 4), frac[u % 4], ts
        }
    }
}
"""


def awk_variables(layout: SeriesLayout) -> dict[str, str]:
    """The layout as awk ``-v`` assignments (all but ``now``)."""
    return {
        "run_id": layout.run_id,
        "prefix": METRIC_PREFIX,
        "series": str(layout.series),
        "metrics": str(layout.metrics),
        "cardinality": str(layout.label_cardinality),
        "interval_ms": str(layout.interval_ms),
        "start_ms": str(layout.start_ms),
        "churn_every_ms": str(layout.churn_every_ms or 0),
        "churn_size": str(layout.churn_size),
        "modulus": str(VALUE_MODULUS),
        "slot_weight": str(SLOT_WEIGHT),
        "gen_weight": str(GEN_WEIGHT),
        "tick_weight": str(TICK_WEIGHT),
    }


def awk_argv(layout: SeriesLayout, now: str, busybox: str = BUSYBOX) -> list[str]:
    """``busybox awk`` rendering the exposition at ``now`` (Unix seconds, as text)."""
    assignments = [a for k, v in {**awk_variables(layout), "now": now}.items() for a in ("-v", f"{k}={v}")]
    return [busybox, "awk", *assignments, AWK_PROGRAM]


def cgi_script(layout: SeriesLayout) -> str:
    """The CGI program serving ``layout`` (a ``#!/bin/busybox sh`` script: busybox images have no /bin/sh link)."""
    assignments = " ".join(f"-v {shlex.quote(f'{k}={v}')}" for k, v in awk_variables(layout).items())
    return "\n".join(
        [
            f"#!{BUSYBOX} sh",
            "# The synthetic TSDB load of the prom-storage-harness (harness/loads/busybox_exporter.py).",
            'case "$QUERY_STRING" in',
            '  at=*) now="${QUERY_STRING#at=}" ;;',
            # ts prints the time with microseconds and a space before the (empty) line it stamps.
            f'  *) now=$(echo | {BUSYBOX} ts %.s); now="${{now%% *}}"',
            f'     echo "{SCRAPE_LOG_PREFIX}$now $REMOTE_ADDR" >&2 ;;',
            "esac",
            r"printf 'Content-Type: text/plain; version=0.0.4\r\n\r\n'",
            f'exec {BUSYBOX} awk -v now="$now" {assignments} {shlex.quote(AWK_PROGRAM)}',
            "",
        ]
    )


def scrapes(log_text: str) -> list[tuple[float, str]]:
    """The scrapes a CGI log records, in order: (Unix time, client IP address)."""
    found = []
    for line in log_text.splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[0] != SCRAPE_LOG_PREFIX.strip():
            continue  # not a scrape line, or one cut short by a restart of the container
        try:
            found.append((float(parts[1]), _client_ip(parts[2])))
        except ValueError:
            continue
    return found


def _client_ip(remote_addr: str) -> str:
    """httpd's REMOTE_ADDR as a plain IP: it listens on IPv6 and shows IPv4 clients as ``[::ffff:10.0.0.1]``."""
    ip = remote_addr.removeprefix("[").removesuffix("]")
    return ip.removeprefix("::ffff:") if "." in ip else ip
