"""The forecast (SPEC §2): how long a vehicle that joins the queue at the watermark will wait.

A naive estimate (queue ÷ recent entry rate, or the last vehicle's wait) breaks exactly where an
operations room needs it: at night in front of a closed port nobody enters, so the rate says
nothing; when a lane closes the last hour's rate is stale; in a surge the last wait is far below
what the queue now holds; in the thin first hour of a morning the staff are not all there yet.

The method here projects the queue forward in 5-minute slots. Each slot serves
    staffed lanes (catalogue: hours and staffing schedule; 0 while closed)
    × the share of them seen working (learned; the last 15 minutes override it for the next hour)
    × the service rate per working lane (learned per hour of day, while a queue stood),
and the forecast is the time at which the vehicles ahead of the newcomer have been served. Booked
trucks are let in first (by the booking system, and by the simulator), so the queue ahead of a
booked truck is the booked file only, while a walk-up also lets every booked truck that arrives
during its wait go ahead (booked arrivals per hour of day, learned). One number per direction is
shown: the wait of the kind of vehicle that is the majority of arrivals there (for a mean absolute
error, the majority's wait beats any average of the two).

What is learned stays bounded: per direction and local hour of day three numbers (service rate per
working lane, share of staffed lanes working, booked arrivals per hour), exponentially smoothed,
updated every 15 minutes of watermark from the last 15 minutes' entries. Pure and deterministic:
the same events in the same order give the same numbers, live or in `analyze`.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime, time, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from crossing_monitor.core.events import DIRECTIONS

if TYPE_CHECKING:
    from crossing_monitor.core.catalogue import Port
    from crossing_monitor.core.metrics import PortMetrics

__all__ = ["FORECAST_VERSION", "Forecaster"]

SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 3600 * SECOND
BLOCK = 15 * MINUTE  # the lanes seen working in this window before the watermark say how many work now
SLOT_S = 300  # projection step (seconds)
HORIZON_S = 7 * 86400  # a forecast never says more than the longest wait that counts
RECENT_HOURS = 1.0  # how long the lanes seen working in the last 15 minutes stand in for the learned share
DEFAULT_ENTRY_MINUTES = 3.0
FORECAST_VERSION = 1
_first = itemgetter(0)


LONG_WAIT = 10 * MINUTE  # a vehicle that waited this long entered while a queue stood
RETENTION_HOURS = 8 * 24  # hours of buckets kept: a week of each hour of day, and the day going on


_Hours = list[float | None]  # one figure per local hour of day


def _saturated(b: list) -> bool:
    """Whether a bucket's lanes worked flat out: a queue stood (a quarter of its entries had waited long)."""
    n, _lanes, long = b[0], b[1], b[2]
    return n >= 2 and long > 0 and long * 4 >= n


class Forecaster:
    """What one port learned for its forecast, and the projection that reads it.

    Learned, per UTC hour and direction (a bucket, kept for 8 days): entries, the lanes they used,
    entries that had waited long, arrivals and booked arrivals. They depend only on which events were
    folded, never on their order (the core's rule), so live = analyze = any reordering; the figures
    per local hour of day are read from them when the forecast is read.
    """

    def __init__(self, port: Port | None, timezone: str) -> None:
        self.port = port
        self.tz = ZoneInfo(timezone)
        entry = (port.inspection.get("entry_minutes") if port is not None else None) or DEFAULT_ENTRY_MINUTES
        self.prior_rate = 60.0 / float(entry)  # vehicles per hour per lane before anything is learned
        # (utc hour, direction) → [entries, set of lanes, entries that waited long, booked arrivals, arrivals]
        self.buckets: dict[tuple[int, str], list] = {}
        self._hours: dict[int, int] = {}  # cache: utc hour → local hour of day
        self._days: dict[date, dict[str, list[int]]] = {}  # cache: local date → direction → lanes per slot
        self._spans: dict[date, tuple[float, int]] = {}  # cache: local date → (its start, slots in it)
        self._slots: dict[tuple[date, int, str], int] = {}  # cache: one slot of a day not tabled whole

    # ---- folding (O(1) per event) ------------------------------------------------------------

    def _local_hour(self, hour: int) -> int:
        found = self._hours.get(hour)
        if found is None:
            if len(self._hours) > 10_000:
                self._hours.clear()
            found = self._hours[hour] = datetime.fromtimestamp(hour * 3600, self.tz).hour
        return found

    def _bucket(self, ts: int, direction: str) -> list:
        key = (ts // HOUR, direction)
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = [0, set(), 0, 0, 0]
        return b

    def arrived(self, ts: int, direction: str, booked: bool) -> None:
        b = self._bucket(ts, direction)
        b[4] += 1
        if booked:
            b[3] += 1

    def entered(self, ts: int, direction: str, lane: str) -> None:
        b = self._bucket(ts, direction)
        b[0] += 1
        b[1].add(lane)

    def waited(self, entered: int, direction: str, duration: int, sign: int) -> None:
        """A wait was counted (1) or retracted (-1), grouped by its entry like SPEC §2's waits."""
        if duration >= LONG_WAIT:
            self._bucket(entered, direction)[2] += sign

    def prune(self, horizon_hour: int) -> None:
        """Forget buckets more than 8 days older than the confirmed watermark's hour."""
        oldest = horizon_hour - RETENTION_HOURS
        for key in [k for k in self.buckets if k[0] < oldest]:
            del self.buckets[key]

    # ---- what was learned, read at the watermark -------------------------------------------------

    def _learned(self, m: PortMetrics, d: str) -> tuple[_Hours, _Hours, _Hours, float]:
        """Per local hour of day: service rate per working lane, share of staffed lanes working, booked
        arrivals per hour (None where nothing was seen), and the rate for hours not seen. Only complete
        hours before the watermark's count. A bucket whose lanes worked flat out (a queue stood: a quarter
        of its entries had waited long) says the rate; one far below the median of those did not really
        work flat out (the first hour after a night: the night's few vehicles waited long, then lanes idled)."""
        wm_hour = m.watermark // HOUR if m.watermark is not None else 0
        busy: list[tuple[int, float, float]] = []
        booked: list[list[int]] = [[0, 0] for _ in range(24)]
        for (hour, direction), b in self.buckets.items():
            if direction != d or hour >= wm_hour:
                continue
            h = self._local_hour(hour)
            booked[h][0] += b[3]
            booked[h][1] += 1
            n, lanes, long = b[0], len(b[1]), b[2]
            if n >= 2 and long > 0 and long * 4 >= n:
                staffed = self.lanes_at(hour * HOUR + 30 * MINUTE, d)
                busy.append((h, n / lanes, min(lanes / staffed, 1.0) if staffed else 1.0))
        rate: list[float | None] = [None] * 24
        share: list[float | None] = [None] * 24
        fallback = self.prior_rate
        if busy:
            rates = sorted(r for _, r, _ in busy)
            floor = rates[len(rates) // 2] * 0.5
            sums = [[0.0, 0.0, 0] for _ in range(24)]
            kept = [0.0, 0]
            for h, r, sh in busy:
                if r >= floor:
                    sums[h][0] += r
                    sums[h][1] += sh
                    sums[h][2] += 1
                    kept[0] += r
                    kept[1] += 1
            for h in range(24):
                if sums[h][2]:
                    rate[h] = sums[h][0] / sums[h][2]
                    share[h] = sums[h][1] / sums[h][2]
            fallback = kept[0] / kept[1]
            last = self.buckets.get((wm_hour - 1, d))
            if last is not None and last[0] >= 2 and last[2] * 4 >= last[0] and last[0] / len(last[1]) >= floor:
                fallback = last[0] / len(last[1])  # the last complete hour, when a queue stood
        return rate, share, [x[0] / x[1] if x[1] else None for x in booked], fallback

    # ---- the catalogue's schedule --------------------------------------------------------------

    def _local(self, ts: int) -> datetime:
        return datetime.fromtimestamp(ts // SECOND, self.tz)

    def _span(self, day: date) -> tuple[float, int]:
        """A local day's first second (epoch) and its number of 5-minute slots (23, 24 or 25 hours' worth)."""
        found = self._spans.get(day)
        if found is None:
            if len(self._spans) > 64:
                self._spans.clear()
            start = datetime.combine(day, time(0), self.tz).timestamp()
            end = datetime.combine(day + timedelta(days=1), time(0), self.tz).timestamp()
            found = self._spans[day] = (start, -(-int(end - start) // SLOT_S))
        return found

    def _staffed(self, t: float, direction: str) -> int:
        """Lanes staffed at epoch second `t` (0 while the port is closed)."""
        port = self.port
        if port is None:
            return 1
        local = datetime.fromtimestamp(t, self.tz)
        if port.hours.is_open(local):
            return port.staffing.lanes_at(local.time(), direction, port.lanes.get(direction, 0))
        return 0

    def _staffed_both(self, t: float) -> tuple[int, ...]:
        """`_staffed` for each of DIRECTIONS, reading the local time once."""
        port = self.port
        if port is None:
            return (1,) * len(DIRECTIONS)
        local = datetime.fromtimestamp(t, self.tz)
        if not port.hours.is_open(local):
            return (0,) * len(DIRECTIONS)
        clock = local.time()
        return tuple(port.staffing.lanes_at(clock, d, port.lanes.get(d, 0)) for d in DIRECTIONS)

    def _day_table(self, day: date) -> dict[str, list[int]]:
        """Lanes staffed per 5-minute slot of a local day (0 while the port is closed), per direction:
        slot k is the staffing at the day's first second + k x 5 minutes."""
        table = self._days.get(day)
        if table is None:
            if len(self._days) > 16:
                self._days.clear()
            start, slots = self._span(day)
            rows = [self._staffed_both(start + k * SLOT_S) for k in range(slots)]
            table = self._days[day] = {d: [row[i] for row in rows] for i, d in enumerate(DIRECTIONS)}
        return table

    def lanes_at(self, ts: int, direction: str) -> int:
        """Lanes staffed in the slot of `ts` (the day table's entry, one slot computed when the day has no
        table: learning asks about one time per hour over a week, which would table eight whole days)."""
        local = self._local(ts)
        day = local.date()
        k = (local.hour * 3600 + local.minute * 60 + local.second) // SLOT_S
        table = self._days.get(day)
        if table is not None:
            row = table[direction]
            return row[min(k, len(row) - 1)]
        key = (day, k, direction)
        found = self._slots.get(key)
        if found is None:
            if len(self._slots) > 20_000:
                self._slots.clear()
            start, slots = self._span(day)
            found = self._slots[key] = self._staffed(start + min(k, slots - 1) * SLOT_S, direction)
        return found

    # ---- reading ---------------------------------------------------------------------------------

    def _share_now(self, m: PortMetrics, direction: str, queue: int, oldest: int | None) -> float | None:
        """Share of the staffed lanes seen working in the last 15 minutes, when a queue stood (None: not known).
        No entry at all counts only when a vehicle of the queue has waited through the whole window."""
        wm = m.watermark
        staffed = self.lanes_at(wm, direction) if wm is not None else 0
        if wm is None or not staffed or queue == 0 or oldest is None:
            return None
        entries = m.recent_entries
        window = entries[bisect_right(entries, wm - BLOCK, key=_first) : bisect_right(entries, wm, key=_first)]
        lanes = {lane for _, d, lane in window if d == direction}
        if queue < len(lanes) or (not lanes and oldest > wm - BLOCK):
            return None
        return min(len(lanes) / staffed, 1.0)

    def wait(self, m: PortMetrics, direction: str, ahead: int, walk_up: bool, share_now: float | None) -> float:
        """Seconds until `ahead` vehicles have been served from now on (booked arrivals jump a walk-up)."""
        wm = m.watermark
        if wm is None:
            return 0.0
        rates, shares, booked_rates, fallback = self._learned(m, direction)
        known = [x for x in booked_rates if x is not None]
        booked_fallback = sum(known) / len(known) if known else 0.0  # (while open: booked trucks come in open hours)
        remaining = float(ahead)
        t_s = wm / SECOND
        local = datetime.fromtimestamp(t_s, self.tz)
        day = local.date()
        table = self._day_table(day)[direction]
        k = (local.hour * 3600 + local.minute * 60 + local.second) // SLOT_S
        into = (local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6) - k * SLOT_S
        waited = 0.0
        first = True
        while waited < HORIZON_S:
            if k >= len(table):
                day = day + timedelta(days=1)
                table = self._day_table(day)[direction]
                k = 0
            dt = (SLOT_S - into) if first else SLOT_S
            first = False
            hour = min((k * SLOT_S) // 3600, 23)  # a 25-hour day (daylight saving ends) has a 25th hour
            lanes = table[k]
            if lanes:
                if waited == 0 and remaining < lanes * (1.0 if share_now is None else share_now) - 0.5:
                    return 0.0  # fewer ahead than lanes working: a lane is free now
                if share_now is not None and waited < RECENT_HOURS * 3600:
                    share = share_now
                else:
                    learned = shares[hour]
                    share = 1.0 if learned is None else learned
                rate = rates[hour]
                capacity = lanes * share * (fallback if rate is None else rate) * dt / 3600
            else:
                capacity = 0.0
            if walk_up:
                booked = booked_rates[hour]
                if booked is None:
                    booked = booked_fallback if lanes else 0.0
                if booked:
                    remaining += booked * dt / 3600
            if capacity > 0 and capacity >= remaining:
                return round(waited + (remaining / capacity * dt if capacity > 0 else 0.0), 3)
            remaining -= capacity
            waited += dt
            k += 1
        return float(HORIZON_S)

    def _booked_queue(self, m: PortMetrics) -> tuple[dict[str, int], dict[str, int | None]]:
        """Booked vehicles in the queue and the earliest arrival in it, per direction (as `PortMetrics.queue`
        counts)."""
        booked_q = dict.fromkeys(DIRECTIONS, 0)
        first: dict[str, int | None] = dict.fromkeys(DIRECTIONS)
        if m.watermark is not None:
            cut = m.watermark - 72 * HOUR
            for v in m.waiting.values():
                arrived = v.arrived
                if arrived > cut:  # type: ignore[operator]
                    d = v.arrived_direction
                    if v.booked:
                        booked_q[d] += 1
                    earliest = first[d]
                    if earliest is None or arrived < earliest:  # type: ignore[operator]
                        first[d] = arrived
        return booked_q, first

    def _booked_majority(self, m: PortMetrics, direction: str) -> bool:
        """Whether booked trucks are most of the arrivals at this hour of day (else: all time)."""
        hour = self._local(m.watermark).hour if m.watermark is not None else 0
        booked = total = 0
        all_booked = all_total = 0
        for (h, d), b in self.buckets.items():
            if d == direction:
                all_booked += b[3]
                all_total += b[4]
                if self._local_hour(h) == hour:
                    booked += b[3]
                    total += b[4]
        if total > 0:
            return booked * 2 >= total
        return all_total > 0 and all_booked * 2 >= all_total

    def predicted(self, m: PortMetrics, direction: str, queue: int, booked_queue: int, oldest: int | None) -> float:
        """The predicted wait of a vehicle joining the queue of `direction` at the watermark."""
        share_now = self._share_now(m, direction, queue, oldest)
        if self._booked_majority(m, direction):
            return self.wait(m, direction, booked_queue, False, share_now)
        return self.wait(m, direction, queue, True, share_now)

    def predicted_only(self, m: PortMetrics, direction: str) -> float:
        """`predicted` for one direction, reading the queue once (analyze --predictions, per arrival)."""
        if m.watermark is None:
            return 0.0
        oldest = m.watermark - 72 * HOUR
        q = b = 0
        first: int | None = None
        for v in m.waiting.values():
            arrived = v.arrived
            if v.arrived_direction == direction and arrived > oldest:  # type: ignore[operator]
                q += 1
                if v.booked:
                    b += 1
                if first is None or arrived < first:  # type: ignore[operator]
                    first = arrived
        return self.predicted(m, direction, q, b, first)

    def figures(self, m: PortMetrics, queue: dict[str, int], entries: dict[str, int],
                lanes_in_use: dict[str, int]) -> dict[str, dict[str, Any]]:
        """forecast.{direction} of SPEC §2 plus `clear_seconds_one_more_lane`."""
        booked_q, first = self._booked_queue(m)
        out: dict[str, dict[str, Any]] = {}
        for d in DIRECTIONS:
            q, n = queue[d], entries[d]
            clear = 0.0 if q == 0 else None if n == 0 else round(q / n * 3600, 3)
            used = lanes_in_use[d]
            if q == 0:
                more: float | None = 0.0
            elif n and used:
                more = round(q / (n * (used + 1) / used) * 3600, 3)
            else:
                rates, _, _, fallback = self._learned(m, d)
                rate = rates[self._local(m.watermark).hour] if m.watermark is not None else None
                if rate is None:
                    rate = fallback
                more = round(q / rate * 3600, 3)  # nobody entered lately: one lane opened at the learned rate
            predicted = self.predicted(m, d, q, booked_q[d], first[d])
            out[d] = {
                "entries_per_hour": n,
                "clear_seconds": clear,
                "clear_seconds_one_more_lane": more,
                "predicted_wait_seconds": predicted,
            }
        return out

    # ---- snapshots -----------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        """Equal when they read the same catalogue port and learned the same (the schedule cache aside)."""
        if not isinstance(other, Forecaster):
            return NotImplemented
        return self.port == other.port and self.tz == other.tz and self.to_state() == other.to_state()

    __hash__ = None  # type: ignore[assignment]

    def to_state(self) -> dict[str, Any]:
        return {
            "version": FORECAST_VERSION,
            "buckets": [[h, d, b[0], sorted(b[1]), b[2], b[3], b[4]] for (h, d), b in sorted(self.buckets.items())],
        }

    def load(self, state: dict[str, Any] | None) -> None:
        """Take over a snapshot's buckets (none, or another version: start learning afresh); the sums follow."""
        if not isinstance(state, dict) or state.get("version") != FORECAST_VERSION:
            return
        for h, d, n, lanes, long, booked, arrivals in state["buckets"]:
            self.buckets[(h, d)] = [n, set(lanes), long, booked, arrivals]
