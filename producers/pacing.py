"""Sending events at the pace of their times: real time, N× faster, or (no Pacer) at once.

A Pacer can also start with a history: the events before some instant (the last day, say) go out
within the first few seconds, spread evenly over them, and the events after it at `speed`×, so a
live display starts full and then moves (`crossing-monitor demo`).
"""

from __future__ import annotations

import time


class Pacer:
    """Maps event time (ms) to wall-clock due time: the first event asked about is due at once (the
    clock starts then, not when the Pacer is made: connecting to the broker takes no time from the
    run), then `speed`× event time.

    With `history_until_ms`, the events from the origin up to that instant are due within the first
    `history_seconds` (0: all at once), and the later ones at `speed`× from then on."""

    def __init__(
        self,
        speed: float,
        origin_ms: int | None = None,
        *,
        history_until_ms: int | None = None,
        history_seconds: float = 0.0,
    ) -> None:
        if history_until_ms is not None and origin_ms is None:
            raise ValueError("a history needs the origin of event time")
        self.speed = speed
        self.origin_ms = origin_ms
        self.history_until_ms = history_until_ms
        self.history_seconds = history_seconds if history_until_ms is not None else 0.0
        self.wall0: float | None = None  # the monotonic clock at the first event

    def due(self, ms: int) -> float:
        """The monotonic clock time at which the event of time `ms` is due."""
        if self.wall0 is None:
            self.wall0 = time.monotonic()
        if self.origin_ms is None:
            self.origin_ms = ms
        until = self.history_until_ms
        if until is None:
            return self.wall0 + (ms - self.origin_ms) / 1000 / self.speed
        if ms < until:  # history: [origin, until) of event time over [0, history_seconds) of wall time
            span = until - self.origin_ms
            share = (ms - self.origin_ms) / span if span > 0 else 0.0
            return self.wall0 + max(share, 0.0) * self.history_seconds
        return self.wall0 + self.history_seconds + (ms - until) / 1000 / self.speed

    def wait(self, ms: int) -> float:
        """Seconds to wait before sending the event of time `ms` (<= 0: it is due or late)."""
        return self.due(ms) - time.monotonic()
