"""Waiting out a broker that is away: back-off with a cap, a total patience, durations to print.

The publisher keeps its place while Kafka is down; these are the pieces that decide how long it
waits between looks and when it gives up (why the broker is away comes from
`crossing_monitor.kafka.probe`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

FIRST_BACKOFF = 1.0  # seconds before the first retry; doubles on every further attempt
MAX_BACKOFF = 30.0
DEFAULT_PATIENCE = 600.0  # seconds without any acknowledgement before a command gives up


@dataclass
class Backoff:
    """1 s doubling to 30 s between attempts, within `patience` seconds from the first failure."""

    patience: float = DEFAULT_PATIENCE
    first: float = FIRST_BACKOFF
    cap: float = MAX_BACKOFF
    attempt: int = 0
    said: bool = False  # a line went out about this wait (so the recovery gets one too)
    started: float = field(default_factory=time.monotonic)
    _delay: float = 0.0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def next_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or None once patience is spent; counts the attempt."""
        left = self.patience - self.elapsed
        if left <= 0:
            return None
        self._delay = self.first if not self._delay else min(self._delay * 2, self.cap)
        self.attempt += 1
        return min(self._delay, left)


def duration(seconds: float) -> str:
    """`0.4 s`, `45 s`, `10 min`, `2 h` — for the lines an operator reads."""
    if seconds < 0.95:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
