"""The worker's bookkeeping, apart from Faust: fold batches, skip, accept gaps, checkpoint, commit.

Why a plain class: this is the most delicate logic of the product (what is counted once, what is
durable, what may be committed), so it must be testable without a broker. Everything it touches
outside its own state comes in through the small protocols below; `streams.factory` implements
them on Faust and aiokafka, a unit test with a few lines of fakes.

The rules it keeps:
- records at offsets a state already holds (a restored checkpoint, a redelivery) are skipped;
- a gap in offsets is counted and the fold goes on; a batch that starts past the state makes it
  seek back once, and the same start seen again from there is a gap (transaction markers, compaction);
- a partition is checkpointed when N events are unsaved or the oldest unsaved one is T seconds old,
  and always on revoke and shutdown; a partition with nothing new is not written at all;
- a partition behind its end offset that makes no progress is sought again (logged, counted);
- a rebalance that has lasted too long is reported, so the worker can end and its partitions move on;
- a checkpoint (the partition's dead letters, then its snapshot) counts as durable only once Kafka
  has acknowledged every part of it, and only durable offsets are committed;
- a dead letter is kept until Kafka has acknowledged it: a failed checkpoint sends it again;
- an event whose `port` belongs on another partition (keyless, wrongly keyed, or a producer with
  another partitioner) is not folded here: it is forwarded to its port's partition with the
  checkpoint, kept like a dead letter until acknowledged, so each port has one state;
- a batch fetched in an older group generation, or during a rebalance for a partition without
  state, is dropped (it is read again from the committed offset).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from crossing_monitor.core.catalogue import Catalogue
from crossing_monitor.core.events import Rejection
from crossing_monitor.core.metrics import PortMetrics
from crossing_monitor.core.monitor import decode_json
from streams.deadletters import dead_letter
from streams.state import PartitionState, compress_snapshot

log = logging.getLogger("crossing_monitor.worker")

SEND_TIMEOUT = 30.0  # seconds to wait for Kafka to acknowledge a checkpoint
MAX_STALL_WAIT = 300.0  # seconds between two re-seeks of a partition that stays stuck at one offset
# header of a forwarded record: it is folded where it lands, never forwarded again
FORWARDED = "crossing-forwarded-from"


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive records of one source partition, as one fetch returned them."""

    partition: int
    records: list[Any]  # aiokafka's decoded records (streams.rawrecords), or anything with .offset, .value
    generation: int  # the consumer group generation they were fetched in


class CheckpointStore(Protocol):
    """Where snapshots live: the newest one of a partition, and a send that resolves once Kafka has it."""

    def get(self, partition: int) -> bytes | None: ...

    def put(self, partition: int, blob: bytes) -> Awaitable[Any]: ...


class DeadLetterSink(Protocol):
    """The dead-letter topic: a send that resolves once Kafka has the letter."""

    def send(self, key: bytes, value: bytes) -> Awaitable[Any]: ...


class ForwardSink(Protocol):
    """The source topic, for forwarding: a send to an explicit partition that resolves once Kafka has it."""

    def send(self, partition: int, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> Awaitable[Any]: ...


class SourceLog(Protocol):
    """The source topic as the consumer sees it, by partition number. Any method may raise while
    the group rebalances; the processor then leaves the partition to its next owner."""

    async def earliest(self, partition: int) -> int: ...

    async def seek(self, offsets: Mapping[int, int]) -> None: ...

    async def commit(self, offsets: Mapping[int, int]) -> bool: ...

    async def end_offset(self, partition: int) -> int | None:
        """The offset after the partition's last readable record (None: unknown now)."""
        ...

    async def reseek(self, partition: int, offset: int) -> None:
        """Fetch the partition again from `offset`, resuming it if the consumer left it paused."""
        ...


class Group(Protocol):
    """This worker's membership of the consumer group, read live (it changes across awaits)."""

    @property
    def generation(self) -> int: ...

    @property
    def rebalancing(self) -> bool: ...

    def assigned(self) -> list[int]: ...


class Processor:
    """Per-partition state of this worker, fed by the agent and read by the web views."""

    def __init__(
        self,
        catalogue: Catalogue,
        topic: str,
        store: CheckpointStore,
        dead_letters: DeadLetterSink,
        source: SourceLog,
        group: Group,
        send_timeout: float = SEND_TIMEOUT,
        forwards: ForwardSink | None = None,
        home: Callable[[str], int | None] | None = None,
        on_forget: Callable[[Iterable[PartitionState]], None] | None = None,
        *,
        checkpoint_events: int = 20_000,
        checkpoint_max_age: float = 600.0,
        stall_seconds: float = 5.0,
        rebalance_seconds: float = 180.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`home(port)` is the partition a port's events belong on (None: not known yet; without `home`
        or `forwards` every event is folded where it landed); `on_forget` is given every state held
        just before some are dropped (the exporter's rising counters read them a last time)."""
        self.catalogue = catalogue
        self.topic = topic
        self.store = store
        self.dead_letters = dead_letters
        self.source = source
        self.group = group
        self.send_timeout = send_timeout
        self.forwards = forwards
        self.home = home if forwards is not None else None
        self.on_forget = on_forget
        self.slugs = frozenset(catalogue)
        self.checkpoint_events = checkpoint_events
        self.checkpoint_max_age = checkpoint_max_age
        self.stall_seconds = stall_seconds
        self.rebalance_seconds = rebalance_seconds
        self.clock = clock
        self.rebalancing_since: float | None = None  # clock time the watch first saw this rebalance
        self._rebalance_counted_from = 0.0  # its start, its last new generation, or Kafka's last absence
        self._rebalance_served_from = 0.0  # its start, or Kafka's last absence
        self._rebalance_generation: int | None = None
        self.partitions: dict[int, PartitionState] = {}
        self._saving: dict[int, asyncio.Lock] = {}  # one checkpoint in flight per partition
        self.events_processed = 0
        self.events_skipped = 0
        self.batches_folded = 0
        self.offsets_missing = 0
        self.reads_again = 0
        self.events_forwarded = 0
        self.fold_errors = 0
        self.checkpoints_written = 0
        self.last_checkpoint_bytes = 0
        self.last_checkpoint_time: float | None = None  # wall-clock time of the last acknowledged checkpoint
        self.reseeks = 0

    # ---- state ------------------------------------------------------------------------------

    def state_for(self, partition: int) -> PartitionState:
        """The partition's state, restored from its newest checkpoint the first time it is asked for."""
        found = self.partitions.get(partition)
        if found is None:
            snapshot = self.store.get(partition)
            found = self.partitions[partition] = PartitionState.restore(partition, self.catalogue, snapshot)
            if snapshot is not None and found.restored_offset >= 0:
                log.info(
                    "partition %d: restored checkpoint at offset %d (%d ports)",
                    partition,
                    found.restored_offset,
                    len(found.monitor.ports),
                )
        return found

    def state_of(self, batch: Batch) -> PartitionState | None:
        """The state a batch folds into, or None when the batch is to be dropped (it comes again)."""
        if batch.generation != self.group.generation:
            return None  # fetched before a rebalance, which ends with a seek to the committed offsets
        part = self.partitions.get(batch.partition)
        if part is None:
            if self.group.rebalancing:
                return None  # revoked, or not restored yet: its owner reads it from the committed offset
            part = self.state_for(batch.partition)
        return part

    def forget(self, partitions: set[int]) -> None:
        """After a rebalance, state is rebuilt from the checkpoints of what this worker owns."""
        if self.on_forget is not None:
            self.on_forget(list(self.partitions.values()))  # every state held, a last time before some go
        for p in partitions:
            self.partitions.pop(p, None)

    # ---- folding ----------------------------------------------------------------------------

    async def handle(self, batch: Batch) -> bool:
        """One fetched batch, from the agent; True when it was folded in (else it comes again)."""
        part = self.state_of(batch)
        if part is None:
            return False
        first = batch.records[0].offset
        if first > part.next_offset:
            if part.looked_past == (part.next_offset, first):
                part.looked_past = None  # read again from next_offset and it starts here: nothing in between
            elif part.looked_past is not None and part.looked_past[0] == part.next_offset:
                return False  # fetched before the seek back: the records in between come first
            elif not await self.read_past(part, first):
                return False
        self.fold(part, batch)
        return True

    def fold(self, part: PartitionState, batch: Batch) -> None:
        """Fold a batch of one partition's records in; the checkpoint timer saves and commits them.

        Records at offsets the state already holds (a restored checkpoint, a redelivery) are skipped,
        so the committed offset may lag the checkpoint without anything being counted twice. The
        caller has made sure the batch does not start past the state (see `read_past`).

        The hot loop of the worker. With the compiled fold, the whole batch is one call into it
        (`_fold_compiled`); with the Python core, one loop here (`_fold_each`), per record only what
        the record needs (its offset, one decode, its port's home looked up once per batch, the core's
        fold). Either way the same records are skipped, forwarded, folded and dead-lettered.
        """
        compiled = getattr(part.monitor, "fold_batch", None)
        if compiled is not None:
            skipped, forwarded = self._fold_compiled(part, batch, compiled)
        else:
            skipped, forwarded = self._fold_each(part, batch)
        folded = len(batch.records) - skipped
        if folded and not part.unsaved:
            part.unsaved_since = self.clock()
            if part.dirty_since is None:
                part.dirty_since = part.unsaved_since
        part.unsaved += folded
        self.events_skipped += skipped
        self.events_forwarded += forwarded
        self.batches_folded += 1
        self.events_processed += folded

    def _fold_each(self, part: PartitionState, batch: Batch) -> tuple[int, int]:
        """The batch folded record by record into a Python Monitor; (skipped, forwarded)."""
        partition = part.partition
        monitor = part.monitor
        process = monitor.process_decoded
        dead_letters = part.dead_letters
        routes: dict[str, int | None] | None = {} if self.home is not None else None
        next_offset = part.next_offset
        skipped = forwarded = 0
        for record in batch.records:
            offset = record.offset
            if offset != next_offset:
                if offset < next_offset:
                    skipped += 1
                    continue
                self._missing(partition, next_offset, offset)
            next_offset = offset + 1
            raw = record.value
            if raw is None:
                raw = b""
            obj = decode_json(raw)
            if routes is not None and type(obj) is dict:
                target = self._route(routes, partition, obj.get("port"), record)
                if target is not None:
                    part.forwards[offset] = (target, raw)
                    forwarded += 1
                    continue
            try:
                result = process(raw, obj)
            except Exception as exc:  # noqa: BLE001 - no record may stop the worker (SPEC §1)
                result = self._fold_failed(part, offset, exc)
            if type(result) is Rejection and result.reason != "duplicate":
                dead_letters[offset] = dead_letter(self.topic, partition, offset, raw, result.reason, result.detail)
        part.next_offset = next_offset
        return skipped, forwarded

    def _fold_compiled(self, part: PartitionState, batch: Batch, fold_batch: Callable[..., Any]) -> tuple[int, int]:
        """The batch folded by one call into the compiled fold (`NativeMonitor.fold_batch`), which does
        the offsets, the routing and the fold; here only what it hands back: (skipped, forwarded)."""
        partition = part.partition
        records = batch.records
        if type(records) is not list:  # the compiled call reads a list (a fetch's records are one)
            records = list(records)
        routes = self._routes(partition)
        next_offset, skipped, gaps, forwards, rejected = fold_batch(records, part.next_offset, routes, FORWARDED)
        for start, end in gaps:
            self._missing(partition, start, end)
        for index, target in forwards:
            record = records[index]
            part.forwards[record.offset] = (target, record.value)  # never None: b"" is no JSON object
        dead_letters = part.dead_letters
        for index, verdict in rejected:
            record = records[index]
            offset = record.offset
            raw = record.value
            if raw is None:
                raw = b""
            if type(verdict) is not Rejection:
                verdict = self._fold_failed(part, offset, verdict)
            if verdict.reason != "duplicate":
                dead_letters[offset] = dead_letter(self.topic, partition, offset, raw, verdict.reason, verdict.detail)
        part.next_offset = next_offset
        return skipped, len(forwards)

    def _missing(self, partition: int, start: int, end: int) -> None:
        """Offsets start..end-1 came in no record (transaction markers, compaction): counted, logged."""
        self.offsets_missing += end - start
        log.info("partition %d: no records at offsets %d-%d; going on", partition, start, end - 1)

    def _fold_failed(self, part: PartitionState, offset: int, exc: BaseException) -> Rejection:
        """A record whose fold raised: counted, logged with its traceback, rejected as invalid."""
        self.fold_errors += 1
        log.error("partition %d offset %d: fold failed; dead-lettered", part.partition, offset, exc_info=exc)
        part.monitor.rejected["invalid"] += 1
        return Rejection("invalid", f"{type(exc).__name__}: {exc}")

    def _routes(self, partition: int) -> dict[str, int]:
        """{catalogue port: partition} of the ports whose events belong on another partition than this one."""
        if self.home is None:
            return {}
        return {slug: target for slug in self.slugs if (target := self._away(slug, partition)) is not None}

    def _route(self, routes: dict[str, int | None], partition: int, port: Any, record: Any) -> int | None:
        """`misrouted` for a decoded JSON object's `port`, its home looked up once per batch (`routes`)."""
        if type(port) is not str:
            return None
        target = routes.get(port, -1)
        if target == -1:
            target = routes[port] = self._away(port, partition)
        if target is None:
            return None
        headers = getattr(record, "headers", None)
        if headers and any(name == FORWARDED for name, _ in headers):
            return None
        return target

    def _away(self, port: str, partition: int) -> int | None:
        """The partition a catalogue port's events belong on when it is not `partition` (else None)."""
        home = self.home
        if home is None or port not in self.slugs:
            return None
        target = home(port)
        return None if target is None or target == partition else target

    def misrouted(self, partition: int, record: Any, obj: Any) -> int | None:
        """The partition the record's event belongs on when it is not `partition`, else None.

        "Belongs": the partition Kafka's default (murmur2) partitioner gives its `port` among the
        topic's partitions, which is where a correctly keyed `simulate` or `replay` puts it. Only a
        JSON object naming a catalogue port is forwarded (anything else is judged here), and never a
        record that was forwarded already (no loop while workers disagree on the partition count).
        `fold` makes the same decision with the homes of a batch looked up once (`_route`).
        """
        if self.home is None or type(obj) is not dict:
            return None
        return self._route({}, partition, obj.get("port"), record)

    async def read_past(self, part: PartitionState, first: int) -> bool:
        """A batch starts at `first`, past the state's offset. True when the records in between no
        longer exist (deleted by retention: the state goes on from the earliest offset); else seek back
        so that they are read, and False (the batch is dropped; it comes again after them).

        It should not happen: the consumer puts back what it cannot hand on, and every rebalance ends
        with a seek to the restored offsets. This is the safety net: records deleted by retention before
        they were folded in, or a batch dropped after a rebalance that a later batch overtook.
        """
        try:
            earliest = await self.source.earliest(part.partition)
        except Exception as exc:  # noqa: BLE001 - rebalancing: read from the state's offset again
            log.info("partition %d: earliest offset unknown (%s)", part.partition, exc)
            earliest = 0
        if self.partitions.get(part.partition) is not part:
            return False  # a rebalance came in between: the batch comes again
        if earliest > part.next_offset:
            log.warning(
                "partition %d: offsets %d-%d were deleted (retention) before they were folded in; going on from %d",
                part.partition,
                part.next_offset,
                earliest - 1,
                earliest,
            )
            self.offsets_missing += earliest - part.next_offset
            part.next_offset = earliest
            if first <= earliest:
                return True
        self.reads_again += 1
        part.looked_past = (part.next_offset, first)
        log.info(
            "partition %d: a batch skipped records from offset %d; reading them again", part.partition, part.next_offset
        )
        try:
            await self.source.seek({part.partition: part.next_offset})
        except Exception as exc:  # noqa: BLE001 - rebalancing: the next owner starts from the committed offset
            log.info("partition %d: seek to %d failed (%s)", part.partition, part.next_offset, exc)
        return False

    # ---- checkpoints and commits --------------------------------------------------------------

    @staticmethod
    def needs_checkpoint(part: PartitionState) -> bool:
        """Something folded in since the last checkpoint, a dead letter not acknowledged yet, or a
        checkpoint that did not reach Kafka (tried again, even if nothing new came in)."""
        return bool(part.unsaved or part.dead_letters or part.forwards or part.durable_offset < part.next_offset)

    def checkpoint_due(self, part: PartitionState, now: float) -> bool:
        """Enough unsaved events or an old enough one, a dead letter or forward waiting (they are not
        held back for the age rule), or a checkpoint that Kafka did not acknowledge (tried again)."""
        if part.dead_letters or part.forwards or part.durable_offset < part.checkpoint_offset:
            return True
        if not part.unsaved:
            return False
        return part.unsaved >= self.checkpoint_events or now - part.unsaved_since >= self.checkpoint_max_age

    async def save(self, part: PartitionState) -> None:
        """Send the partition's dead letters and forwards, wait until Kafka has them, and only then its
        snapshot; the checkpoint's offset counts as durable once Kafka has that too.

        Two steps because they go to different topics, acknowledged independently: a snapshot must
        never be in Kafka while a dead letter or forward of a record below its offset is not (the next
        owner would skip the record and the letter would be lost). The snapshot, its offset and the
        letters it covers are taken together, before the first wait, so records folded meanwhile are
        for the next checkpoint. A letter is forgotten once acknowledged, so a checkpoint that fails
        sends the rest again next time."""
        lock = self._saving.setdefault(part.partition, asyncio.Lock())
        async with lock:
            if not self.needs_checkpoint(part):
                return
            letters = list(part.dead_letters.items())
            forwards = list(part.forwards.items())
            doc = part.snapshot_json()
            offset = part.next_offset
            # compressed in a thread (zlib lets go of the GIL) while the letters are sent: a checkpoint
            # of a large state holds up the fold, and what /api/ports serves, for less time
            compressed = asyncio.get_running_loop().run_in_executor(None, compress_snapshot, doc)
            part.unsaved = 0
            part.checkpoint_offset = offset
            sent = [self.dead_letters.send(key, value) for _, (key, value) in letters]
            sent += [self._forward(part.partition, offset_, target, raw) for offset_, (target, raw) in forwards]
            acked = await self._settle(part.partition, offset, sent) if sent else []
            for (letter_offset, _), ok in zip(letters, acked, strict=False):
                if ok:
                    part.dead_letters.pop(letter_offset, None)
            for (forward_offset, _), ok in zip(forwards, acked[len(letters) :], strict=False):
                if ok:
                    part.forwards.pop(forward_offset, None)
            if not all(acked):
                return  # the snapshot waits for its letters: tried again at the next tick
            blob = await compressed
            self.checkpoints_written += 1
            self.last_checkpoint_bytes = len(blob)
            if all(await self._settle(part.partition, offset, [self.store.put(part.partition, blob)])):
                part.durable_offset = max(part.durable_offset, offset)
                self.last_checkpoint_time = time.time()
                part.dirty_since = part.unsaved_since if part.unsaved else None

    def _forward(self, partition: int, offset: int, target: int, raw: bytes) -> Awaitable[Any]:
        """Send a misrouted record on to its port's partition, keyed by its port, saying where it came from."""
        assert self.forwards is not None  # misrouted() forwards nothing without a sink
        port = orjson.loads(raw)["port"]
        origin = f"{self.topic}/{partition}/{offset}".encode()
        return self.forwards.send(target, port.encode(), raw, [(FORWARDED, origin)])

    async def _settle(self, partition: int, offset: int, sent: list[Awaitable[Any]]) -> list[bool]:
        """Wait (at most send_timeout) for the sends; whether each one was acknowledged."""
        futures = [asyncio.ensure_future(s) for s in sent]
        _, pending = await asyncio.wait(futures, timeout=self.send_timeout)
        if pending:
            log.warning(
                "partition %d: checkpoint at %d not acknowledged within %.0f s", partition, offset, self.send_timeout
            )
        acked = [f.done() and not f.cancelled() and f.exception() is None for f in futures]
        failed = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
        if failed:
            log.warning("partition %d: checkpoint at %d not written (%s)", partition, offset, failed[0])
        return acked

    async def checkpoint_all(self, owned: set[int] | None = None, *, due_only: bool = False) -> None:
        """Checkpoint every partition (of `owned`, when given; only those due, when `due_only`), all
        at once, and wait until Kafka has the checkpoints."""
        now = self.clock()
        parts = [
            part
            for p, part in list(self.partitions.items())
            if (owned is None or p in owned) and (not due_only or self.checkpoint_due(part, now))
        ]
        await asyncio.gather(*(self.save(part) for part in parts))

    async def checkpoint_on_shutdown(self, timeout: float) -> bool:
        """The last checkpoint of a clean stop, given up after `timeout` (the broker may be gone):
        nothing is lost without it, the next owner folds the rest again from the topic."""
        try:
            await asyncio.wait_for(self.checkpoint_all(), timeout)
        except TimeoutError:
            log.warning(
                "shutdown: checkpoint not acknowledged within %.0f s; the next owner reads on from the "
                "last one (the topic holds the events)",
                timeout,
            )
            return False
        return True

    def checkpoint_age(self) -> float:
        """Seconds since the oldest event not yet in an acknowledged checkpoint was folded in (0: none);
        what a crash now would make the next owner fold again, in time. Stays under max age + a tick
        while Kafka takes the checkpoints."""
        now = self.clock()
        oldest = [p.dirty_since for p in self.partitions.values() if p.dirty_since is not None]
        return max(0.0, now - min(oldest)) if oldest else 0.0

    def uncommitted(self) -> dict[int, int]:
        """{partition: offset} of durable checkpoints not committed yet."""
        return {
            p: part.durable_offset for p, part in self.partitions.items() if part.durable_offset > part.committed_offset
        }

    def committed(self, offsets: Mapping[int, int]) -> None:
        for p, offset in offsets.items():
            part = self.partitions.get(p)
            if part is not None:
                part.committed_offset = max(part.committed_offset, offset)

    async def tick(self) -> None:
        """Checkpoint what this worker owns, wait until Kafka has it, then commit the offsets it holds,
        unless a rebalance began meanwhile (a partition may already have a new owner)."""
        group = self.group
        if group.rebalancing:
            return  # revoked() checkpoints
        generation = group.generation
        owned = set(group.assigned())
        await self.checkpoint_all(owned=owned, due_only=True)
        offsets = self.uncommitted()
        if not offsets or group.rebalancing or group.generation != generation:
            return
        if await self.source.commit(offsets):
            self.committed(offsets)

    async def watch_stalls(self) -> None:
        """Seek again a partition that is behind its end offset and has not moved for stall_seconds.

        Why: after a restart the consumer has been seen to leave one partition unread for good (its
        records neither handed on nor dropped). A seek to the state's offset, with the partition resumed,
        sets its fetch going again; the wait doubles while it stays stuck at the same offset (an aborted
        transaction at the end of a partition looks the same and must not cost a seek a tick)."""
        group = self.group
        if group.rebalancing:
            return
        now = self.clock()
        for p in group.assigned():
            part = self.partitions.get(p)
            if part is None:
                continue
            if part.next_offset != part.progress_offset:
                part.progress_offset, part.progress_at, part.stall_wait = part.next_offset, now, self.stall_seconds
                continue
            if now - part.progress_at < part.stall_wait:
                continue
            try:
                end = await self.source.end_offset(p)
            except Exception as exc:  # noqa: BLE001 - broker away or rebalancing: look again next tick
                log.debug("partition %d: end offset unknown (%s)", p, exc)
                continue
            if end is None or end <= part.next_offset or group.rebalancing or self.partitions.get(p) is not part:
                part.progress_at = now
                continue
            self.reseeks += 1
            log.warning(
                "partition %d: no progress from offset %d for %.0f s though it ends at %d; fetching it again",
                p,
                part.next_offset,
                now - part.progress_at,
                end,
            )
            part.progress_at = now
            part.stall_wait = min(part.stall_wait * 2, MAX_STALL_WAIT)
            try:
                await self.source.reseek(p, part.next_offset)
            except Exception as exc:  # noqa: BLE001 - rebalancing: the next assignment seeks anyway
                log.info("partition %d: seek to %d failed (%s)", p, part.next_offset, exc)

    # ---- rebalances ---------------------------------------------------------------------------

    def rebalancing_for(self) -> float | None:
        """Seconds the rebalance now going on has lasted (as the watch saw it); None when there is none."""
        if self.rebalancing_since is None or not self.group.rebalancing:
            return None
        return self.clock() - self.rebalancing_since

    def rebalance_overdue(self) -> float | None:
        """Called every second (streams.watch): how long the rebalance going on has lasted, once it has
        gone on for `rebalance_seconds` since it began, since the group's last new generation (a group
        that keeps rebalancing is alive) and since Kafka was last found away, or for three times that
        since it began or Kafka was last away, whatever the generations (a dead recovery stays dead
        while peers come and go); else None (always when `rebalance_seconds` is 0).

        Why: Faust ends its table recovery for good when one of its steps waits longer than
        broker_request_timeout (mode's `wait_first` reads the time-out as "stopped"). The app then stays
        `rebalancing`, every batch is dropped, and this worker's partitions are served by no one; no
        later rebalance can end here either (the recovery loop is gone). Only this process ending moves
        them on."""
        if not self.group.rebalancing:
            self.rebalancing_since = None
            return None
        now = self.clock()
        generation = self.group.generation
        if self.rebalancing_since is None:
            self.rebalancing_since = self._rebalance_counted_from = self._rebalance_served_from = now
            self._rebalance_generation = generation
        elif generation != self._rebalance_generation:
            self._rebalance_counted_from, self._rebalance_generation = now, generation
        limit = self.rebalance_seconds
        if limit <= 0:
            return None
        if now - self._rebalance_counted_from < limit and now - self._rebalance_served_from < 3 * limit:
            return None
        return now - self.rebalancing_since

    def broker_away(self) -> None:
        """The broker does not answer: count the rebalance's time again from now. A new process could
        not join either, and the rebalance may well end once the broker is back."""
        self._rebalance_counted_from = self._rebalance_served_from = self.clock()

    async def revoked(self) -> None:
        """Checkpoint before a rebalance, so the next owner starts where this worker stopped."""
        await self.checkpoint_all()  # the next owner's recovery must read these checkpoints
        self.forget(set(self.partitions))

    def assigned(self) -> None:
        """Drop whatever was folded in during the rebalance: it is uncommitted and will come again."""
        self.forget(set(self.partitions))

    async def rebalance_complete(self) -> None:
        """Checkpoints are recovered: restore every assigned partition now, so that its figures are
        served even before its next event arrives, and read each from its restored offset."""
        offsets = {p: self.state_for(p).next_offset for p in self.group.assigned()}
        # Faust seeks next to the committed offsets, but only of partitions that have one; start the
        # others at the restored state, whatever was fetched (and put back) during the rebalance.
        try:
            await self.source.seek(offsets)
        except Exception as exc:  # noqa: BLE001 - rebalancing again: the next assignment seeks again
            log.info("seek to the restored offsets failed (%s)", exc)

    # ---- reading ------------------------------------------------------------------------------

    def port_metrics(self, slug: str) -> PortMetrics | None:
        for part in self.partitions.values():
            found = part.monitor.ports.get(slug)
            if found is not None:
                return found
        return None

    def rejected(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for part in self.partitions.values():
            for reason, n in part.monitor.rejected.items():
                total[reason] = total.get(reason, 0) + n
        return total
