"""`crossing-monitor analyze LOG`: the figures of SPEC §2 from a recorded log, without a broker."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from itertools import islice
from typing import Any

import orjson

from crossing_monitor.catalogue import Catalogue, CatalogueError, load_catalogue
from crossing_monitor.cli import CliError
from crossing_monitor.logfile import LogError, open_log, read_lines
from crossing_monitor.monitor import Monitor

BATCH_LINES = 1 << 16  # progress is updated once per batch, never per line


def analyze_log(path: str, catalogue: Catalogue, on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Fold the log at `path` into a Monitor and return its report (the JSON of SPEC §3)."""
    monitor = Monitor(catalogue, skip_blank=True)
    process = monitor.process
    with open_log(path) as (lines, raw, _size):
        it = read_lines(lines, path)
        while batch := list(islice(it, BATCH_LINES)):
            for line in batch:
                process(line)
            if on_progress is not None:
                on_progress(raw.tell())
    return monitor.report()


def _progress_bar(path: str, size: int):
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("analysing [bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=_stderr_console(),
        transient=True,
    )
    task = progress.add_task(path, total=size or None)
    return progress, lambda done: progress.update(task, completed=done)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


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


def main(args: argparse.Namespace) -> int:
    try:
        catalogue = load_catalogue(args.catalogue)
    except CatalogueError as exc:
        raise CliError(str(exc)) from None
    show_progress = not args.no_progress and args.log != "-" and sys.stderr.isatty()
    try:
        if show_progress:
            import os

            size = os.path.getsize(args.log) if os.path.exists(args.log) else 0
            progress, update = _progress_bar(args.log, size)
            with progress:
                report = analyze_log(args.log, catalogue, update)
        else:
            report = analyze_log(args.log, catalogue)
    except LogError as exc:
        raise CliError(str(exc)) from None
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
    else:
        render_table(report)
    return 0
