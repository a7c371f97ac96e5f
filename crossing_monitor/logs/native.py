"""The compiled fold (`native/`, module `crossing_monitor_native`): `analyze`'s fast path, optional.

The compiled code decides only the lines that are certainly valid events; it hands every other line
to the Python core (`validate`, `parse`), which stays the one judge of what is rejected and why. It
keeps no figures: its state comes back in the form of `PortMetrics.to_state()`, the Python core
rebuilds its PortMetrics from that and computes every figure, so the report is the Python core's own.
`tests/test_native_fold.py` holds the two folds to each other. Without the package (a plain
`pip install .` on a machine without Rust) `available()` is False and `analyze` folds in Python;
CROSSING_MONITOR_FOLD=python chooses the Python fold even when the package is there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from crossing_monitor.core.catalogue import Catalogue
from crossing_monitor.core.clock import DayClock
from crossing_monitor.core.events import Event, Rejection, parse, validate
from crossing_monitor.core.metrics import PortMetrics, mean_seconds
from crossing_monitor.core.monitor import Monitor, decode_json

try:
    import crossing_monitor_native as _native
except ImportError:  # the optional package is not installed: the Python fold is used
    _native = None

ENV_VAR = "CROSSING_MONITOR_FOLD"


class NativeFault(Exception):
    """The compiled fold broke an invariant of its own (a Rust panic): a bug, never a verdict on the input."""


def available() -> bool:
    """Whether `analyze` folds with the compiled code (installed, and not turned off by CROSSING_MONITOR_FOLD)."""
    return _native is not None and os.environ.get(ENV_VAR, "").strip().lower() != "python"


class NativeFold:
    """A log folded by the compiled code: `feed` chunks of its bytes (split anywhere), then `monitor()`."""

    def __init__(self, catalogue: Catalogue) -> None:
        if _native is None:
            raise RuntimeError("crossing_monitor_native is not installed (scripts/setup builds it)")
        self.catalogue = catalogue
        self.monitor = Monitor(catalogue, skip_blank=True)
        slugs = list(catalogue)
        ports = frozenset(slugs)
        rejected = self.monitor.rejected

        def judge(line: bytes) -> Event | None:
            """Monitor.process_decoded's verdict on a line the compiled code left to the Python core."""
            obj = decode_json(line)
            result = validate(obj, ports) if type(obj) is dict else parse(line, ports)
            if type(result) is Rejection:
                rejected[result.reason] += 1
                return None
            return result

        timezones = [catalogue[s].timezone for s in slugs]
        self._fold = _native.Fold(slugs, timezones, [DayClock(tz).day for tz in timezones], judge)

    def feed(self, chunk: bytes) -> None:
        """Fold the complete lines of `chunk`; the rest of its last line waits for the next chunk."""
        with _faults():
            self._fold.feed(chunk)

    def monitor_after(self) -> Monitor:
        """The Monitor of everything fed: PortMetrics rebuilt from the compiled state, rejections counted."""
        fold = self._fold
        with _faults():
            fold.finish()
            states = fold.states()
        self.monitor.rejected["duplicate"] += fold.duplicates
        for slug, state in states:
            self.monitor.ports[slug] = PortMetrics.from_state(_with_sample_means(state), self.catalogue[slug])
        return self.monitor


@contextmanager
def _faults() -> Iterator[None]:
    """A Rust panic arrives as pyo3's PanicException, a BaseException: turned into a NativeFault."""
    try:
        yield
    except BaseException as exc:
        if type(exc).__name__ == "PanicException":
            raise NativeFault(str(exc) or "panic") from None
        raise


def _with_sample_means(state: dict[str, Any]) -> dict[str, Any]:
    """The compiled state's trend samples carry the last hour's wait as (total µs, count): the Python core
    turns that into the mean it reports, with the same rounding as everywhere else."""
    trends = state["trends"]
    trends["samples"] = [[q, out, inb, mean_seconds(total, count)] for q, out, inb, total, count in trends["samples"]]
    return state


def fold_chunks(chunks: Iterable[bytes], catalogue: Catalogue) -> Monitor:
    """A log's bytes, in chunks split anywhere (even inside a line) -> the Monitor `analyze` reports from:
    equal to folding the same lines with `Monitor(catalogue, skip_blank=True)`."""
    fold = NativeFold(catalogue)
    for chunk in chunks:
        fold.feed(chunk)
    return fold.monitor_after()
