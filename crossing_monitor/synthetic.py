"""A quick, deterministic year of traffic for the benchmarks: every catalogue port, every vehicle's
whole pipeline (arrival, entry, scan, sometimes inspection, exit), in event-time order.

Used by the benchmarks and the worker's tests. Not the simulator (`producers`, which models lanes
and queues and feeds `crossing-monitor simulate` and the demo): this only needs to be large,
realistic in shape and fast to write.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import orjson

from crossing_monitor.core.catalogue import Catalogue

BEIJING = timezone(timedelta(hours=8))


def _ts(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, BEIJING).isoformat(timespec="milliseconds")


def events(catalogue: Catalogue, start: datetime, days: int, seed: int = 7) -> Iterator[bytes]:
    """Serialised events of all ports, merged in event-time order."""
    streams = [_port_events(port, start, days, random.Random(f"{seed}-{slug}")) for slug, port in catalogue.items()]
    for _, line in heapq.merge(*streams, key=lambda pair: pair[0]):
        yield line


def _port_events(port, start: datetime, days: int, rng: random.Random) -> Iterator[tuple[float, bytes]]:
    per_day = float(port.traffic.get("vehicles_per_day", 100))
    mix = port.traffic.get("class_mix", {"truck": 1.0})
    classes, weights = list(mix), list(mix.values())
    t0 = start.astimezone(UTC).timestamp()
    pending: list[tuple[float, int, bytes]] = []
    seq = 0
    t = t0
    end = t0 + days * 86400
    while t < end:
        t += rng.expovariate(per_day / 86400)
        vid = f"{port.slug}-{rng.getrandbits(40):010x}"
        cls = rng.choices(classes, weights)[0]
        direction = "outbound" if rng.random() < 0.6 else "inbound"
        base = {
            "port": port.slug,
            "lane": f"{direction[:3]}-{rng.randint(1, 4)}",
            "direction": direction,
            "vehicle_id": vid,
            "vehicle_class": cls,
        }
        entered = t + rng.expovariate(1 / 900)
        scanned = entered + 60 + rng.expovariate(1 / 120)
        scan_done = scanned + 180
        flagged = rng.random() < 0.08
        exited = scan_done + 120 + (rng.expovariate(1 / 1800) if flagged else rng.expovariate(1 / 300))
        steps = [
            ("vehicle.arrived", t, {"booked": rng.random() < 0.8}),
            ("gate.entered", entered, {}),
            ("scan.started", scanned, {}),
            ("scan.completed", scan_done, {"result": "flagged" if flagged else "clear"}),
        ]
        if flagged:
            steps += [("inspection.started", scan_done + 60, {}), ("inspection.completed", exited - 60, {})]
        cargo = round(rng.uniform(0, 2 * port.traffic.get("cargo_tonnes_per_truck", 10)), 1) if cls == "truck" else 0
        steps.append(("gate.exited", exited, {"cargo_tonnes": cargo}))
        for kind, when, extra in steps:
            seq += 1
            obj = {
                "event_id": f"{port.slug}-{seq:09d}",
                "type": kind,
                "ts": _ts(when),
                **base,
                "sensor_id": f"{port.slug}-{kind.split('.')[0]}-1",
                **extra,
            }
            heapq.heappush(pending, (when, seq, orjson.dumps(obj)))
        while pending and pending[0][0] <= t:
            when, _, line = heapq.heappop(pending)
            yield when, line
    while pending:
        when, _, line = heapq.heappop(pending)
        yield when, line


def write(path: str, catalogue: Catalogue, start: datetime, days: int, seed: int = 7) -> int:
    """Write the log (any file name, uncompressed); returns the number of events."""
    from producers.logs import write_lines

    with open(path, "wb") as f:
        return write_lines(f, events(catalogue, start, days, seed))
