"""Sending events at the pace of their times: real time, N× faster, or (no Pacer) at once."""

from __future__ import annotations

import time


class Pacer:
    """Maps event time (ms) to wall-clock due time: the first event is due now, then `speed`× event time."""

    def __init__(self, speed: float, origin_ms: int | None = None) -> None:
        self.speed = speed
        self.origin_ms = origin_ms
        self.wall0 = time.monotonic()

    def wait(self, ms: int) -> float:
        """Seconds to wait before sending the event of time `ms` (<= 0: it is due or late)."""
        if self.origin_ms is None:
            self.origin_ms = ms
        return self.wall0 + (ms - self.origin_ms) / 1000 / self.speed - time.monotonic()
