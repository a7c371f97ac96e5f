"""A messy log, as real sensors make them: resent events, reordering, a port that was offline for
hours and uploads late, mixed offsets, malformed lines, unknown ports and invalid events."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import orjson

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.synthetic import events

START = datetime.fromisoformat("2023-09-26T00:00:00+08:00")
UTC_MINUS_5 = timezone(timedelta(hours=-5))


def _reoffset(line: bytes, rng: random.Random) -> bytes:
    obj = orjson.loads(line)
    instant = datetime.fromisoformat(obj["ts"])
    if rng.random() < 0.5:
        obj["ts"] = instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    else:
        obj["ts"] = instant.astimezone(UTC_MINUS_5).isoformat(timespec="milliseconds")
    return orjson.dumps(obj)


def messy_log(days: float = 1.5, seed: int = 11) -> tuple[list[bytes], dict[str, int]]:
    """The lines of a messy log and how many bad lines of each kind it holds."""
    rng = random.Random(seed)
    clean = list(events(load_catalogue(), START, int(days + 0.999), seed=seed))
    clean = clean[: int(len(clean) * days / int(days + 0.999))]
    offline_from, offline_to = START + timedelta(hours=10), START + timedelta(hours=16)
    lines: list[bytes] = []
    late: list[bytes] = []
    for line in clean:
        obj = orjson.loads(line)
        if rng.random() < 0.3:
            line = _reoffset(line, rng)
        if obj["port"] == "irkeshtam" and offline_from <= datetime.fromisoformat(obj["ts"]) < offline_to:
            late.append(line)  # buffered at the port, uploaded when it comes back
            continue
        lines.append(line)
        if rng.random() < 0.03:
            lines.insert(len(lines) - rng.randint(0, 40), line)  # a sensor resends, a little later
    # local reordering within windows of 30 lines
    for i in range(0, len(lines), 30):
        window = lines[i : i + 30]
        rng.shuffle(window)
        lines[i : i + 30] = window
    lines += late
    bad = {"malformed": 0, "invalid": 0, "unknown_port": 0}
    for i in range(25):
        kind = ("malformed", "invalid", "unknown_port")[i % 3]
        if kind == "malformed":
            junk = rng.choice([b"{truncated", b"[1,2,3]", b"\x00\x01binary", b"not json at all", b'"just a string"'])
        elif kind == "invalid":
            junk = orjson.dumps(
                {
                    "event_id": f"bad-{i}",
                    "type": "gate.exited",
                    "ts": "2023-09-26T10:00:00",
                    "port": "khorgos",
                    "lane": "L1",
                    "direction": "outbound",
                    "vehicle_id": "x",
                    "vehicle_class": "truck",
                    "sensor_id": "s",
                }
            )
        else:
            junk = orjson.dumps(
                {
                    "event_id": f"moon-{i}",
                    "type": "gate.exited",
                    "ts": "2023-09-26T10:00:00Z",
                    "port": "moonbase",
                    "lane": "L1",
                    "direction": "outbound",
                    "vehicle_id": "x",
                    "vehicle_class": "truck",
                    "sensor_id": "s",
                }
            )
        lines.insert(rng.randrange(len(lines)), junk + b" " * (i // 3))  # each bad line distinct
        bad[kind] += 1
    return lines, bad
