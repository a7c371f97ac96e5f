"""The compiled port model (`native/src/model.rs`, module `crossing_monitor_native`): `PortModel`'s events
at a tenth of the CPU, optional.

`NativePortModel` has the interface of `producers.model.PortModel` that a run uses (`events()`, `stats`,
`next_open`) and gives the same events, byte for byte, and the same tally (tests/test_native_model.py
holds it to the Python model, which stays the reference). It is built from a Python PortModel of the
same configuration that never runs: that one serialises the ids, sensors and classes, hands over its
random generator's state, and answers what needs the calendar and the time zone (a day's plan without
its draws, `PortModel._calendar`; a local date; the text of an hour's timestamps). The compiled code
makes every draw itself, in the Python model's order, so a day is planned at the moment the Python
model plans it.

The tally (`stats`) is brought up to date after each chunk of events the compiled model makes, so
while a run is under way it may count vehicles whose events the caller has not seen yet; at the end
it is the Python model's. Without the package (a plain `pip install .`) `available()` is False and runs
use the Python model; CROSSING_MONITOR_MODEL=python chooses it even when the package is there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from crossing_monitor.errors import env_choice
from producers import draws
from producers.config import PortConfig
from producers.model import _ENTRY_FACTOR, _FREIGHT, SLOT, SLOTS_PER_DAY, Emitted, PortModel, _json, _Sensor
from producers.timefmt import TimestampFormatter

try:
    import crossing_monitor_native as _native
except ImportError:  # the optional package is not installed: the Python model is used
    _native = None

ENV_VAR = "CROSSING_MONITOR_MODEL"
CHUNK_EVENTS = 4096  # events per call into the compiled model
_REGIMES = {"h986": 0, "legacy": 1, "random": 2}
_DIRECTIONS = ("outbound", "inbound")


def compiled() -> Any:
    """The compiled module if it has the port model, else None."""
    return _native if _native is not None and hasattr(_native, "PortModel") else None


def available() -> bool:
    """Whether runs use the compiled model (installed, not turned off by the variable)."""
    return env_choice(ENV_VAR, ("compiled", "python")) == "compiled" and compiled() is not None


def record_batch_type() -> Any:
    """The compiled Kafka record batch (`native/src/batch.rs`: aiokafka's batch bytes, filled from a
    chunk of joined events without a Python call per event), or None without the package."""
    return getattr(_native, "RecordBatch", None)


def group_by_key() -> Any:
    """The compiled grouping of a block of log lines by message key (`native/src/replay.rs`: the lines
    and keys of producers/replay.py), or None without the package."""
    return getattr(_native, "group_by_key", None)


def describe() -> str:
    """Which port model runs, for the operator."""
    if available():
        return "compiled port model (crossing_monitor_native)"
    if compiled() is not None:
        return f"Python port model ({ENV_VAR}=python)"
    return "Python port model (crossing_monitor_native not installed: scripts/setup builds it)"


_FORMATTERS: dict[ZoneInfo, TimestampFormatter] = {}


def _formatter(tz: ZoneInfo) -> TimestampFormatter:
    """One formatter per zone for every compiled model: ports of one zone ask for the same hours."""
    found = _FORMATTERS.get(tz)
    if found is None:
        found = _FORMATTERS[tz] = TimestampFormatter(tz)
    return found


def _sensor(s: _Sensor) -> tuple[str, int]:
    return s.json, s.skew_ms


class NativePortModel:
    """`PortModel(cfg, start, end, seed)`, compiled: `events()` yields the same (ms, bytes)."""

    def __init__(self, cfg: PortConfig, start: float, end: float, seed: int) -> None:
        module = compiled()
        if module is None:
            raise RuntimeError("crossing_monitor_native has no PortModel (scripts/setup builds it)")
        ref = self._ref = PortModel(cfg, start, end, seed)  # the pieces and the calendar; it never runs
        self.cfg, self.start, self.end = cfg, start, end
        self.stats: Counter[str] = Counter()
        self._names = ["truck", *(c for c in ref._class_json if c != "truck")]  # booked trucks: class 0
        classes = [(ref._class_json[c], c in _FREIGHT, _ENTRY_FACTOR.get(c, 1.0)) for c in self._names]
        numbers = {
            "regime": _REGIMES[cfg.regime],
            "entry_minutes": cfg.entry_minutes,
            "scan_minutes": cfg.scan_minutes,
            "exit_minutes": cfg.exit_minutes,
            "flagged_share": cfg.flagged_share,
            "sampled_share": cfg.sampled_share,
            "physical_minutes": cfg.physical_minutes,
            "legacy_minutes": cfg.legacy_minutes,
            "random_check_share": cfg.random_check_share,
            "cargo_per_truck": cfg.cargo_per_truck,
            "holding_out": float(cfg.holding["outbound"]),
            "holding_in": float(cfg.holding["inbound"]),
            "out_share": ref._out_share,
            "lanes_out": ref._lanes.get("outbound", 0),
            "lanes_in": ref._lanes.get("inbound", 0),
            "most_out": ref._most_staff.get("outbound", 0),
            "most_in": ref._most_staff.get("inbound", 0),
            "scanners": cfg.scanners,
            "bays": cfg.bays,
            "log4": draws.LOG4,
            "sg_magic": draws.SG_MAGICCONST,
        }
        lanes = [
            [
                (lane.json, _sensor(lane.entry), _sensor(lane.exit))
                for lane in (ref._lane_ids[d, i] for i in range(1, ref._lanes.get(d, 0) + 1))
            ]
            for d in _DIRECTIONS
        ]
        zeros = [0] * SLOTS_PER_DAY
        last_slot = (SLOTS_PER_DAY - 1) * SLOT
        fmt, tz = _formatter(cfg.tz), cfg.tz

        templates: dict[bool, tuple] = {}  # the slots of a day no incident or surge touches, by round the clock

        def calendar(ordinal: int) -> tuple:
            day = date.fromordinal(ordinal)
            start, end, sure = ref._bounds(day)
            # The slots are wall-clock times, so they differ from day to day only by round-the-clock dates
            # and by incidents and surges (compared with start + k * SLOT).
            touched = any(t0 <= start + last_slot and start < t1 for t0, t1, *_ in cfg.incidents) or any(
                s.start <= start + last_slot and start < s.end for s in cfg.surges
            )
            key = any(a <= day and (b is None or day <= b) for a, b in cfg.hours.round_the_clock)
            slots = None if touched else templates.get(key)
            if slots is None:
                open_, staff, rate, expected, open_slots = ref._slots(day, start)
                slots = (open_, *(staff.get(d, zeros) for d in _DIRECTIONS), rate, expected, open_slots)
                if not touched:
                    templates[key] = slots
            return start, end, *slots, sure

        def local_day(t: float) -> int:
            return datetime.fromtimestamp(t, tz).date().toordinal()

        def hours(first: int, count: int) -> list[tuple[str, str] | None]:
            known = fmt._hours  # (the formatter's cache: the ports of a zone ask for the same hours)
            hours = range(first, first + count)
            return [fmt._hour(h) if (found := known.get(h, False)) is False else found for h in hours]

        def tonnes(x: float) -> str:
            return _json(round(x, 1))

        self._model = module.PortModel(
            start,
            end,
            list(ref.rng.getstate()[1]),
            numbers,
            classes,
            [self._names.index(c) for c in ref._walk_classes],
            list(ref._walk_cum),
            ref._port_json,
            [_sensor(ref._approach[d]) for d in _DIRECTIONS],
            tuple(ref._approach_lane[d] for d in _DIRECTIONS),
            lanes,
            [_sensor(ref._scanner_ids[i]) for i in range(1, cfg.scanners + 1)],
            [_sensor(ref._bay_ids[i]) for i in range(1, cfg.bays + 1)],
            [(t0, t1, n) for t0, t1, n in ref._scanners_out],
            (calendar, local_day, hours, fmt.minute, tonnes),
        )

    def _count(self) -> None:
        tally = self._model.tally(self._names)
        if tally:
            self.stats.update(tally)

    def next_open(self, t: float) -> float:
        """`PortModel.next_open` (it plans days, and so draws, as the Python one does)."""
        return self._model.next_open(t)

    def take(self, limit: int = CHUNK_EVENTS, horizon_ms: int = 2**63 - 1) -> list[Emitted]:
        """Up to `limit` of the next events before `horizon_ms`; [] when the run is over (or at the horizon)."""
        batch = self._model.take(limit, horizon_ms)
        self._count()
        return batch

    def take_bytes(self, limit: int, horizon_ms: int) -> list[bytes]:
        """`take`, just the serialised events (without the GIL while they are made)."""
        batch = self._model.take_bytes(limit, horizon_ms)
        self._count()
        return batch

    def take_joined(self, limit: int, horizon_ms: int) -> tuple[int, bytes]:
        """`take`: how many, and the serialised events joined by newlines (what a model process sends)."""
        got = self._model.take_joined(limit, horizon_ms)
        self._count()
        return got

    def running(self) -> bool:
        """Whether the run has events left to make."""
        return self._model.running()

    def events(self) -> Iterator[Emitted]:
        """The port's events in event-time order, as `PortModel.events()`."""
        take = self._model.take
        while True:
            batch = take(CHUNK_EVENTS)
            self._count()
            if not batch:
                return
            yield from batch


def port_model(cfg: PortConfig, start: float, end: float, seed: int) -> PortModel | NativePortModel:
    """The compiled model where it is available, else the Python one."""
    return NativePortModel(cfg, start, end, seed) if available() else PortModel(cfg, start, end, seed)
