"""The metric core (SPEC §2): events folded into per-port state, and every figure read from it.

Plain, deterministic Python with no I/O, shared by the live worker and by `analyze`, so that a
replay and the live run cannot disagree. Rules that make the figures independent of the order in
which events arrive:

* event time only (`ts`, in integer microseconds, so sums are exact in any order);
* a vehicle's arrival, entry and exit are each the earliest of their kind (ties broken by value),
  and its inspection and wait contributions are retracted and re-added when that changes;
* windows ("last hour", the queue's 24 h) are read relative to the watermark when asked for.

State stays bounded: event ids are forgotten 48 h of watermark after they were seen, vehicles
72 h after their last event, queue entries once 24 h old, last-hour lists once out of the window.
Events later than those horizons are still counted, but may no longer be paired or deduplicated.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque
from datetime import date, datetime, time
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from crossing_monitor.core.events import DIRECTIONS, EVENT_TYPES, VEHICLE_CLASSES, Event

SECOND = 1_000_000
HOUR = 3600 * SECOND
LAST_HOUR = HOUR
QUEUE_DROP = 24 * HOUR
MAX_DURATION = 48 * HOUR
ID_RETENTION_HOURS = 48
VEHICLE_RETENTION_HOURS = 72
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
_QUARTER_HOUR = 900 * SECOND

# Vehicle record fields (a list, so it serialises as it is).
ARRIVED, ARRIVED_DIRECTION, ENTERED, EXITED, EXIT_CLASS, TOUCHED_HOUR = range(6)

_first = itemgetter(0)


class DayClock:
    """Event time → calendar day in one time zone; cached per quarter hour (offsets change on those)."""

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)
        self._days: dict[int, str] = {}

    def day(self, ts: int) -> str:
        quarter = ts // _QUARTER_HOUR
        found = self._days.get(quarter)
        if found is None:
            if len(self._days) > 100_000:
                self._days.clear()
            found = self._days[quarter] = datetime.fromtimestamp(quarter * 900, self.tz).date().isoformat()
        return found

    def local(self, ts: int) -> datetime:
        seconds, micros = divmod(ts, SECOND)
        return datetime.fromtimestamp(seconds, self.tz).replace(microsecond=micros)

    def day_start(self, day: str) -> float:
        """Unix time (seconds) of local midnight starting `day`."""
        return datetime.combine(date.fromisoformat(day), time(0), self.tz).timestamp()


def format_ts(local: datetime) -> str:
    """RFC 3339 with the offset, and only as many fraction digits as the instant needs."""
    micros = local.microsecond
    spec = "seconds" if micros == 0 else "milliseconds" if micros % 1000 == 0 else "microseconds"
    return local.isoformat(timespec=spec)


def _mean_seconds(total_us: int, count: int) -> float | None:
    return None if count == 0 else round(total_us / count / SECOND, 3)


def _averages(by_class: dict[str, list[int]]) -> dict[str, float | None]:
    """{"all": mean, class: mean, ...} from {class: [sum_us, count]}; empty classes left out."""
    total = sum(s for s, _ in by_class.values())
    count = sum(n for _, n in by_class.values())
    out: dict[str, float | None] = {"all": _mean_seconds(total, count)}
    for cls in VEHICLE_CLASSES:
        pair = by_class.get(cls)
        if pair and pair[1]:
            out[cls] = _mean_seconds(pair[0], pair[1])
    return out


def _new_day() -> list:
    # crossings, cargo (grams), inspection {class: [sum_us, n]}, wait sum_us, wait n
    return [0, 0, {}, 0, 0]


class PortMetrics:
    """Everything one port's figures are computed from; `apply` one event at a time."""

    def __init__(self, port: str, timezone: str) -> None:
        self.port = port
        self.timezone = timezone
        self.clock = DayClock(timezone)
        self.watermark: int | None = None
        self.hour: int | None = None  # the watermark's hour number, for pruning
        self.ids: dict[str, None] = {}
        self.id_hours: deque[tuple[int, list[str]]] = deque()
        self.vehicles: dict[str, list] = {}
        self.vehicle_hours: deque[tuple[int, list[str]]] = deque()
        self.waiting: dict[str, list] = {}  # vehicle → [arrived, direction]: in the queue
        self.events_by_type: dict[str, int] = dict.fromkeys(EVENT_TYPES, 0)
        self.crossings = 0
        self.cargo_g = 0
        self.crossings_by: dict[str, dict[str, int]] = {d: dict.fromkeys(VEHICLE_CLASSES, 0) for d in DIRECTIONS}
        self.days: dict[str, list] = {}
        self.inspection: dict[str, list[int]] = {}  # class → [sum_us, n], all time
        self.inspection_histogram: dict[str, list[int]] = {}  # class → counts per bucket (+Inf last)
        self.wait = [0, 0]
        self.recent_exits: list[int] = []  # ts of crossings near the last hour, sorted
        self.recent_inspections: list[tuple[int, str, str, int]] = []  # (exit ts, vehicle, class, µs)
        self.recent_waits: list[tuple[int, str, int]] = []  # (entry ts, vehicle, µs)

    # ---- folding events ------------------------------------------------------------------

    def apply(self, ev: Event) -> bool:
        """Fold one valid event of this port in; False (and nothing changes) for a duplicate."""
        event_id = ev.event_id
        ids = self.ids
        if event_id in ids:
            return False
        ts = ev.ts
        if self.watermark is None or ts > self.watermark:
            self.watermark = ts
            hour = ts // HOUR
            if hour != self.hour:
                self._advance(hour)
        ids[event_id] = None
        self._ids_this_hour.append(event_id)
        etype = ev.type
        self.events_by_type[etype] += 1
        if etype == "gate.exited":
            self._exited(ev)
        elif etype == "gate.entered":
            self._entered(ev)
        elif etype == "vehicle.arrived":
            self._arrived(ev)
        return True

    def _vehicle(self, vehicle_id: str) -> list:
        v = self.vehicles.get(vehicle_id)
        if v is None:
            v = self.vehicles[vehicle_id] = [None, None, None, None, None, self.hour]
            self._vehicles_this_hour.append(vehicle_id)
        elif v[TOUCHED_HOUR] != self.hour:
            v[TOUCHED_HOUR] = self.hour
            self._vehicles_this_hour.append(vehicle_id)
        return v

    def _exited(self, ev: Event) -> None:
        ts = ev.ts
        cls = ev.vehicle_class
        cargo = ev.cargo_tonnes
        grams = round(cargo * 1_000_000) if cargo else 0
        day_name = self.clock.day(ts)
        day = self.days.get(day_name)
        if day is None:
            day = self.days[day_name] = _new_day()
        day[0] += 1
        day[1] += grams
        self.crossings += 1
        self.cargo_g += grams
        self.crossings_by[ev.direction][cls] += 1
        if ts > self.watermark - LAST_HOUR:
            insort(self.recent_exits, ts)
        v = self._vehicle(ev.vehicle_id)
        exited = v[EXITED]
        if exited is None or ts < exited or (ts == exited and cls < v[EXIT_CLASS]):
            old = self._inspection_of(v)
            v[EXITED] = ts
            v[EXIT_CLASS] = cls
            self._replace_inspection(ev.vehicle_id, old, self._inspection_of(v))

    def _entered(self, ev: Event) -> None:
        ts = ev.ts
        vehicle_id = ev.vehicle_id
        v = self._vehicle(vehicle_id)
        self.waiting.pop(vehicle_id, None)
        entered = v[ENTERED]
        if entered is None or ts < entered:
            old_inspection = self._inspection_of(v)
            old_wait = self._wait_of(v)
            v[ENTERED] = ts
            self._replace_inspection(vehicle_id, old_inspection, self._inspection_of(v))
            self._replace_wait(vehicle_id, old_wait, self._wait_of(v))

    def _arrived(self, ev: Event) -> None:
        ts = ev.ts
        vehicle_id = ev.vehicle_id
        direction = ev.direction
        v = self._vehicle(vehicle_id)
        arrived = v[ARRIVED]
        if arrived is None or ts < arrived or (ts == arrived and direction < v[ARRIVED_DIRECTION]):
            old_wait = self._wait_of(v)
            v[ARRIVED] = ts
            v[ARRIVED_DIRECTION] = direction
            self._replace_wait(vehicle_id, old_wait, self._wait_of(v))
            if v[ENTERED] is None:
                self.waiting[vehicle_id] = [ts, direction]

    # ---- contributions of one vehicle, retractable ---------------------------------------

    @staticmethod
    def _inspection_of(v: list) -> tuple[int, str, int] | None:
        entered, exited = v[ENTERED], v[EXITED]
        if entered is None or exited is None:
            return None
        duration = exited - entered
        if duration < 0 or duration > MAX_DURATION:
            return None
        return exited, v[EXIT_CLASS], duration

    @staticmethod
    def _wait_of(v: list) -> tuple[int, int] | None:
        arrived, entered = v[ARRIVED], v[ENTERED]
        if arrived is None or entered is None:
            return None
        duration = entered - arrived
        if duration < 0 or duration > MAX_DURATION:
            return None
        return entered, duration

    def _replace_inspection(self, vehicle_id: str, old: tuple | None, new: tuple | None) -> None:
        if old == new:
            return
        if old is not None:
            self._count_inspection(vehicle_id, old, -1)
        if new is not None:
            self._count_inspection(vehicle_id, new, 1)

    def _count_inspection(self, vehicle_id: str, contribution: tuple[int, str, int], sign: int) -> None:
        exited, cls, duration = contribution
        day = self.days.get(self.clock.day(exited))
        if day is None:
            day = self.days[self.clock.day(exited)] = _new_day()
        pair = day[2].get(cls)
        if pair is None:
            pair = day[2][cls] = [0, 0]
        pair[0] += sign * duration
        pair[1] += sign
        pair = self.inspection.get(cls)
        if pair is None:
            pair = self.inspection[cls] = [0, 0]
        pair[0] += sign * duration
        pair[1] += sign
        counts = self.inspection_histogram.get(cls)
        if counts is None:
            counts = self.inspection_histogram[cls] = [0] * (len(INSPECTION_BUCKETS) + 1)
        counts[bisect_left(_BUCKET_BOUNDS_US, duration)] += sign
        if exited > self.watermark - LAST_HOUR:
            item = (exited, vehicle_id, cls, duration)
            if sign > 0:
                insort(self.recent_inspections, item)
            else:
                _remove_sorted(self.recent_inspections, item)

    def _replace_wait(self, vehicle_id: str, old: tuple | None, new: tuple | None) -> None:
        if old == new:
            return
        if old is not None:
            self._count_wait(vehicle_id, old, -1)
        if new is not None:
            self._count_wait(vehicle_id, new, 1)

    def _count_wait(self, vehicle_id: str, contribution: tuple[int, int], sign: int) -> None:
        entered, duration = contribution
        day = self.days.get(self.clock.day(entered))
        if day is None:
            day = self.days[self.clock.day(entered)] = _new_day()
        day[3] += sign * duration
        day[4] += sign
        self.wait[0] += sign * duration
        self.wait[1] += sign
        if entered > self.watermark - LAST_HOUR:
            item = (entered, vehicle_id, duration)
            if sign > 0:
                insort(self.recent_waits, item)
            else:
                _remove_sorted(self.recent_waits, item)

    # ---- bounded state -------------------------------------------------------------------

    def _advance(self, hour: int) -> None:
        """The watermark entered a new hour: forget what no figure can need any more."""
        self.hour = hour
        self._ids_this_hour: list[str] = []
        self._vehicles_this_hour: list[str] = []
        self.id_hours.append((hour, self._ids_this_hour))
        self.vehicle_hours.append((hour, self._vehicles_this_hour))
        ids = self.ids
        while self.id_hours[0][0] <= hour - ID_RETENTION_HOURS:
            for event_id in self.id_hours.popleft()[1]:
                ids.pop(event_id, None)
        vehicles = self.vehicles
        while self.vehicle_hours[0][0] <= hour - VEHICLE_RETENTION_HOURS:
            bucket_hour, bucket = self.vehicle_hours.popleft()
            for vehicle_id in bucket:
                v = vehicles.get(vehicle_id)
                if v is not None and v[TOUCHED_HOUR] <= bucket_hour:
                    del vehicles[vehicle_id]
                    self.waiting.pop(vehicle_id, None)
        wm = self.watermark
        stale = [vid for vid, (arrived, _) in self.waiting.items() if arrived <= wm - QUEUE_DROP]
        for vehicle_id in stale:
            del self.waiting[vehicle_id]
        cut = wm - LAST_HOUR
        del self.recent_exits[: bisect_right(self.recent_exits, cut)]
        del self.recent_inspections[: bisect_right(self.recent_inspections, cut, key=_first)]
        del self.recent_waits[: bisect_right(self.recent_waits, cut, key=_first)]

    # ---- reading the figures -------------------------------------------------------------

    def peak_day(self) -> tuple[str, int] | None:
        """The day with the most crossings (ties: the earliest), or None before any crossing."""
        best: tuple[str, int] | None = None
        for day in sorted(self.days):
            count = self.days[day][0]
            if count > 0 and (best is None or count > best[1]):
                best = (day, count)
        return best

    def throughput_per_hour(self) -> int:
        """Crossings with ts in (watermark − 60 min, watermark]."""
        if self.watermark is None:
            return 0
        return len(self.recent_exits) - bisect_right(self.recent_exits, self.watermark - LAST_HOUR)

    def last_hour_inspection(self) -> dict[str, float | None]:
        by_class: dict[str, list[int]] = {}
        if self.watermark is not None:
            start = bisect_right(self.recent_inspections, self.watermark - LAST_HOUR, key=_first)
            for _, _, cls, duration in self.recent_inspections[start:]:
                pair = by_class.setdefault(cls, [0, 0])
                pair[0] += duration
                pair[1] += 1
        return _averages(by_class)

    def last_hour_wait(self) -> float | None:
        if self.watermark is None:
            return None
        start = bisect_right(self.recent_waits, self.watermark - LAST_HOUR, key=_first)
        window = self.recent_waits[start:]
        return _mean_seconds(sum(d for _, _, d in window), len(window))

    def queue(self) -> dict[str, int]:
        """Vehicles arrived and not yet entered, per direction, dropped 24 h after arrival."""
        counts = dict.fromkeys(DIRECTIONS, 0)
        if self.watermark is not None:
            oldest = self.watermark - QUEUE_DROP
            for arrived, direction in self.waiting.values():
                if arrived > oldest:
                    counts[direction] += 1
        return counts

    def today(self) -> int:
        """Crossings on the watermark's day."""
        if self.watermark is None:
            return 0
        day = self.days.get(self.clock.day(self.watermark))
        return day[0] if day else 0

    def report(self) -> dict[str, Any]:
        """The per-port object of SPEC §3 (`analyze --format json`, `GET /api/ports/{port}`)."""
        days = {
            day: {
                "crossings": d[0],
                "cargo_tonnes": d[1] / 1_000_000,
                "avg_inspection_seconds": _averages(d[2]),
                "avg_wait_seconds": _mean_seconds(d[3], d[4]),
            }
            for day, d in sorted(self.days.items())
            if d[0] or d[4] or any(n for _, n in d[2].values())  # a retraction can leave a day empty
        }
        peak = self.peak_day()
        return {
            "crossings": self.crossings,
            "cargo_tonnes": self.cargo_g / 1_000_000,
            "days": days,
            "peak_day": None if peak is None else {"date": peak[0], "crossings": peak[1]},
            "watermark": None if self.watermark is None else format_ts(self.clock.local(self.watermark)),
            "throughput_per_hour": self.throughput_per_hour(),
            "avg_inspection_seconds": _averages(self.inspection),
            "last_hour_avg_inspection_seconds": self.last_hour_inspection(),
            "avg_wait_seconds": _mean_seconds(*self.wait),
            "last_hour_avg_wait_seconds": self.last_hour_wait(),
            "queue": self.queue(),
        }

    # ---- snapshots (checkpoints of the live worker) --------------------------------------

    def to_state(self) -> dict[str, Any]:
        """All state as JSON-compatible values; `from_state` gives back an equal PortMetrics."""
        return {
            "port": self.port,
            "timezone": self.timezone,
            "watermark": self.watermark,
            "hour": self.hour,
            "id_hours": [[h, ids] for h, ids in self.id_hours],
            "vehicles": self.vehicles,
            "vehicle_hours": [[h, vids] for h, vids in self.vehicle_hours],
            "waiting": self.waiting,
            "events_by_type": self.events_by_type,
            "crossings": self.crossings,
            "cargo_g": self.cargo_g,
            "crossings_by": self.crossings_by,
            "days": self.days,
            "inspection": self.inspection,
            "inspection_histogram": self.inspection_histogram,
            "wait": self.wait,
            "recent_exits": self.recent_exits,
            "recent_inspections": self.recent_inspections,
            "recent_waits": self.recent_waits,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PortMetrics:
        m = cls(state["port"], state["timezone"])
        m.watermark = state["watermark"]
        m.hour = state["hour"]
        m.id_hours = deque((h, list(ids)) for h, ids in state["id_hours"])
        if m.id_hours:
            m._ids_this_hour = m.id_hours[-1][1]
        m.ids = {event_id: None for _, ids in m.id_hours for event_id in ids}
        m.vehicles = {k: list(v) for k, v in state["vehicles"].items()}
        m.vehicle_hours = deque((h, list(vids)) for h, vids in state["vehicle_hours"])
        if m.vehicle_hours:
            m._vehicles_this_hour = m.vehicle_hours[-1][1]
        m.waiting = {k: list(v) for k, v in state["waiting"].items()}
        m.events_by_type = dict(state["events_by_type"])
        m.crossings = state["crossings"]
        m.cargo_g = state["cargo_g"]
        m.crossings_by = {d: dict(c) for d, c in state["crossings_by"].items()}
        m.days = {
            day: [d[0], d[1], {c: list(p) for c, p in d[2].items()}, d[3], d[4]] for day, d in state["days"].items()
        }
        m.inspection = {c: list(p) for c, p in state["inspection"].items()}
        m.inspection_histogram = {c: list(p) for c, p in state["inspection_histogram"].items()}
        m.wait = list(state["wait"])
        m.recent_exits = list(state["recent_exits"])
        m.recent_inspections = [tuple(x) for x in state["recent_inspections"]]
        m.recent_waits = [tuple(x) for x in state["recent_waits"]]
        return m


def _remove_sorted(items: list[tuple], item: tuple) -> None:
    i = bisect_left(items, item)
    if i < len(items) and items[i] == item:
        del items[i]
