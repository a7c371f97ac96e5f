"""`crossing-monitor replay LOG`: a recorded log back onto a topic, keyed by each event's port.

Every non-blank line is sent exactly as it is — including lines that are not valid events, because
the worker's dead-letter handling must see them. The key (the port) and, for paced replays, the
event time are read with a regular expression instead of a JSON parse; only a line where that is
ambiguous (`"port"` twice) is parsed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Iterator

import orjson

from crossing_monitor.core.events import parse_timestamp
from crossing_monitor.errors import UserError
from crossing_monitor.kafka.bootstrap import bootstrap_servers
from crossing_monitor.logs.files import LogError, open_log, read_lines
from producers.pacing import Pacer
from producers.progress import parse_speed, progress_bar

_PORT = re.compile(rb'"port"\s*:\s*"([^"\\]{1,200})"')
_TS = re.compile(rb'"ts"\s*:\s*"([^"\\]{1,64})"')
PROGRESS_EVERY = 4096


def key_of(line: bytes) -> bytes | None:
    """The event's port as the message key, cheaply; None when the line has no usable port."""
    if line.count(b'"port"') == 1:
        found = _PORT.search(line)
        return found.group(1) if found else None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    port = obj.get("port") if type(obj) is dict else None
    return port.encode() if type(port) is str else None


def ms_of(line: bytes) -> int | None:
    """The event time in epoch ms, or None when the line has none that parses."""
    found = _TS.search(line)
    if found is None:
        return None
    us = parse_timestamp(found.group(1).decode("utf-8", "replace"))
    return None if us is None else us // 1000


def messages(lines: Iterator[bytes]) -> Iterator[bytes]:
    """The log's lines without their line ends; blank lines are no events and are skipped."""
    for line in lines:
        line = line.rstrip(b"\r\n")
        if line.strip():
            yield line


async def replay(
    path: str, bootstrap: str, topic: str, speed: float | None, show_progress: bool, patience: float | None = None
) -> int:
    """Send the log's messages to `topic`; returns how many the broker acknowledged.

    While the broker is away the publisher holds the line it is at and waits (up to `patience`
    seconds without an acknowledgement), then goes on: nothing lost, nothing doubled."""
    from producers.publish import Publisher

    publisher = Publisher(bootstrap, topic, linger_ms=100 if speed is None else 5, patience=patience)
    await publisher.start()
    pacer = Pacer(speed) if speed else None
    n = 0
    send = publisher.send
    try:
        with (
            open_log(path) as (lines, raw, size),
            progress_bar(show_progress, f"replaying {path}", size or None) as update,
        ):
            for line in messages(read_lines(lines, path)):
                if pacer is not None and (ms := ms_of(line)) is not None and (delay := pacer.wait(ms)) > 0:
                    await publisher.submit_all()
                    await asyncio.sleep(delay)
                await send(key_of(line), line)
                n += 1
                if not n % PROGRESS_EVERY:
                    update(raw.tell())
            await publisher.flush()
    except LogError as exc:
        raise UserError(str(exc)) from None
    finally:
        await publisher.stop()
    return publisher.sent


def main(args: argparse.Namespace) -> int:
    speed = parse_speed(args.speed)
    try:
        with open_log(args.log):  # a missing or unreadable log fails before connecting
            pass
    except LogError as exc:
        raise UserError(str(exc)) from None
    bootstrap = bootstrap_servers(args.bootstrap)
    started = time.monotonic()
    n = asyncio.run(replay(args.log, bootstrap, args.topic, speed, not args.no_progress, args.patience))
    seconds = time.monotonic() - started
    print(
        f"replayed {n:,} messages from {args.log} → {bootstrap} topic {args.topic} in {seconds:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    return 0
