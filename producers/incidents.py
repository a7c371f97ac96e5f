"""The demo's incident: lanes out at a busy port, timed so the queue passes its target early in the demo.

The demo sends its history within seconds and then runs N× faster than real time, and Prometheus'
`CrossingQueueBuildUp` needs the queue above the port's target and still growing for ten minutes of
wall-clock time. So the incident is chosen by running the model itself (a port's events depend on
nothing but the run's settings, so this is exactly the traffic the demo will send): the busiest port
and start for which the queue of one direction passes its target soon after the demo starts, keeps
growing long enough for the alert, and falls back below the target after the incident.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from crossing_monitor.core.catalogue import Catalogue
from producers.faults import Faults, Incident
from producers.run import Run

DIRECTION = "outbound"  # the busier direction at every busy port
LEADS_MINUTES = tuple(range(0, 8 * 60 + 1, 15))  # how long before now the incident may start
GROW_MINUTES = 120  # event time the queue keeps growing after it passes the target (the alert's 10 min at 10x)
CLEAR_HOURS = 4.0  # after the incident the queue is back below the target within this long


@dataclass(frozen=True)
class DemoIncident:
    incident: Incident
    start: datetime  # local
    hours: float
    target: int
    passes: datetime  # when the queue passes the target (event time)
    clears: datetime  # when it is back below it

    def describe(self, now: datetime, speed: float) -> str:
        """One line for the banner: what, when in event time, and when on the wall clock."""
        passes_wall = max(0.0, (self.passes - now).total_seconds() / speed / 60)
        lead = (now - self.start).total_seconds() / 60
        when = f"{lead:.0f} min of event time before the demo's now" if lead > 0 else "at the demo's start"
        return (
            f"incident {self.incident}: every {DIRECTION} lane of {self.incident.port} out from "
            f"{self.start:%H:%M} ({when}) for {self.hours:g} h; the {DIRECTION} queue passes its target of "
            f"{self.target} at {self.passes:%H:%M} event time (about {passes_wall:.0f} min into the demo) "
            f"and is back below it at {self.clears:%H:%M}"
        )


def queue_series(lines: Iterable[bytes], direction: str) -> list[tuple[float, int]]:
    """(epoch s, vehicles queued) after each arrival and entry of `direction`: arrived, not yet entered."""
    queued: set[str] = set()
    out = []
    for line in lines:
        o = orjson.loads(line)
        if o["direction"] != direction or o["type"] not in ("vehicle.arrived", "gate.entered"):
            continue
        (queued.add if o["type"] == "vehicle.arrived" else queued.discard)(o["vehicle_id"])
        out.append((datetime.fromisoformat(o["ts"]).timestamp(), len(queued)))
    return out


def _judge(series: list[tuple[float, int]], now: float, end: float, target: int, window: float):
    """(passes, clears) epoch s if the queue passes `target` within `window` s after now, grows on, and
    falls below it within CLEAR_HOURS of `end`; else None."""
    passes = next((t for t, n in series if t >= now and n > target), None)
    if passes is None or passes > now + window:
        return None
    if any(t < now and n > target for t, n in series):  # above the target before the demo starts: no news
        return None
    later = [n for t, n in series if passes + GROW_MINUTES * 60 - 300 <= t <= passes + GROW_MINUTES * 60]
    if not later or max(later) <= target + 10:
        return None
    clears = next((t for t, n in series if t > end and n <= target), None)
    if clears is None or clears > end + CLEAR_HOURS * 3600:
        return None
    return passes, clears


def plan(catalogue: Catalogue, start: datetime, now: datetime, seed: int = 1, within_minutes: float = 60,
         ports: Iterable[str] | None = None) -> DemoIncident | None:  # fmt: skip
    """The demo's incident for a run of the catalogue's ports from `start` (the history) with `seed`: the
    queue passes the port's target within `within_minutes` of event time after `now`. None if no busy port
    can do it (they are all closed and quiet, say)."""
    def open_through(slug: str) -> bool:  # a port closed now queues anyway: an incident there is no news
        hours = catalogue[slug].hours
        return all(hours.is_open((now + timedelta(hours=h)).astimezone(catalogue[slug].tz)) for h in (0, 1, 2, 3))

    busy = sorted(
        (p for p in (ports or catalogue) if catalogue[p].lanes.get(DIRECTION)),
        key=lambda p: -float(catalogue[p].traffic.get("vehicles_per_day", 0)),
    )[:3]
    busy = [p for p in busy if open_through(p)]
    for slug in busy:
        target = int(catalogue[slug].targets.get("queue_vehicles", 0))
        for lead in LEADS_MINUTES:
            begin = (now - timedelta(minutes=lead)).replace(second=0, microsecond=0)
            hours = (lead + 60 * 1.5 + GROW_MINUTES) / 60
            incident = Incident(slug, DIRECTION, None, begin.strftime("%Y-%m-%dT%H:%M"), round(hours * 4) / 4)
            end = begin.timestamp() + incident.hours * 3600
            days = (end - start.timestamp()) / 86400 + CLEAR_HOURS / 24 + 0.05
            run = Run(catalogue, [slug], start, days, seed=seed, faults=Faults(incidents=(incident,)))
            judged = _judge(queue_series(run.lines(), DIRECTION), now.timestamp(), end, target, within_minutes * 60)
            if judged is not None:
                tz = catalogue[slug].tz
                passes, clears = (datetime.fromtimestamp(x, tz) for x in judged)
                return DemoIncident(incident, begin.astimezone(tz), incident.hours, target, passes, clears)
    return None
