"""A messy log, as real sensors make them: the simulator's own sensor faults (resent events, missed
ones, a clock that runs ahead, a port offline for hours that uploads late), then what only a log or
a gateway adds: mixed offsets, lines shuffled within small windows, malformed lines, unknown ports
and invalid events."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import orjson

from crossing_monitor.core.catalogue import load_catalogue
from producers.faults import Faults
from producers.run import Run

START = datetime.fromisoformat("2023-09-26T00:00:00+08:00")
UTC_MINUS_5 = timezone(timedelta(hours=-5))
FAULTS = Faults(duplicates=0.03, missed=0.01, offline=6.0, skew=120.0)
SHUFFLE_WINDOW = 30  # lines
BAD_LINES = 25


def _reoffset(line: bytes, rng: random.Random) -> bytes:
    """The same instant written with another offset: Z or -05:00."""
    obj = orjson.loads(line)
    instant = datetime.fromisoformat(obj["ts"])
    if rng.random() < 0.5:
        obj["ts"] = instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    else:
        obj["ts"] = instant.astimezone(UTC_MINUS_5).isoformat(timespec="milliseconds")
    return orjson.dumps(obj)


def _bad_line(kind: str, i: int, rng: random.Random) -> bytes:
    """One line the monitor must send to the dead letters with reason `kind`."""
    if kind == "malformed":
        return rng.choice([b"{truncated", b"[1,2,3]", b"\x00\x01binary", b"not json at all", b'"just a string"'])
    event = {
        "event_id": f"bad-{i}",
        "type": "gate.exited",
        "ts": "2023-09-26T10:00:00",  # no offset: invalid
        "port": "khorgos",
        "lane": "L1",
        "direction": "outbound",
        "vehicle_id": "x",
        "vehicle_class": "truck",
        "sensor_id": "s",
    }
    if kind == "unknown_port":
        event.update(event_id=f"moon-{i}", ts="2023-09-26T10:00:00Z", port="moonbase")
    return orjson.dumps(event)


def messy_log(days: float = 1.5, seed: int = 11) -> tuple[list[bytes], dict[str, int]]:
    """The lines of a messy log and how many bad lines of each kind it holds."""
    rng = random.Random(seed)
    catalogue = load_catalogue()
    run = Run(catalogue, list(catalogue), START, days, seed=seed, faults=FAULTS)
    lines = [_reoffset(line, rng) if rng.random() < 0.3 else line for line in run.lines()]
    for i in range(0, len(lines), SHUFFLE_WINDOW):
        window = lines[i : i + SHUFFLE_WINDOW]
        rng.shuffle(window)
        lines[i : i + SHUFFLE_WINDOW] = window
    bad = {"malformed": 0, "invalid": 0, "unknown_port": 0}
    for i in range(BAD_LINES):
        kind = ("malformed", "invalid", "unknown_port")[i % 3]
        lines.insert(rng.randrange(len(lines)), _bad_line(kind, i, rng) + b" " * (i // 3))  # each bad line distinct
        bad[kind] += 1
    return lines, bad
