"""The discrete-event model of one port: vehicles arrive, queue, pass lanes, scanners and bays.

Times follow from capacity, not from fixed delays. Each entry lane, scanner and inspection bay
serves one vehicle at a time, first come first served, so a queue builds when arrivals outrun
the lanes and falls when they don't; a vehicle waits inside the control area when the scanners or
bays are busy. Entry lanes admit vehicles only while the port is open; staff finish the vehicles
already inside. Everything random comes from one `random.Random` per port, seeded by the run's
seed, the port and the start, so a run is reproducible byte for byte.

Arrivals are two streams: booked trucks, whose clearance slots are spread evenly over the open
hours of each day (advance booking flattens the peaks), and walk-up traffic of every class,
following the hour-of-day profile and any surge.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from math import inf

import orjson

from producers.config import HOURLY_PROFILE, PortConfig
from producers.timefmt import TimestampFormatter

SLOT = 300  # seconds: opening hours and arrival rates are piecewise constant over 5-minute slots
SLOTS_PER_DAY = 86400 // SLOT
GAMMA_SHAPE = 4.0  # service times: gamma with coefficient of variation 0.5
MAX_CLOSED_DAYS = 400  # a port that never opens within this long admits nobody

_EMIT, _ARRIVE, _SCAN, _BAY = range(4)
_FREIGHT = frozenset({"truck", "other"})  # container-scanned; physical inspection in the legacy regime
_ENTRY_FACTOR = {"truck": 1.0, "other": 1.0, "bus": 1.0, "car": 0.4}
_SHORT = {"outbound": "out", "inbound": "in"}

Emitted = tuple[int, bytes]  # (event time in epoch ms as the model saw it, the serialised event)


class _Day:
    """One local calendar day: when the port is open and the walk-up arrival rate, per slot."""

    __slots__ = ("start", "open", "rate", "booked")

    def __init__(self, start: float, open_: list[bool], rate: list[float], booked: list[float]) -> None:
        self.start = start
        self.open = open_
        self.rate = rate  # walk-up arrivals per second
        self.booked = booked  # sorted arrival times of booked trucks


class _Vehicle:
    __slots__ = ("vid", "cls", "direction", "booked", "lane", "base", "n")

    def __init__(self, vid: str, cls: str, direction: str, booked: bool) -> None:
        self.vid = vid
        self.cls = cls
        self.direction = direction
        self.booked = booked
        self.lane = ""
        self.base: dict = {}
        self.n = 0


class PortModel:
    """One port from `start` to `end` (epoch seconds; `end` may be inf): `events()` yields
    (ms, bytes) in event-time order; vehicles that arrived before `end` finish their crossing."""

    def __init__(self, cfg: PortConfig, start: float, end: float, seed: int) -> None:
        self.cfg = cfg
        self.start = start
        self.end = end
        self.rng = random.Random(f"{seed}:{cfg.slug}:{round(start * 1000)}")
        self.stats: Counter[str] = Counter()
        self._fmt = TimestampFormatter(cfg.tz)
        self._days: dict[date, _Day] = {}
        self._heap: list[tuple] = []
        self._seq = 0
        self._lanes = {d: [(start, i + 1) for i in range(n)] for d, n in cfg.lanes.items() if n > 0}
        self._scanners = [(start, i + 1) for i in range(cfg.scanners)]
        self._bays = [(start, i + 1) for i in range(cfg.bays)]
        out_share = cfg.outbound_share if "inbound" in self._lanes else 1.0
        self._out_share = out_share if "outbound" in self._lanes else 0.0
        truck = cfg.class_mix.get("truck", 0.0)
        self._booked_trucks = truck * cfg.booked_share  # share of all vehicles
        walk = {c: s for c, s in cfg.class_mix.items() if s > 0}
        if "truck" in walk:
            walk["truck"] = truck * (1 - cfg.booked_share)
        self._walk_classes = [c for c, s in walk.items() if s > 0]
        self._walk_weights = [walk[c] for c in self._walk_classes]
        self._walk_share = sum(self._walk_weights)

    # ---- calendar ------------------------------------------------------------------------

    def _day(self, t: float) -> _Day:
        local = datetime.fromtimestamp(t, self.cfg.tz)
        found = self._days.get(local.date())
        return found if found is not None else self._plan(local.date())

    def _plan(self, day: date) -> _Day:
        cfg, rng = self.cfg, self.rng
        start = datetime.combine(day, time(0), cfg.tz).timestamp()
        locals_ = [datetime.combine(day, time(0), cfg.tz) + timedelta(seconds=k * SLOT) for k in range(SLOTS_PER_DAY)]
        open_ = [cfg.hours.is_open(dt) for dt in locals_]
        weights = [HOURLY_PROFILE[dt.hour] if o else 0.0 for dt, o in zip(locals_, open_, strict=True)]
        total = sum(weights)
        volume = cfg.vehicles_per_day
        rate = [0.0] * SLOTS_PER_DAY
        if total > 0:
            per_weight = volume * self._walk_share / total / SLOT
            for k, w in enumerate(weights):
                if w:
                    factor = 1.0
                    for surge in cfg.surges:
                        if surge.start <= start + k * SLOT < surge.end:
                            factor *= surge.factor
                    rate[k] = w * per_weight * factor
        booked: list[float] = []
        open_slots = [k for k, o in enumerate(open_) if o]
        expected = volume * self._booked_trucks
        n = int(expected) + (rng.random() < expected - int(expected))
        if n and open_slots:
            gap = len(open_slots) * SLOT / n
            for i in range(n):
                offset = (i + rng.random()) * gap  # one slot of the day's booking grid each
                slot, into = divmod(offset, SLOT)
                booked.append(start + open_slots[int(slot)] * SLOT + into)
        if len(self._days) > 8:  # old days are never looked at again
            self._days.pop(next(iter(self._days)))
        plan = self._days[day] = _Day(start, open_, rate, booked)
        return plan

    def next_open(self, t: float) -> float:
        """The earliest time >= t when the entry lanes admit vehicles (inf if never)."""
        for _ in range(MAX_CLOSED_DAYS):
            day = self._day(t)
            k = int((t - day.start) // SLOT)
            while k < SLOTS_PER_DAY:
                if day.open[k]:
                    return max(t, day.start + k * SLOT)
                k += 1
            t = max(t, day.start + SLOTS_PER_DAY * SLOT)
        return inf

    # ---- arrival streams -----------------------------------------------------------------

    def _walkups(self) -> Iterator[tuple[float, bool]]:
        t, end, expo = self.start, self.end, self.rng.expovariate
        idle = 0
        while t < end:
            day = self._day(t)
            k = min(int((t - day.start) // SLOT), SLOTS_PER_DAY - 1)
            slot_end = max(day.start + (k + 1) * SLOT, t + 1)  # (a 25-hour day's last hour)
            rate = day.rate[k]
            if rate <= 0:
                idle += 1
                if idle > MAX_CLOSED_DAYS * SLOTS_PER_DAY:
                    return
                t = slot_end
                continue
            idle = 0
            t += expo(rate)
            if t >= slot_end:  # memoryless: start again at the boundary with the next slot's rate
                t = slot_end
                continue
            if t < end:
                yield t, False

    def _bookings(self) -> Iterator[tuple[float, bool]]:
        t, idle = self.start, 0
        while t < self.end and idle < MAX_CLOSED_DAYS:
            day = self._day(t)
            times = day.booked
            idle = 0 if times else idle + 1
            for when in times[bisect_left(times, self.start) :]:
                if when >= self.end:
                    return
                yield when, True
            t = self._day(day.start + 86400 + 3600).start  # the next local day, whatever its length

    # ---- the vehicles ----------------------------------------------------------------------

    def _push(self, t: float, kind: int, item: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, item))

    def _emit(self, t: float, v: _Vehicle, etype: str, sensor: str, extra: dict | None = None) -> None:
        ms = int(t * 1000)
        skew = self.cfg.skew_seconds.get(sensor)
        stamp = self._fmt(ms + int(skew * 1000)) if skew else self._fmt(ms)
        v.n += 1
        obj = {"event_id": f"{v.vid}-{v.n}", "type": etype, "ts": stamp, **v.base, "sensor_id": sensor}
        if extra:
            obj.update(extra)
        self._push(t, _EMIT, (ms, orjson.dumps(obj)))

    def _service(self, minutes: float) -> float:
        return self.rng.gammavariate(GAMMA_SHAPE, minutes * 60 / GAMMA_SHAPE) if minutes > 0 else 0.0

    def _arrive(self, t: float, booked: bool) -> None:
        cfg, rng = self.cfg, self.rng
        cls = "truck" if booked else rng.choices(self._walk_classes, self._walk_weights)[0]
        direction = "outbound" if rng.random() < self._out_share else "inbound"
        v = _Vehicle(f"{cfg.slug}-{rng.getrandbits(64):016x}", cls, direction, booked)
        self.stats[f"vehicles.{cls}"] += 1
        lanes = self._lanes[direction]
        free, idx = lanes[0]
        entry = self.next_open(max(t, free))
        v.lane = f"{_SHORT[direction]}-{idx}"
        v.base = {
            "port": cfg.slug,
            "lane": v.lane,
            "direction": direction,
            "vehicle_id": v.vid,
            "vehicle_class": cls,
        }
        self._emit(t, v, "vehicle.arrived", f"{cfg.slug}-{_SHORT[direction]}-approach-cam", {"booked": booked})
        if entry == inf:
            heapq.heapreplace(lanes, (inf, idx))
            return
        minutes = cfg.entry_minutes * _ENTRY_FACTOR.get(cls, 1.0) * (0.5 if booked else 1.0)
        done = entry + self._service(minutes)
        heapq.heapreplace(lanes, (done, idx))
        self._emit(entry, v, "gate.entered", f"{cfg.slug}-{v.lane}-entry")
        if cls in _FREIGHT and cfg.regime == "legacy":
            self._push(done, _BAY, (v, cfg.legacy_minutes))
        elif cls in _FREIGHT:
            self._push(done, _SCAN, v)
        elif rng.random() < cfg.sampled_share:
            self._push(done, _BAY, (v, cfg.physical_minutes * 0.5))
        else:
            self._exit(done, v)

    def _scan(self, t: float, v: _Vehicle) -> None:
        cfg, rng = self.cfg, self.rng
        free, idx = self._scanners[0]
        begin = max(t, free)
        done = begin + self._service(cfg.scan_minutes)
        heapq.heapreplace(self._scanners, (done, idx))
        flagged = rng.random() < cfg.flagged_share
        sensor = f"{cfg.slug}-scanner-{idx}"
        self._emit(begin, v, "scan.started", sensor)
        self._emit(done, v, "scan.completed", sensor, {"result": "flagged" if flagged else "clear"})
        if flagged or rng.random() < cfg.sampled_share:
            self._push(done, _BAY, (v, cfg.physical_minutes))
        else:
            self._exit(done, v)

    def _inspect(self, t: float, v: _Vehicle, minutes: float) -> None:
        free, idx = self._bays[0]
        begin = max(t, free)
        done = begin + self._service(minutes)
        heapq.heapreplace(self._bays, (done, idx))
        sensor = f"{self.cfg.slug}-bay-{idx}"
        self._emit(begin, v, "inspection.started", sensor)
        self._emit(done, v, "inspection.completed", sensor)
        self._exit(done, v)

    def _exit(self, t: float, v: _Vehicle) -> None:
        cfg, rng = self.cfg, self.rng
        when = t + self._service(cfg.exit_minutes)
        extra = None
        if v.cls in _FREIGHT:
            extra = {"cargo_tonnes": round(rng.gammavariate(2.0, cfg.cargo_per_truck / 2), 1)}
        self.stats[f"crossings.{v.cls}"] += 1
        self._emit(when, v, "gate.exited", f"{cfg.slug}-{v.lane}-exit", extra)

    # ---- the run -------------------------------------------------------------------------

    def events(self) -> Iterator[Emitted]:
        """The port's events in event-time order (ties: in the order they were produced)."""
        heap = self._heap
        streams = [self._bookings(), self._walkups()]
        for stream in streams:
            first = next(stream, None)
            if first is not None:
                self._push(first[0], _ARRIVE, (stream, first[1]))
        pop = heapq.heappop
        while heap:
            t, _, kind, item = pop(heap)
            if kind == _EMIT:
                yield item
            elif kind == _ARRIVE:
                stream, booked = item
                self._arrive(t, booked)
                following = next(stream, None)
                if following is not None:
                    self._push(following[0], _ARRIVE, (stream, following[1]))
            elif kind == _SCAN:
                self._scan(t, item)
            else:
                self._inspect(t, *item)
