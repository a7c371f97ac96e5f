"""Progress for long runs: a rich bar on a terminal, nothing when output is redirected."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Update = Callable[[float], None]


@contextmanager
def progress_bar(enabled: bool, description: str, total: float | None, unit: str = "") -> Iterator[Update]:
    """Yield `update(completed)`; a no-op unless `enabled` and standard error is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield lambda _done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn(f"{{task.completed:,.0f}}{unit}")]
    if total is not None:
        columns[-1] = MofNCompleteColumn()
    progress = Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    task = progress.add_task(description, total=total)
    with progress:
        yield lambda done: progress.update(task, completed=done)


def parse_speed(text: str | None, default: str = "1") -> float | None:
    """`1` (real time), `N` or `Nx` (N times faster), `max` (no pacing: returns None)."""
    from crossing_monitor.errors import UserError

    raw = (text or default).strip().lower()
    if raw in ("max", "inf", "0"):
        return None
    try:
        speed = float(raw.removesuffix("x").removesuffix("×"))
    except ValueError:
        raise UserError(f"--speed {text!r}: use a number (1 = real time, 10 = ten times faster) or 'max'") from None
    if not speed > 0:
        raise UserError(f"--speed {text!r} must be more than 0 (or 'max')")
    return speed
