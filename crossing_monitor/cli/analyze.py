"""`crossing-monitor analyze LOG`: read a log, print its figures as JSON or a table."""

from __future__ import annotations

import argparse
import os
import sys

import orjson

from crossing_monitor.core.catalogue import CatalogueError, load_catalogue
from crossing_monitor.errors import UserError
from crossing_monitor.logs.analyze import analyze_log
from crossing_monitor.logs.files import LogError
from crossing_monitor.logs.table import render_table


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


def main(args: argparse.Namespace) -> int:
    try:
        catalogue = load_catalogue(args.catalogue)
    except CatalogueError as exc:
        raise UserError(str(exc)) from None
    show_progress = not args.no_progress and args.log != "-" and sys.stderr.isatty()
    predictions = None
    if getattr(args, "predictions", None):
        try:
            predictions = open(args.predictions, "wb", buffering=1 << 20)  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UserError(f"cannot write {args.predictions}: {exc.strerror or exc}") from None
    try:
        if show_progress:
            size = os.path.getsize(args.log) if os.path.exists(args.log) else 0
            progress, update = _progress_bar(args.log, size)
            with progress:
                report = analyze_log(args.log, catalogue, update, predictions)
        else:
            report = analyze_log(args.log, catalogue, predictions=predictions)
    except LogError as exc:
        raise UserError(str(exc)) from None
    finally:
        if predictions is not None:
            predictions.close()
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
    else:
        render_table(report)
    return 0
