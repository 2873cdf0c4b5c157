"""Text for people: the one place that shortens payloads and turns numbers into text with their units.

Bytes and rates in IEC units (1024 B -> "1.0 KiB"), Kubernetes quantities ("200Gi"), latencies from nanoseconds,
durations in seconds, counts, relative changes, p-values and UTC times. A missing value (None, NaN, NaT) reads "–".
It imports nothing from the harness, so every layer (errors, clients, loads, report, doctor) can use it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

MISSING = "–"
NBSP = "\u00a0"  # HTML tables join number and unit with it so narrow columns never split "64.0 MiB"

KiB = 1024
_IEC = (("Pi", KiB**5), ("Ti", KiB**4), ("Gi", KiB**3), ("Mi", KiB**2), ("Ki", KiB))


def shorten(text: str, limit: int = 300) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "..." when cut (API error bodies can be megabytes)."""
    if len(text) <= limit:
        return text
    if limit <= 3:
        return text[:limit]
    return text[: limit - 3] + "..."


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # noqa: PLR0124  # NaN and NaT are the only values unequal to themselves
    except TypeError:  # pandas' NA refuses to be a bool
        return True


def _iec(n: float) -> tuple[float, str, float]:
    """(value in the unit, unit prefix, factor), the largest unit the magnitude reaches."""
    for prefix, factor in _IEC:
        if abs(n) >= factor:
            return n / factor, prefix, factor
    return n, "", 1


def _iec_text(n: float, suffix: str, sep: str, trim: bool) -> str:
    value, prefix, factor = _iec(n)
    if not prefix:
        text = f"{n:,.0f}"
        if text.lstrip("-").replace(",", "") == str(KiB):  # 1023.6 B rounds to 1,024 B: say 1.0 KiB instead
            return _iec_text(math.copysign(KiB, n), suffix, sep, trim)
        return f"{text}{sep}{suffix}"
    if trim and math.isclose(value, round(value)):
        return f"{value:,.0f}{sep}{prefix}{suffix}"
    text = f"{value:,.1f}"
    if text.lstrip("-").replace(",", "") == "1024.0" and prefix != _IEC[0][0]:
        return _iec_text(math.copysign(factor * KiB, n), suffix, sep, trim)
    return f"{text}{sep}{prefix}{suffix}"


def iec_bytes(n_bytes: float | None, *, sep: str = " ", trim: bool = False) -> str:
    """``1536`` -> "1.5 KiB"; ``trim`` drops the decimal of whole values ("8 MiB") for prose."""
    if _missing(n_bytes):
        return MISSING
    assert n_bytes is not None
    return _iec_text(n_bytes, "B", sep, trim)


def size(n_bytes: float | None) -> str:
    """Bytes for prose and error messages: whole values without a decimal ("8 MiB"), others with one ("1.2 GiB")."""
    return iec_bytes(n_bytes, trim=True)


def rate(bytes_per_s: float | None, *, sep: str = " ") -> str:
    """``1048576`` -> "1.0 MiB/s"."""
    return MISSING if _missing(bytes_per_s) else iec_bytes(bytes_per_s, sep=sep) + "/s"


def k8s_quantity(n_bytes: float) -> str:
    """Bytes as Kubernetes writes them where exact ("200Gi"), else with one decimal ("1.5Gi"); "512B" below 1Ki."""
    text = iec_bytes(n_bytes, sep="", trim=True)
    return text[:-1] if text.endswith("iB") else text


def exact_quantity(n_bytes: int) -> str:
    """Bytes as a manifest states them: the largest binary unit that divides them exactly ("4Gi", "1536Mi"), else the
    plain byte count. Never rounded, unlike ``k8s_quantity``: a claim or PV a team applies must ask for the size the
    scenario gave, and "4Gi" reads better in `harness values` output than "4294967296"."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        factor = KiB ** ("KMGTPE".index(suffix[0]) + 1)
        if n_bytes and n_bytes % factor == 0:
            return f"{n_bytes // factor}{suffix}"
    return str(n_bytes)


def latency_ns(ns: float | None, *, sep: str = " ", significant: int | None = None) -> str:
    """``1_100_000`` -> "1.10 ms"; ``significant`` digits instead (chart ticks: "100 µs")."""
    if _missing(ns):
        return MISSING
    assert ns is not None
    units = (("s", 1e9, ".2f"), ("ms", 1e6, ".2f"), ("µs", 1e3, ".1f"), ("ns", 1.0, ".0f"))

    def text(i: int) -> str:
        unit, factor, digits = units[i]
        return f"{ns / factor:{f'.{significant}g' if significant else f',{digits}'}}{sep}{unit}"

    for i, (unit, factor, _) in enumerate(units):
        if abs(ns) >= factor or unit == "ns":
            shown = text(i)
            # 999,999 ns rounds to "1,000.0 µs": say "1.00 ms" instead.
            number = shown[: -len(sep + unit)]
            if i > 0 and abs(float(number.replace(",", ""))) >= 1000:
                return text(i - 1)
            return shown
    raise AssertionError("unreachable")


def duration_s(seconds: float | None, *, sep: str = " ") -> str:
    """``12.345`` -> "12.35 s"."""
    return MISSING if _missing(seconds) else f"{seconds:,.2f}{sep}s"


def count(n: float | None) -> str:
    """``1234567`` -> "1,234,567"."""
    return MISSING if _missing(n) else f"{n:,.0f}"


def measure(value: float, unit: str, *, whole: bool = False) -> str:
    """A measured value with its unit: no decimals from 100 up (or when ``whole``), two from 1, else 3 digits."""
    if whole or abs(value) >= 100:
        number = f"{value:,.0f}"
    elif abs(value) >= 1:
        number = f"{value:.2f}"
    else:
        number = f"{value:.3g}"  # sub-millisecond latencies keep their significant digits
    return f"{number} {unit}"


def change_pct(pct: float | None) -> str:
    """A relative change in percent, signed: "+12.3%"."""
    return MISSING if _missing(pct) else f"{pct:+.1f}%"


def p_value(p: float | None) -> str:
    """ "<0.001" below a thousandth, else three decimals."""
    if _missing(p):
        return MISSING
    assert p is not None
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def utc(value: datetime | None) -> str:
    """ "2024-05-06 07:08:09.123 UTC"; a naive datetime is taken as UTC."""
    if _missing(value):
        return MISSING
    assert value is not None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
