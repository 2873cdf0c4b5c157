"""What the TSDB write load expects Prometheus to hold: the series layout, the ledger of acknowledged samples, and
the scrape-mode snapshot.

Every sample the load writes is a pure function of (series slot, churn generation, tick): its labels, its timestamp
(``tick * interval_ms``, on the interval grid) and its value. So the ledger does not store samples; it stores, per
remote-write batch, the runs of consecutive ticks whose request Prometheus acknowledged (``[k0, k1]``). Without
faults a batch has one run, and each fault adds one: a ledger for millions of samples is a few hundred bytes to a few
KB. The history check asks it (and the scrape snapshot, which has the same interface: ``ExpectedHistory``) for
expected counts and value sums per metric, then per series, then for the exact samples of a few series.

Values are multiples of 1/4 below 2**18, so every float64 sum of up to 2**33 of them is exact in any order: Prometheus'
``sum_over_time`` can be compared with the expected sum by equality, as a checksum of the values.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.random  # loaded at import, not inside a timed check (the spot check's first pick)
import numpy.typing as npt

from harness.errors import UsageError
from harness.prom import LabelsKey

LEDGER_FORMAT = "prom-storage-harness/tsdb-ledger"
LEDGER_VERSION = 1
METRIC_PREFIX = "harness_load_"
VALUE_MODULUS = 1_048_573  # a prime below 2**20: values spread over the whole range without a short period
# Weights of slot, generation and tick in a value (the busybox exporter computes the same sum in awk).
SLOT_WEIGHT, GEN_WEIGHT, TICK_WEIGHT = 7919, 104_729, 31_337
_BLOCK_ELEMENTS = 2_000_000  # bounds the numpy temporaries of one expectation block (~16 MB per int64 array)

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SeriesLayout:
    """Which series the load writes and what each sample is; identical on the writer and the checker side."""

    run_id: str
    series: int
    metrics: int
    label_cardinality: int
    interval_ms: int
    batch_series: int
    start_ms: int  # timestamp of the first tick; churn epochs count from here
    churn_every_ms: int | None = None
    churn_fraction: float = 0.0

    @property
    def batches(self) -> int:
        return math.ceil(self.series / self.batch_series)

    @property
    def churn_size(self) -> int:
        """Series slots that get a new generation (a new series) at each churn."""
        if self.churn_every_ms is None:
            return 0
        return max(1, math.ceil(self.churn_fraction * self.series))

    def metric_name(self, slot: int) -> str:
        return f"{METRIC_PREFIX}{slot % self.metrics}"

    def metric_names(self) -> list[str]:
        return [f"{METRIC_PREFIX}{m}" for m in range(min(self.metrics, self.series))]

    def labels(self, slot: int, gen: int) -> dict[str, str]:
        return {
            "__name__": self.metric_name(slot),
            "run_id": self.run_id,
            "series": str(slot),
            "gen": str(gen),
            "shard": str((slot // self.metrics) % self.label_cardinality),
        }

    def key(self, slot: int, gen: int) -> LabelsKey:
        return tuple(sorted(self.labels(slot, gen).items()))

    def batch_slots(self, batch: int) -> range:
        return range(batch * self.batch_series, min(self.series, (batch + 1) * self.batch_series))

    def metric_slots(self, batch: int, metric: int) -> IntArray:
        """The slots of ``batch`` whose series belong to metric number ``metric``."""
        lo, hi = batch * self.batch_series, min(self.series, (batch + 1) * self.batch_series)
        first = lo + (metric - lo) % self.metrics
        return np.arange(first, hi, self.metrics, dtype=np.int64)

    def gens(self, slots: IntArray, ticks: IntArray) -> IntArray:
        """Churn generation of each (slot, tick), shape (len(slots), len(ticks)).

        Churn ``e`` (1, 2, ...) renews the next ``churn_size`` slots in a rotating window, so after ``E`` churns slot
        ``i`` was renewed once for every ``j >= 0`` with ``i + j * series < E * churn_size``.
        """
        if self.churn_every_ms is None:
            return np.zeros((len(slots), len(ticks)), dtype=np.int64)
        epochs = np.maximum(0, (ticks * self.interval_ms - self.start_ms) // self.churn_every_ms)
        covered = epochs[None, :] * self.churn_size
        result: IntArray = np.maximum(0, -((slots[:, None] - covered) // self.series))
        return result

    def value_units(self, slots: IntArray, gens: IntArray, ticks: IntArray) -> IntArray:
        """Sample values times 4 (integers), shape (len(slots), len(ticks)); ``gens`` has that shape too."""
        mixed = slots[:, None] * SLOT_WEIGHT + gens * GEN_WEIGHT + ticks[None, :] * TICK_WEIGHT
        result: IntArray = mixed % VALUE_MODULUS
        return result

    def value(self, slot: int, gen: int, tick: int) -> float:
        return float((slot * SLOT_WEIGHT + gen * GEN_WEIGHT + tick * TICK_WEIGHT) % VALUE_MODULUS) / 4.0


class ExpectedHistory(Protocol):
    """What Prometheus must still hold: the ledger (remote write) or a snapshot taken before a fault (scrape)."""

    @property
    def run_id(self) -> str: ...

    @property
    def interval_ms(self) -> int: ...

    def frozen(self) -> ExpectedHistory:
        """This expectation as it is now, unchanged by what is recorded later: one check must read one state."""
        ...

    def acknowledged(self, cutoff_ms: int | None = None) -> int:
        """Expected samples with a timestamp at or before ``cutoff_ms`` (all when None)."""
        ...

    def metric_names(self) -> list[str]: ...

    def series_per_metric(self) -> int: ...

    def span_ms(self, cutoff_ms: int) -> tuple[int, int] | None:
        """Timestamps of the first and last expected sample at or before ``cutoff_ms``."""
        ...

    def count(self, metric: str, lo_ms: int, hi_ms: int) -> int:
        """``totals``' count alone, without computing a value: what the history check sizes its queries by before
        it sends them (the sums are computed while Prometheus answers)."""
        ...

    def totals(self, metric: str, lo_ms: int, hi_ms: int) -> tuple[int, float]:
        """Count and value sum of the expected samples of ``metric`` with ``lo_ms < timestamp <= hi_ms``."""
        ...

    def per_series(self, metric: str, lo_ms: int, hi_ms: int) -> dict[LabelsKey, tuple[int, float]]: ...

    def samples(self, keys: list[LabelsKey], lo_ms: int, hi_ms: int) -> dict[LabelsKey, dict[int, float]]: ...

    def some_series(self, metric: str, lo_ms: int, hi_ms: int, n: int, seed: int) -> list[LabelsKey]:
        """Up to ``n`` series of ``metric`` expected in ``(lo_ms, hi_ms]``, picked by ``seed`` (the history check's
        spot check compares them sample by sample)."""
        ...


class Ledger:
    """The acknowledged remote-write requests of one run, as runs of ticks per batch. Thread-safe."""

    def __init__(self, layout: SeriesLayout) -> None:
        self.layout = layout
        self._runs: list[list[list[int]]] = [[] for _ in range(layout.batches)]
        self._lock = threading.Lock()

    @property
    def run_id(self) -> str:
        return self.layout.run_id

    @property
    def interval_ms(self) -> int:
        return self.layout.interval_ms

    # --- recording -------------------------------------------------------------------------------------

    def record_ack(self, tick: int, batch: int) -> None:
        """Prometheus acknowledged the request carrying ``batch``'s samples at ``tick``. Ticks only go forward."""
        with self._lock:
            runs = self._runs[batch]
            if runs and runs[-1][1] + 1 == tick:
                runs[-1][1] = tick
            elif runs and runs[-1][1] >= tick:
                raise ValueError(f"batch {batch}: tick {tick} recorded after tick {runs[-1][1]}")
            else:
                runs.append([tick, tick])

    def _snapshot(self) -> list[list[tuple[int, int]]]:
        with self._lock:
            return [[(a, b) for a, b in runs] for runs in self._runs]

    def frozen(self) -> Ledger:
        """A copy that later acknowledgements leave alone. The history check asks a ledger several times (totals
        first, the drill-down later); while the load writes, acknowledgements arriving in between would count as
        present without counting as acknowledged, and hide as many lost samples."""
        copy = Ledger(self.layout)
        copy._runs = [[[a, b] for a, b in runs] for runs in self._snapshot()]
        return copy

    # --- persistence -----------------------------------------------------------------------------------

    def to_json(self) -> str:
        doc = {
            "format": LEDGER_FORMAT,
            "version": LEDGER_VERSION,
            "layout": asdict(self.layout),
            "runs": self._snapshot(),
        }
        return json.dumps(doc, separators=(",", ":"))

    def save(self, path: Path) -> int:
        """Write the ledger atomically; returns its size in bytes."""
        text = self.to_json()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return len(text)

    @classmethod
    def load(cls, path: Path) -> Ledger:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"{path}: cannot read the TSDB ledger: {e}") from e
        if doc.get("format") != LEDGER_FORMAT or doc.get("version") != LEDGER_VERSION:
            raise UsageError(
                f"{path}: not a version {LEDGER_VERSION} TSDB ledger (format {doc.get('format')!r}, "
                f"version {doc.get('version')!r})"
            )
        ledger = cls(SeriesLayout(**doc["layout"]))
        ledger._runs = [[[int(a), int(b)] for a, b in runs] for runs in doc["runs"]]
        return ledger

    # --- expectations ----------------------------------------------------------------------------------

    def acknowledged(self, cutoff_ms: int | None = None) -> int:
        """Samples acknowledged with a timestamp at or before ``cutoff_ms`` (all when None)."""
        last = None if cutoff_ms is None else cutoff_ms // self.layout.interval_ms
        total = 0
        for batch, runs in enumerate(self._snapshot()):
            width = len(self.layout.batch_slots(batch))
            for k0, k1 in runs:
                hi = k1 if last is None else min(k1, last)
                if hi >= k0:
                    total += (hi - k0 + 1) * width
        return total

    def acknowledged_requests(self) -> int:
        """Remote-write requests acknowledged: one per batch and tick in the runs. Prometheus counts the requests it
        answers on its own, so this is what the ledger can be held to from outside (``ack_count``)."""
        return sum(k1 - k0 + 1 for runs in self._snapshot() for k0, k1 in runs)

    def metric_names(self) -> list[str]:
        return self.layout.metric_names()

    def series_per_metric(self) -> int:
        return math.ceil(self.layout.series / self.layout.metrics)

    def span_ms(self, cutoff_ms: int) -> tuple[int, int] | None:
        last = cutoff_ms // self.layout.interval_ms
        ticks = [k for runs in self._snapshot() for k0, k1 in runs if k0 <= last for k in (k0, min(k1, last))]
        if not ticks:
            return None
        return min(ticks) * self.layout.interval_ms, max(ticks) * self.layout.interval_ms

    def _blocks(self, metric: str, lo_ms: int, hi_ms: int) -> Iterator[tuple[IntArray, IntArray, IntArray]]:
        """(slots, ticks, gens) blocks covering the acknowledged samples of ``metric`` in ``(lo_ms, hi_ms]``."""
        m = int(metric.removeprefix(METRIC_PREFIX))
        k_lo, k_hi = lo_ms // self.layout.interval_ms + 1, hi_ms // self.layout.interval_ms
        for batch, runs in enumerate(self._snapshot()):
            slots = self.layout.metric_slots(batch, m)
            if len(slots) == 0:
                continue
            step = max(1, _BLOCK_ELEMENTS // len(slots))
            for k0, k1 in runs:
                a, b = max(k0, k_lo), min(k1, k_hi)
                for start in range(a, b + 1, step):
                    ticks = np.arange(start, min(b, start + step - 1) + 1, dtype=np.int64)
                    yield slots, ticks, self.layout.gens(slots, ticks)

    def count(self, metric: str, lo_ms: int, hi_ms: int) -> int:
        m = int(metric.removeprefix(METRIC_PREFIX))
        k_lo, k_hi = lo_ms // self.layout.interval_ms + 1, hi_ms // self.layout.interval_ms
        total = 0
        for batch, runs in enumerate(self._snapshot()):
            width = len(self.layout.metric_slots(batch, m))
            for k0, k1 in runs if width else ():
                total += max(0, min(k1, k_hi) - max(k0, k_lo) + 1) * width
        return total

    def totals(self, metric: str, lo_ms: int, hi_ms: int) -> tuple[int, float]:
        count = 0
        units = 0
        for slots, ticks, gens in self._blocks(metric, lo_ms, hi_ms):
            count += len(slots) * len(ticks)
            units += int(self.layout.value_units(slots, gens, ticks).sum())
        return count, units / 4.0

    def per_series(self, metric: str, lo_ms: int, hi_ms: int) -> dict[LabelsKey, tuple[int, float]]:
        acc: dict[tuple[int, int], list[int]] = {}
        for slots, ticks, gens in self._blocks(metric, lo_ms, hi_ms):
            units = self.layout.value_units(slots, gens, ticks)
            if self.layout.churn_every_ms is None:
                for slot, row_units in zip(slots.tolist(), units.sum(axis=1).tolist(), strict=True):
                    entry = acc.setdefault((slot, 0), [0, 0])
                    entry[0] += len(ticks)
                    entry[1] += row_units
                continue
            # With churn a slot's row can span generations: group the cells by (slot, gen).
            combined = slots[:, None] * (int(gens.max()) + 1) + gens
            uniq, inverse = np.unique(combined.ravel(), return_inverse=True)
            counts = np.bincount(inverse, minlength=len(uniq))
            sums = np.bincount(inverse, weights=units.ravel().astype(np.float64), minlength=len(uniq))
            width = int(gens.max()) + 1
            for code, n, s in zip(uniq.tolist(), counts.tolist(), sums.tolist(), strict=True):
                entry = acc.setdefault((code // width, code % width), [0, 0])
                entry[0] += n
                entry[1] += round(s)
        return {self.layout.key(slot, gen): (n, units / 4.0) for (slot, gen), (n, units) in acc.items()}

    def samples(self, keys: list[LabelsKey], lo_ms: int, hi_ms: int) -> dict[LabelsKey, dict[int, float]]:
        runs_by_batch = self._snapshot()
        k_lo, k_hi = lo_ms // self.layout.interval_ms + 1, hi_ms // self.layout.interval_ms
        out: dict[LabelsKey, dict[int, float]] = {}
        for key in keys:
            labels = dict(key)
            slot, gen = int(labels["series"]), int(labels["gen"])
            slots = np.array([slot], dtype=np.int64)
            expected: dict[int, float] = {}
            for k0, k1 in runs_by_batch[slot // self.layout.batch_series]:
                a, b = max(k0, k_lo), min(k1, k_hi)
                if a > b:
                    continue
                ticks = np.arange(a, b + 1, dtype=np.int64)
                gens = self.layout.gens(slots, ticks)
                units = self.layout.value_units(slots, gens, ticks)[0]
                mine = gens[0] == gen
                for tick, u in zip(ticks[mine].tolist(), units[mine].tolist(), strict=True):
                    expected[tick * self.layout.interval_ms] = u / 4.0
            out[key] = expected
        return out

    def some_series(self, metric: str, lo_ms: int, hi_ms: int, n: int, seed: int) -> list[LabelsKey]:
        m = int(metric.removeprefix(METRIC_PREFIX))
        slots = np.arange(m, self.layout.series, self.layout.metrics, dtype=np.int64)
        if len(slots) == 0 or n <= 0:
            return []
        picked = slots[_pick(len(slots), n, seed)]
        last = np.array([hi_ms // self.layout.interval_ms], dtype=np.int64)
        gens = self.layout.gens(picked, last)[:, 0]  # with churn: the generation at the window's end
        return [self.layout.key(slot, gen) for slot, gen in zip(picked.tolist(), gens.tolist(), strict=True)]


def _pick(population: int, n: int, seed: int) -> list[int]:
    """``n`` distinct indexes below ``population``, the same for the same seed."""
    rng = np.random.default_rng(seed % (1 << 63))
    return sorted(rng.choice(population, size=min(n, population), replace=False).tolist())


class ScrapeSnapshot:
    """Raw samples Prometheus showed for a run just before a fault (scrape mode): after the fault they must remain.

    A scrape has no acknowledgement, so what Prometheus already returned is the strongest promise there is.
    """

    def __init__(self, run_id: str, interval_ms: int, samples: dict[LabelsKey, dict[int, float]]) -> None:
        self._run_id = run_id
        self._interval_ms = interval_ms
        self._samples = samples

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def interval_ms(self) -> int:
        return self._interval_ms

    def frozen(self) -> ScrapeSnapshot:
        return self  # taken once, never changed

    def acknowledged(self, cutoff_ms: int | None = None) -> int:
        return sum(1 for s in self._samples.values() for t in s if cutoff_ms is None or t <= cutoff_ms)

    def metric_names(self) -> list[str]:
        return sorted({dict(k)["__name__"] for k in self._samples})

    def series_per_metric(self) -> int:
        return max(1, math.ceil(len(self._samples) / max(1, len(self.metric_names()))))

    def span_ms(self, cutoff_ms: int) -> tuple[int, int] | None:
        ts = [t for s in self._samples.values() for t in s if t <= cutoff_ms]
        return (min(ts), max(ts)) if ts else None

    def per_series(self, metric: str, lo_ms: int, hi_ms: int) -> dict[LabelsKey, tuple[int, float]]:
        out: dict[LabelsKey, tuple[int, float]] = {}
        for key, samples in self._samples.items():
            if dict(key)["__name__"] != metric:
                continue
            values = [v for t, v in samples.items() if lo_ms < t <= hi_ms]
            if values:
                out[key] = (len(values), math.fsum(values))
        return out

    def count(self, metric: str, lo_ms: int, hi_ms: int) -> int:
        return self.totals(metric, lo_ms, hi_ms)[0]

    def totals(self, metric: str, lo_ms: int, hi_ms: int) -> tuple[int, float]:
        per = self.per_series(metric, lo_ms, hi_ms).values()
        return sum(n for n, _ in per), math.fsum(s for _, s in per)

    def samples(self, keys: list[LabelsKey], lo_ms: int, hi_ms: int) -> dict[LabelsKey, dict[int, float]]:
        return {k: {t: v for t, v in self._samples.get(k, {}).items() if lo_ms < t <= hi_ms} for k in keys}

    def some_series(self, metric: str, lo_ms: int, hi_ms: int, n: int, seed: int) -> list[LabelsKey]:
        keys = sorted(k for k in self._samples if dict(k)["__name__"] == metric)
        return [keys[i] for i in _pick(len(keys), n, seed)] if keys and n > 0 else []
