"""Sensor faults on demand: what real gate sensors do to a monitor, reproducibly.

`duplicates` sends a share of events twice, seconds apart; `missed` never sends a share of them;
`offline` takes each port's uplink down for some hours and uploads the buffer in one burst when it
comes back (event times unchanged, arrival hours late); `skew` runs one sensor's clock ahead.
Faults draw from their own random stream, so the traffic itself is the same with or without them.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from math import inf

from producers.config import ConfigError
from producers.model import Emitted

DEFAULTS = {"duplicates": 0.01, "missed": 0.01, "offline": 3.0, "skew": 120.0}
UNITS = {"duplicates": "share of events", "missed": "share of events", "offline": "hours", "skew": "seconds"}


@dataclass(frozen=True)
class Faults:
    """How broken the sensors are; zero everywhere means healthy sensors."""

    duplicates: float = 0.0
    missed: float = 0.0
    offline: float = 0.0  # hours
    skew: float = 0.0  # seconds one sensor per port runs ahead

    @property
    def any_in_stream(self) -> bool:
        return bool(self.duplicates or self.missed or self.offline)


def parse_faults(text: str | None) -> Faults:
    """`duplicates,offline=4,missed=0.02,skew=300` → Faults (a bare name takes its default)."""
    values: dict[str, float] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, raw = part.partition("=")
        name = name.strip()
        if name not in DEFAULTS:
            raise ConfigError(f"unknown fault {name!r}; choose from {', '.join(DEFAULTS)}")
        try:
            value = float(raw) if raw else DEFAULTS[name]
        except ValueError:
            raise ConfigError(f"fault {name}={raw!r}: not a number ({UNITS[name]})") from None
        if value < 0 or (name in ("duplicates", "missed") and value > 1):
            raise ConfigError(f"fault {name}={raw}: out of range ({UNITS[name]})")
        values[name] = value
    return Faults(**values)


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
