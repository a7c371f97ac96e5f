"""The figures of SPEC §2 from a recorded log, without a broker (what `crossing-monitor analyze` prints)."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import Any

from crossing_monitor.core.catalogue import Catalogue
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.logs.files import open_log, read_lines

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
