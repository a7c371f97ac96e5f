"""What the model of one port needs, read once from the catalogue and a scenario's overrides.

The catalogue's `[port.traffic]` and `[port.inspection]` tables carry the calibration; a scenario
may override any of their keys, the lane, scanner and bay counts and the staffing schedule, and add
arrival surges. `traffic.holding_vehicles = { outbound = n, inbound = n }` caps the walk-ups waiting in
front of the port (none by default); `inspection.random_check_share` is the share of freight inspected
by hand in the `random` regime.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from math import inf
from typing import Any
from zoneinfo import ZoneInfo

from crossing_monitor.core.catalogue import Hours, Port, Staffing
from crossing_monitor.core.events import DIRECTIONS

# h986: freight scanned, physically inspected when flagged (risk-based categories) or sampled;
# legacy: every freight vehicle inspected by hand; random: no risk categories, a random share of
# freight inspected by hand (the regime of Khorgos and Alashankou in 2017).
REGIMES = ("h986", "legacy", "random")

# Relative arrival intensity of walk-up (unbooked) traffic by local hour: quiet nights, a morning
# and an afternoon peak. Booked trucks do not follow it: their slots are spread evenly.
HOURLY_PROFILE = (
    0.35, 0.25, 0.2, 0.2, 0.25, 0.4, 0.7, 1.1, 1.5, 1.8, 1.9, 1.8,
    1.5, 1.4, 1.6, 1.8, 1.7, 1.5, 1.2, 1.0, 0.8, 0.65, 0.5, 0.4,
)  # fmt: skip


class ConfigError(ValueError):
    """An override or a catalogue figure the model cannot use; the message names it."""


@dataclass(frozen=True)
class Surge:
    """Walk-up arrivals multiplied by `factor` from `start` (epoch s) for `hours`."""

    start: float
    hours: float
    factor: float

    @property
    def end(self) -> float:
        return self.start + self.hours * 3600


@dataclass(frozen=True)
class PortConfig:
    """One port's capacity, traffic and inspection figures, with overrides applied."""

    slug: str
    tz: ZoneInfo
    hours: Hours
    lanes: Mapping[str, int]
    scanners: int
    bays: int
    vehicles_per_day: float
    class_mix: Mapping[str, float]
    outbound_share: float
    booked_share: float
    cargo_per_truck: float
    entry_minutes: float
    scan_minutes: float
    exit_minutes: float
    flagged_share: float
    sampled_share: float
    physical_minutes: float
    legacy_minutes: float
    regime: str = "h986"
    random_check_share: float = 0.3
    # Walk-ups the road in front of the port holds per direction; one more turns back unseen (booked
    # trucks have their slot and always join). Without it an overloaded port's queue grows for ever.
    holding: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(DIRECTIONS, inf))
    staffing: Staffing = field(default_factory=Staffing)
    # Lanes or scanners out of service: (from, until) in epoch s, "outbound"/"inbound"/"scanners", how many.
    incidents: tuple[tuple[float, float, str, int], ...] = ()
    surges: tuple[Surge, ...] = ()
    skew_seconds: Mapping[str, float] = field(default_factory=dict)  # sensor_id → clock offset


def _number(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}.{key} must be a number >= 0, not {value!r}")
    return float(value)


def _holding(raw: Any, where: str) -> dict[str, float]:
    if raw is None:
        return dict.fromkeys(DIRECTIONS, inf)
    if not isinstance(raw, Mapping) or set(raw) - set(DIRECTIONS):
        raise ConfigError(f"{where}.holding_vehicles must be {{ outbound = n, inbound = n }}")
    return {d: _number(raw, d, inf, f"{where}.holding_vehicles") for d in DIRECTIONS}


def _surges(raw: Any, tz: ZoneInfo, slug: str) -> tuple[Surge, ...]:
    surges = []
    for item in raw or ():
        try:
            start = datetime.fromisoformat(str(item["from"]))
            if start.tzinfo is None:
                start = start.replace(tzinfo=tz)
            surges.append(Surge(start.timestamp(), float(item["hours"]), float(item["factor"])))
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"{slug}: a surge needs from (local time), hours and factor: {exc}") from None
    return tuple(surges)


def _override_staffing(port: Port, lanes: Mapping[str, Any], raw: Any) -> Staffing:
    """The port's staffing schedule, or a scenario's own (validated as the catalogue's is); a scenario
    that changes the lane count without a schedule keeps the catalogue's, capped at the lanes."""
    if raw is None:
        return port.staffing
    from crossing_monitor.core.catalogue import CatalogueError, parse_staffing

    try:
        return parse_staffing(raw, {d: int(lanes.get(d, 0)) for d in DIRECTIONS}, port.slug)
    except CatalogueError as exc:
        raise ConfigError(str(exc)) from None


def port_config(port: Port, overrides: Mapping[str, Any] | None = None, regime: str | None = None) -> PortConfig:
    """The model's view of `port`; `overrides` may hold traffic/inspection keys, lanes, scanners,
    inspection_bays, staffing (a list of shifts as in the catalogue), regime and surges."""
    over = dict(overrides or {})
    traffic = {**port.traffic, **over.get("traffic", {})}
    inspection = {**port.inspection, **over.get("inspection", {})}
    lanes = {**port.lanes, **over.get("lanes", {})}
    chosen = regime or over.get("regime") or inspection.get("regime", "h986")
    if chosen not in REGIMES:
        raise ConfigError(f"{port.slug}: regime must be one of {', '.join(REGIMES)}, not {chosen!r}")
    mix = traffic.get("class_mix", {"truck": 1.0})
    if not isinstance(mix, Mapping) or not mix or sum(mix.values()) <= 0:
        raise ConfigError(f"{port.slug}.traffic.class_mix must give each class a share")
    total = float(sum(mix.values()))
    t, i = f"{port.slug}.traffic", f"{port.slug}.inspection"
    return PortConfig(
        slug=port.slug,
        tz=port.tz,
        hours=port.hours,
        lanes={d: int(lanes.get(d, 0)) for d in DIRECTIONS},
        scanners=max(1, int(over.get("scanners", port.scanners))),
        bays=max(1, int(over.get("inspection_bays", port.inspection_bays))),
        vehicles_per_day=_number(traffic, "vehicles_per_day", 100, t),
        class_mix={c: float(s) / total for c, s in mix.items()},
        outbound_share=_number(traffic, "outbound_share", 0.5, t),
        booked_share=_number(traffic, "booked_share", 0.0, t),
        cargo_per_truck=_number(traffic, "cargo_tonnes_per_truck", 10.0, t),
        entry_minutes=_number(inspection, "entry_minutes", 3.0, i),
        scan_minutes=_number(inspection, "scan_minutes", 4.0, i),
        exit_minutes=_number(inspection, "exit_minutes", 1.0, i),
        flagged_share=_number(inspection, "physical_share", 0.05, i),
        sampled_share=_number(inspection, "sampled_share", 0.02, i),
        physical_minutes=_number(inspection, "physical_minutes", 40.0, i),
        legacy_minutes=_number(inspection, "legacy_physical_minutes", 130.0, i),
        regime=chosen,
        random_check_share=_number(inspection, "random_check_share", 0.3, i),
        holding=_holding(traffic.get("holding_vehicles"), t),
        staffing=_override_staffing(port, lanes, over.get("staffing")),
        surges=_surges(over.get("surges"), port.tz, port.slug),
    )
