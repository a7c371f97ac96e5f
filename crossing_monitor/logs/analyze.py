"""The figures of SPEC §2 from a recorded log, without a broker (what `crossing-monitor analyze` prints)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from itertools import islice
from typing import Any, BinaryIO

import orjson

from crossing_monitor.core.catalogue import Catalogue
from crossing_monitor.core.events import Event
from crossing_monitor.core.monitor import Monitor
from crossing_monitor.logs import native
from crossing_monitor.logs.files import LogError, open_log, read_chunks, read_lines

log = logging.getLogger("crossing_monitor.analyze")

BATCH_LINES = 1 << 16  # progress is updated once per batch, never per line
# Bytes handed to the compiled fold at a time: each chunk's halves are parsed, then its ports folded, on
# two threads that meet twice a chunk; 4 MB chunks made a year's fold 15-20 % faster than 1 MB ones.
NATIVE_CHUNK = 4 << 20


def prediction_line(ev: Event, arrived: str, predicted: float) -> bytes:
    """One line of `analyze --predictions` (SPEC §3); `arrived` in the port's local time."""
    return orjson.dumps({
        "port": ev.port, "direction": ev.direction, "vehicle_id": ev.vehicle_id,
        "arrived": arrived, "predicted_wait_seconds": predicted,
    }) + b"\n"  # fmt: skip


def analyze_log(
    path: str,
    catalogue: Catalogue,
    on_progress: Callable[[int], None] | None = None,
    predictions: BinaryIO | None = None,
) -> dict[str, Any]:
    """Fold the log at `path` into a Monitor and return its report (the JSON of SPEC §3); with `predictions`,
    write there one line per accepted arrival with the forecast the state showed just before it.

    Folded by the compiled fold when it is installed (`crossing_monitor.logs.native`), except with
    `predictions`: those read the forecast before every arrival, which only the Python fold can."""
    parallel = native.two_threads()  # (read whichever fold runs: a bad setting is an error either way)
    if predictions is None and native.available():
        try:
            return _analyze_natively(path, catalogue, on_progress, parallel)
        except native.NativeFault as exc:
            if path == "-" or not os.path.isfile(path):  # a pipe or a FIFO cannot be read a second time
                raise LogError(f"the compiled fold failed ({exc}); run again with {native.ENV_VAR}=python") from None
            log.warning("the compiled fold failed (%s); folding %s again in Python", exc, path)
    monitor = Monitor(catalogue, skip_blank=True)
    if predictions is not None:
        write = predictions.write
        monitor.on_arrival = lambda ev, arrived, predicted: write(prediction_line(ev, arrived, predicted))
    process = monitor.process
    with open_log(path) as (lines, raw, _size):
        it = read_lines(lines, path)
        while batch := list(islice(it, BATCH_LINES)):
            for line in batch:
                process(line)
            if on_progress is not None:
                on_progress(raw.tell())
    return monitor.report()


def _analyze_natively(
    path: str, catalogue: Catalogue, on_progress: Callable[[int], None] | None, parallel: bool
) -> dict[str, Any]:
    fold = native.NativeFold(catalogue, parallel=parallel)
    with open_log(path) as (lines, raw, _size):
        for chunk in read_chunks(lines, path, NATIVE_CHUNK):
            fold.feed(chunk)
            if on_progress is not None:
                on_progress(raw.tell())
    return fold.monitor_after().report()
