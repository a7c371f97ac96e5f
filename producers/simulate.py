"""`crossing-monitor simulate`: calibrated gate sensors publishing to Kafka or writing a log."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from datetime import datetime
from math import inf
from zoneinfo import ZoneInfo

from crossing_monitor.catalogue import Catalogue, CatalogueError, load_catalogue
from crossing_monitor.errors import CliError
from producers.config import ConfigError
from producers.faults import parse_faults
from producers.logs import open_out
from producers.pacing import Pacer
from producers.progress import parse_speed, progress_bar
from producers.run import Run, from_scenario
from producers.scenarios import SCENARIOS, scenario

PROGRESS_EVERY = 4096  # events between progress updates


def list_scenarios() -> str:
    """The scenarios as a readable list: name, what it is, the published figure."""
    lines = []
    for sc in SCENARIOS.values():
        lines.append(
            f"{sc.name}\n    {sc.summary}\n    ports {', '.join(sc.ports)}; from {sc.start} for "
            f"{sc.days:g} days; published: {sc.published}"
        )
    return "\n".join(lines)


def parse_start(text: str | None, tz: ZoneInfo, live: bool) -> datetime:
    """`--start`: a date or local date-time (or with an offset), `now` or `today`; default: now for a
    live run, else the start of today."""
    now = datetime.now(tz)
    raw = (text or ("now" if live else "today")).strip().lower()
    if raw == "now":
        return now.replace(microsecond=0)
    if raw == "today":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        start = datetime.fromisoformat(text)  # type: ignore[arg-type]
    except ValueError:
        raise CliError(f"--start {text!r}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM (local time), 'now' or 'today'") from None
    return start if start.tzinfo else start.replace(tzinfo=tz)


def build_run(args: argparse.Namespace, catalogue: Catalogue, live: bool) -> Run:
    """The Run the options describe (a scenario, changed by any option given explicitly)."""
    try:
        faults = parse_faults(args.faults)
        days = inf if args.days is not None and args.days in (0, inf) else args.days
        if args.scenario:
            try:
                sc = scenario(args.scenario)
            except KeyError as exc:
                raise CliError(str(exc.args[0])) from None
            run = from_scenario(catalogue, sc, seed=args.seed, faults=faults, days=days, regime=args.regime)
            if args.ports:
                run.ports = _ports(args.ports)
            if args.start:
                run.start = parse_start(args.start, catalogue[run.ports[0]].tz, live)
            run.__post_init__()
            return run
        ports = _ports(args.ports) if args.ports else list(catalogue)
        tz = catalogue[ports[0]].tz if ports[0] in catalogue else ZoneInfo("Asia/Shanghai")
        return Run(
            catalogue,
            ports,
            parse_start(args.start, tz, live),
            days if days is not None else 1.0,
            seed=args.seed,
            regime=args.regime,
            faults=faults,
        )
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _ports(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _describe(run: Run) -> str:
    span = "no end" if run.days == inf else f"{run.days:g} days"
    return f"{', '.join(run.ports)} from {run.start.isoformat(timespec='minutes')} ({span}, seed {run.seed})"


def write(run: Run, path: str, speed: float | None, show_progress: bool) -> int:
    """Write the run's events to a log (paced if `speed`); returns how many."""
    out = open_out(path)
    n = 0
    total = None if run.days == inf else run.days * 86400
    start_ms = run.start_s * 1000
    pacer = Pacer(speed, int(start_ms)) if speed else None
    chunk: list[bytes] = []
    try:
        with progress_bar(show_progress, "simulating", total, " s") as update:
            for ms, _, data in run.events():
                if pacer is not None and (delay := pacer.wait(ms)) > 0:
                    out.write(b"".join(chunk))
                    chunk.clear()
                    out.flush()
                    time.sleep(delay)
                chunk.append(data + b"\n")
                n += 1
                if not n % PROGRESS_EVERY:
                    out.write(b"".join(chunk))
                    chunk.clear()
                    update(min(ms - start_ms, (total or inf) * 1000) / 1000)
            out.write(b"".join(chunk))
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    return n


async def publish(run: Run, bootstrap: str, topic: str, speed: float | None, show_progress: bool) -> int:
    """Publish the run's events (paced if `speed`); returns how many the broker acknowledged."""
    from aiokafka.errors import KafkaError

    from producers.publish import Publisher

    publisher = Publisher(bootstrap, topic, linger_ms=100 if speed is None else 5)
    await publisher.start()
    keys = run.keys
    total = None if run.days == inf else run.days * 86400
    start_ms = run.start_s * 1000
    pacer = Pacer(speed, int(start_ms)) if speed else None
    n = 0
    send = publisher.send
    try:
        with progress_bar(show_progress, f"publishing to {topic}", total, " s") as update:
            for ms, index, data in run.events():
                if pacer is not None and (delay := pacer.wait(ms)) > 0:
                    await publisher.submit_all()
                    await asyncio.sleep(delay)
                await send(keys[index], data)
                n += 1
                if not n % PROGRESS_EVERY:
                    update(min(ms - start_ms, (total or inf) * 1000) / 1000)
            await publisher.flush()
    except KafkaError as exc:
        raise CliError(
            f"Kafka at {bootstrap} failed after {publisher.sent:,} events were acknowledged: {exc}"
        ) from None
    finally:
        with contextlib.suppress(KafkaError):
            await publisher.stop()
    return n


def main(args: argparse.Namespace) -> int:
    if args.list_scenarios:
        print(list_scenarios())
        return 0
    try:
        catalogue = load_catalogue(args.catalogue)
    except CatalogueError as exc:
        raise CliError(str(exc)) from None
    to_log = args.out is not None
    speed = parse_speed(args.speed, default="max" if to_log else "1")
    run = build_run(args, catalogue, live=not to_log and speed is not None)
    show = not args.no_progress
    started = time.monotonic()
    if to_log:
        n = write(run, args.out, speed, show)
        where = args.out
    else:
        from crossing_monitor.cli import bootstrap_of

        bootstrap = bootstrap_of(args)
        print(f"simulating {_describe(run)} → {bootstrap} topic {args.topic}", file=sys.stderr, flush=True)
        n = asyncio.run(publish(run, bootstrap, args.topic, speed, show))
        where = f"topic {args.topic}"
    seconds = time.monotonic() - started
    print(f"{n:,} events of {_describe(run)} → {where} in {seconds:.1f} s", file=sys.stderr, flush=True)
    return 0
