"""`crossing-monitor replay LOG`: a recorded log back onto a topic, keyed by each event's port.

Every non-blank line is sent exactly as it is — including lines that are not valid events, because
the worker's dead-letter handling must see them. The key (the port) and, for paced replays, the
event time are read with a regular expression instead of a JSON parse; only a line where that is
ambiguous (`"port"` twice) is parsed. At max speed each port's lines go out in the log's order, a
few thousand at a time joined into one call (with the compiled package, a block of the log is split
and grouped by key in Rust, `native/src/replay.rs`, the same lines and keys); a paced replay sends
line by line.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Callable, Iterator

import orjson

from crossing_monitor.core.events import parse_timestamp
from crossing_monitor.errors import UserError
from crossing_monitor.kafka.bootstrap import bootstrap_servers
from crossing_monitor.logs.files import LogError, open_log, read_chunks, read_lines
from producers.native import group_by_key
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

    While the broker is away the publisher holds the lines it is at and waits (up to `patience`
    seconds without an acknowledgement), then goes on: nothing lost, nothing doubled."""
    from producers.publish import Publisher

    publisher = Publisher(bootstrap, topic, linger_ms=100 if speed is None else 5, patience=patience)
    await publisher.start()
    pacer = Pacer(speed) if speed else None
    try:
        with (
            open_log(path) as (lines, raw, size),
            progress_bar(show_progress, f"replaying {path}", size or None) as update,
        ):
            grouped = group_by_key() if pacer is None else None
            if grouped is not None:
                await _blocks_at_max_speed(read_chunks(lines, path), grouped, publisher, lambda: update(raw.tell()))
            elif pacer is None:
                await _at_max_speed(messages(read_lines(lines, path)), publisher, lambda: update(raw.tell()))
            else:
                await _paced(messages(read_lines(lines, path)), publisher, pacer, lambda: update(raw.tell()))
            await publisher.flush()
    except LogError as exc:
        raise UserError(str(exc)) from None
    finally:
        await publisher.stop()
    return publisher.sent


async def _paced(lines: Iterator[bytes], publisher, pacer: Pacer, progress: Callable[[], None]) -> None:
    """Every line in the log's order, each when its event time comes at the pacer's speed."""
    send = publisher.send
    for n, line in enumerate(lines, 1):
        if (ms := ms_of(line)) is not None and (delay := pacer.wait(ms)) > 0:
            await publisher.submit_all()
            await asyncio.sleep(delay)
        await send(key_of(line), line)
        if not n % PROGRESS_EVERY:
            progress()


async def _at_max_speed(lines: Iterator[bytes], publisher, progress: Callable[[], None]) -> None:
    """Every line, each port's lines in the log's order: up to PROGRESS_EVERY lines are gathered per
    key and handed over joined (`Publisher.send_joined`: one call per batch with the compiled batch).
    Only the order of lines of different keys on one partition can differ from the log's, which no
    figure depends on (each port is folded on its own); keyless lines go out at once, round robin."""
    send = publisher.send
    groups: dict[bytes, list[bytes]] = {}

    async def hand_over() -> None:
        for key, group in groups.items():
            await publisher.send_joined(key, b"\n".join(group), len(group))
        groups.clear()

    for n, line in enumerate(lines, 1):  # (a line holds no b"\n": `messages` cut them there)
        key = key_of(line)
        if key is None:
            await send(None, line)
        else:
            group = groups.get(key)
            if group is None:
                group = groups[key] = []
            group.append(line)
        if not n % PROGRESS_EVERY:
            await hand_over()
            progress()
    await hand_over()


async def _blocks_at_max_speed(chunks: Iterator[bytes], grouped, publisher, progress: Callable[[], None]) -> None:
    """`_at_max_speed` with the compiled grouping: the log read in blocks of whole lines, each block's
    lines grouped by key in one call (`group_by_key`, the keys of `key_of`) and handed over joined."""
    send = publisher.send
    held: list[bytes] = []  # a line begun in an earlier chunk
    for chunk in chunks:
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            held.append(chunk)
            continue
        block = b"".join([*held, chunk[:cut]]) if held else chunk[:cut]
        held = [chunk[cut:]] if cut < len(chunk) else []
        await _hand_over(grouped(block, key_of), publisher, send)
        progress()
    if held:
        await _hand_over(grouped(b"".join(held), key_of), publisher, send)


async def _hand_over(found, publisher, send) -> None:
    groups, keyless = found
    for key, count, joined in groups:
        await publisher.send_joined(key, joined, count)
    for line in keyless:
        await send(None, line)


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
