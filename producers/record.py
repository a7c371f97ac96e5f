"""`crossing-monitor record OUT`: a topic into a recorded log, one line per message.

Each message's line is the message as it was sent, or as close as one line allows
(`crossing_monitor.logs.files.message_line`): `analyze` of the recording counts every message
exactly as the worker counted it, tombstones and JSON spread over several lines included.

Without --follow the end of each partition is captured when recording starts, and recording stops
there, so the log is exactly the topic at that moment. Ctrl-C (or SIGTERM) stops cleanly: every
message already fetched is written, the file is closed (a valid gzip stream), nothing twice.
Messages are written in partition order per partition.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable

from crossing_monitor.console import say
from crossing_monitor.errors import UserError
from crossing_monitor.kafka.bootstrap import bootstrap_servers
from crossing_monitor.logs.files import message_line
from producers import publish
from producers.logs import open_out

FETCH_MAX_RECORDS = 20_000
PROGRESS_SECONDS = 0.5


async def _connect(bootstrap: str, say: Callable[[str], None]):
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    from crossing_monitor.kafka.security import KafkaSecurity

    security = KafkaSecurity.from_env().aiokafka_kwargs()  # TLS/SASL from CROSSING_MONITOR_KAFKA_*
    last = ""
    attempts = publish.ATTEMPTS
    for attempt in range(1, attempts + 1):
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 << 20,
            fetch_max_bytes=32 << 20,
            **security,
        )
        try:
            with publish.quiet_aiokafka():
                await consumer.start()
            return consumer
        except (KafkaError, OSError) as exc:
            last = str(exc) or type(exc).__name__
            await consumer.stop()
            if attempt < attempts:
                say(
                    f"Kafka at {bootstrap} is not answering ({last}); retrying in "
                    f"{publish.RETRY_SECONDS:.0f} s ({attempt}/{attempts})"
                )
                await asyncio.sleep(publish.RETRY_SECONDS)
    raise UserError(f"cannot reach Kafka at {bootstrap} after {attempts} attempts ({last}); is a broker running?")


async def record(
    bootstrap: str,
    topic: str,
    out_path: str,
    *,
    from_now: bool = False,
    follow: bool = False,
    stop: asyncio.Event | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    say: Callable[[str], None] = say,
) -> int:
    """Record `topic` into `out_path`; returns the number of messages written."""
    from aiokafka.structs import TopicPartition

    stop = stop or asyncio.Event()
    consumer = await _connect(bootstrap, say)
    out = None
    written = 0
    try:
        parts = await _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        if from_now:
            await consumer.seek_to_end(*tps)
        else:
            await consumer.seek_to_beginning(*tps)
        positions = {tp: await consumer.position(tp) for tp in tps}
        ends = None if follow else await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends is None or positions[tp] < ends[tp]}
        out = open_out(out_path)
        total = None if ends is None else sum(ends[tp] - positions[tp] for tp in tps)
        while remaining and not stop.is_set():
            fetch = asyncio.ensure_future(consumer.getmany(*remaining, timeout_ms=500, max_records=FETCH_MAX_RECORDS))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not fetch.done():  # stopped while waiting: nothing fetched is lost by cancelling
                fetch.cancel()
                break
            chunk = []
            for tp, msgs in fetch.result().items():
                end = None if ends is None else ends[tp]
                for m in msgs:
                    if end is not None and m.offset >= end:
                        break
                    chunk.append(message_line(m.value) + b"\n")
                    written += 1
            if chunk:
                out.write(b"".join(chunk))
            if ends is not None:
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
            if progress is not None:
                progress(written, total)
    finally:
        if out is not None and out is not sys.stdout.buffer:
            out.close()
        await consumer.stop()
    return written


async def _partitions(consumer, topic: str) -> set[int]:
    for _ in range(20):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return parts
        await consumer._client.force_metadata_update()  # a topic just created may take a moment
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return parts
        await asyncio.sleep(0.1)
    raise UserError(f"topic {topic!r} does not exist")


def _progress_line(enabled: bool) -> Callable[[int, int | None], None] | None:
    if not enabled or not sys.stderr.isatty():
        return None
    last = [0.0]

    def show(written: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_SECONDS:
            last[0] = now
            of = f" of {total:,}" if total is not None else ""
            print(f"\rrecorded {written:,}{of} messages", end="", file=sys.stderr, flush=True)

    return show


def main(args: argparse.Namespace) -> int:
    bootstrap = bootstrap_servers(args.bootstrap)
    open_out(args.out).close() if args.out != "-" else None  # a bad path fails before connecting

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await record(
                bootstrap,
                args.topic,
                args.out,
                from_now=args.from_now,
                follow=args.follow,
                stop=stop,
                progress=_progress_line(not args.no_progress),
            )
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    started = time.monotonic()
    n = asyncio.run(run())
    if not args.no_progress and sys.stderr.isatty():
        print(file=sys.stderr)
    print(
        f"recorded {n:,} messages from {bootstrap} topic {args.topic} → {args.out} in "
        f"{time.monotonic() - started:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    return 0
