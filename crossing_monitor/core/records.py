"""The named records the metric core keeps per port: a vehicle, a day, a running mean, a histogram.

Slotted dataclasses rather than indexed lists, so that every field has a name (and a type) and a
record costs no more memory or time than the list it replaces. Each record turns itself into
JSON-compatible values (`dump`) and back (`load`) for the worker's checkpoints; the snapshot
must be complete, because a restored state has to go on exactly as the original would have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crossing_monitor.core.events import DIRECTIONS

BOOKINGS = ("booked", "walk_up")


@dataclass(slots=True)
class Mean:
    """A sum of durations (integer microseconds: exact in any order) and how many were summed."""

    total: int = 0
    count: int = 0

    def add(self, duration: int, sign: int) -> None:
        """Add (sign 1) or retract (sign -1) one duration."""
        self.total += sign * duration
        self.count += sign

    def dump(self) -> list[int]:
        return [self.total, self.count]

    @classmethod
    def load(cls, raw: list[int]) -> Mean:
        return cls(raw[0], raw[1])


def _dump_means(means: dict[str, Mean]) -> dict[str, list[int]]:
    return {key: m.dump() for key, m in means.items()}


def _load_means(raw: dict[str, list[int]]) -> dict[str, Mean]:
    return {key: Mean.load(pair) for key, pair in raw.items()}


def new_bookings() -> dict[str, Mean]:
    return {b: Mean() for b in BOOKINGS}


def new_by_direction() -> dict[str, dict[str, Mean]]:
    """direction → vehicle class → Mean; classes appear on first use."""
    return {d: {} for d in DIRECTIONS}


@dataclass(slots=True)
class Vehicle:
    """What one crossing vehicle contributed so far: the earliest event of each kind that pairs.

    Ties between two events of one kind at the same instant are broken by value (direction,
    booking, class), so the record does not depend on the order its events arrive in.
    """

    touched_hour: int | None  # the hour label of its last event, for forgetting it (bounded state)
    arrived: int | None = None  # earliest vehicle.arrived ts
    arrived_direction: str = ""
    booked: bool = False  # that earliest arrival said "booked": true
    entered: int | None = None  # earliest gate.entered ts
    exited: int | None = None  # earliest gate.exited ts
    exit_class: str = ""
    exit_direction: str = ""
    progressed: bool = False  # an event of a later stage than the arrival was seen: not in the queue

    def dump(self) -> list[Any]:
        return [
            self.touched_hour,
            self.arrived,
            self.arrived_direction,
            self.booked,
            self.entered,
            self.exited,
            self.exit_class,
            self.exit_direction,
            self.progressed,
        ]

    @classmethod
    def load(cls, raw: list[Any]) -> Vehicle:
        return cls(*raw)


@dataclass(slots=True)
class Day:
    """One calendar day of a port (its time zone): the figures SPEC §3 reports per day."""

    crossings: int = 0
    cargo_g: int = 0  # cargo in grams: integers keep the sum exact
    inspection: dict[str, Mean] = field(default_factory=dict)  # by vehicle class, grouped by exit
    wait: dict[str, Mean] = field(default_factory=new_bookings)  # by booking, grouped by entry
    clearance: dict[str, dict[str, Mean]] = field(default_factory=new_by_direction)  # grouped by exit
    scans: int = 0
    flagged: int = 0

    def is_empty(self) -> bool:
        """Nothing to report: no crossing, wait or scan (a retraction can leave a day so)."""
        return not (self.crossings or self.scans or any(m.count for m in self.wait.values()))

    def dump(self) -> dict[str, Any]:
        return {
            "crossings": self.crossings,
            "cargo_g": self.cargo_g,
            "inspection": _dump_means(self.inspection),
            "wait": _dump_means(self.wait),
            "clearance": {d: _dump_means(c) for d, c in self.clearance.items()},
            "scans": self.scans,
            "flagged": self.flagged,
        }

    @classmethod
    def load(cls, raw: dict[str, Any]) -> Day:
        return cls(
            raw["crossings"],
            raw["cargo_g"],
            _load_means(raw["inspection"]),
            _load_means(raw["wait"]),
            {d: _load_means(c) for d, c in raw["clearance"].items()},
            raw["scans"],
            raw["flagged"],
        )


@dataclass(slots=True)
class Histogram:
    """Counts per bucket (the last one is +Inf) and the sum of what was counted, in microseconds."""

    counts: list[int]
    total: int = 0

    def dump(self) -> list[Any]:
        return [self.counts, self.total]

    @classmethod
    def load(cls, raw: list[Any]) -> Histogram:
        return cls(list(raw[0]), raw[1])
