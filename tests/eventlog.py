"""Building sensor events and logs by hand, for tests that must know every figure in advance."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

_ids = itertools.count(1)


def event(
    type: str,
    ts: str,
    vehicle: str = "v1",
    *,
    port: str = "khorgos",
    event_id: str | None = None,
    direction: str = "outbound",
    vehicle_class: str = "truck",
    **extra: Any,
) -> dict[str, Any]:
    """One valid SPEC §1 event; fields can be overridden or added with keyword arguments."""
    obj: dict[str, Any] = {
        "event_id": event_id or f"e{next(_ids)}",
        "type": type,
        "ts": ts,
        "port": port,
        "lane": "L1",
        "direction": direction,
        "vehicle_id": vehicle,
        "vehicle_class": vehicle_class,
        "sensor_id": f"{port}-{type}-1",
    }
    if type == "scan.completed":
        obj["result"] = "clear"
    obj.update(extra)
    return obj


def crossing(
    vehicle: str,
    arrived: str | None,
    entered: str | None,
    exited: str | None,
    **fields: Any,
) -> list[dict[str, Any]]:
    """The arrival, entry and exit of one vehicle (any of them may be left out)."""
    out = []
    if arrived:
        out.append(event("vehicle.arrived", arrived, vehicle, **fields))
    if entered:
        out.append(event("gate.entered", entered, vehicle, **fields))
    if exited:
        out.append(event("gate.exited", exited, vehicle, **fields))
    return out


def lines(events: list[dict[str, Any] | bytes]) -> list[bytes]:
    return [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]


def write_log(path, events: list[dict[str, Any] | bytes]) -> str:
    """Write events (dicts, or raw bytes for malformed lines) as a .jsonl or .jsonl.gz log."""
    data = b"\n".join(lines(events)) + b"\n"
    if str(path).endswith(".gz"):
        import gzip

        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)
