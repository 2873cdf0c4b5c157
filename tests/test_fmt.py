"""harness.fmt: every formatter against a table of values, with the edges (missing, 0, negative, huge, unit steps)."""

from __future__ import annotations

import ast
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from harness import fmt


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (None, {}, "–"),
        (math.nan, {}, "–"),
        (0, {}, "0 B"),
        (1, {}, "1 B"),
        (1023, {}, "1,023 B"),
        (1023.6, {}, "1.0 KiB"),  # rounds up to the next unit, never "1,024 B"
        (1024, {}, "1.0 KiB"),
        (1536, {}, "1.5 KiB"),
        (1024**2 - 1, {}, "1.0 MiB"),  # 1023.999 KiB would read "1024.0 KiB"
        (16 * 1024**2, {"sep": fmt.NBSP}, "16.0\u00a0MiB"),
        (1024**3, {}, "1.0 GiB"),
        (1024**4, {}, "1.0 TiB"),
        (5 * 1024**5, {}, "5.0 PiB"),
        (3000 * 1024**5, {}, "3,000.0 PiB"),  # huge: the largest unit with thousands separators
        (-2048, {}, "-2.0 KiB"),
        (8 * 1024**2, {"trim": True}, "8 MiB"),
        (int(1.2 * 1024**3), {"trim": True}, "1.2 GiB"),
        (600 * 1024**2, {"trim": True}, "600 MiB"),
    ],
)
def test_iec_bytes(value: float | None, kwargs: dict[str, object], expected: str) -> None:
    assert fmt.iec_bytes(value, **kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(200 * 1024**3, "200Gi"), (int(1.5 * 1024**3), "1.5Gi"), (1024**2, "1Mi"), (512, "512B"), (0, "0B")],
)
def test_k8s_quantity(value: int, expected: str) -> None:
    assert fmt.k8s_quantity(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(4 * 1024**3, "4Gi"), (1536 * 1024**2, "1536Mi"), (1024**2 + 1, "1048577"), (512, "512"), (0, "0")],
)
def test_exact_quantity_never_rounds(value: int, expected: str) -> None:
    assert fmt.exact_quantity(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "–"), (0, "0 B/s"), (1000, "1,000 B/s"), (1024**2, "1.0 MiB/s")]
)
def test_rate(value: float | None, expected: str) -> None:
    assert fmt.rate(value) == expected


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (None, {}, "–"),
        (0, {}, "0 ns"),
        (999, {}, "999 ns"),
        (1000, {}, "1.0 µs"),
        (999.6, {}, "1.0 µs"),  # rounds up to the next unit, never "1,000 ns"
        (999_999, {}, "1.00 ms"),
        (-2_000_000, {}, "-2.00 ms"),
        (999_999, {"sep": ""}, "1.00ms"),
        (1_100_000, {}, "1.10 ms"),
        (2.5e9, {}, "2.50 s"),
        (3.6e12, {}, "3,600.00 s"),
        (100_000, {"significant": 3}, "100 µs"),
        (1.5e9, {"significant": 3}, "1.5 s"),
    ],
)
def test_latency_ns(value: float | None, kwargs: dict[str, int], expected: str) -> None:
    assert fmt.latency_ns(value, **kwargs) == expected


def test_counts_durations_changes_p_values() -> None:
    assert [fmt.count(v) for v in (None, 0, -5, 1234567.4)] == ["–", "0", "-5", "1,234,567"]
    assert [fmt.duration_s(v) for v in (None, 0, 12.345, 3600)] == ["–", "0.00 s", "12.35 s", "3,600.00 s"]
    assert [fmt.change_pct(v) for v in (None, 0.0, 12.34, -5)] == ["–", "+0.0%", "+12.3%", "-5.0%"]
    assert [fmt.p_value(v) for v in (None, 0.0, 0.0009, 0.05, 1.0)] == ["–", "<0.001", "<0.001", "0.050", "1.000"]
    assert [fmt.measure(v, "s") for v in (0.000123, 1.04, 99.994, 100, 12345.6)] == [
        "0.000123 s",
        "1.04 s",
        "99.99 s",
        "100 s",
        "12,346 s",
    ]
    assert fmt.measure(3.0, "IOPS", whole=True) == "3 IOPS"


def test_utc() -> None:
    moment = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert fmt.utc(moment) == "2024-05-06 07:08:09.123 UTC"
    assert fmt.utc(moment.replace(tzinfo=None)) == "2024-05-06 07:08:09.123 UTC"  # naive = UTC
    assert fmt.utc(moment.astimezone(timezone(timedelta(hours=2)))) == "2024-05-06 07:08:09.123 UTC"
    assert fmt.utc(None) == "–" and fmt.utc(pd.NaT) == "–"
    assert fmt.utc(pd.Timestamp(moment)) == "2024-05-06 07:08:09.123 UTC"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [("", 5, ""), ("short", 5, "short"), ("longer text", 8, "longe..."), ("abcdef", 3, "abc"), ("abc", 0, "")],
)
def test_shorten(text: str, limit: int, expected: str) -> None:
    out = fmt.shorten(text, limit)
    assert out == expected and len(out) <= max(limit, 0)


def test_fmt_imports_nothing_from_the_harness() -> None:
    # import-linter checks this too; this test also catches harness modules added after the contract was written.
    tree = ast.parse(Path(fmt.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert [m for m in imported if m.split(".")[0] == "harness"] == []
