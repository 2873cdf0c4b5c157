"""Facts read from Prometheus' own log: the WAL replay duration and progress, and known storage error strings.

Prometheus logs ``msg="WAL replay completed" ... total_replay_duration=550.123ms`` (logfmt, 2.x) or the same keys in
slog's format (3.x); the value is a Go duration. While it opens its TSDB it logs each step of the replay
(``Replaying WAL, this may take a while``, then ``WAL segment loaded segment=N maxSegment=M`` as each segment is
done). The storage errors are the ones the field notes ran into.
"""

from __future__ import annotations

import re
from datetime import datetime

_GO_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_REPLAY = re.compile(r"total_replay_duration=\"?([0-9a-zµ.]+)")

# Substrings of fatal errors, most specific first; each maps to what it usually means.
STORAGE_ERRORS: list[tuple[str, str]] = [
    ("error loading config", "Prometheus could not read its config file (check the user it runs as can reach it)"),
    ("lock DB directory", "another Prometheus holds the TSDB lock, or the lock file is not writable"),
    ("permission denied", "the TSDB directory is not writable by the Prometheus user (uid/gid, fsGroup, NFS squash)"),
    ("no space left on device", "the volume is full"),
    ("read-only file system", "the volume is mounted read-only"),
]


def parse_go_duration_s(text: str) -> float:
    """Parse a Go ``time.Duration`` string such as ``1m2.5s`` or ``550.1ms`` into seconds."""
    pos = 0
    total = 0.0
    for m in _GO_DURATION_PART.finditer(text):
        if m.start() != pos:
            raise ValueError(f"not a Go duration: {text!r}")
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"not a Go duration: {text!r}")
    return total


def wal_replay_durations_s(log_text: str) -> list[float]:
    """Every ``total_replay_duration`` in the log, in order (one per start of the process)."""
    out = []
    for m in _REPLAY.finditer(log_text):
        try:
            out.append(parse_go_duration_s(m.group(1)))
        except ValueError:
            continue
    return out


# The steps of opening the TSDB, in the order Prometheus logs them (head.go), and what each says about the replay.
_START = re.compile(r'msg="?Starting Prometheus')
_OPENING: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r'msg="?Replaying on-disk memory mappable chunks'), "replaying its on-disk memory-mappable chunks"),
    (re.compile(r'msg="?On-disk memory mappable chunks replay completed'), "replaying its WAL checkpoint"),
    (re.compile(r'msg="?WAL checkpoint loaded'), "replaying its WAL"),
    (re.compile(r'msg="?Replaying WAL, this may take a while'), "replaying its WAL"),
]
_SEGMENT = re.compile(r'msg="?WAL segment loaded"?.*?\bsegment=([0-9]+)\b.*?\bmaxSegment=([0-9]+)')
_COMPLETED = re.compile(r'msg="?WAL replay completed')


def replay_progress(log_text: str, now_unix_s: float) -> str:
    """Where the last start of Prometheus in ``log_text`` stands in replaying its WAL, from its own log lines: what
    it is replaying since when, and how many WAL segments it has loaded ("" when its log says nothing of a replay).
    For a Prometheus that answers /-/healthy but not /-/ready, this is the why."""
    lines = log_text.splitlines()
    starts = [i for i, line in enumerate(lines) if _START.search(line)]
    lines = lines[starts[-1] :] if starts else lines
    doing, since, last = "", None, None
    segments: tuple[int, int] | None = None
    for line in lines:
        if _COMPLETED.search(line):
            durations = wal_replay_durations_s(line)
            took = f" in {durations[0]:.2f} s" if durations else ""
            return f"its WAL replay had completed{took}, but it was not ready yet (its last line: {_quote(lines[-1])})"
        m = _SEGMENT.search(line)
        if m:
            segments, last = (int(m.group(1)), int(m.group(2))), line_time_unix_s(line)
            continue
        for pattern, what in _OPENING:
            if pattern.search(line):
                if what != doing:
                    doing, since = what, line_time_unix_s(line)
                break
    if not doing:
        return ""
    ago = f" for {now_unix_s - since:.1f} s" if since is not None else ""
    if segments is None:
        loaded = ", no WAL segment loaded yet" if doing == "replaying its WAL" else ""
    else:
        segment, most = segments
        when = f", {now_unix_s - last:.1f} s ago" if last is not None else ""
        loaded = f", WAL segments loaded up to {segment} of {most} (the last{when})"
    return f"it had been {doing}{ago}{loaded}"


def _quote(line: str, most: int = 240) -> str:
    return "'" + (line.strip()[:most] + ("..." if len(line.strip()) > most else "")) + "'"


def storage_errors(log_text: str) -> list[tuple[str, str]]:
    """Log lines that name a known storage error, with what that error usually means."""
    found = []
    for line in log_text.splitlines():
        lower = line.lower()
        for needle, meaning in STORAGE_ERRORS:
            if needle.lower() in lower and ("level=error" in lower or "err=" in lower or "level=ERROR" in line):
                found.append((line.strip(), meaning))
                break
    return found


_TIME = re.compile(r"\b(?:time|ts)=\"?([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(?:Z|[+-][0-9]{2}:?[0-9]{2}))")
_LEVEL = re.compile(r"\blevel=\"?([A-Za-z]+)")
_WORRYING = {"warn", "warning", "error", "fatal", "panic"}


def line_time_unix_s(line: str) -> float | None:
    """The time a log line was written (``time=`` in 3.x, ``ts=`` in 2.x; RFC 3339), None without one."""
    m = _TIME.search(line)
    if m is None:
        return None
    try:
        return datetime.fromisoformat(m.group(1)).timestamp()
    except ValueError:
        return None


def warnings_between(log_text: str, since_unix_s: float, until_unix_s: float, limit: int = 20) -> list[str]:
    """The warning and error lines Prometheus wrote in the window, in order; a line without a time is kept when it
    follows one that was in the window (a Go panic's stack). A line that repeats but for its time (one per rejected
    request) is quoted once, with how often and until when. At most ``limit``, then a line saying how many more."""
    seen: dict[str, tuple[str, int, str]] = {}  # the line without its time -> (first line, count, last time)
    inside = False
    for line in log_text.splitlines():
        at = line_time_unix_s(line)
        if at is not None:
            inside = since_unix_s <= at <= until_unix_s
            level = _LEVEL.search(line)
            worrying = level is not None and level.group(1).lower() in _WORRYING
        else:
            worrying = inside and bool(line.strip())
        if not (inside and worrying):
            continue
        key = _TIME.sub("", line.strip())
        stamp = _TIME.search(line)
        first, count, _last = seen.get(key, (line.strip(), 0, ""))
        seen[key] = (first, count + 1, stamp.group(1) if stamp else "")
    found = [
        first + (f"  [{count} such lines, the last at {last}]" if count > 1 and last else "")
        for first, count, last in seen.values()
    ]
    if len(found) > limit:
        found = [*found[:limit], f"... and {len(found) - limit} more"]
    return found
