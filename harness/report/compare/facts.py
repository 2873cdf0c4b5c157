"""What each compared run was measured under, and whether runs are comparable: the facts a metric depends on, the
storage label of a storage comparison, the references to the runs, and the setup notes and differences.

Runs are comparable only when what was measured matches: fio job settings and fio version for fio's numbers, the
Prometheus version and the write load for recovery and replay, and for all of them the runtime, the node and its
kernel. A metric whose inputs differ is "not comparable" and the comparison names exactly what differs (pyperf
refuses such runs); ``allow_different`` accepts named differences (e.g. CI runners with new host names every
night). Different storage (backend, filesystem, data path, volume, a fio throttle standing for a slower volume) is
the point of "local vs NFS": allowed, and the comparison is labelled a storage comparison.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from harness import fmt
from harness.results.model import FioJobResult, RunResult, Status

# What must match for a metric to be compared, by the name ``allow_different`` takes.
FACTS: dict[str, str] = {
    "runtime": "runtime",
    "node": "node",
    "kernel": "kernel",
    "prometheus": "Prometheus version",
    "fio": "fio version",
    "load": "TSDB write load",
    "fio-settings": "fio job settings",
}
FIO_FACTS = ("runtime", "node", "kernel", "fio")
PROMETHEUS_FACTS = ("runtime", "node", "kernel", "prometheus", "load")
# fio arguments that name where this run put its files, not what was measured.
_FIO_PATH_ARGS = ("--name=", "--directory=", "--output=", "--write_bw_log=", "--write_iops_log=", "--write_lat_log=")
# A throttle (the scenario's rate / rate_iops) models slower storage, like a cloud volume's provisioned IOPS: it is
# part of the storage compared, not of what fio was asked to measure.
_FIO_THROTTLE_ARGS = ("--rate=", "--rate_iops=")


@dataclass(frozen=True)
class Difference:
    """A fact one metric was measured under that differs between the compared runs."""

    fact: str  # its FACTS name
    text: str  # for people, e.g. "fio job settings: a (none) vs b --iodepth=64"


@dataclass(frozen=True)
class RunRef:
    """One compared run, as the comparison names it."""

    label: str
    path: str
    scenario_name: str
    run_id: str
    started_utc: str
    runtime: str
    data_filesystem: str
    prometheus_version: str
    verdict: Status
    complete: bool
    # Kubernetes runs: what the volume was (provisioner or PV source) and the nodes' kernels and kubelets.
    volume: str = "–"
    nodes: str = "–"
    storage: str = "–"  # backend, filesystem and data path: what a storage comparison compares
    facts: dict[str, str] = field(default_factory=dict)  # FACTS name -> value


def fio_settings(job: FioJobResult) -> str:
    """What fio was asked to measure, without where this run put its files: the argv less paths and names."""
    return " ".join(a for a in job.argv[1:] if not a.startswith(_FIO_PATH_ARGS + _FIO_THROTTLE_ARGS))


def _throttles(result: RunResult) -> str:
    """The fio jobs' throttles, e.g. "randwrite-4k --rate_iops=500"; "" when none is."""
    by_job = {j.job_key: " ".join(a for a in j.argv if a.startswith(_FIO_THROTTLE_ARGS)) for j in result.fio}
    return "; ".join(f"{job} {args}" for job, args in by_job.items() if args)


def run_facts(result: RunResult) -> dict[str, str]:
    env = result.environment
    if result.cluster is not None and result.cluster.nodes:
        node = ", ".join(sorted({n.name for n in result.cluster.nodes}))
        kernel = ", ".join(sorted({n.kernel for n in result.cluster.nodes}))
    else:
        node, kernel = env.hostname, env.kernel
    tsdb = result.scenario.get("loads", {}).get("tsdb") if isinstance(result.scenario, dict) else None
    return {
        "runtime": result.runtime,
        "node": node,
        "kernel": kernel,
        "prometheus": env.prometheus_version or "unknown",
        "fio": env.fio_version or "unknown",
        "load": json.dumps(tsdb, sort_keys=True) if tsdb else "none",
    }


def storage_facts(result: RunResult) -> str:
    storage = result.scenario.get("storage", {}) if isinstance(result.scenario, dict) else {}
    env = result.environment
    words = [str(storage.get("backend", "?")), env.data_filesystem or "unknown filesystem"]
    if env.data_access:
        words.append(env.data_access)
    if throttles := _throttles(result):
        words.append(f"fio throttled ({throttles})")
    return ", ".join(words)


def metric_differences(runs: list[tuple[str, dict[str, str]]], allowed: frozenset[str]) -> list[Difference]:
    """What differs in the facts one metric was measured under, across both sides' runs given as (run label, facts)
    (allowed ones left out)."""
    out = []
    for name in runs[0][1]:
        if name in allowed:
            continue
        first = runs[0][1].get(name, "?")
        other = next(((label, f.get(name, "?")) for label, f in runs if f.get(name, "?") != first), None)
        if other is None:
            continue
        if name == "fio-settings":
            # Only the arguments that differ: the rest of a long command line hides them.
            a, b = first.split(), other[1].split()
            first = " ".join(x for x in a if x not in b) or "(none)"
            other = (other[0], " ".join(x for x in b if x not in a) or "(none)")
        out.append(Difference(name, f"{FACTS[name]}: {runs[0][0]} {first} vs {other[0]} {other[1]}"))
    return out


def run_ref(path: Path, result: RunResult) -> RunRef:
    env = result.environment
    return RunRef(
        label=f"{result.scenario_name}/{result.run_id}",
        path=str(path),
        scenario_name=result.scenario_name,
        run_id=result.run_id,
        started_utc=fmt.utc(result.started_at.astimezone(UTC)),
        runtime=result.runtime,
        data_filesystem=env.data_filesystem or "unknown",
        prometheus_version=env.prometheus_version or "unknown",
        verdict=result.verdict,
        complete=result.complete,
        storage=storage_facts(result),
        facts=run_facts(result),
        **_cluster_ref(result),
    )


def _cluster_ref(result: RunResult) -> dict[str, str]:
    cluster = result.cluster
    if cluster is None:
        return {}
    volume = cluster.volume
    kind = "emptyDir"
    if volume is not None:
        # The source's kind and server, portal or driver, not its path: each run has a directory of its own.
        words = (volume.source or "unbound").split()
        where = words[1].split("/")[0].rstrip(":") if len(words) > 1 else ""
        kind = f"{volume.provisioner or 'no class'}, {' '.join(filter(None, (words[0], where)))}"
    nodes = "; ".join(sorted({f"kernel {n.kernel}, kubelet {n.kubelet}, {n.container_runtime}" for n in cluster.nodes}))
    return {"volume": kind, "nodes": f"{cluster.server_version}: {nodes or 'no node'}"}


def _listing(refs: list[RunRef], get: Callable[[RunRef], str]) -> str:
    by_value: dict[str, list[str]] = defaultdict(list)
    for r in refs:
        by_value[get(r)].append(r.label)
    return "; ".join(f"{v} ({', '.join(labels)})" for v, labels in by_value.items())


def _fact(name: str) -> Callable[[RunRef], str]:
    return lambda r: r.facts.get(name, "?")


def _attribute(attr: str) -> Callable[[RunRef], str]:
    return lambda r: str(getattr(r, attr))


def setup(refs: list[RunRef], allowed: frozenset[str]) -> tuple[str, list[str], list[str]]:
    """(kind, differences, notes) of the whole comparison."""
    differences, notes = [], []
    for name, what in FACTS.items():
        if name == "fio-settings":
            continue  # per job: named on the metrics it concerns
        if len({r.facts.get(name) for r in refs}) > 1:
            text = f"different {what}: {_listing(refs, _fact(name))}"
            if name in allowed:
                notes.append(text + " (allowed)")
            else:
                differences.append(text)
    kind = "same setup"
    for attr, what in (("storage", "storage"), ("volume", "volumes (provisioner, source)")):
        if len({getattr(r, attr) for r in refs}) > 1:
            kind = "storage comparison"
            notes.append(f"different {what}: {_listing(refs, _attribute(attr))}")
    if len({r.scenario_name for r in refs}) > 1:
        notes.append(f"different scenarios: {_listing(refs, lambda r: r.scenario_name)}")
    if len({r.nodes for r in refs}) > 1:
        notes.append(
            f"different clusters (API server; nodes' kernel, kubelet, container runtime): "
            f"{_listing(refs, lambda r: r.nodes)}"
        )
    notes += [
        f"{r.label} is incomplete: missing metrics may just not have been measured" for r in refs if not r.complete
    ]
    return kind, differences, notes
