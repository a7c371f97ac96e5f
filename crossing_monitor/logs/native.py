"""The compiled fold (`native/`, module `crossing_monitor_native`): the fast path of `analyze` and of
the live worker, optional.

The compiled code decides only the messages that are certainly valid events; it hands every other one
to the Python core (`validate`, `parse`), which stays the one judge of what is rejected and why. It
keeps no figures: its state comes back in the form of `PortMetrics.to_state()`, the Python core
rebuilds its PortMetrics from that and computes every figure, so a report is the Python core's own.
`tests/test_native_fold.py` and `tests/test_native_monitor.py` hold the two folds to each other.
Without the package (a plain `pip install .` on a machine without Rust) `available()` is False and
everything folds in Python; CROSSING_MONITOR_FOLD=python chooses the Python fold even when it is there.

* `analyze`: `NativeFold` reads a log's bytes in chunks (`fold_chunks`).
* the worker: `NativeMonitor` has the Monitor interface the worker uses (`process_decoded`, `ports`,
  `rejected`, checkpoints: `port_states`, `load_port`); its `ports` rebuild a port's PortMetrics for
  reading only when that port changed since it was last read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn

from crossing_monitor.core.catalogue import Catalogue
from crossing_monitor.core.clock import DayClock
from crossing_monitor.core.events import REJECT_REASONS, Event, Rejection, parse, validate
from crossing_monitor.core.metrics import PortMetrics, mean_seconds
from crossing_monitor.core.monitor import Monitor, decode_json
from crossing_monitor.errors import env_choice

try:
    import crossing_monitor_native as _native
except ImportError:  # the optional package is not installed: the Python fold is used
    _native = None

ENV_VAR = "CROSSING_MONITOR_FOLD"
THREADS_VAR = "CROSSING_MONITOR_FOLD_THREADS"  # analyze's fold: 1, 2, or unset (2 when a core is free)


def describe() -> str:
    """Which fold runs, for the operator's start-up line."""
    if available():
        return "compiled fold (crossing_monitor_native)"
    if _native is not None:
        return f"Python fold ({ENV_VAR}=python)"
    return "Python fold (crossing_monitor_native not installed: scripts/setup builds it)"


class NativeFault(Exception):
    """The compiled fold broke an invariant of its own (a Rust panic): a bug, never a verdict on the input."""


def available() -> bool:
    """Whether `analyze` and the worker fold with the compiled code (installed, not turned off by the variable)."""
    return env_choice(ENV_VAR, ("compiled", "python")) == "compiled" and _native is not None


def a_core_is_free() -> bool:
    """Whether a second thread would have a core of its own now: the parallel fold splits the work in two
    halves that wait for each other twice a chunk (and at each line left to the Python core), so on a
    machine whose cores are all busy a second thread only adds its hand-overs. Cores: those this process
    may run on (its CPU affinity). Busy: the tasks that run now besides this one (`others_running`), or
    where that cannot be read, the load average (which still counts work that ended a minute ago, such
    as the analysis before this one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cores < 2:
        return False
    others = others_running()
    if others is not None:
        return others <= cores - 1.5
    try:
        return os.getloadavg()[0] <= cores - 1
    except OSError:  # not on this platform
        return False


def others_running(samples: int = 5, interval: float = 0.0005) -> float | None:
    """The mean number of other tasks running or ready to run, over `samples` looks at Linux's
    /proc/loadavg half a millisecond apart (its fourth field counts this process too); None elsewhere."""
    counts = []
    try:
        for i in range(samples):
            if i:
                time.sleep(interval)
            with open("/proc/loadavg", "rb") as f:
                counts.append(int(f.read().split()[3].split(b"/")[0]) - 1)
    except (OSError, IndexError, ValueError):
        return None
    return sum(counts) / len(counts)


def two_threads() -> bool:
    """Whether `analyze` folds on two threads: as CROSSING_MONITOR_FOLD_THREADS says (1 or 2), else (auto)
    when a core is free (`a_core_is_free`). A value that is none of these is an error the operator sees."""
    wanted = env_choice(THREADS_VAR, ("auto", "1", "2"))
    return a_core_is_free() if wanted == "auto" else wanted == "2"


def _verdict_in(catalogue: Catalogue) -> Callable[[bytes], Event | Rejection]:
    """`Monitor.process_decoded`'s verdict before the fold, for a line the compiled code left to Python."""
    ports = frozenset(catalogue)

    def verdict(raw: bytes) -> Event | Rejection:
        obj = decode_json(raw)
        return validate(obj, ports) if type(obj) is dict else parse(raw, ports)

    return verdict


def _port_of(raw: bytes) -> Any:
    """The `port` of a message when it is a JSON object (the worker's batch routes on it), else None."""
    obj = decode_json(raw)
    return obj.get("port") if type(obj) is dict else None


def _compiled_fold(catalogue: Catalogue, judge: Callable[[bytes], Any]) -> Any:
    """The compiled Fold for the catalogue's ports: their time zones, their Python day clocks, the judge."""
    if _native is None:
        raise RuntimeError("crossing_monitor_native is not installed (scripts/setup builds it)")
    slugs = list(catalogue)
    timezones = [catalogue[s].timezone for s in slugs]
    return _native.Fold(slugs, timezones, [DayClock(tz).names for tz in timezones], judge)


class NativeFold:
    """A log folded by the compiled code: `feed` chunks of its bytes (split anywhere), then `monitor_after()`.

    `parallel`: parse and fold on two threads (the same result; see `a_core_is_free`); `parallel_from`:
    (bytes of complete lines in a chunk, events between two lines for Python) from which it does, instead
    of the compiled defaults (tests lower them to fold even a short log on two threads)."""

    def __init__(self, catalogue: Catalogue, parallel: bool = False,
                 parallel_from: tuple[int, int] | None = None) -> None:
        self.catalogue = catalogue
        self.monitor = Monitor(catalogue, skip_blank=True)
        rejected = self.monitor.rejected
        verdict = _verdict_in(catalogue)

        def judge(line: bytes) -> Event | None:
            """A rejection is counted here (analyze's Monitor holds the counts), an event handed back."""
            result = verdict(line)
            if type(result) is Rejection:
                rejected[result.reason] += 1
                return None
            return result

        self._fold = _compiled_fold(catalogue, judge)
        self._fold.parallel = parallel
        if parallel_from is not None:
            self._fold.parallel_bytes, self._fold.parallel_run = parallel_from

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


def _as_bytes(raw: str | bytes | bytearray | memoryview) -> bytes:
    """A message as bytes; a str's lone surrogates kept (as invalid UTF-8: malformed, as to the Python core)."""
    return raw.encode("utf-8", "surrogatepass") if type(raw) is str else bytes(raw)


def _raise_fault(exc: BaseException) -> NoReturn:
    """A Rust panic arrives as pyo3's PanicException, a BaseException: raised again as a NativeFault."""
    if type(exc).__name__ == "PanicException":
        raise NativeFault(str(exc) or "panic") from None
    raise exc


@contextmanager
def _faults() -> Iterator[None]:
    """Panics of the compiled fold in the block raised as NativeFault (see `_raise_fault`)."""
    try:
        yield
    except BaseException as exc:
        _raise_fault(exc)


def _with_sample_means(state: dict[str, Any]) -> dict[str, Any]:
    """The compiled state's trend samples carry the last hour's wait as (total µs, count): the Python core
    turns that into the mean it reports, with the same rounding as everywhere else."""
    trends = state["trends"]
    samples = trends["samples"]
    trends["samples"] = [row if len(row) == 4 else [*row[:3], mean_seconds(row[3], row[4])] for row in samples]
    return state


def fold_chunks(chunks: Iterable[bytes], catalogue: Catalogue, parallel: bool = False,
                parallel_from: tuple[int, int] | None = None) -> Monitor:
    """A log's bytes, in chunks split anywhere (even inside a line) -> the Monitor `analyze` reports from:
    equal to folding the same lines with `Monitor(catalogue, skip_blank=True)`."""
    fold = NativeFold(catalogue, parallel, parallel_from)
    for chunk in chunks:
        fold.feed(chunk)
    return fold.monitor_after()


class PortViews(Mapping[str, PortMetrics]):
    """The ports of a NativeMonitor as the Python core's PortMetrics, for reading figures: each one rebuilt
    from the compiled state when it changed since it was last read, from only what the figures are read
    from (no event ids, no vehicle but the queue's: a fraction of the state). Never folded into, nor
    snapshotted: the fold and the checkpoints are the compiled state's."""

    def __init__(self, fold: Any, catalogue: Catalogue) -> None:
        self._fold = fold
        self._catalogue = catalogue
        self._views: dict[str, tuple[int, PortMetrics]] = {}

    def __getitem__(self, slug: str) -> PortMetrics:
        if slug not in self._catalogue:
            raise KeyError(slug)
        generation = self._fold.generation(slug)
        seen = self._views.get(slug)
        if seen is not None and seen[0] == generation:
            return seen[1]
        with _faults():
            state = self._fold.state(slug, reading=True)  # no event ids, only the queue's vehicles
        if state is None:
            raise KeyError(slug)
        view = PortMetrics.from_state(_with_sample_means(state), self._catalogue[slug])
        if seen is not None:  # the schedule's caches depend on the catalogue only: kept from view to view
            view.forecaster._days = seen[1].forecaster._days
            view.forecaster._hours = seen[1].forecaster._hours
        self._views[slug] = (generation, view)
        return view

    def __contains__(self, slug: object) -> bool:
        return slug in self._fold.present()

    def __iter__(self) -> Iterator[str]:
        return iter(self._fold.present())

    def __len__(self) -> int:
        return len(self._fold.present())


class NativeMonitor:
    """What the live worker needs of a Monitor (`process_decoded`, `ports`, `rejected`, snapshots), with
    the compiled fold folding: a message is judged as `Monitor.process_decoded` judges it (a blank one is
    malformed), and `ports` reads the figures through the Python core."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.slugs = frozenset(catalogue)
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)
        self._fold = _compiled_fold(catalogue, _verdict_in(catalogue))
        self.ports = PortViews(self._fold, catalogue)
        self._message = self._fold.message

    def process_decoded(self, raw: bytes | str, obj: Any = None) -> Rejection | None:
        """Fold one message in: None when it was, else the Rejection that sends it to the dead letters
        (`obj`, the caller's decoding, is not needed: the compiled fold reads the bytes)."""
        try:
            verdict = self._message(raw if type(raw) is bytes else _as_bytes(raw))
        except BaseException as exc:  # a plain try: a context manager would cost more than the fold
            _raise_fault(exc)
        if verdict is None:
            return None
        if type(verdict) is str:
            self.rejected["duplicate"] += 1
            return Rejection("duplicate", f"event_id {verdict!r} was already seen")
        self.rejected[verdict.reason] += 1
        return verdict

    def process(self, raw: bytes | str) -> Rejection | None:
        return self.process_decoded(raw)

    def fold_batch(
        self, records: list[Any], next_offset: int, routes: Mapping[str, int], header: str
    ) -> tuple[int, int, list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, Rejection | Exception]]]:
        """A fetched batch of one partition's records folded in one call into the compiled fold (the
        worker's loop over records in Python cost about a third of its CPU per event).

        Records at offsets below `next_offset` are skipped; a catalogue port whose home is another
        partition (`routes`) is left for forwarding unless the record's headers name `header`; every
        other record is judged and folded as `process_decoded` does, its rejection counted here.
        Returns (next_offset, skipped, gaps [(from, to)], forwards [(index, partition)], rejected
        [(index, Rejection or the exception its fold raised: a panic as NativeFault)]), indexes into
        `records`; a fold that raised is not counted here (the caller counts it as it counts one of
        `process_decoded`)."""
        try:
            next_offset, skipped, gaps, forwards, rejected, duplicates = self._fold.batch(
                records, next_offset, routes, header, _port_of
            )
        except BaseException as exc:
            _raise_fault(exc)
        counts = self.rejected
        counts["duplicate"] += duplicates
        for i, (index, verdict) in enumerate(rejected):
            if type(verdict) is str:  # a panic's message
                rejected[i] = (index, NativeFault(verdict or "panic"))
            elif type(verdict) is Rejection:
                counts[verdict.reason] += 1
        return next_offset, skipped, gaps, forwards, rejected

    # the same as Monitor's: they read only `process`, `ports`, `catalogue` and `rejected`
    process_all = Monitor.process_all
    report = Monitor.report

    def port_states(self) -> dict[str, dict[str, Any]]:
        """Every port's state as `PortMetrics.to_state()` gives it (for a checkpoint)."""
        with _faults():
            return {slug: _with_sample_means(state) for slug, state in self._fold.states()}

    def load_port(self, slug: str, state: dict[str, Any]) -> None:
        """Take a port's state from a checkpoint; an exception for one this code cannot read."""
        PortMetrics.from_state(state, self.catalogue.get(slug))  # the Python core's checks (version) first
        with _faults():
            self._fold.load(slug, state)


def new_monitor(catalogue: Catalogue) -> Monitor | NativeMonitor:
    """The live worker's per-partition Monitor: the compiled fold's when it is available."""
    return NativeMonitor(catalogue) if available() else Monitor(catalogue)
