"""The building blocks every report page shares: the inline style, tables and charts as the templates show them,
and the Jinja environment that renders a page.

The run report (``harness.report.html``), the comparison (``harness.report.compare.render``) and the trend
(``harness.report.trend_html``) all render through here, so their pages look alike and stay self-contained: charts
are PNG data URIs, the CSS is inline, there are no scripts.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import jinja2
import markupsafe

# Inline so the page needs no other file; shared by the run report and the comparison.
STYLE = markupsafe.Markup(
    """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2329; margin: 0 auto;
  max-width: 1180px; padding: 16px 24px 48px; }
h1 { margin: 0 0 4px; font-size: 24px; } h2 { margin: 28px 0 8px; font-size: 18px; border-bottom: 1px solid #d8dde3;
  padding-bottom: 4px; }
header { display: flex; gap: 20px; align-items: center; padding: 12px 0; border-bottom: 2px solid #d8dde3; }
.verdict { flex-shrink: 0; font-weight: 700; font-size: 20px; padding: 14px 20px; border-radius: 6px; color: #fff;
  min-width: 100px; text-align: center; letter-spacing: 0.05em; }
.verdict.ok { background: #1e7b34; } .verdict.bad { background: #c0392b; } .verdict.err { background: #7d3c98; }
.verdict.skip { background: #7f8c8d; } .verdict.part { background: #b9770e; }
.reason { margin: 0 0 4px; font-size: 15px; } .meta { margin: 0; color: #56606b; font-size: 13px; }
.banner { background: #fff4d6; border: 1px solid #e0b84c; border-left: 6px solid #e0a800; padding: 10px 14px;
  margin: 14px 0; border-radius: 4px; }
nav { margin: 12px 0; color: #56606b; font-size: 13px; } nav a { color: #0b5cad; text-decoration: none; }
.figures { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.figure { border: 1px solid #d8dde3; border-radius: 6px; padding: 8px 12px; min-width: 170px; background: #f7f9fb; }
.fname { font-size: 12px; color: #56606b; } .fvalue { font-size: 16px; font-weight: 600; }
h3 { margin: 16px 0 6px; font-size: 15px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; font-size: 13px; }
th, td { border: 1px solid #d8dde3; padding: 4px 8px; text-align: left; vertical-align: top; }
thead th { background: #eef1f4; } tbody th { background: #f7f9fb; font-weight: 600; white-space: nowrap; }
td { overflow-wrap: break-word; }
tr.ok td:nth-child(2) { color: #1e7b34; font-weight: 600; } tr.bad td, tr.bad th { background: #fdecea; }
tr.err td, tr.err th { background: #f4ecf7; } tr.skip td { color: #7f8c8d; } tr.warn td { background: #fff8e1; }
tr.good td { background: #eaf6ec; } tr.part td, tr.part th { background: #fff4d6; }
tr.part td:nth-child(2) { color: #9a5b00; font-weight: 600; }
figure { margin: 16px 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eef1f4; }
figcaption { margin-bottom: 4px; }
.note { color: #56606b; font-style: italic; } .explain { color: #56606b; font-size: 13px; margin: 4px 0; }
pre { background: #f7f9fb; border: 1px solid #d8dde3; padding: 8px 10px; overflow-x: auto; font-size: 12.5px;
  white-space: pre-wrap; }
code { font-size: 12.5px; background: #f2f4f6; padding: 0 3px; border-radius: 3px; }
.finding { border: 1px solid #d8dde3; border-left-width: 6px; border-radius: 4px; padding: 8px 12px; margin: 10px 0; }
.finding p { margin: 4px 0; } .ftitle { font-weight: 600; }
.sev-blocker { border-left-color: #c0392b; } .sev-warning { border-left-color: #e0a800; }
.sev-info { border-left-color: #2e86c1; }
.sev { font-size: 11px; padding: 1px 6px; border-radius: 3px; background: #eef1f4; margin-right: 4px; }
.events td { font-size: 12.5px; } .nowrap { white-space: nowrap; } tr.ev-error td { color: #c0392b; }
tr.ev-warning td { color: #9a6b00; } tr.ev-fault td { font-weight: 600; }
table.kv tbody th { width: 260px; }
footer { margin-top: 32px; color: #7f8c8d; font-size: 12px; }
"""
)


@dataclass(frozen=True)
class ChartView:
    """A chart as the template shows it: an embedded PNG, or the note saying why there is none."""

    title: str
    data_uri: str | None
    note: str = ""
    caption: str = ""


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    # Per-row CSS class ("bad", "warn", ""), same length as rows when given.
    row_classes: list[str] = field(default_factory=list)


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def chart_view(title: str, png: bytes | None, empty_note: str, caption: str = "") -> ChartView:
    if png is None:
        return ChartView(title=title, data_uri=None, note=empty_note)
    return ChartView(title=title, data_uri=png_data_uri(png), caption=caption)


# --- templates -----------------------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_template(name: str, context: dict[str, Any]) -> str:
    try:
        template = _environment().get_template(name)
    except jinja2.TemplateNotFound as e:
        # Only a broken installation gets here (package data missing): say which file.
        raise FileNotFoundError(f"report template {name!r} is missing from the harness installation") from e
    return template.render(**context)
