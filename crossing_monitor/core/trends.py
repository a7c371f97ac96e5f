"""Trend series for the wall's sparklines: 15-minute buckets of event time, the last 24 h kept.

Kept in the port's state (and its snapshot) so that the live worker and a replay draw the same lines.

* `crossings`: gate.exited events per quarter hour of their own `ts`. Order independent: a bucket is
  only dropped, or an event refused, when it lies 24 h or more below a watermark that can no longer
  fall (a second sensor has reported), and the report shows only the 12 h below the final watermark.
* `samples`: the queue per direction and the last hour's average wait, read from the port's state
  when the watermark first passes the end of a quarter. What the state holds at that moment depends on
  which events came before it, so these are NOT order independent; the report gives them under their
  own key (`trend_samples`) so a consumer knows which series replay exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from crossing_monitor.core.clock import SECOND

QUARTER = 900 * SECOND
KEEP = 96  # quarters: 24 h
SHOW = 48  # quarters: 12 h on the wall


class _Port(Protocol):
    watermark: int | None
    second_sensor: str | None

    def queue(self) -> dict[str, int]: ...

    def last_hour_wait(self) -> float | None: ...


@dataclass
class Trends:
    """Per-quarter crossings and samples; `observe` after each event a port folded in."""

    crossings: dict[int, int] = field(default_factory=dict)
    samples: dict[int, list[Any]] = field(default_factory=dict)  # quarter → [queue out, queue in, wait s]
    quarter: int | None = None  # the watermark's quarter when last observed

    def observe(self, etype: str, ts: int, port: _Port) -> None:
        wm = port.watermark
        settled = port.second_sensor is not None  # the watermark can no longer fall
        if etype == "gate.exited":
            q = ts // QUARTER
            if not (settled and wm is not None and q <= wm // QUARTER - KEEP):
                self.crossings[q] = self.crossings.get(q, 0) + 1
        if wm is None:
            return
        wq = wm // QUARTER
        if self.quarter is not None and wq > self.quarter:
            queue = port.queue()
            self.samples[self.quarter] = [queue["outbound"], queue["inbound"], port.last_hour_wait()]
        if self.quarter is None or wq != self.quarter:
            self.quarter = wq
            if settled:
                self._prune(wq - KEEP)

    def _prune(self, oldest: int) -> None:
        for table in (self.crossings, self.samples):
            for q in [q for q in table if q <= oldest]:
                del table[q]

    def report(self, watermark: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(trends, trend_samples): the SHOW quarters ending with the watermark's, oldest first."""
        if watermark is None:
            quarters: list[int] = []
        else:
            last = watermark // QUARTER
            quarters = list(range(last - SHOW + 1, last + 1))
        start = quarters[0] * QUARTER // SECOND if quarters else None
        trends = {
            "quarter_seconds": QUARTER // SECOND,
            "start_unix": start,
            "crossings": [self.crossings.get(q, 0) for q in quarters],
        }
        rows = [self.samples.get(q) for q in quarters]
        samples = {
            "quarter_seconds": QUARTER // SECOND,
            "start_unix": start,
            "queue": {
                "outbound": [None if r is None else r[0] for r in rows],
                "inbound": [None if r is None else r[1] for r in rows],
            },
            "wait_seconds": [None if r is None else r[2] for r in rows],
        }
        return trends, samples

    def dump(self) -> dict[str, Any]:
        return {
            "crossings": [[q, n] for q, n in sorted(self.crossings.items())],
            "samples": [[q, *row] for q, row in sorted(self.samples.items())],
            "quarter": self.quarter,
        }

    @classmethod
    def load(cls, state: dict[str, Any] | None) -> Trends:
        """From `dump`; empty for a snapshot written before trends existed."""
        t = cls()
        if state:
            t.crossings = {q: n for q, n in state["crossings"]}
            t.samples = {row[0]: list(row[1:]) for row in state["samples"]}
            t.quarter = state["quarter"]
        return t
