"""The discrete-event model of one port: vehicles arrive, queue, pass lanes, scanners and bays.

Times follow from capacity, not from fixed delays. Vehicles arrive round the clock; in front of a
closed port they queue, so a morning starts with the night's queue that the opening clears. Each
entry lane serves one vehicle at a time, and only while it is staffed: the catalogue's staffing
schedule says how many lanes are open at each hour (capacity follows staff, not the lane count),
an incident fault takes some out. The queue in front of the barrier has two files: booked trucks,
who came in their clearance slot, are let in before walk-ups, who take what capacity is left. A
scanner or bay also serves one vehicle at a time, so a vehicle waits inside the control area when
they are busy; staff finish the vehicles already inside. Everything random comes from one
`random.Random` per port, seeded by the run's seed, the port and the start, so a run is
reproducible byte for byte.

Arrivals are two streams: booked trucks, whose clearance slots are spread evenly over the open
hours of each day (advance booking flattens the peaks), and walk-up traffic of every class,
following the hour-of-day profile round the clock and any surge.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from datetime import date, datetime, time, timedelta
from itertools import accumulate
from math import inf

import orjson

from producers import draws
from producers.config import HOURLY_PROFILE, PortConfig
from producers.timefmt import TimestampFormatter

SLOT = 300  # seconds: opening hours and arrival rates are piecewise constant over 5-minute slots
SLOTS_PER_DAY = 86400 // SLOT
GAMMA_SHAPE = 4.0  # service times: gamma with coefficient of variation 0.5
MAX_CLOSED_DAYS = 400  # a port that never opens within this long admits nobody

_EMIT, _ARRIVE, _SCAN, _BAY, _WAKE = range(5)
_FREIGHT = frozenset({"truck", "other"})  # container-scanned; physical inspection in the legacy regime
_ENTRY_FACTOR = {"truck": 1.0, "other": 1.0, "bus": 1.0, "car": 0.4}
_SHORT = {"outbound": "out", "inbound": "in"}
_heappush = heapq.heappush

Emitted = tuple[int, bytes]  # (event time in epoch ms as the model saw it, the serialised event)


class _Day:
    """One local calendar day: when the port is open and the walk-up arrival rate, per slot."""

    __slots__ = ("start", "end", "open", "staff", "rate", "booked", "first", "last")

    def __init__(
        self,
        start: float,
        end: float,
        open_: list[bool],
        staff: dict[str, list[int]],
        rate: list[float],
        booked: list[float],
        sure: bool,
    ) -> None:
        self.start = start
        self.end = end  # the next local midnight (a day of 23 or 25 hours where the clocks change)
        self.open = open_
        self.staff = staff  # per direction: entry lanes staffed in each slot (0 while closed, less any out)
        self.rate = rate  # walk-up arrivals per second
        self.booked = booked  # sorted arrival times of booked trucks
        # Instants in [first, last) surely fall on this day, whatever datetime rounds (see PortModel._day);
        # an empty range sends every look-up of the day through datetime, as before this shortcut.
        self.first, self.last = (start + 1e-5, end - 1e-5) if sure else (inf, -inf)


class _Vehicle:
    __slots__ = ("cls", "booked", "lane", "head", "rest", "body", "n")

    def __init__(self, cls: str, booked: bool, head: str, rest: str, body: str) -> None:
        self.cls = cls
        self.booked = booked
        self.lane: _Lane | None = None  # the entry lane, once it has one
        self.head = head  # '"<vehicle id>': the event ids as JSON, without their number and closing quote
        self.rest = rest  # ',"direction":...,"vehicle_class":...': after the lane, in every event of the vehicle
        self.body = body  # ',"port":...,"lane":...' + rest: the fields of its events at the lane it is at
        self.n = 0  # events so far


class _Sensor:
    """A sensor's id as JSON text, and how far its clock runs ahead (ms)."""

    __slots__ = ("json", "skew_ms")

    def __init__(self, sensor_id: str, skew: Mapping[str, float]) -> None:
        self.json = _json(sensor_id)
        seconds = skew.get(sensor_id)
        self.skew_ms = int(seconds * 1000) if seconds else 0


class _Lane:
    """An entry lane: its id as JSON text and the sensors of its entry and exit barriers."""

    __slots__ = ("json", "entry", "exit")

    def __init__(self, slug: str, lane: str, skew: Mapping[str, float]) -> None:
        self.json = _json(lane)
        self.entry = _Sensor(f"{slug}-{lane}-entry", skew)
        self.exit = _Sensor(f"{slug}-{lane}-exit", skew)


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


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
        self._minutes, self._seconds = self._fmt.minutes, self._fmt.seconds  # (_emit formats inline)
        self._days: dict[date, _Day] = {}
        self._today: _Day | None = None  # the day looked up last
        self._heap: list[tuple] = []
        self._seq = 0
        self._lanes = {d: n for d, n in cfg.lanes.items() if n > 0}
        self._free_at = {d: [start] * n for d, n in self._lanes.items()}  # when entry lane i+1 is done
        self._booked_queue: dict[str, deque[_Vehicle]] = {d: deque() for d in self._lanes}  # let in first
        self._walkup_queue: dict[str, deque[_Vehicle]] = {d: deque() for d in self._lanes}
        self._wake = dict.fromkeys(self._lanes, inf)  # when a queued direction looks for a lane again
        self._more: dict[str, tuple[float, int, float]] = {}  # direction → (from, than, _more_staff's answer)
        shifts = cfg.staffing.shifts
        self._most_staff = {  # the most lanes the schedule ever staffs: no use waiting for more
            d: max(cfg.staffing.lanes_at(s.start, d, n) for s in shifts) if shifts else n
            for d, n in self._lanes.items()
        }
        self._staff_by_time = {  # lanes staffed at each minute of the day, open or not
            d: [cfg.staffing.lanes_at(time(m // 60, m % 60), d, n) for m in range(1440)] for d, n in self._lanes.items()
        }
        self._scanners = [(start, i + 1) for i in range(cfg.scanners)]
        self._scanners_out = [(t0, t1, n) for t0, t1, what, n in cfg.incidents if what == "scanners"]
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
        self._walk_cum = list(accumulate(self._walk_weights))  # what rng.choices makes of the weights
        self._walk_share = sum(self._walk_weights)
        random_ = self.rng.random  # the draws below are the stdlib's, inlined (producers/draws.py)
        self._gamma_service = draws.gamma(random_, GAMMA_SHAPE)
        self._gamma_cargo = draws.gamma(random_, 2.0)
        self._expo = draws.expo(random_)
        self._pick_walk_class = (
            draws.choice(random_, self._walk_classes, self._walk_cum)
            if self._walk_classes
            else lambda: self.rng.choices(self._walk_classes, cum_weights=self._walk_cum)[0]  # raises, as it did
        )
        # Every event is serialised from pieces made here and once per vehicle (see _emit).
        slug, skew = cfg.slug, cfg.skew_seconds
        self._approach = {d: _Sensor(f"{slug}-{s}-approach-cam", skew) for d, s in _SHORT.items()}
        self._approach_lane = {d: _json(f"{s}-approach") for d, s in _SHORT.items()}  # before the barrier
        self._lane_ids = {(d, i): _Lane(slug, f"{_SHORT[d]}-{i}", skew) for d, n in cfg.lanes.items()
                          for i in range(1, n + 1)}  # fmt: skip
        self._scanner_ids = {i: _Sensor(f"{slug}-scanner-{i}", skew) for _, i in self._scanners}
        self._bay_ids = {i: _Sensor(f"{slug}-bay-{i}", skew) for _, i in self._bays}
        self._port_json = _json(slug)
        self._class_json = {c: _json(c) for c in (*cfg.class_mix, "truck")}
        self._vehicles_key = {c: f"vehicles.{c}" for c in self._class_json}  # stats keys
        self._crossings_key = {c: f"crossings.{c}" for c in self._class_json}

    # ---- calendar ------------------------------------------------------------------------

    def _day(self, t: float) -> _Day:
        today = self._today
        if today is not None and today.first <= t < today.last:
            return today
        local = datetime.fromtimestamp(t, self.cfg.tz)
        found = self._days.get(local.date())
        found = found if found is not None else self._plan(local.date())
        self._today = found
        return found

    def _calendar(self, day: date) -> tuple:
        """Everything of a day's plan that needs no random draw: (start, end, open, staff, rate, booked
        trucks expected, open slots, sure). The compiled model (producers/native.py) asks for it too."""
        start, end, sure = self._bounds(day)
        return start, end, *self._slots(day, start), sure

    def _bounds(self, day: date) -> tuple[float, float, bool]:
        """The day's first instant, the next day's (epoch s), and whether its instants are sure (_Day.first)."""
        tz = self.cfg.tz
        start = datetime.combine(day, time(0), tz).timestamp()
        end = datetime.combine(day + timedelta(days=1), time(0), tz).timestamp()
        first, last = (datetime.fromtimestamp(x, tz) for x in (start, end - 1e-5))
        # No shortcut for a day whose clocks change: only the local date of each instant is sure there.
        sure = first.date() == last.date() == day and first.utcoffset() == last.utcoffset()
        return start, end, sure

    def _slots(self, day: date, start: float) -> tuple:
        """Per 5-minute slot of the local day from `start`: open, lanes staffed, walk-up rate; and the
        booked trucks expected and the open slots. The slots are wall-clock times (00:00, 00:05, ...,
        also on a day whose clocks change); incidents and surges are compared with start + k * SLOT."""
        cfg = self.cfg
        locals_ = [datetime.combine(day, time(0), cfg.tz) + timedelta(seconds=k * SLOT) for k in range(SLOTS_PER_DAY)]
        open_ = [cfg.hours.is_open(dt) for dt in locals_]
        staff = {}
        for d in self._lanes:
            by_time = self._staff_by_time[d]
            lanes = [by_time[dt.hour * 60 + dt.minute] if o else 0 for dt, o in zip(locals_, open_, strict=True)]
            for t0, t1, what, count in cfg.incidents:
                if what == d:
                    for k in range(SLOTS_PER_DAY):
                        if t0 <= start + k * SLOT < t1:
                            lanes[k] = max(0, lanes[k] - count)
            staff[d] = lanes
        weights = [HOURLY_PROFILE[dt.hour] for dt in locals_]  # round the clock: a closed port is queued for
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
        open_slots = [k for k, o in enumerate(open_) if o]
        return open_, staff, rate, volume * self._booked_trucks, open_slots

    def _plan(self, day: date) -> _Day:
        rng = self.rng
        start, end, open_, staff, rate, expected, open_slots, sure = self._calendar(day)
        booked: list[float] = []
        n = int(expected) + (rng.random() < expected - int(expected))
        if n and open_slots:
            gap = len(open_slots) * SLOT / n
            for i in range(n):
                offset = (i + rng.random()) * gap  # one slot of the day's booking grid each
                slot, into = divmod(offset, SLOT)
                booked.append(start + open_slots[int(slot)] * SLOT + into)
        if len(self._days) > 8:  # old days are never looked at again
            gone = self._days.pop(next(iter(self._days)))
            gone.first, gone.last = inf, -inf  # a second look plans it again, as it always did
        plan = self._days[day] = _Day(start, end, open_, staff, rate, booked, sure)
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
            following = day.start + SLOTS_PER_DAY * SLOT
            t = following if following > t else max(t, day.end)  # (a 25-hour day's last hour: the next day)
        return inf

    # ---- arrival streams -----------------------------------------------------------------

    def _walkups(self) -> Iterator[tuple[float, bool]]:
        t, end, expo = self.start, self.end, self._expo
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
        _heappush(self._heap, (t, self._seq, kind, item))

    def _emit(self, t: float, v: _Vehicle, etype: str, sensor: _Sensor, extra: str = "") -> None:
        """Serialise one event: the bytes `orjson.dumps` gives for the event's dict (event_id, type, ts,
        port, lane, direction, vehicle_id, vehicle_class, sensor_id, then the extra fields), built from
        pieces each vehicle and sensor serialised once."""
        ms = int(t * 1000)
        at = ms + sensor.skew_ms  # the sensor's clock
        minute = at // 60_000
        day_hh_mm, offset = self._minutes.get(minute) or self._fmt.minute(minute)
        n = v.n = v.n + 1
        data = (
            f'{{"event_id":{v.head}-{n}","type":"{etype}","ts":"{day_hh_mm}{self._seconds[at % 60_000]}{offset}"'
            f'{v.body},"sensor_id":{sensor.json}{extra}}}'
        )
        self._seq += 1
        _heappush(self._heap, (t, self._seq, _EMIT, (ms, data.encode())))

    def _service(self, minutes: float) -> float:
        return self._gamma_service(minutes * 60 / GAMMA_SHAPE) if minutes > 0 else 0.0

    def _arrive(self, t: float, booked: bool) -> None:
        rng = self.rng
        cls = "truck" if booked else self._pick_walk_class()
        direction = "outbound" if rng.random() < self._out_share else "inbound"
        vid = f"{self._port_json[:-1]}-{rng.getrandbits(64):016x}"  # '"<slug>-<64 random bits>', as JSON
        queue = (self._booked_queue if booked else self._walkup_queue)[direction]
        if not booked and len(queue) >= self.cfg.holding[direction]:
            self.stats["turned_back"] += 1  # the road in front of the port is full: never seen by its sensors
            return
        self.stats[self._vehicles_key[cls]] += 1
        rest = f',"direction":"{direction}","vehicle_id":{vid}","vehicle_class":{self._class_json[cls]}'
        v = _Vehicle(cls, booked, vid, rest, f',"port":{self._port_json},"lane":{self._approach_lane[direction]}{rest}')
        booked_json = ',"booked":true' if booked else ',"booked":false'
        self._emit(t, v, "vehicle.arrived", self._approach[direction], booked_json)
        waiting = bool(self._booked_queue[direction] or self._walkup_queue[direction])
        queue.append(v)
        if not waiting:  # (else every staffed lane is busy and a look for a free one is already planned)
            self._dispatch(t, direction)

    def _more_staff(self, t: float, direction: str, than: int) -> float:
        """The start of the first slot after t with more than `than` lanes staffed (inf if none soon)."""
        known = self._more.get(direction)
        if known is not None and known[1] == than and known[0] <= t < known[2]:
            return known[2]  # (the slots between staff no more than `than`: the same answer)
        found, at = inf, t
        for _ in range(MAX_CLOSED_DAYS):
            day = self._day(at)
            staff = day.staff[direction]
            k = int((at - day.start) // SLOT) + 1
            while k < SLOTS_PER_DAY:
                if staff[k] > than:
                    found = day.start + k * SLOT
                    break
                k += 1
            if found < inf:
                break
            following = day.start + SLOTS_PER_DAY * SLOT
            at = following if following > at else max(at, day.end)  # (a 25-hour day's last hour: the next day)
            if self._day(at).staff[direction][0] > than:
                found = at
                break
        self._more[direction] = (t, than, found)
        return found

    def _dispatch(self, t: float, direction: str) -> None:
        """Let queued vehicles in through the free staffed lanes, booked trucks first; if some are left,
        look again when the first busy lane is done or more staff come on, whichever is first."""
        booked, walkup = self._booked_queue[direction], self._walkup_queue[direction]
        if not booked and not walkup:
            return
        free_at = self._free_at[direction]
        day = self._today
        if day is None or not day.first <= t < day.last:
            day = self._day(t)
        staffed = day.staff[direction][min(int((t - day.start) // SLOT), SLOTS_PER_DAY - 1)]
        for i in range(staffed):
            if free_at[i] <= t:
                self._enter(t, direction, i, booked.popleft() if booked else walkup.popleft())
                if not booked and not walkup:
                    return
        when = min(free_at[:staffed]) if staffed else inf
        if staffed < self._most_staff[direction]:
            when = min(when, self._more_staff(t, direction, staffed))
        if when < self._wake[direction]:
            self._wake[direction] = when
            self._push(when, _WAKE, direction)

    def _enter(self, t: float, direction: str, i: int, v: _Vehicle) -> None:
        cfg, cls = self.cfg, v.cls
        lane = v.lane = self._lane_ids[direction, i + 1]
        v.body = f',"port":{self._port_json},"lane":{lane.json}{v.rest}'
        minutes = cfg.entry_minutes * _ENTRY_FACTOR.get(cls, 1.0) * (0.5 if v.booked else 1.0)
        done = self._free_at[direction][i] = t + self._service(minutes)
        self._emit(t, v, "gate.entered", lane.entry)
        if cls in _FREIGHT and cfg.regime == "legacy":
            self._push(done, _BAY, (v, cfg.legacy_minutes))
        elif cls in _FREIGHT and cfg.regime == "random":
            if self.rng.random() < cfg.random_check_share:
                self._push(done, _BAY, (v, cfg.legacy_minutes))
            else:
                self._exit(done, v)
        elif cls in _FREIGHT:
            self._push(done, _SCAN, v)
        elif self.rng.random() < cfg.sampled_share:
            self._push(done, _BAY, (v, cfg.physical_minutes * 0.5))
        else:
            self._exit(done, v)

    def _scan(self, t: float, v: _Vehicle) -> None:
        cfg, rng = self.cfg, self.rng
        free, idx = self._scanners[0]
        begin = max(t, free)
        if self._scanners_out:  # a scanner out of service starts nothing until it is back
            begin, free, idx = min((self._scanner_start(max(t, f), i), f, i) for f, i in self._scanners)
            self._scanners.remove((free, idx))
            self._scanners.insert(0, (free, idx))  # (heapreplace below replaces it; the heap is rebuilt)
        done = begin + self._service(cfg.scan_minutes)
        if self._scanners_out:
            self._scanners[0] = (done, idx)
            heapq.heapify(self._scanners)
        else:
            heapq.heapreplace(self._scanners, (done, idx))
        flagged = rng.random() < cfg.flagged_share
        sensor = self._scanner_ids[idx]
        self._emit(begin, v, "scan.started", sensor)
        self._emit(done, v, "scan.completed", sensor, ',"result":"flagged"' if flagged else ',"result":"clear"')
        if flagged or rng.random() < cfg.sampled_share:
            self._push(done, _BAY, (v, cfg.physical_minutes))
        else:
            self._exit(done, v)

    def _scanner_start(self, t: float, idx: int) -> float:
        """When scanner `idx` can start a scan at or after t: scanners 1..n of an incident are out until it ends."""
        for t0, t1, n in self._scanners_out:
            if idx <= n and t0 <= t < t1:
                t = t1
        return t

    def _inspect(self, t: float, v: _Vehicle, minutes: float) -> None:
        free, idx = self._bays[0]
        begin = max(t, free)
        done = begin + self._service(minutes)
        heapq.heapreplace(self._bays, (done, idx))
        sensor = self._bay_ids[idx]
        self._emit(begin, v, "inspection.started", sensor)
        self._emit(done, v, "inspection.completed", sensor)
        self._exit(done, v)

    def _exit(self, t: float, v: _Vehicle) -> None:
        cfg = self.cfg
        when = t + self._service(cfg.exit_minutes)
        extra = ""
        if v.cls in _FREIGHT:
            extra = ',"cargo_tonnes":' + _json(round(self._gamma_cargo(cfg.cargo_per_truck / 2), 1))
        self.stats[self._crossings_key[v.cls]] += 1
        self._emit(when, v, "gate.exited", v.lane.exit, extra)  # type: ignore[union-attr]

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
            elif kind == _WAKE:
                if self._wake[item] == t:
                    self._wake[item] = inf
                self._dispatch(t, item)
            elif kind == _SCAN:
                self._scan(t, item)
            else:
                self._inspect(t, *item)
