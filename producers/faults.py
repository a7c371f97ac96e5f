"""Sensor faults on demand: what real gate sensors do to a monitor, reproducibly.

`duplicates` sends a share of events twice, seconds apart; `missed` never sends a share of them;
`offline` takes each port's uplink down for some hours and uploads the buffer in one burst when it
comes back (event times unchanged, arrival hours late); `skew` runs one sensor's clock ahead.
Faults draw from their own random stream, so the traffic itself is the same with or without them.

`incident` is not a sensor fault but trouble at the port: entry lanes or scanners out of service for
some hours, so a queue builds (lanes) or vehicles wait inside (scanners). It changes the traffic.
"""

from __future__ import annotations

import heapq
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import inf
from zoneinfo import ZoneInfo

from producers.config import ConfigError
from producers.model import Emitted

DEFAULTS = {"duplicates": 0.01, "missed": 0.01, "offline": 3.0, "skew": 120.0}
UNITS = {"duplicates": "share of events", "missed": "share of events", "offline": "hours", "skew": "seconds"}


INCIDENT_SYNTAX = (
    "incident=PORT:WHAT[=N]@WHEN/DURATION, WHAT one of lanes, outbound-lanes, inbound-lanes, scanners "
    "(N of them out, default all), WHEN a local YYYY-MM-DDTHH:MM, HH:MM (the first after the start) or +30m/+2h "
    "after the start, DURATION like 3h or 90m; e.g. incident=khorgos:outbound-lanes=6@10:00/3h"
)
_INCIDENT = re.compile(
    r"(?P<port>[a-z0-9_-]+):(?P<what>lanes|outbound-lanes|inbound-lanes|scanners)(=(?P<n>\d+|all))?"
    r"@(?P<when>\d{4}-\d\d-\d\dT\d\d:\d\d|\d\d?:\d\d|\+\d+(\.\d+)?[mh])/(?P<dur>\d+(\.\d+)?)(?P<unit>[mh])"
)


@dataclass(frozen=True)
class Incident:
    """Lanes or scanners of one port out of service for a while: `what` is outbound, inbound, both or
    scanners; `count` None = all of them; `when` as written (resolved against a run's start)."""

    port: str
    what: str
    count: int | None
    when: str
    hours: float

    def window(self, start: datetime, tz: ZoneInfo) -> tuple[float, float]:
        """(from, until) in epoch seconds for a run starting at `start`."""
        if self.when.startswith("+"):
            size = float(self.when[1:-1]) * (60 if self.when.endswith("m") else 3600)
            begin = start.timestamp() + size
        elif "T" in self.when:
            begin = datetime.fromisoformat(self.when).replace(tzinfo=tz).timestamp()
        else:
            hh, mm = (int(x) for x in self.when.split(":"))
            local = start.astimezone(tz)
            at = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
            begin = (at if at >= local else at + timedelta(days=1)).timestamp()
        return begin, begin + self.hours * 3600

    def __str__(self) -> str:
        count = "all" if self.count is None else str(self.count)
        what = {"both": "lanes", "outbound": "outbound-lanes", "inbound": "inbound-lanes"}.get(self.what, self.what)
        return f"{self.port}:{what}={count}@{self.when}/{self.hours:g}h"


def parse_incident(text: str) -> Incident:
    """One incident's value (see INCIDENT_SYNTAX); ConfigError in one line otherwise."""
    m = _INCIDENT.fullmatch(text.strip())
    if m is None:
        raise ConfigError(f"fault incident={text!r}: use {INCIDENT_SYNTAX}")
    if ":" in m["when"] and "T" not in m["when"]:
        hh, mm = (int(x) for x in m["when"].split(":"))
        if hh > 23 or mm > 59:
            raise ConfigError(f"fault incident={text!r}: {m['when']} is not a time of day")
    elif "T" in m["when"]:
        try:
            datetime.fromisoformat(m["when"])
        except ValueError:
            raise ConfigError(f"fault incident={text!r}: {m['when']} is not a date and time") from None
    hours = float(m["dur"]) / (60 if m["unit"] == "m" else 1)
    if hours <= 0:
        raise ConfigError(f"fault incident={text!r}: the duration must be more than 0")
    what = {"lanes": "both", "outbound-lanes": "outbound", "inbound-lanes": "inbound"}.get(m["what"], m["what"])
    count = None if m["n"] in (None, "all") else int(m["n"])
    return Incident(m["port"], what, count, m["when"], hours)


@dataclass(frozen=True)
class Faults:
    """How broken the sensors are; zero everywhere means healthy sensors."""

    duplicates: float = 0.0
    missed: float = 0.0
    offline: float = 0.0  # hours
    skew: float = 0.0  # seconds one sensor per port runs ahead
    incidents: tuple[Incident, ...] = ()

    @property
    def any_in_stream(self) -> bool:
        return bool(self.duplicates or self.missed or self.offline)


def parse_faults(text: str | None) -> Faults:
    """`duplicates,offline=4,missed=0.02,skew=300,incident=...` → Faults (a bare name takes its default;
    incident may be given more than once)."""
    values: dict[str, float] = {}
    incidents: list[Incident] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, raw = part.partition("=")
        name = name.strip()
        if name == "incident":
            incidents.append(parse_incident(raw))
            continue
        if name not in DEFAULTS:
            raise ConfigError(f"unknown fault {name!r}; choose from {', '.join(DEFAULTS)}, incident")
        try:
            value = float(raw) if raw else DEFAULTS[name]
        except ValueError:
            raise ConfigError(f"fault {name}={raw!r}: not a number ({UNITS[name]})") from None
        if value < 0 or (name in ("duplicates", "missed") and value > 1):
            raise ConfigError(f"fault {name}={raw}: out of range ({UNITS[name]})")
        values[name] = value
    return Faults(**values, incidents=tuple(incidents))


def skewed_sensor(slug: str, lanes: dict[str, int]) -> str:
    """The sensor whose clock is off: the exit barrier of the first lane (it shifts inspection times)."""
    return f"{slug}-out-1-exit" if lanes.get("outbound") else f"{slug}-in-1-exit"


def offline_window(
    rng: random.Random, start: float, end: float, hours: float, next_open: Callable[[float], float]
) -> tuple[float, float]:
    """When the uplink is down: from a moment the port is open (so there is traffic to hold back),
    somewhere inside the run (or within its first day when it has no end)."""
    span = hours * 3600
    latest = start + 86400 if end == inf else max(start, end - span)
    begin = next_open(rng.uniform(start, latest))
    return begin, begin + span


def with_faults(
    stream: Iterator[Emitted], faults: Faults, rng: random.Random, window: tuple[float, float] | None, stats: Counter
) -> Iterator[Emitted]:
    """The events as the broker would receive them: the first item is the time of sending (ms)."""
    pending: list[tuple[int, int, bytes]] = []
    seq = 0
    w0, w1 = (int(window[0] * 1000), int(window[1] * 1000)) if window else (0, 0)
    dup, missed, random_ = faults.duplicates, faults.missed, rng.random
    for ms, data in stream:
        while pending and pending[0][0] <= ms:
            sent, _, held = heapq.heappop(pending)
            yield sent, held
        if missed and random_() < missed:
            stats["fault.missed"] += 1
            if b'"type":"gate.exited"' in data:
                stats["fault.missed.gate.exited"] += 1
            continue
        sent = ms
        if w0 <= ms < w1:
            sent = w1
            stats["fault.offline"] += 1
        if dup and random_() < dup:
            stats["fault.duplicates"] += 1
            seq += 1
            heapq.heappush(pending, (sent + int(rng.uniform(500, 30_000)), seq, data))
        if sent == ms and not pending:
            yield ms, data
        else:
            seq += 1
            heapq.heappush(pending, (sent, seq, data))
    while pending:
        sent, _, held = heapq.heappop(pending)
        yield sent, held
