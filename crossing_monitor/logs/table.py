"""`analyze --format table`: the report as a table for people."""

from __future__ import annotations

import sys
from typing import Any


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if unit == "min":
        return f"{value / 60:.1f} min"
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def render_table(report: dict[str, Any]) -> None:
    """A readable summary for people: one row per port, then the rejected counts."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Crossings by port", title_justify="left")
    for col in (
        "port",
        "crossings",
        "cargo t",
        "peak day",
        "vehicles/h",
        "inspection (truck)",
        "last hour (truck)",
        "wait",
        "queue out/in",
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
            f"{p['queue']['outbound']}/{p['queue']['inbound']}",
            p["watermark"] or "–",
        )
    console = Console() if sys.stdout.isatty() else Console(width=200)  # a file or pipe: never truncate
    console.print(table)
    rejected = report["rejected"]
    console.print("rejected: " + ", ".join(f"{reason} {count:,}" for reason, count in rejected.items()))
