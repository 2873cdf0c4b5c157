"""Charts for the report: pure functions from the frames in ``harness.report.frames`` to PNG bytes.

Each chart builds its own ``matplotlib.figure.Figure`` on an Agg canvas and never touches ``pyplot``, so no global
figure or style state leaks from one chart (or one test) into the next, and no display is ever needed. A chart
function returns ``None`` when its frame has nothing to draw; the HTML layer then shows a note instead.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from harness import fmt, stages
from harness.report.frames import LATENCY_PERCENTILES

_DPI = 100
_WIDTH_IN = 11.0
# Colour-blind-safe palette (Okabe-Ito); the order is stable so a job keeps its colour across charts of one report.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
_FAULT_COLOUR = "#B22222"
_MIB = 1024.0 * 1024.0


def _new_figure(height_in: float) -> Figure:
    fig = Figure(figsize=(_WIDTH_IN, height_in), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No metadata: the same result renders to the same bytes, which keeps re-rendered reports diffable.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _thousands(value: float, _pos: int) -> str:
    return fmt.count(value)


def _style(ax: Any) -> None:
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def fio_throughput_chart(timeseries: pd.DataFrame) -> bytes | None:
    """Bandwidth (MiB/s) and IOPS over time, one line per fio job direction."""
    if timeseries.empty:
        return None
    fig = _new_figure(5.5)
    ax_bw, ax_iops = fig.subplots(2, 1, sharex=True)
    for i, (series, group) in enumerate(timeseries.groupby("series", sort=True)):
        colour = PALETTE[i % len(PALETTE)]
        ordered = group.sort_values("t_s")
        ax_bw.plot(ordered["t_s"], ordered["bw_bytes_per_s"] / _MIB, label=str(series), color=colour, marker=".")
        ax_iops.plot(ordered["t_s"], ordered["iops"], label=str(series), color=colour, marker=".")
    ax_bw.set_ylabel("bandwidth (MiB/s)")
    ax_iops.set_ylabel("IOPS")
    ax_iops.yaxis.set_major_formatter(FuncFormatter(_thousands))
    ax_iops.set_xlabel("seconds since the fio job started")
    ax_bw.set_title("fio bandwidth and IOPS over time")
    for ax in (ax_bw, ax_iops):
        _style(ax)
        ax.set_ylim(bottom=0)
    ax_bw.legend(loc="best", fontsize="small")
    return _png(fig)


def fio_latency_chart(latency: pd.DataFrame) -> bytes | None:
    """Grouped bars: latency percentiles per job direction, on a log scale (p99.9 is often 100x p50)."""
    if latency.empty:
        return None
    pivot = latency.pivot_table(index="series", columns="percentile", values="latency_ns", aggfunc="first")
    percentiles = [p for p in LATENCY_PERCENTILES if p in pivot.columns]
    fig = _new_figure(4.5)
    ax = fig.subplots()
    width = 0.8 / max(len(percentiles), 1)
    for i, pct in enumerate(percentiles):
        xs = [x + (i - (len(percentiles) - 1) / 2) * width for x in range(len(pivot.index))]
        values_us = [v / 1e3 if not math.isnan(v) else 0.0 for v in pivot[pct].tolist()]
        bars = ax.bar(xs, values_us, width=width, label=pct, color=PALETTE[i % len(PALETTE)])
        labels = [fmt.latency_ns(v * 1e3, significant=3) if v > 0 else "" for v in values_us]
        ax.bar_label(bars, labels=labels, fontsize="x-small", rotation=90, padding=2)
    ax.set_xticks(range(len(pivot.index)), [str(s) for s in pivot.index])
    ax.set_yscale("log")
    values = [v / 1e3 for v in latency["latency_ns"] if v > 0]
    if values:
        # Log axes ignore margins: leave room (in decades) above the tallest bar for its rotated label.
        ax.set_ylim(min(values) / 3, max(values) * 60)
    ax.set_ylabel("latency (µs, log scale)")
    ax.set_title("fio latency percentiles")
    _style(ax)
    ax.legend(loc="upper left", fontsize="small", ncols=len(percentiles))
    return _png(fig)


def ingest_chart(
    ingest: pd.DataFrame, faults: pd.DataFrame, loss_windows: Sequence[tuple[float, float]] = ()
) -> bytes | None:
    """Acknowledged and failed samples per second, with a labelled vertical marker at each injected fault, the
    window of each fault that lasted (injected to lifted) shaded, and the samples' loss windows hatched."""
    if ingest.empty:
        return None
    fig = _new_figure(4.5)
    ax = fig.subplots()
    for row in faults.to_dict("records"):
        lifted = _num(row["lifted_at_s"])
        if lifted is not None:
            ax.axvspan(float(row["injected_at_s"]), lifted, color=_FAULT_COLOUR, alpha=0.08, linewidth=0)
    for n, (start, end) in enumerate(loss_windows):
        # At least a second wide, so a loss of one tick is still visible.
        ax.axvspan(
            start,
            max(end, start + 1.0),
            facecolor="none",
            edgecolor=PALETTE[3],
            hatch="//",
            linewidth=0,
            label="samples lost" if n == 0 else None,
        )
    ax.plot(ingest["t_s"], ingest["acked_per_s"], label="acknowledged samples/s", color=PALETTE[0], linewidth=1.2)
    if (ingest["failed_per_s"] > 0).any():
        ax.plot(ingest["t_s"], ingest["failed_per_s"], label="failed samples/s", color=PALETTE[3], linewidth=1.2)
    # Headroom above the highest rate, so the fault labels never sit on the line.
    peak = float(max(ingest["acked_per_s"].max(), ingest["failed_per_s"].max(), 1))
    top = peak * 1.35
    ax.set_ylim(0, top)
    for row in faults.to_dict("records"):
        injected = float(row["injected_at_s"])
        ax.axvline(injected, color=_FAULT_COLOUR, linestyle="--", linewidth=1)
        ax.annotate(
            f"#{row['index']} {row['action']}",
            xy=(injected, top),
            xytext=(3, -3),
            textcoords="offset points",
            rotation=90,
            va="top",
            fontsize="small",
            color=_FAULT_COLOUR,
        )
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("samples per second")
    ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.set_title("TSDB ingest rate" + (" with faults" if not faults.empty else ""))
    _style(ax)
    fig.legend(loc="outside lower center", ncols=2, fontsize="small", frameon=False)
    return _png(fig)


# The colour of the segment that ends at a stage: the time it took to get there from the stage before.
_STAGE_COLOURS = {
    "container_ended": "#BBBBBB",
    "pod_created": "#999999",
    "scheduled": "#666666",
    "volume_attached": PALETTE[5],
    "volumes_mounted": PALETTE[0],
    "container_started": PALETTE[6],
    "healthy": PALETTE[4],
    "ready": PALETTE[1],
    "first_sample": PALETTE[2],
}


def _num(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def recovery_timeline_chart(faults: pd.DataFrame, stage_frame: pd.DataFrame) -> bytes | None:
    """One horizontal bar per fault, cut into its recovery stages (each segment: the time from the stage before to
    the one it is named after); the WAL replay, from Prometheus' log, as a thin bar ending at /-/ready."""
    if faults.empty:
        return None
    fig = _new_figure(1.6 + 0.7 * len(faults))
    ax = fig.subplots()
    labelled: set[str] = set()
    ticks: list[str] = []
    for y, row in enumerate(faults.to_dict("records")):
        ticks.append(f"#{row['index']} {row['action']}")
        injected = float(row["injected_at_s"])
        previous = 0.0
        for st in stage_frame[stage_frame["index"] == row["index"]].to_dict("records"):
            at = float(st["since_injection_s"])
            if st["stage"] != "injected":
                label = f"→ {st['label']}"
                ax.barh(
                    y,
                    at - previous,
                    left=previous,
                    height=0.45,
                    color=_STAGE_COLOURS.get(str(st["stage"]), PALETTE[7]),
                    label=label if label not in labelled else None,
                )
                labelled.add(label)
            previous = at
        replay, ready = _num(row["wal_replay_s"]), _num(row["ready_at_s"])
        if replay is not None and ready is not None:
            # The replay is the tail of the startup phase: it ends when /-/ready turns 200.
            label = "WAL replay (from the Prometheus log)"
            ax.barh(
                y + 0.32,
                replay,
                left=ready - injected - replay,
                height=0.15,
                color=PALETTE[3],
                label=label if label not in labelled else None,
            )
            labelled.add(label)
        recovery = _num(row["recovery_s"])
        note = f"recovered in {recovery:.2f} s" if recovery is not None else "did not recover"
        ax.annotate(note, xy=(previous, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize="small")
    ax.set_yticks(range(len(ticks)), ticks)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the fault was injected")
    ax.set_title("recovery by stage, per fault")
    ax.set_xlim(left=0)
    ax.margins(x=0.2, y=0.15)
    _style(ax)
    # The legend in the order the stages happen (matplotlib keeps the order they were first drawn in).
    handles, labels = ax.get_legend_handles_labels()
    order = [f"→ {stages.label(stage)}" for stage in stages.STAGES]
    pairs = sorted(zip(labels, handles, strict=True), key=lambda p: order.index(p[0]) if p[0] in order else 99)
    fig.legend(
        [h for _, h in pairs],
        [lb for lb, _ in pairs],
        loc="outside lower center",
        ncols=4,
        fontsize="small",
        frameon=False,
    )
    return _png(fig)


def samples_lost_chart(durability: pd.DataFrame) -> bytes | None:
    """Acknowledged samples lost per durability checkpoint (bars), annotated with lost / acknowledged."""
    if durability.empty:
        return None
    fig = _new_figure(1.0 + 0.6 * len(durability))
    ax = fig.subplots()
    labels = [str(v) for v in durability["label"]]
    lost = [int(v) for v in durability["lost"]]
    acked = [int(v) for v in durability["acknowledged"]]
    colours = [PALETTE[3] if n > 0 else PALETTE[2] for n in lost]
    bars = ax.barh(range(len(labels)), lost, color=colours, height=0.5)
    ax.bar_label(
        bars,
        labels=[f"{n:,} lost of {a:,} ({(n / a if a else 0):.2%})" for n, a in zip(lost, acked, strict=True)],
        padding=4,
        fontsize="small",
    )
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(left=0, right=max(max(lost) * 1.6, 1))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
    ax.set_xlabel("acknowledged samples lost")
    ax.set_title("samples lost per durability checkpoint")
    _style(ax)
    return _png(fig)


def comparison_chart(changes: pd.DataFrame) -> bytes | None:
    """Relative change of each compared metric (positive = worse), coloured by the comparison's status.

    ``changes`` has columns ``label`` (metric and run), ``worse_pct`` and ``status``.
    """
    frame = changes.dropna(subset=["worse_pct"])
    if frame.empty:
        return None
    colours = {"regression": PALETTE[3], "improvement": PALETTE[2], "unstable": PALETTE[1]}
    fig = _new_figure(1.0 + 0.35 * len(frame))
    ax = fig.subplots()
    values = [float(v) for v in frame["worse_pct"]]
    bars = ax.barh(
        range(len(frame)), values, color=[colours.get(str(s), "#999999") for s in frame["status"]], height=0.6
    )
    ax.bar_label(bars, labels=[f"{v:+.1f}%" for v in values], padding=3, fontsize="small")
    ax.set_yticks(range(len(frame)), [str(v) for v in frame["label"]], fontsize="small")
    ax.invert_yaxis()
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.set_xlabel("change vs baseline (%, positive = worse)")
    ax.set_title("what changed")
    ax.margins(x=0.15)
    _style(ax)
    return _png(fig)


def trend_chart(history: pd.DataFrame, changes: pd.DataFrame, title: str, unit: str) -> bytes | None:
    """One metric over the nights: the night's value, each level between change points as a step, a rolling median
    (slow drift), and the change points marked (vermilion worse, green better, grey dashed acknowledged).

    ``history``: ``night`` (index), ``label`` (the x tick), ``value``; ``changes``: ``night``, ``kind``.
    """
    if history.empty:
        return None
    fig = _new_figure(2.8)
    ax = fig.subplots()
    nights = [int(n) for n in history["night"]]
    values = [float(v) for v in history["value"]]
    ax.plot(nights, values, color=PALETTE[0], marker="o", markersize=4, linewidth=1, label="night's median")
    if len(values) >= 5:
        rolling = history["value"].rolling(5, center=True, min_periods=3).median()
        ax.plot(nights, rolling, color="#777777", linestyle=":", linewidth=1.2, label="rolling median (5 nights)")
    colours = {"improvement": PALETTE[2], "acknowledged": "#888888"}
    for row in changes.to_dict("records"):
        kind = str(row["kind"])
        ax.axvline(
            float(row["night"]) - 0.5,
            color=colours.get(kind, PALETTE[3]),
            linestyle="--" if kind == "acknowledged" else "-",
            linewidth=1.6,
        )
        ax.annotate(
            kind,
            xy=(float(row["night"]) - 0.5, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            va="top",
            fontsize="small",
            color=colours.get(kind, PALETTE[3]),
        )
    ticks = list(zip(nights, [str(v) for v in history["label"]], strict=True))
    step = max(1, len(ticks) // 12)  # at most a dozen labels, so they never overlap
    ax.set_xticks([n for n, _ in ticks[::step]], [lb for _, lb in ticks[::step]], fontsize="x-small")
    ax.set_ylabel(unit)
    ax.set_title(title, fontsize="medium")
    ax.margins(x=0.03, y=0.2)
    _style(ax)
    ax.legend(loc="lower left", fontsize="x-small", frameon=False)
    return _png(fig)
