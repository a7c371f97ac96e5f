"""Named scenarios: the published figures of PORTS.md, re-lived by the simulator.

Each one fixes the ports, the start (local time), the length and whatever differs from the
catalogue that day; `published` is the figure the scenario is calibrated against and the tests
check `analyze` against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Scenario:
    """A reproducible piece of history (or of trouble) at one or more ports."""

    name: str
    summary: str
    published: str
    ports: tuple[str, ...]
    start: str  # local time of the ports, ISO 8601
    days: float
    regime: str | None = None
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


# The capacity and traffic of December 2017 and December 2023 at the two ports. Only the outcomes are
# published (waits of one to two days; clearance 72.6 % / 66.4 % shorter): the traffic, lanes, entry times,
# booked share and road space below are the calibration's assumptions, chosen so that the simulated figures
# meet the published ones (tests/test_scenarios.py). In both months more vehicles come than the staffed
# lanes let in; a walk-up joins the queue unless the road in front of the port is full (holding_vehicles)
# and turns back otherwise, so the queue stays at about that size and the wait is that queue over the
# capacity left to walk-ups: days in 2017 (paper declarations at the barrier, 18 min a truck, fewer lanes),
# about a day in 2023 for the walk-ups, while booked trucks (half of them) are let in first and wait minutes.
_DEC_2017: dict[str, dict[str, Any]] = {
    "khorgos": {
        "traffic": {
            "vehicles_per_day": 420,
            "booked_share": 0.0,
            "holding_vehicles": {"outbound": 330, "inbound": 190},
        },
        "inspection": {"entry_minutes": 18, "random_check_share": 0.15},
        "lanes": {"outbound": 5, "inbound": 3},
        "staffing": [{"from": "00:00", "outbound": 5, "inbound": 3}],
    },
    "alashankou": {
        "traffic": {
            "vehicles_per_day": 260,
            "booked_share": 0.0,
            "holding_vehicles": {"outbound": 200, "inbound": 130},
        },
        "inspection": {"entry_minutes": 18, "random_check_share": 0.15},
        "lanes": {"outbound": 3, "inbound": 2},
        "staffing": [{"from": "00:00", "outbound": 3, "inbound": 2}],
    },
}
_DEC_2023: dict[str, dict[str, Any]] = {
    "khorgos": {
        "traffic": {
            "vehicles_per_day": 1100,
            "booked_share": 0.5,
            "holding_vehicles": {"outbound": 400, "inbound": 240},
        },
        "inspection": {"entry_minutes": 11},
    },
    "alashankou": {
        "traffic": {
            "vehicles_per_day": 700,
            "booked_share": 0.5,
            "holding_vehicles": {"outbound": 200, "inbound": 100},
        },
        "inspection": {"entry_minutes": 11},
    },
}

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="khorgos-record-day",
            summary="Khorgos on its record day, 27 Sep 2023, in the 24-hour clearance pilot",
            published="1,927 trucks crossed on 27 Sep 2023",
            ports=("khorgos",),
            # From noon the day before, so the record day starts with the port already busy.
            start="2023-09-26T12:00",
            days=1.5,
            # 1,927 trucks / 0.80 truck share = ~2,410 vehicles a day.
            overrides={"khorgos": {"traffic": {"vehicles_per_day": 2410}}},
        ),
        Scenario(
            name="lektse-before-h986",
            summary="Lektse in its first months: freight vehicles inspected by hand (legacy regime)",
            published="average inspection time of a freight vehicle over 2 h",
            ports=("lektse",),
            start="2023-11-13T00:00",
            days=120,
            regime="legacy",
        ),
        Scenario(
            name="lektse-h986",
            summary="Lektse with H986 container scanning and AI image recognition",
            published="average inspection time of a freight vehicle 18 min",
            ports=("lektse",),
            start="2024-11-13T00:00",
            days=365,
            regime="h986",
        ),
        Scenario(
            name="irkeshtam-first-night",
            summary="Irkeshtam's first night of round-the-clock cargo clearance, 1-2 Jun 2025",
            published="966 freight vehicles from 10:00 on 1 Jun 2025 to 08:00 the next day",
            ports=("irkeshtam",),
            # From 06:00, so the port is already working at 10:00, until 12:00 the next day.
            start="2025-06-01T06:00",
            days=30 / 24,
            # The first night ran far above the ~585 trucks of an ordinary day (see PORTS.md).
            overrides={"irkeshtam": {"traffic": {"vehicles_per_day": 1180}}},
        ),
        Scenario(
            name="dec-2017",
            summary="Khorgos and Alashankou in December 2017: no advance booking, random physical checks, "
            "paper declarations at the entry barrier and the lanes of the time; walk-up trucks queue for days",
            published="drivers came to the port two days in advance to queue for clearance: walk-up trucks wait "
            "one to two days (average wait of trucks entering in December 24-60 h)",
            ports=("khorgos", "alashankou"),
            # From 20 Nov, so the road in front of each port has filled by 1 Dec; December is measured.
            start="2017-11-20T00:00",
            days=41,
            regime="random",
            overrides={slug: _DEC_2017[slug] for slug in ("khorgos", "alashankou")},
        ),
        Scenario(
            name="dec-2023",
            summary="Khorgos and Alashankou in December 2023: online advance booking (booked trucks let in first "
            "in their slot) and risk-based categorised inspection; walk-ups still queue",
            published="average clearance time of imports 72.6 % and of exports 66.4 % lower than in December 2017 "
            "(scenario dec-2017), the two ports together, each within 5 points",
            ports=("khorgos", "alashankou"),
            start="2023-11-20T00:00",
            days=41,
            regime="h986",
            overrides={slug: _DEC_2023[slug] for slug in ("khorgos", "alashankou")},
        ),
        Scenario(
            name="queue-buildup",
            summary="Alashankou after the October holiday: walk-up arrivals 20x for 3 hours from 10:00 while "
            "only 2 outbound lanes are open, then relief",
            published="the outbound queue rises while arrivals exceed the entry lanes, then falls",
            ports=("alashankou",),
            start="2023-10-09T06:00",
            days=1.0,
            overrides={
                "alashankou": {
                    "lanes": {"outbound": 2},
                    "surges": [{"from": "2023-10-09T10:00", "hours": 3, "factor": 20}],
                }
            },
        ),
    )
}


def scenario(name: str) -> Scenario:
    """The scenario called `name`; KeyError names the ones there are."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"no scenario {name!r}; there are: {', '.join(SCENARIOS)}") from None
