"""`analyze --format table`: the report as a table for people."""

from __future__ import annotations

import sys
from typing import Any


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if unit == "min":  # the column's title says "min"
        return f"{value / 60:.1f}"
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def _pair(values: dict[str, Any], unit: str = "") -> str:
    """An outbound/inbound pair, as the wall shows it."""
    return f"{_fmt(values.get('outbound'), unit)}/{_fmt(values.get('inbound'), unit)}"


def _flagged_share(scans: dict[str, int]) -> str:
    completed = scans["completed"]
    return "–" if not completed else f"{scans['flagged'] / completed:.1%}"


def render_table(report: dict[str, Any]) -> None:
    """A readable summary for people: one row per port, then the rejected counts."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Crossings by port (a/b: outbound/inbound; times in minutes)", title_justify="left")
    for col in (
        "port",
        "crossings",
        "cargo t",
        "peak day",
        "vehicles/h",
        "inspection truck",
        "last hour",
        "wait",
        "clearance",
        "queue",
        "predicted wait",
        "to clear",
        "+1 lane",
        "flagged",
        "lanes in use",
        "watermark",
    ):
        table.add_column(col, justify="left" if col in ("port", "peak day", "watermark") else "right")
    for slug, p in report["ports"].items():
        peak = p["peak_day"]
        table.add_row(
            slug,
            _fmt(p["crossings"]),
            _fmt(p["cargo_tonnes"]),
            f"{peak['date']} ({peak['crossings']:,})" if peak else "–",
            _fmt(p["throughput_per_hour"]),
            _fmt(p["avg_inspection_seconds"].get("truck"), "min"),
            _fmt(p["last_hour_avg_inspection_seconds"].get("truck"), "min"),
            _fmt(p["avg_wait_seconds"], "min"),
            _pair({d: c["all"] for d, c in p["avg_clearance_seconds"].items()}, "min"),
            f"{p['queue']['outbound']}/{p['queue']['inbound']}",
            _pair({d: f["predicted_wait_seconds"] for d, f in p["forecast"].items()}, "min"),
            _pair({d: f["clear_seconds"] for d, f in p["forecast"].items()}, "min"),
            _pair({d: f.get("clear_seconds_one_more_lane") for d, f in p["forecast"].items()}, "min"),
            _flagged_share(p["scans"]),
            f"{p['lanes_in_use']['outbound']}/{p['lanes_in_use']['inbound']}",
            p["watermark"] or "–",
        )
    console = Console() if sys.stdout.isatty() else Console(width=250)  # a file or pipe: never truncate
    console.print(table)
    rejected = report["rejected"]
    console.print("rejected: " + ", ".join(f"{reason} {count:,}" for reason, count in rejected.items()))
