"""`crossing-monitor simulate`: calibrated gate sensors publishing to Kafka or writing a log."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Coroutine
from datetime import datetime
from math import inf
from zoneinfo import ZoneInfo

from crossing_monitor.core.catalogue import Catalogue, CatalogueError, load_catalogue
from crossing_monitor.errors import UserError
from crossing_monitor.kafka.bootstrap import bootstrap_servers
from producers.config import ConfigError
from producers.faults import parse_faults
from producers.logs import open_out
from producers.pacing import Pacer
from producers.progress import parse_speed, progress_bar
from producers.run import Run, from_scenario
from producers.scenarios import SCENARIOS, scenario

PROGRESS_EVERY = 4096  # events between progress updates
STOP_GRACE_SECONDS = 10.0  # how long a stopped run waits for the broker to acknowledge what it has sent


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
        raise UserError(f"--start {text!r}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM (local time), 'now' or 'today'") from None
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
                raise UserError(str(exc.args[0])) from None
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
        raise UserError(str(exc)) from None


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


async def publish(
    run: Run,
    bootstrap: str,
    topic: str,
    speed: float | None,
    show_progress: bool,
    *,
    pacer: Pacer | None = None,
    stop: asyncio.Event | None = None,
    processes: int | None = None,
    patience: float | None = None,
) -> int:
    """Publish the run's events; returns how many the broker acknowledged.

    Paced (`speed`, or a `pacer` of one's own), the events go out in sending order at their time.
    At max speed the compiled models run in this process between sends (`ModelsHere`: the least CPU per
    event, and the CPU is what bounds the rate beside a local broker), unless `processes` asks for child
    processes or the Python model runs: then the models run in `processes` child processes (default: by
    the CPUs), started before connecting so they are under way by then, while this one publishes what they send.
    `stop` set ends a run early (an endless one, say); what was sent until then is flushed for up to
    STOP_GRACE_SECONDS, and what the broker has not acknowledged by then is abandoned, in one line.
    A broker that goes away is waited for, up to `patience` seconds without an acknowledgement."""
    from producers.parallel import ModelProcesses, ModelsHere, compiled_here
    from producers.publish import Publisher

    if pacer is None and speed is not None:
        pacer = Pacer(speed, int(run.start_s * 1000))
    total = None if run.days == inf else run.days * 86400
    async with contextlib.AsyncExitStack() as stack:
        chunks = None
        if pacer is None:
            here = processes is None and compiled_here(run)
            chunks = await stack.enter_async_context(ModelsHere(run) if here else ModelProcesses(run, processes))
        publisher = Publisher(bootstrap, topic, linger_ms=100 if pacer is None else 5, patience=patience)
        await publisher.start()

        async def send_all() -> None:
            with progress_bar(show_progress, f"publishing to {topic}", total, " s") as update:
                if chunks is not None:
                    await _publish_chunks(run, chunks, publisher, update, stop)
                else:
                    await _publish_paced(run, publisher, pacer, update, stop)
                await publisher.flush()

        try:  # Publisher's own errors (PublishError) say what was acknowledged and what may not be
            await _unless_stopped(send_all(), stop, publisher)
        finally:
            await publisher.stop()
    return publisher.sent


async def _unless_stopped(sending: Coroutine, stop: asyncio.Event | None, publisher) -> None:
    """Run `sending`; once `stop` is set, give it STOP_GRACE_SECONDS to flush, then abandon what is not
    acknowledged. A stop comes with the broker often (the demo's children all get the parent's death
    signal at once), and patience would wait 10 minutes for a broker that is shutting down too."""
    task = asyncio.ensure_future(sending)
    try:
        if stop is not None:
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            if not (await asyncio.wait([task], timeout=STOP_GRACE_SECONDS))[0]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                why = f"stopped; Kafka did not acknowledge the rest within {STOP_GRACE_SECONDS:g} s"
                publisher.say(str(publisher.abandon(why)))
                return
        await task
    finally:
        task.cancel()


async def _publish_paced(run: Run, publisher, pacer: Pacer, update, stop: asyncio.Event | None) -> None:
    """All ports' events in sending order, each when the pacer says it is due."""
    keys = run.keys
    start_ms = run.start_s * 1000
    length_ms = run.days * 86_400_000
    send = publisher.send
    for n, (ms, index, data) in enumerate(run.events(), 1):
        if (delay := pacer.wait(ms)) > 0:
            await publisher.submit_all()
            if stop is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        if stop is not None and stop.is_set():
            return
        await send(keys[index], data)
        if not n % PROGRESS_EVERY:
            update(min(ms - start_ms, length_ms) / 1000)
            await asyncio.sleep(0)  # in a burst (history, a late start) the producer and a stop get a turn


async def _publish_chunks(run: Run, chunks, publisher, update, stop: asyncio.Event | None) -> None:
    """The models' chunks into Kafka batches as fast as they come."""
    keys = run.keys
    start_ms = run.start_s * 1000
    length_ms = run.days * 86_400_000
    reached: dict[int, int] = {}  # event time each port's process has reached
    async for index, upto_ms, count, events in chunks:
        await publisher.send_joined(keys[index], events, count)
        if stop is not None and stop.is_set():
            return
        reached[index] = upto_ms
        update(min(min(reached.values()) - start_ms, length_ms) / 1000)


def main(args: argparse.Namespace) -> int:
    if args.list_scenarios:
        print(list_scenarios())
        return 0
    try:
        catalogue = load_catalogue(args.catalogue)
    except CatalogueError as exc:
        raise UserError(str(exc)) from None
    to_log = args.out is not None
    speed = parse_speed(args.speed, default="max" if to_log else "1")
    run = build_run(args, catalogue, live=not to_log and speed is not None)
    show = not args.no_progress
    started = time.monotonic()
    if to_log:
        n = write(run, args.out, speed, show)
        where = args.out
    else:
        bootstrap = bootstrap_servers(args.bootstrap)
        print(f"simulating {_describe(run)} → {bootstrap} topic {args.topic}", file=sys.stderr, flush=True)
        n = asyncio.run(publish(run, bootstrap, args.topic, speed, show, patience=args.patience))
        where = f"topic {args.topic}"
    seconds = time.monotonic() - started
    print(f"{n:,} events of {_describe(run)} → {where} in {seconds:.1f} s", file=sys.stderr, flush=True)
    return 0
