"""Putting serialised events on a Kafka topic fast: one open batch per partition, key = port.

`AIOKafkaProducer.send()` costs a coroutine, a future and a partitioner call per message; filling
`create_batch()` batches ourselves and handing each full batch over with `send_batch()` is about
three times faster, with the same delivery guarantee (`acks=all`, the producer's own retries).
Partitions are chosen with Kafka's default murmur2 partitioner, so a port's events land on the
partition any other Kafka client would choose for that key. With the compiled package, the batches
are its `RecordBatch`: the bytes aiokafka's builder writes (tests/test_native_batch.py), filled from a
chunk of the models' events joined by newlines in one call (`send_joined`), not one call per event.

A broker outage is ridden out by ONE idempotent producer session, never by a new producer that
resends: the producer keeps every unacknowledged batch with its producer id and sequence number
and resends it until the broker answers (aiokafka expires an idempotent producer's batch only when
the partition has no leader AND the batch is older than the request time-out, 30 s), and the
broker, which keeps each producer's last sequence numbers in its log across a restart, writes a
batch it already holds only once. So a batch whose acknowledgement was lost in the
crash is neither lost nor doubled. Meanwhile this module waits with back-off (1 s doubling to
30 s), says one line per look at the broker, and gives up after `patience` seconds without any
acknowledgement; on giving up (or on an error Kafka does not retry, e.g. a broker that lost its
log) it says how many events are certainly on the topic and how many may or may not be; a run
started again after that may double those. The dedup needs the broker's own log back (same data
directory, or a replica), and the producer id not expired there (`producer.id.expiration.ms`, 1 day).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterable

from crossing_monitor.console import say
from crossing_monitor.errors import UserError
from crossing_monitor.kafka.admin import quiet_logger
from crossing_monitor.kafka.probe import unreachable
from producers.native import record_batch_type
from producers.patience import DEFAULT_PATIENCE, Backoff, duration

ATTEMPTS = 5  # `record` connects with these (simulate and replay wait with back-off and patience instead)
RETRY_SECONDS = 2.0
MAX_IN_FLIGHT = 64  # batches handed over and not yet acknowledged before we wait for the oldest
DEFAULT_PARTITIONS = 8  # as the worker creates the topic (CROSSING_MONITOR_PARTITIONS)
SLOW_SECONDS = 5.0  # a broker that accepts connections but acknowledges nothing this long is reported
CLOSE_SECONDS = 5.0  # how long closing may take once everything is acknowledged or given up
# A batch, and with its request header the produce request of one batch, below half a G1 region of a
# small broker heap (1 MiB regions up to a 2 GiB heap): a 1 MiB request is a "humongous" object there,
# each one starts a concurrent marking cycle, and the local broker spent most of a core on them while
# simulate fed it. Measured at 40,000 events/s for 150,000 events: broker CPU 1.9 s at 1 MiB (1.0 s of
# it the JVM's "G1 Conc" thread), 1.1 s at 256 KiB (more requests), 0.6-0.7 s at 480 KiB.
BATCH_BYTES = 480 << 10


class PublishError(UserError):
    """Kafka is gone for longer than the patience, or refused the events for good."""


def _retrieve(future: asyncio.Future) -> None:
    """Mark a batch's outcome as seen, so a batch failed after we gave up prints no
    "Future exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


def quiet_aiokafka():
    """aiokafka logs every failed connection at ERROR; while we retry, our one line per attempt says it."""
    return quiet_logger("aiokafka")


class Publisher:
    """A started producer for one topic; `send` never waits for the broker unless 64 batches are
    in flight; `flush` hands over every open batch and waits until all are acknowledged."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        linger_ms: int = 100,
        batch_bytes: int = BATCH_BYTES,
        say: Callable[[str], None] = say,
        patience: float | None = None,
        compiled_batches: bool = True,
    ) -> None:
        """`compiled_batches`: fill the compiled `RecordBatch` where the package has it (else aiokafka's)."""
        self.bootstrap = bootstrap
        self.topic = topic
        self.linger_ms = linger_ms
        self.batch_bytes = batch_bytes
        self.say = say
        self.patience = DEFAULT_PATIENCE if patience is None else patience
        self.sent = 0  # events acknowledged by the broker
        self.handed = 0  # events handed to the producer (acknowledged or not)
        self._producer = None
        self._quiet = contextlib.ExitStack()
        self._partitions: list[int] = []
        self._by_key: dict[bytes | None, int] = {}
        self._batches: dict[int, object] = {}
        self._counts: dict[int, int] = {}
        self._in_flight: deque[tuple[asyncio.Future, int]] = deque()
        self._failed: BaseException | None = None
        self._round_robin = 0
        self._record_batch = record_batch_type() if compiled_batches else None

    async def start(self) -> Publisher:
        """Connect (retrying with back-off while the broker is down, one line per attempt) and make the topic."""
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        from crossing_monitor.kafka.admin import create_topics_async
        from crossing_monitor.kafka.security import KafkaSecurity

        partitions = int(os.environ.get("CROSSING_MONITOR_PARTITIONS", DEFAULT_PARTITIONS))
        security = KafkaSecurity.from_env().aiokafka_kwargs()  # TLS/SASL from CROSSING_MONITOR_KAFKA_*
        self._quiet.enter_context(quiet_aiokafka())  # our own lines say what goes wrong, for the whole session
        backoff = Backoff(self.patience)
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                enable_idempotence=True,  # resends inside this session are written once (see the module doc)
                linger_ms=self.linger_ms,
                max_batch_size=self.batch_bytes,
                max_request_size=max(self.batch_bytes * 2, 1 << 20),
                request_timeout_ms=30_000,
                **security,
            )
            try:
                await create_topics_async(self.bootstrap, {self.topic: partitions}, timeout=10, security=security)
                await producer.start()
                self._partitions = sorted(await producer.partitions_for(self.topic))
                self._producer = producer
                return self
            except (KafkaError, OSError, TimeoutError) as exc:
                await producer.stop()
                last = await unreachable(self.bootstrap) or str(exc) or type(exc).__name__
                delay = backoff.next_delay()
                if delay is None:
                    self._quiet.close()
                    raise UserError(
                        f"cannot reach Kafka at {self.bootstrap} after {backoff.attempt + 1} attempts in "
                        f"{duration(backoff.elapsed)} ({last}); is a broker running? "
                        "(`crossing-monitor broker` starts one)"
                    ) from None
                self.say(
                    f"Kafka at {self.bootstrap} is not answering ({last}); retrying in {duration(delay)} "
                    f"(attempt {backoff.attempt}, giving up after {duration(self.patience)})"
                )
                await asyncio.sleep(delay)
            except BaseException:
                self._quiet.close()
                raise

    def partition(self, key: bytes | None) -> int:
        """Kafka's default partition for `key` (murmur2, as the Java client); no key: round robin."""
        found = self._by_key.get(key)
        if found is not None:
            return found
        if key is None:
            self._round_robin = (self._round_robin + 1) % len(self._partitions)
            return self._partitions[self._round_robin]
        from aiokafka.partitioner import murmur2

        found = self._by_key[key] = self._partitions[(murmur2(key) & 0x7FFFFFFF) % len(self._partitions)]
        return found

    async def send(self, key: bytes | None, value: bytes) -> None:
        """Add one message to its partition's open batch; a full batch is handed to the producer."""
        part, batch = self._batch_for(key)
        if batch.append(key=key, value=value, timestamp=None) is None:
            await self._append_to_new_batch(part, key, value)
        self._counts[part] += 1

    async def send_many(self, key: bytes | None, values: Iterable[bytes]) -> int:
        """`send` for many messages with one key, without a call per message; returns how many."""
        part, batch = self._batch_for(key)
        append = batch.append
        count = self._counts[part]
        n = 0
        for value in values:
            if append(key=key, value=value, timestamp=None) is None:
                self._counts[part] = count
                append = (await self._append_to_new_batch(part, key, value)).append
                count = 0
            count += 1
            n += 1
        self._counts[part] = count
        return n

    async def send_joined(self, key: bytes | None, blob: bytes, count: int) -> None:
        """`send_many` for the `count` messages of `blob`, joined by b"\n" (so none holds a newline): with
        the compiled batch one call per batch, not per message."""
        if count <= 0:
            if count < 0 or blob:
                raise ValueError(f"{count} messages announced for a blob of {len(blob)} bytes")
            return
        part, batch = self._batch_for(key)
        extend = getattr(batch, "extend_joined", None)
        if extend is None:
            values = blob.split(b"\n")
            if len(values) != count:
                raise ValueError(f"{count} messages announced, {len(values)} in the blob")
            await self.send_many(key, values)
            return
        pos, left = 0, count
        while True:
            taken, pos = extend(blob, pos, left, key)
            self._counts[part] += taken
            left -= taken
            if not left:
                if pos <= len(blob):
                    raise ValueError(f"{count} messages announced, more in the blob (the rest was not sent)")
                return
            if not batch.closed():
                raise ValueError(f"{count} messages announced, {count - left} in the blob")
            await self._submit(part)
            batch = self._open(part)
            extend = batch.extend_joined

    def _batch_for(self, key: bytes | None) -> tuple[int, object]:
        """The partition of `key` and its open batch."""
        part = self._by_key.get(key)
        if part is None:
            part = self.partition(key)
        batch = self._batches.get(part)
        if batch is None:
            batch = self._open(part)
        return part, batch

    async def _append_to_new_batch(self, part: int, key: bytes | None, value: bytes):
        """The partition's batch is full: submit it, and start the next one with this message."""
        await self._submit(part)
        batch = self._open(part)
        if batch.append(key=key, value=value, timestamp=None) is None:
            raise UserError(f"a message of {len(value)} bytes is larger than a whole batch")
        return batch

    def _open(self, part: int):
        made = self._record_batch
        batch = self._batches[part] = made(self.batch_bytes) if made is not None else self._producer.create_batch()
        self._counts[part] = 0
        return batch

    async def _submit(self, part: int) -> None:
        from aiokafka.errors import KafkaTimeoutError

        batch = self._batches.pop(part)
        count = self._counts.pop(part)
        batch.close()
        backoff = Backoff(self.patience)
        while True:
            # The producer queues one batch per partition; while the broker is away the next one waits
            # in send_batch (30 s, then KafkaTimeoutError), so that wait is watched like an acknowledgement.
            handing = asyncio.ensure_future(self._producer.send_batch(batch, self.topic, partition=part))
            try:
                await self._outlast(handing, backoff)
                future = handing.result()
                break
            except KafkaTimeoutError:  # not queued: hand the same batch over again
                continue
            except PublishError:
                raise
            except Exception as exc:
                raise self._refused(exc) from None
            finally:
                handing.cancel()
        future.add_done_callback(_retrieve)
        self.handed += count
        self._in_flight.append((future, count))
        while len(self._in_flight) > MAX_IN_FLIGHT:
            await self._settle_oldest()

    async def _settle_oldest(self) -> None:
        future, count = self._in_flight[0]
        await self._outlast(future, Backoff(self.patience))
        if (exc := future.exception()) is not None:
            raise self._refused(exc)
        self._in_flight.popleft()
        self.sent += count

    async def _outlast(self, future: asyncio.Future, backoff: Backoff) -> None:
        """Wait until `future` is done; while it is not, look at the broker with back-off (one line per
        look) and give up once `backoff`'s patience is spent. A healthy broker costs no look at all."""
        if future.done():
            return
        delay = backoff.first
        while not (await asyncio.wait([future], timeout=delay))[0]:
            delay = await self._look(backoff)
        if backoff.said and not future.cancelled() and future.exception() is None:  # not send_batch's time-out
            self.say(f"Kafka at {self.bootstrap} acknowledges again after {duration(backoff.elapsed)}; resuming")
            backoff.said = False

    async def _look(self, backoff: Backoff) -> float:
        """One attempt: is the broker there? One line if it is not (or is and still silent); gives up
        when the patience is spent. Returns how long to wait for an acknowledgement before the next look."""
        reason = await unreachable(self.bootstrap)
        delay = backoff.next_delay()
        if delay is None:
            raise self._give_up(backoff, reason)
        if reason is not None or backoff.elapsed >= SLOW_SECONDS:
            state = f"is not answering ({reason})" if reason else "answers but acknowledges nothing yet"
            acked = self._acknowledged()
            self.say(
                f"Kafka at {self.bootstrap} {state}; {acked:,} events acknowledged, "
                f"{self.handed - acked:,} waiting; retrying in {duration(delay)} "
                f"(attempt {backoff.attempt}, giving up after {duration(self.patience)} without an acknowledgement)"
            )
            backoff.said = True
        return delay

    def _give_up(self, backoff: Backoff, reason: str | None) -> PublishError:
        why = f"not answering: {reason}" if reason else "answering but acknowledging nothing"
        acked = self._acknowledged()
        self._failed = PublishError(
            f"Kafka at {self.bootstrap} acknowledged nothing for {duration(backoff.elapsed)} ({why}); gave up with "
            f"{acked:,} events acknowledged and {self.handed - acked:,} handed over that may or may not "
            "be on the topic (the rest were not sent)"
        )
        return self._failed

    def _refused(self, exc: BaseException) -> PublishError:
        """An error the producer does not retry (e.g. the broker lost its log, or a topic's authorisation)."""
        acked = self._acknowledged()
        self._failed = PublishError(
            f"Kafka at {self.bootstrap} failed after {acked:,} events were acknowledged "
            f"({self.handed - acked:,} handed over may or may not be on the topic): {exc or type(exc).__name__}"
        )
        return self._failed

    def _acknowledged(self) -> int:
        """Events acknowledged by now (`sent` counts a batch only when it is settled, in order)."""
        return self.sent + sum(
            n for f, n in self._in_flight if f.done() and not f.cancelled() and f.exception() is None
        )

    async def submit_all(self) -> None:
        """Hand every open batch to the producer now (before sleeping, so paced events go out)."""
        for part in list(self._batches):
            await self._submit(part)

    async def flush(self) -> None:
        """Every event sent so far is acknowledged by the broker when this returns."""
        await self.submit_all()
        while self._in_flight:
            await self._settle_oldest()

    def abandon(self, why: str) -> PublishError:
        """Give up on what is not acknowledged yet (a stop that cannot wait for the broker): `stop` then
        closes at once without flushing. Returns the error that says what was and may not have been sent."""
        acked = self._acknowledged()
        self._failed = PublishError(
            f"{why}: {acked:,} events acknowledged, {self.handed - acked:,} handed over that may or may not "
            "be on the topic (the rest were not sent)"
        )
        return self._failed

    async def stop(self) -> None:
        """Flush (unless publishing already failed), then close; never hangs on a broker that is gone."""
        if self._producer is None:
            return
        try:
            if self._failed is None:
                await self.flush()
        finally:
            producer, self._producer = self._producer, None
            try:
                await asyncio.wait_for(producer.stop(), CLOSE_SECONDS if self._failed is None else 0.5)
            except Exception:  # given up: what is still queued stays unsent
                with contextlib.suppress(Exception):
                    await producer.client.close()
            finally:
                self._quiet.close()

    async def __aenter__(self) -> Publisher:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
