"""The ledger held to something it is not fed by: Prometheus' own count of the remote writes it answered.

The ledger and the writer's acknowledged-sample counter are fed by the same acknowledgement, so their agreement says
nothing about an acknowledgement the writer missed, recorded twice or made up. Prometheus counts every request it
answers (``prometheus_http_requests_total{handler="/api/v1/write"}``) after the handler has committed it and before
the answer leaves, so every acknowledgement the writer saw was counted first. Its counters start at 0 with each
process, so the pipeline reads them at the end of every process lifetime it ends (before a fault that replaces
Prometheus, once the load can no longer reach it) and at the load's end, and at each lifetime's start to tell the
processes apart (``process_start_time_seconds``): a process that was replaced unseen, or read while the load could
still write to it, leaves the count incomplete and the check SKIPPED, never guessed.

With the count complete, ``ledger <= server <= ledger + unanswered``: Prometheus may also have committed, and counted,
an attempt whose answer never reached the writer (a timeout), which is no acknowledgement. Outside those bounds the
harness's oracle is wrong, not the storage: ERROR. Fewer answers than the ledger holds: the writer recorded
acknowledgements Prometheus never gave, so the history check may report losses of samples never promised. More
than the bounds allow: acknowledgements were missed, so the history check never looked at their samples.

Only requests are compared: Prometheus' count of the samples it appended
(``prometheus_tsdb_head_samples_appended_total``) includes those of its own scrapes, and the harness's Prometheus
scrapes itself. Where it scrapes nothing (the tests' and the benchmarks' Prometheus) the samples agree exactly too.
"""

from __future__ import annotations

from harness.results.model import AckCount, AckReading, CheckResult, Status

CHECK_NAME = "ack_count"


def count_acks(
    readings: list[AckReading], *, ledger_requests: int, ledger_samples: int, unanswered_attempts: int
) -> AckCount:
    """The ledger's counts beside Prometheus' count summed over the processes ``readings`` saw, in their order: each
    process counts with its last reading, which must have been taken once the load could no longer reach it."""
    problems: list[str] = []
    read: list[AckReading] = []
    for r in readings:
        if r.error is not None:
            problems.append(f"reading {r.label}: {r.error}")
        elif r.process_start_unix_s is None:
            problems.append(f"reading {r.label}: no process_start_time_seconds, so a restart could not be told")
        else:
            read.append(r)
    if not readings:
        problems.append("it was never read")
    total = lifetimes = 0
    for i, r in enumerate(read):
        following = read[i + 1] if i + 1 < len(read) else None
        if following is not None and following.process_start_unix_s == r.process_start_unix_s:
            continue  # the same process, read again later
        lifetimes += 1
        total += r.accepted
        if r.settled:
            continue
        if following is None:
            problems.append(f"the last reading ({r.label}) was taken while the load could still write to it")
        else:
            problems.append(
                f"the reading {r.label} was taken while the load could still write to Prometheus, and the next "
                f"({following.label}) found another process"
            )
    return AckCount(
        ledger_requests=ledger_requests,
        ledger_samples=ledger_samples,
        unanswered_attempts=unanswered_attempts,
        server_requests=None if problems else total,
        lifetimes=lifetimes,
        incomplete="; ".join(problems) or None,
        readings=readings,
    )


def ack_count_check(acks: AckCount) -> CheckResult:
    """PASSED when Prometheus answered 2xx to as many remote writes as the ledger holds (up to the attempts that got
    no answer); ERROR when not (the harness's oracle is wrong); SKIPPED when Prometheus' count is incomplete."""
    ledger, server, unanswered = acks.ledger_requests, acks.server_requests, acks.unanswered_attempts
    details: dict[str, object] = {
        "ledger_requests": ledger,
        "server_requests": server,
        "unanswered_attempts": unanswered,
        "lifetimes": acks.lifetimes,
    }
    if server is None:
        return CheckResult(
            name=CHECK_NAME,
            status=Status.SKIPPED,
            reason=f"Prometheus' own count of the remote writes it answered is incomplete: {acks.incomplete}",
            details=details,
        )
    over = f"over {acks.lifetimes} process lifetime(s)"
    if server < ledger:
        return CheckResult(
            name=CHECK_NAME,
            status=Status.ERROR,
            reason=(
                f"the ledger holds {ledger:,} acknowledged requests but Prometheus answered only {server:,} remote "
                f"writes 2xx {over}: the writer recorded {ledger - server:,} acknowledgement(s) Prometheus never gave, "
                "so the history check expected samples that were never promised"
            ),
            details=details,
        )
    if server > ledger + unanswered:
        return CheckResult(
            name=CHECK_NAME,
            status=Status.ERROR,
            reason=(
                f"Prometheus answered {server:,} remote writes 2xx {over} but the ledger holds {ledger:,} "
                f"acknowledged requests and only {unanswered:,} attempt(s) got no answer: the writer missed "
                f"{server - ledger - unanswered:,} acknowledgement(s), so the history check never looked at their "
                "samples"
            ),
            details=details,
        )
    unseen = ""
    if server > ledger:
        unseen = f", {server - ledger:,} more answered unseen ({unanswered:,} attempt(s) got no answer)"
    return CheckResult(
        name=CHECK_NAME,
        status=Status.PASSED,
        reason=f"Prometheus answered {server:,} remote writes 2xx {over}; the ledger holds {ledger:,}{unseen}",
        details=details,
    )
