"""Shared by the simulator's tests: a parser with simulate/record/replay, and reading logs back."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from datetime import datetime
from math import inf
from typing import Any

import orjson

from crossing_monitor import cli


def parser() -> argparse.ArgumentParser:
    """The three producer commands, built by cli.py's own functions (registered or not)."""
    p = argparse.ArgumentParser(prog="crossing-monitor")
    sub = p.add_subparsers(dest="command")
    for add in (cli._add_simulate, cli._add_record, cli._add_replay):
        add(sub)
    return p


def run_cli(*argv: str) -> int:
    """Run one command as `crossing-monitor` would: a UserError is exit 2 with its message on stderr."""
    import sys

    args = parser().parse_args(list(argv))
    try:
        return cli._handler(args.handler)(args)
    except cli.UserError as exc:
        print(f"crossing-monitor {args.command}: {exc}", file=sys.stderr)
        return 2


def objects(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        yield orjson.loads(line)


class Journeys:
    """Waits and clearance times read straight off simulated events, independent of the metric core: per
    vehicle the earliest vehicle.arrived, gate.entered and gate.exited; wait = entered - arrived,
    clearance = exited - arrived (SPEC §2, contract 1.1)."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self.vehicles: dict[str, dict[str, Any]] = {}
        for line in lines:
            o = orjson.loads(line)
            v = self.vehicles.setdefault(
                o["vehicle_id"], {"port": o["port"], "direction": o["direction"], "class": o["vehicle_class"]}
            )
            ts = datetime.fromisoformat(o["ts"]).timestamp()
            key = _STAGES.get(o["type"])
            if key is not None and (key not in v or ts < v[key]):
                v[key] = ts
            if o["type"] == "vehicle.arrived" and "booked" not in v:
                v["booked"] = bool(o.get("booked"))

    def select(self, **match: Any) -> list[dict[str, Any]]:
        """The vehicles whose fields equal `match` (port, direction, class, booked)."""
        return [v for v in self.vehicles.values() if all(v.get(k) == want for k, want in match.items())]

    def average(self, start: str, stop: str, since: float = -inf, until: float = inf, **match: Any) -> float:
        """Mean of `stop - start` (seconds) over matching vehicles that have both, grouped by the time of
        `stop` in [since, until)."""
        spans = [v[stop] - v[start] for v in self.select(**match) if start in v and stop in v
                 and since <= v[stop] < until]  # fmt: skip
        if not spans:
            raise AssertionError(f"no vehicle with {start} and {stop} for {match}")
        return sum(spans) / len(spans)

    def wait(self, **kw: Any) -> float:
        return self.average("arrived", "entered", **kw)

    def clearance(self, **kw: Any) -> float:
        return self.average("arrived", "exited", **kw)


_STAGES = {"vehicle.arrived": "arrived", "gate.entered": "entered", "gate.exited": "exited"}


def queue_over_time(lines: Iterable[bytes], port: str, direction: str) -> list[tuple[float, int]]:
    """(epoch s, vehicles queued) after each arrival or entry of the port and direction: arrived and not yet
    entered, counting each vehicle once (the model emits every vehicle's gate.entered)."""
    queued: set[str] = set()
    out = []
    for line in lines:
        o = orjson.loads(line)
        if o["port"] != port or o["direction"] != direction:
            continue
        if o["type"] == "vehicle.arrived":
            queued.add(o["vehicle_id"])
        elif o["type"] == "gate.entered":
            queued.discard(o["vehicle_id"])
        else:
            continue
        out.append((datetime.fromisoformat(o["ts"]).timestamp(), len(queued)))
    return out
