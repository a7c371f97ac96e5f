"""The port catalogue (SPEC §4): which ports exist, their time zone, lanes, hours, staffing and targets.

A TOML file ships with the product (`data/ports.toml`); an operator points every command at
another one with `--catalogue FILE` or the CROSSING_MONITOR_CATALOGUE environment variable.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crossing_monitor.core.events import DIRECTIONS, VEHICLE_CLASSES

ENV_VAR = "CROSSING_MONITOR_CATALOGUE"


class CatalogueError(ValueError):
    """The catalogue file cannot be read or does not hold what the product needs."""


@dataclass(frozen=True)
class Hours:
    """Daily opening hours in local time, plus date ranges of round-the-clock clearance."""

    open: time
    close: time
    round_the_clock: tuple[tuple[date, date | None], ...] = ()

    def is_open(self, local: datetime) -> bool:
        """Whether the port clears traffic at this local time."""
        day = local.date()
        for start, end in self.round_the_clock:
            if start <= day and (end is None or day <= end):
                return True
        now = local.time()
        if self.close <= self.open:  # open past midnight
            return now >= self.open or now < self.close
        return self.open <= now < self.close


@dataclass(frozen=True)
class Shift:
    """From `start` (local time) on, until the next shift of the schedule, this many entry lanes are staffed."""

    start: time
    lanes: Mapping[str, int]


@dataclass(frozen=True)
class Staffing:
    """Entry lanes staffed by the time of day: a port does not open all its lanes at once, and its
    capacity follows its staff, not its lane count. The shifts are sorted by start; the last one runs
    past midnight until the first. No shifts: every lane staffed whenever the port is open."""

    shifts: tuple[Shift, ...] = ()

    def lanes_at(self, local: time, direction: str, lanes: int) -> int:
        """Lanes of `direction` staffed at this local time (of `lanes` built), open or not."""
        if not self.shifts:
            return lanes
        current = self.shifts[-1]
        for shift in self.shifts:
            if shift.start > local:
                break
            current = shift
        return min(lanes, current.lanes.get(direction, 0))


@dataclass(frozen=True)
class Port:
    """One land port of the catalogue."""

    slug: str
    name: str
    neighbour: str
    timezone: str
    lanes: Mapping[str, int]
    hours: Hours
    region: str = ""
    scanners: int = 1
    inspection_bays: int = 1
    traffic: Mapping[str, Any] = field(default_factory=dict)
    inspection: Mapping[str, Any] = field(default_factory=dict)
    targets: Mapping[str, Any] = field(default_factory=dict)
    staffing: Staffing = field(default_factory=Staffing)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, ts_us: int) -> datetime:
        """Event time (µs since the epoch) as an aware datetime in the port's time zone."""
        return datetime.fromtimestamp(ts_us / 1_000_000, self.tz)


class Catalogue(Mapping[str, Port]):
    """The ports by slug, in the file's order."""

    def __init__(self, ports: Mapping[str, Port], source: str) -> None:
        self._ports = dict(ports)
        self.source = source

    def __getitem__(self, slug: str) -> Port:
        return self._ports[slug]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ports)

    def __len__(self) -> int:
        return len(self._ports)

    def __contains__(self, slug: object) -> bool:
        return slug in self._ports

    def __repr__(self) -> str:
        return f"Catalogue({', '.join(self._ports)} from {self.source})"


def _hhmm(value: Any, where: str) -> time:
    if not isinstance(value, str):
        raise CatalogueError(f"{where} must be a time 'HH:MM'")
    if value == "24:00":
        return time(0, 0)
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise CatalogueError(f"{where}: {value!r} is not a time 'HH:MM'") from None


def _day(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CatalogueError(f"{where}: {value!r} is not a date 'YYYY-MM-DD'") from None


def parse_staffing(raw: Any, lanes: Mapping[str, int], where: str) -> Staffing:
    """`staffing = [{ from = "HH:MM", outbound = n, inbound = n }, ...]`, validated: times strictly
    increasing, each count an integer from 0 to the lanes the port has."""
    if raw is None:
        return Staffing()
    where = f"{where} staffing"
    if not isinstance(raw, list) or not raw:
        raise CatalogueError(f"{where} must be a list of shifts {{ from = 'HH:MM', outbound = n, inbound = n }}")
    shifts: list[Shift] = []
    for n, item in enumerate(raw, 1):
        at = f"{where}[{n}]"
        if not isinstance(item, dict):
            raise CatalogueError(f"{at} must be a table {{ from = 'HH:MM', outbound = n, inbound = n }}")
        unknown = set(item) - {"from", *DIRECTIONS}
        if unknown:
            raise CatalogueError(f"{at} has unknown keys {sorted(unknown)}; a shift has from, outbound, inbound")
        if item.get("from") == "24:00":
            raise CatalogueError(f"{at}.from: a shift starts at 00:00-23:59, not 24:00")
        start = _hhmm(item.get("from"), f"{at}.from")
        if shifts and start <= shifts[-1].start:
            raise CatalogueError(f"{at}.from {item['from']!r} is not later than the shift before it")
        counts = {}
        for d in DIRECTIONS:
            value = item.get(d, 0)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= lanes[d]:
                raise CatalogueError(f"{at}.{d} must be a whole number of lanes from 0 to {lanes[d]}, not {value!r}")
            counts[d] = value
        shifts.append(Shift(start, counts))
    return Staffing(tuple(shifts))


def _port(slug: str, raw: Any) -> Port:
    where = f"port {slug!r}"
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where} must be a table")
    for key in ("name", "neighbour", "timezone", "lanes", "hours"):
        if key not in raw:
            raise CatalogueError(f"{where} has no {key!r}")
    try:
        ZoneInfo(raw["timezone"])
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise CatalogueError(f"{where}: unknown time zone {raw['timezone']!r}") from None
    lanes = raw["lanes"]
    if not isinstance(lanes, dict) or any(not isinstance(lanes.get(d), int) or lanes[d] < 0 for d in DIRECTIONS):
        raise CatalogueError(f"{where}: lanes must give a count >= 0 for outbound and inbound")
    hours_raw = raw["hours"]
    ranges = tuple(
        (
            _day(r.get("from"), f"{where} hours.round_the_clock"),
            _day(r["to"], f"{where} hours.round_the_clock") if "to" in r else None,
        )
        for r in hours_raw.get("round_the_clock", [])
    )
    hours = Hours(
        _hhmm(hours_raw.get("open"), f"{where} hours.open"),
        _hhmm(hours_raw.get("close"), f"{where} hours.close"),
        ranges,
    )
    mix = raw.get("traffic", {}).get("class_mix", {})
    unknown = set(mix) - set(VEHICLE_CLASSES)
    if unknown:
        raise CatalogueError(f"{where}: class_mix names unknown classes {sorted(unknown)}")
    return Port(
        slug=slug,
        name=str(raw["name"]),
        neighbour=str(raw["neighbour"]),
        timezone=raw["timezone"],
        lanes={d: lanes[d] for d in DIRECTIONS},
        hours=hours,
        region=str(raw.get("region", "")),
        scanners=int(raw.get("scanners", 1)),
        inspection_bays=int(raw.get("inspection_bays", 1)),
        traffic=dict(raw.get("traffic", {})),
        inspection=dict(raw.get("inspection", {})),
        targets=dict(raw.get("targets", {})),
        staffing=parse_staffing(raw.get("staffing"), {d: lanes[d] for d in DIRECTIONS}, where),
    )


def parse_catalogue(text: str, source: str = "<text>") -> Catalogue:
    """TOML text → Catalogue, with a clear error naming the first problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{source}: not valid TOML: {exc}") from None
    if not data:
        raise CatalogueError(f"{source}: holds no ports")
    try:
        return Catalogue({slug: _port(slug, raw) for slug, raw in data.items()}, source)
    except CatalogueError as exc:
        raise CatalogueError(f"{source}: {exc}") from None


def load_catalogue(path: str | os.PathLike[str] | None = None) -> Catalogue:
    """The catalogue at `path`, else $CROSSING_MONITOR_CATALOGUE, else the one shipped."""
    chosen = path or os.environ.get(ENV_VAR)
    if chosen:
        try:
            text = Path(chosen).read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogueError(f"cannot read catalogue {chosen}: {exc.strerror or exc}") from None
        return parse_catalogue(text, str(chosen))
    text = resources.files("crossing_monitor.core").joinpath("data/ports.toml").read_text(encoding="utf-8")
    return parse_catalogue(text, "the shipped catalogue")
