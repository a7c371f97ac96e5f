"""The metric core (SPEC §2, contract 1.1): events folded into per-port state, and every figure read from it.

Plain, deterministic Python with no I/O, shared by the live worker and by `analyze`, so that a
replay and the live run cannot disagree. Rules that make the figures independent of the order in
which events arrive:

* event time only (`ts`, in integer microseconds, so sums are exact in any order);
* the watermark is the second highest of the per-sensor latest `ts` (the highest while a single
  sensor has reported); only the two leading sensors matter for it, so only they are kept;
* a vehicle's arrival, entry and exit are each the earliest of their kind (ties broken by value),
  and its inspection, wait and clearance contributions are retracted and re-added when that changes;
* windows (the last hour, the queue's 72 h) are read relative to the watermark when asked for.

State stays bounded on event time. Nothing is forgotten relative to a watermark that could still
fall: the watermark drops once, when a second sensor first reports (below the first one), and never
after, so pruning waits for that second sensor. Then event ids are forgotten 48 h of watermark after
they were seen; vehicles 72 h after their last event once they exited, else 7 days and an hour after
it (waits and clearances pair over 7 days); queue entries once 72 h old; last-hour lists once out
of the window. Events later than those
horizons are still counted, but may no longer be paired or deduplicated.

Folding one event validates and computes everything that can fail first (days, cargo, the vehicle's
new contributions) and changes the state only after that, so a failure leaves the state as it was.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Iterable
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from crossing_monitor.core.clock import SECOND, DayClock, format_ts
from crossing_monitor.core.events import DIRECTIONS, EVENT_TYPES, VEHICLE_CLASSES, Event
from crossing_monitor.core.forecast import Forecaster
from crossing_monitor.core.records import (
    BOOKINGS,
    Day,
    Histogram,
    Mean,
    Vehicle,
    _dump_means,
    _load_means,
    new_by_direction,
)
from crossing_monitor.core.trends import Trends

if TYPE_CHECKING:
    from crossing_monitor.core.catalogue import Port

__all__ = ["HOUR", "INSPECTION_BUCKETS", "SECOND", "STATE_VERSION", "PortMetrics", "SnapshotVersionError"]

HOUR = 3600 * SECOND
LAST_HOUR = HOUR
QUEUE_DROP = 72 * HOUR
MAX_INSPECTION = 48 * HOUR
MAX_WAIT = 7 * 24 * HOUR
MAX_CLEARANCE = 7 * 24 * HOUR
ID_RETENTION_HOURS = 48
VEHICLE_RETENTION_HOURS = 7 * 24 + 1  # a vehicle still in the queue or the control area
EXITED_RETENTION_HOURS = 72  # a vehicle that left: only late events of it can still come
STATE_VERSION = 2  # of `to_state`; 1 was contract 1.0's list records (no "version" field)
# Upper bounds (seconds) of the inspection-time histogram buckets; the last one is +Inf.
INSPECTION_BUCKETS = (
    60,
    120,
    300,
    600,
    900,
    1200,
    1800,
    2700,
    3600,
    5400,
    7200,
    10800,
    14400,
    21600,
    43200,
    86400,
    172800,
)
_BUCKET_BOUNDS_US = tuple(b * SECOND for b in INSPECTION_BUCKETS)
_NO_CUT = -(1 << 62)  # below any event time: nothing is pruned yet

_first = itemgetter(0)

# Contributions of one vehicle (retractable), each led by the day it is grouped by:
#   inspection (day, exited, class, µs); wait (day, entered, direction, booking, µs);
#   clearance (day, exited, direction, class, µs).
# Items of the sorted last-hour lists drop the day:
#   recent_inspections (exited, vehicle, class, µs); recent_waits (entered, vehicle, direction, booking, µs);
#   recent_clearances (exited, vehicle, direction, class, µs); recent_entries (ts, direction, lane).


class SnapshotVersionError(ValueError):
    """A snapshot written in a format this version cannot read (older or newer)."""


def mean_seconds(total_us: int, count: int) -> float | None:
    return None if count == 0 else round(total_us / count / SECOND, 3)


def _mean_of(means: Iterable[Mean]) -> float | None:
    """The mean over several Means together."""
    total = count = 0
    for m in means:
        total += m.total
        count += m.count
    return mean_seconds(total, count)


def _averages(by_class: dict[str, Mean]) -> dict[str, float | None]:
    """{"all": mean, class: mean, ...}; empty classes left out."""
    out: dict[str, float | None] = {"all": _mean_of(by_class.values())}
    for cls in VEHICLE_CLASSES:
        m = by_class.get(cls)
        if m is not None and m.count:
            out[cls] = mean_seconds(m.total, m.count)
    return out


def _mean_in(means: dict[str, Mean], key: str) -> Mean:
    found = means.get(key)
    if found is None:
        found = means[key] = Mean()
    return found


def _remove_sorted(items: list[tuple], item: tuple) -> None:
    i = bisect_left(items, item)
    if i < len(items) and items[i] == item:
        del items[i]


class PortMetrics:
    """Everything one port's figures are computed from; `apply` one event at a time."""

    def __init__(self, port: str, timezone: str, catalogue_port: Port | None = None) -> None:
        self.port = port
        self.forecaster = Forecaster(catalogue_port, timezone)  # learns from the fold; reads the catalogue's schedule
        self.timezone = timezone
        self.clock = DayClock(timezone)
        # the two sensors with the latest ts (sensor_id and ts); the watermark needs no others
        self.top_sensor: str | None = None
        self.top_ts = _NO_CUT
        self.second_sensor: str | None = None
        self.second_ts = _NO_CUT
        self.watermark: int | None = None
        self._next_hour = _NO_CUT  # start of the hour after the highest hour the watermark reached
        self._cut = _NO_CUT  # (second sensor's ts) − 60 min: below it, no last hour can need an item
        self.hour: int | None = None  # the highest hour the watermark reached: labels for pruning
        self.ids: dict[str, None] = {}
        self.id_hours: deque[tuple[int, list[str]]] = deque()
        self._ids_this_hour: list[str] = []
        self.vehicles: dict[str, Vehicle] = {}
        self.vehicle_hours: deque[tuple[int, list[str]]] = deque()
        self.open_vehicle_hours: deque[tuple[int, list[str]]] = deque()  # not exited 72 h on: kept to 7 days
        self._vehicles_this_hour: list[str] = []
        self.waiting: dict[str, Vehicle] = {}  # arrived, nothing later seen: the queue (both directions)
        self.events_by_type: dict[str, int] = dict.fromkeys(EVENT_TYPES, 0)
        self.crossings = 0
        self.cargo_g = 0
        self.crossings_by: dict[str, dict[str, int]] = {d: dict.fromkeys(VEHICLE_CLASSES, 0) for d in DIRECTIONS}
        self.scans = 0
        self.flagged = 0
        self.days: dict[str, Day] = {}
        self.inspection: dict[str, Mean] = {}  # class → all time
        # Prometheus histograms, counters that never fall: every inspection time counted, and every one
        # retracted (a late event changed it); the exact distribution is their difference.
        self.inspection_observed: dict[str, Histogram] = {}
        self.inspection_retracted: dict[str, Histogram] = {}
        self.wait: dict[str, dict[str, Mean]] = {d: {b: Mean() for b in BOOKINGS} for d in DIRECTIONS}
        self.clearance: dict[str, dict[str, Mean]] = new_by_direction()
        self.recent_exits: list[int] = []
        self.recent_entries: list[tuple[int, str, str]] = []
        self.recent_inspections: list[tuple[int, str, str, int]] = []
        self.recent_waits: list[tuple[int, str, str, str, int]] = []
        self.recent_clearances: list[tuple[int, str, str, str, int]] = []
        self.trends = Trends()  # the wall's sparklines: 15-minute buckets, 24 h

    # ---- folding events ------------------------------------------------------------------

    def apply(self, ev: Event) -> bool:
        """Fold one valid event of this port in; False (and nothing changes) for a duplicate."""
        if ev.event_id in self.ids:
            return False
        etype = ev.type
        if etype == "gate.exited":
            self._exited(ev)
        elif etype == "vehicle.arrived":
            self._arrived(ev)
        elif etype == "gate.entered":
            self._entered(ev)
        elif etype == "scan.completed":
            day = self.clock.day(ev.ts)  # may fail: before any change
            self._accept(ev)
            self.scans += 1
            d = self.days.get(day) or self._day(day)
            d.scans += 1
            if ev.result == "flagged":
                self.flagged += 1
                d.flagged += 1
            self._progressed(ev.vehicle_id)
        else:
            self._accept(ev)
            self._progressed(ev.vehicle_id)
        self.trends.observe(etype, ev.ts, self)
        return True

    def _accept(self, ev: Event) -> None:
        """The first change an event makes: its id, its sensor's clock (the watermark), its type's count."""
        ts = ev.ts
        sensor = ev.sensor_id
        top_ts = self.top_ts
        if sensor == self.top_sensor:
            if ts > top_ts:
                self.top_ts = ts
                if self.second_sensor is None:
                    self.watermark = ts
                    if ts >= self._next_hour:
                        self._advance(ts)
        elif ts > top_ts:  # a new leader: the old one is now the highest of the others
            if self.top_sensor is not None:
                self.second_sensor = self.top_sensor
                self.second_ts = self.watermark = top_ts
                self._cut = top_ts - LAST_HOUR
                if top_ts >= self._next_hour:
                    self._advance(top_ts)
            else:
                self.watermark = ts
                self._advance(ts)
            self.top_sensor = sensor
            self.top_ts = ts
        elif ts > self.second_ts:  # (second_ts starts below any ts)
            # the second sensor's clock is the watermark (it falls only when a second sensor first reports)
            self.second_sensor = sensor
            self.second_ts = self.watermark = ts
            self._cut = ts - LAST_HOUR
            if ts >= self._next_hour:
                self._advance(ts)
        event_id = ev.event_id
        self.ids[event_id] = None
        self._ids_this_hour.append(event_id)
        self.events_by_type[ev.type] += 1

    def _day(self, name: str) -> Day:
        d = self.days.get(name)
        if d is None:
            d = self.days[name] = Day()
        return d

    def _vehicle(self, vehicle_id: str) -> Vehicle:
        """The vehicle's record, created or marked as touched in the current hour."""
        v = self.vehicles.get(vehicle_id)
        if v is None:
            v = self.vehicles[vehicle_id] = Vehicle(self.hour)
            self._vehicles_this_hour.append(vehicle_id)
        elif v.touched_hour != self.hour:
            v.touched_hour = self.hour
            self._vehicles_this_hour.append(vehicle_id)
        return v

    def _progressed(self, vehicle_id: str) -> None:
        """An event of a later stage than the arrival: the vehicle is out of the queue for good."""
        v = self.vehicles.get(vehicle_id)
        if v is None or v.touched_hour != self.hour:
            v = self._vehicle(vehicle_id)
        if not v.progressed:
            v.progressed = True
            self.waiting.pop(vehicle_id, None)

    def _exited(self, ev: Event) -> None:
        ts = ev.ts
        day = self.clock.day(ts)  # may fail: before any change
        cls = ev.vehicle_class
        direction = ev.direction
        cargo = ev.cargo_tonnes
        grams = round(cargo * 1_000_000) if cargo else 0
        vehicle_id = ev.vehicle_id
        v = self.vehicles.get(vehicle_id)
        changed = v is None or v.exited is None or (ts, cls, direction) < (v.exited, v.exit_class, v.exit_direction)
        if changed and v is not None:
            first = v.exited is None
            old_i = None if first else self._inspection_of(v.entered, v.exited, v.exit_class)
            new_i = self._inspection_of(v.entered, ts, cls, day)
            old_c = None if first else self._clearance_of(v.arrived, v.exited, v.exit_direction, v.exit_class)
            new_c = self._clearance_of(v.arrived, ts, direction, cls, day)
        # ---- nothing below can fail
        self._accept(ev)
        if v is not None and self.vehicles.get(vehicle_id) is not v:
            v = None  # forgotten by this very event's watermark step: for this event the vehicle is new
        d = self.days.get(day) or self._day(day)
        d.crossings += 1
        d.cargo_g += grams
        self.crossings += 1
        self.cargo_g += grams
        self.crossings_by[direction][cls] += 1
        if ts > self._cut:
            insort(self.recent_exits, ts)
        if v is None:
            v = self._vehicle(vehicle_id)
            v.exited, v.exit_class, v.exit_direction = ts, cls, direction
        else:
            if v.touched_hour != self.hour:
                self._vehicle(vehicle_id)
            if changed:
                v.exited, v.exit_class, v.exit_direction = ts, cls, direction
                if old_i is None:  # the common case: a first exit
                    if new_i is not None:
                        self._add_inspection(vehicle_id, new_i, 1, self.inspection_observed)
                elif old_i != new_i:
                    self._count_inspection(vehicle_id, old_i, new_i)
                if old_c is None:
                    if new_c is not None:
                        self._add_clearance(vehicle_id, new_c, 1)
                elif old_c != new_c:
                    self._count_clearance(vehicle_id, old_c, new_c)
        if not v.progressed:
            v.progressed = True
            self.waiting.pop(vehicle_id, None)

    def _entered(self, ev: Event) -> None:
        ts = ev.ts
        day = self.clock.day(ts)  # may fail: before any change
        vehicle_id = ev.vehicle_id
        v = self.vehicles.get(vehicle_id)
        changed = v is not None and (v.entered is None or ts < v.entered)
        if changed:
            first = v.entered is None
            old_i = None if first else self._inspection_of(v.entered, v.exited, v.exit_class)
            new_i = self._inspection_of(ts, v.exited, v.exit_class)
            old_w = None if first else self._wait_of(v.arrived, v.entered, v.arrived_direction, v.booked)
            new_w = self._wait_of(v.arrived, ts, v.arrived_direction, v.booked, day)
        # ---- nothing below can fail
        self._accept(ev)
        if v is not None and self.vehicles.get(vehicle_id) is not v:
            v = None  # forgotten by this very event's watermark step: for this event the vehicle is new
        self.forecaster.entered(ts, ev.direction, ev.lane)
        if ts > self._cut:
            insort(self.recent_entries, (ts, ev.direction, ev.lane))
        if v is None:
            v = self._vehicle(vehicle_id)
            v.entered = ts
        else:
            if v.touched_hour != self.hour:
                self._vehicle(vehicle_id)
            if changed:
                v.entered = ts
                if old_i != new_i:
                    self._count_inspection(vehicle_id, old_i, new_i)
                if old_w != new_w:
                    self._count_wait(vehicle_id, old_w, new_w)
        if not v.progressed:
            v.progressed = True
            self.waiting.pop(vehicle_id, None)

    def _arrived(self, ev: Event) -> None:
        ts = ev.ts
        direction = ev.direction
        booked = ev.booked is True
        vehicle_id = ev.vehicle_id
        v = self.vehicles.get(vehicle_id)
        changed = (
            v is None or v.arrived is None or (ts, direction, booked) < (v.arrived, v.arrived_direction, v.booked)
        )
        if changed and v is not None:
            old_w = self._wait_of(v.arrived, v.entered, v.arrived_direction, v.booked)
            new_w = self._wait_of(ts, v.entered, direction, booked)
            old_c = self._clearance_of(v.arrived, v.exited, v.exit_direction, v.exit_class)
            new_c = self._clearance_of(ts, v.exited, v.exit_direction, v.exit_class)
        # ---- nothing below can fail
        self._accept(ev)
        if v is not None and self.vehicles.get(vehicle_id) is not v:
            v, changed = None, True  # forgotten by this very event's watermark step: the vehicle is new
        self.forecaster.arrived(ts, direction, booked)
        if v is None:
            v = self._vehicle(vehicle_id)
        elif v.touched_hour != self.hour:
            self._vehicle(vehicle_id)
        if changed:
            v.arrived, v.arrived_direction, v.booked = ts, direction, booked
            if v.progressed:
                if old_w != new_w:
                    self._count_wait(vehicle_id, old_w, new_w)
                if old_c != new_c:
                    self._count_clearance(vehicle_id, old_c, new_c)
            else:
                self.waiting[vehicle_id] = v

    # ---- contributions of one vehicle, retractable ---------------------------------------

    def _inspection_of(
        self, entered: int | None, exited: int | None, cls: str, day: str | None = None
    ) -> tuple[str, int, str, int] | None:
        if entered is None or exited is None:
            return None
        duration = exited - entered
        if duration < 0 or duration > MAX_INSPECTION:
            return None
        return (day or self.clock.day(exited)), exited, cls, duration

    def _wait_of(
        self, arrived: int | None, entered: int | None, direction: str, booked: bool, day: str | None = None
    ) -> tuple[str, int, str, str, int] | None:
        if arrived is None or entered is None:
            return None
        duration = entered - arrived
        if duration < 0 or duration > MAX_WAIT:
            return None
        return (day or self.clock.day(entered)), entered, direction, "booked" if booked else "walk_up", duration

    def _clearance_of(
        self, arrived: int | None, exited: int | None, direction: str, cls: str, day: str | None = None
    ) -> tuple[str, int, str, str, int] | None:
        if arrived is None or exited is None:
            return None
        duration = exited - arrived
        if duration < 0 or duration > MAX_CLEARANCE:
            return None
        return (day or self.clock.day(exited)), exited, direction, cls, duration

    def _count_inspection(self, vehicle_id: str, old: tuple | None, new: tuple | None) -> None:
        if old is not None:
            self._add_inspection(vehicle_id, old, -1, self.inspection_retracted)
        if new is not None:
            self._add_inspection(vehicle_id, new, 1, self.inspection_observed)

    def _add_inspection(self, vehicle_id: str, c: tuple, sign: int, histograms: dict[str, Histogram]) -> None:
        day, exited, cls, duration = c
        signed = sign * duration
        by_class = (self.days.get(day) or self._day(day)).inspection
        m = by_class.get(cls)
        if m is None:
            m = by_class[cls] = Mean()
        m.total += signed
        m.count += sign
        m = self.inspection.get(cls)
        if m is None:
            m = self.inspection[cls] = Mean()
        m.total += signed
        m.count += sign
        h = histograms.get(cls)
        if h is None:
            h = histograms[cls] = Histogram([0] * (len(INSPECTION_BUCKETS) + 1))
        h.counts[bisect_left(_BUCKET_BOUNDS_US, duration)] += 1
        h.total += duration
        if sign < 0:
            _remove_sorted(self.recent_inspections, (exited, vehicle_id, cls, duration))
        elif exited > self._cut:
            insort(self.recent_inspections, (exited, vehicle_id, cls, duration))

    def _count_wait(self, vehicle_id: str, old: tuple | None, new: tuple | None) -> None:
        if old is not None:
            self._add_wait(vehicle_id, old, -1)
        if new is not None:
            self._add_wait(vehicle_id, new, 1)

    def _add_wait(self, vehicle_id: str, c: tuple, sign: int) -> None:
        day, entered, direction, booking, duration = c
        m = (self.days.get(day) or self._day(day)).wait[booking]
        m.total += sign * duration
        m.count += sign
        m = self.wait[direction][booking]
        m.total += sign * duration
        m.count += sign
        self.forecaster.waited(entered, direction, duration, sign)
        if sign < 0:
            _remove_sorted(self.recent_waits, (entered, vehicle_id, direction, booking, duration))
        elif entered > self._cut:
            insort(self.recent_waits, (entered, vehicle_id, direction, booking, duration))

    def _count_clearance(self, vehicle_id: str, old: tuple | None, new: tuple | None) -> None:
        if old is not None:
            self._add_clearance(vehicle_id, old, -1)
        if new is not None:
            self._add_clearance(vehicle_id, new, 1)

    def _add_clearance(self, vehicle_id: str, c: tuple, sign: int) -> None:
        day, exited, direction, cls, duration = c
        signed = sign * duration
        by_class = (self.days.get(day) or self._day(day)).clearance[direction]
        m = by_class.get(cls)
        if m is None:
            m = by_class[cls] = Mean()
        m.total += signed
        m.count += sign
        by_class = self.clearance[direction]
        m = by_class.get(cls)
        if m is None:
            m = by_class[cls] = Mean()
        m.total += signed
        m.count += sign
        if sign < 0:
            _remove_sorted(self.recent_clearances, (exited, vehicle_id, direction, cls, duration))
        elif exited > self._cut:
            insort(self.recent_clearances, (exited, vehicle_id, direction, cls, duration))

    # ---- bounded state -------------------------------------------------------------------

    def _advance(self, watermark: int) -> None:
        """The watermark entered a new hour: new buckets, and forget what no figure can need any more."""
        self.hour = hour = watermark // HOUR
        self._next_hour = (hour + 1) * HOUR
        self._ids_this_hour = []
        self._vehicles_this_hour = []
        self.id_hours.append((hour, self._ids_this_hour))
        self.vehicle_hours.append((hour, self._vehicles_this_hour))
        if self.second_sensor is None:
            return  # a second sensor may still pull the watermark back: keep everything
        horizon = self.second_ts
        horizon_hour = horizon // HOUR
        self.forecaster.prune(horizon_hour)
        ids = self.ids
        while self.id_hours[0][0] <= horizon_hour - ID_RETENTION_HOURS:
            for event_id in self.id_hours.popleft()[1]:
                ids.pop(event_id, None)
        vehicles = self.vehicles
        while self.vehicle_hours[0][0] <= horizon_hour - EXITED_RETENTION_HOURS:
            bucket_hour, bucket = self.vehicle_hours.popleft()
            still_open = []
            for vehicle_id in bucket:
                v = vehicles.get(vehicle_id)
                if v is not None and v.touched_hour <= bucket_hour:
                    if v.exited is None:
                        still_open.append(vehicle_id)
                    else:
                        del vehicles[vehicle_id]
                        self.waiting.pop(vehicle_id, None)
            if still_open:
                self.open_vehicle_hours.append((bucket_hour, still_open))
        while self.open_vehicle_hours and self.open_vehicle_hours[0][0] <= horizon_hour - VEHICLE_RETENTION_HOURS:
            bucket_hour, bucket = self.open_vehicle_hours.popleft()
            for vehicle_id in bucket:
                v = vehicles.get(vehicle_id)
                if v is not None and v.touched_hour <= bucket_hour:
                    del vehicles[vehicle_id]
                    self.waiting.pop(vehicle_id, None)
        oldest = horizon - QUEUE_DROP
        for vehicle_id in [vid for vid, v in self.waiting.items() if v.arrived <= oldest]:  # type: ignore[operator]
            del self.waiting[vehicle_id]
        cut = self._cut
        del self.recent_exits[: bisect_right(self.recent_exits, cut)]
        for items in (self.recent_entries, self.recent_inspections, self.recent_waits, self.recent_clearances):
            del items[: bisect_right(items, cut, key=_first)]

    # ---- reading the figures -------------------------------------------------------------

    def _last_hour(self, items: list) -> list:
        """The items with their first field in (watermark − 60 min, watermark]."""
        wm = self.watermark
        if wm is None:
            return []
        return items[bisect_right(items, wm - LAST_HOUR, key=_first) : bisect_right(items, wm, key=_first)]

    def peak_day(self) -> tuple[str, int] | None:
        """The day with the most crossings (ties: the earliest), or None before any crossing."""
        best: tuple[str, int] | None = None
        for name in sorted(self.days):
            count = self.days[name].crossings
            if count > 0 and (best is None or count > best[1]):
                best = (name, count)
        return best

    def throughput_per_hour(self) -> int:
        """Crossings with ts in (watermark − 60 min, watermark]."""
        wm = self.watermark
        if wm is None:
            return 0
        exits = self.recent_exits
        return bisect_right(exits, wm) - bisect_right(exits, wm - LAST_HOUR)

    def last_hour_inspection(self) -> dict[str, float | None]:
        by_class: dict[str, Mean] = {}
        for _, _, cls, duration in self._last_hour(self.recent_inspections):
            _mean_in(by_class, cls).add(duration, 1)
        return _averages(by_class)

    def _last_hour_waits(self) -> dict[str, dict[str, Mean]]:
        """direction → booking → Mean of the waits grouped into the last hour."""
        out = {d: {b: Mean() for b in BOOKINGS} for d in DIRECTIONS}
        for _, _, direction, booking, duration in self._last_hour(self.recent_waits):
            out[direction][booking].add(duration, 1)
        return out

    def last_hour_wait(self) -> float | None:
        return _mean_of(m for by in self._last_hour_waits().values() for m in by.values())

    def last_hour_wait_by_booking(self) -> dict[str, float | None]:
        waits = self._last_hour_waits()
        return {b: _mean_of(waits[d][b] for d in DIRECTIONS) for b in BOOKINGS}

    def wait_by_booking(self) -> dict[str, float | None]:
        return {b: _mean_of(self.wait[d][b] for d in DIRECTIONS) for b in BOOKINGS}

    def last_hour_clearance(self) -> dict[str, dict[str, float | None]]:
        by = new_by_direction()
        for _, _, direction, cls, duration in self._last_hour(self.recent_clearances):
            _mean_in(by[direction], cls).add(duration, 1)
        return {d: _averages(by[d]) for d in DIRECTIONS}

    def queue(self) -> dict[str, int]:
        """Vehicles arrived less than 72 h before the watermark with nothing of a later stage yet, per direction.

        An arrival after the watermark counts too: the approach camera may be the sensor that is ahead.
        """
        counts = dict.fromkeys(DIRECTIONS, 0)
        if self.watermark is not None:
            oldest = self.watermark - QUEUE_DROP
            for v in self.waiting.values():
                if v.arrived > oldest:  # type: ignore[operator]
                    counts[v.arrived_direction] += 1
        return counts

    def entries_per_hour(self) -> dict[str, int]:
        counts = dict.fromkeys(DIRECTIONS, 0)
        for _, direction, _ in self._last_hour(self.recent_entries):
            counts[direction] += 1
        return counts

    def lanes_in_use(self) -> dict[str, int]:
        """Distinct lanes with a gate.entered in the last hour, per direction."""
        lanes: dict[str, set[str]] = {d: set() for d in DIRECTIONS}
        for _, direction, lane in self._last_hour(self.recent_entries):
            lanes[direction].add(lane)
        return {d: len(lanes[d]) for d in DIRECTIONS}

    def forecast(self, queue: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
        """Per direction: entries in the last hour, the time to clear the queue at that rate (and with one
        more lane), the predicted wait of a vehicle joining now (crossing_monitor.core.forecast)."""
        queue = self.queue() if queue is None else queue
        return self.forecaster.figures(self, queue, self.entries_per_hour(), self.lanes_in_use())

    def today(self) -> int:
        """Crossings on the watermark's day."""
        if self.watermark is None:
            return 0
        day = self.days.get(self.clock.day(self.watermark))
        return day.crossings if day else 0

    def report(self) -> dict[str, Any]:
        """The per-port object of SPEC §3 (`analyze --format json`, `GET /api/ports/{port}`)."""
        days = {
            name: {
                "crossings": d.crossings,
                "cargo_tonnes": d.cargo_g / 1_000_000,
                "avg_inspection_seconds": _averages(d.inspection),
                "avg_wait_seconds": _mean_of(d.wait.values()),
                "avg_wait_seconds_by_booking": {b: _mean_of((d.wait[b],)) for b in BOOKINGS},
                "avg_clearance_seconds": {dr: _averages(d.clearance[dr]) for dr in DIRECTIONS},
                "scans": {"completed": d.scans, "flagged": d.flagged},
            }
            for name, d in sorted(self.days.items())
            if not d.is_empty()
        }
        peak = self.peak_day()
        queue = self.queue()
        trends, trend_samples = self.trends.report(self.watermark)
        return {
            "crossings": self.crossings,
            "cargo_tonnes": self.cargo_g / 1_000_000,
            "days": days,
            "peak_day": None if peak is None else {"date": peak[0], "crossings": peak[1]},
            "watermark": None if self.watermark is None else format_ts(self.clock.local(self.watermark)),
            "throughput_per_hour": self.throughput_per_hour(),
            "avg_inspection_seconds": _averages(self.inspection),
            "last_hour_avg_inspection_seconds": self.last_hour_inspection(),
            "avg_wait_seconds": _mean_of(m for by in self.wait.values() for m in by.values()),
            "last_hour_avg_wait_seconds": self.last_hour_wait(),
            "queue": queue,
            "avg_wait_seconds_by_booking": self.wait_by_booking(),
            "avg_clearance_seconds": {d: _averages(self.clearance[d]) for d in DIRECTIONS},
            "last_hour_avg_clearance_seconds": self.last_hour_clearance(),
            "scans": {"completed": self.scans, "flagged": self.flagged},
            "lanes_in_use": self.lanes_in_use(),
            "forecast": self.forecast(queue),
            "trends": trends,
            "trend_samples": trend_samples,
        }

    # ---- snapshots (checkpoints of the live worker) --------------------------------------

    def to_state(self) -> dict[str, Any]:
        """All state as JSON-compatible values; `from_state` gives back an equal PortMetrics."""
        return {
            "version": STATE_VERSION,
            "port": self.port,
            "timezone": self.timezone,
            "sensors": [[s, t] for s, t in ((self.top_sensor, self.top_ts), (self.second_sensor, self.second_ts)) if s],
            "hour": self.hour,
            "id_hours": [[h, ids] for h, ids in self.id_hours],
            "vehicles": {vid: v.dump() for vid, v in self.vehicles.items()},
            "vehicle_hours": [[h, vids] for h, vids in self.vehicle_hours],
            "open_vehicle_hours": [[h, vids] for h, vids in self.open_vehicle_hours],
            "waiting": list(self.waiting),
            "events_by_type": self.events_by_type,
            "crossings": self.crossings,
            "cargo_g": self.cargo_g,
            "crossings_by": self.crossings_by,
            "scans": self.scans,
            "flagged": self.flagged,
            "days": {name: d.dump() for name, d in self.days.items()},
            "inspection": _dump_means(self.inspection),
            "inspection_observed": {c: h.dump() for c, h in self.inspection_observed.items()},
            "inspection_retracted": {c: h.dump() for c, h in self.inspection_retracted.items()},
            "wait": {d: _dump_means(by) for d, by in self.wait.items()},
            "clearance": {d: _dump_means(by) for d, by in self.clearance.items()},
            "recent_exits": self.recent_exits,
            "recent_entries": self.recent_entries,
            "recent_inspections": self.recent_inspections,
            "recent_waits": self.recent_waits,
            "recent_clearances": self.recent_clearances,
            "forecast": self.forecaster.to_state(),
            "trends": self.trends.dump(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], catalogue_port: Port | None = None) -> PortMetrics:
        """The inverse of `to_state`; SnapshotVersionError for a format this code does not write."""
        version = state.get("version") if isinstance(state, dict) else None
        if version != STATE_VERSION:
            raise SnapshotVersionError(
                f"port snapshot version {version!r} (this code reads version {STATE_VERSION} only)"
            )
        m = cls(state["port"], state["timezone"], catalogue_port)
        m.forecaster.load(state.get("forecast"))
        for i, (sensor, ts) in enumerate(state["sensors"]):
            if i == 0:
                m.top_sensor, m.top_ts = sensor, ts
            else:
                m.second_sensor, m.second_ts = sensor, ts
        if m.top_sensor is not None:
            m.watermark = m.top_ts if m.second_sensor is None else m.second_ts
            if m.second_sensor is not None:
                m._cut = m.watermark - LAST_HOUR
        m.hour = state["hour"]
        if m.hour is not None:
            m._next_hour = (m.hour + 1) * HOUR
        m.id_hours = deque((h, list(ids)) for h, ids in state["id_hours"])
        if m.id_hours:
            m._ids_this_hour = m.id_hours[-1][1]
        m.ids = {event_id: None for _, ids in m.id_hours for event_id in ids}
        m.vehicles = {vid: Vehicle.load(v) for vid, v in state["vehicles"].items()}
        m.vehicle_hours = deque((h, list(vids)) for h, vids in state["vehicle_hours"])
        if m.vehicle_hours:
            m._vehicles_this_hour = m.vehicle_hours[-1][1]
        m.open_vehicle_hours = deque((h, list(vids)) for h, vids in state["open_vehicle_hours"])
        m.waiting = {vid: m.vehicles[vid] for vid in state["waiting"]}
        m.events_by_type = dict(state["events_by_type"])
        m.crossings = state["crossings"]
        m.cargo_g = state["cargo_g"]
        m.crossings_by = {d: dict(c) for d, c in state["crossings_by"].items()}
        m.scans = state["scans"]
        m.flagged = state["flagged"]
        m.days = {name: Day.load(d) for name, d in state["days"].items()}
        m.inspection = _load_means(state["inspection"])
        m.inspection_observed = {c: Histogram.load(h) for c, h in state["inspection_observed"].items()}
        m.inspection_retracted = {c: Histogram.load(h) for c, h in state["inspection_retracted"].items()}
        m.wait = {d: _load_means(by) for d, by in state["wait"].items()}
        m.clearance = {d: _load_means(by) for d, by in state["clearance"].items()}
        m.recent_exits = list(state["recent_exits"])
        m.recent_entries = [tuple(x) for x in state["recent_entries"]]  # type: ignore[misc]
        m.recent_inspections = [tuple(x) for x in state["recent_inspections"]]  # type: ignore[misc]
        m.recent_waits = [tuple(x) for x in state["recent_waits"]]  # type: ignore[misc]
        m.recent_clearances = [tuple(x) for x in state["recent_clearances"]]  # type: ignore[misc]
        m.trends = Trends.load(state.get("trends"))
        return m
