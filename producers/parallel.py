"""The port models in child processes, so that generating events and publishing them overlap.

`simulate --speed max` spends most of its time in the models. Here they run in one or more child
processes (ports shared out by their traffic); each sends its ports' events to the publisher,
already serialised, in chunks of one port's consecutive events over a socket pair, and the
publisher only puts the bytes into Kafka batches.

A port's stream is made by `Run.model`, the very code a single-process run uses, from the run's
settings alone, so each port gets the same events in the same order, byte for byte, whichever
process makes them. Only the interleaving of different ports differs, which Kafka does not keep
anyway (one key, one partition; order is per partition). The fault tally (`Run.stats`) of every
child is added to the run's at the end.

A chunk on the wire: a header (port index, event count, event time reached in ms, payload size),
then the events joined by newlines (a serialised event never holds a raw newline).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import multiprocessing
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from math import inf

import orjson

from producers.config import ConfigError
from producers.native import NativePortModel
from producers.native import available as native_available
from producers.run import Run

HEADER = struct.Struct("<iIqI")  # port index (or _END, _FAILED), events, event time reached (ms), payload bytes
_END = -1  # payload: the child's stats as JSON
_FAILED = -2  # payload: {"type": exception class name, "message": ...} as JSON
CHUNK_EVENTS = 2048  # a port's events per chunk
SLICE_MS = 3_600_000  # the ports of one child advance together, an hour of event time at a time
FLUSH_MS = 86_400_000  # a quiet port's events wait at most a day of event time for their chunk
QUEUE_CHUNKS = 8  # chunks read ahead of the publisher (per child: its socket buffers more)
JOIN_SECONDS = 5.0


def default_processes(ports: int) -> int:
    """Model processes for `ports` ports: the CPUs less one for the publisher and one for a local
    broker, at least one (so generation overlaps publishing), at most one per port."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(ports, cpus - 2))


def _context() -> multiprocessing.context.BaseContext:
    """Fork where that is safe (Linux, no other thread: no lock can be held by a thread that is
    not there), as it starts in a few milliseconds; else spawn a fresh interpreter (~0.1 s of CPU)."""
    if sys.platform == "linux" and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def share_out(run: Run, processes: int) -> list[list[int]]:
    """Port indices per process, the busiest ports first each to the least loaded process."""
    load = {i: run.config(i).vehicles_per_day for i in range(len(run.ports))}
    groups: list[list[int]] = [[] for _ in range(max(1, min(processes, len(run.ports))))]
    totals = [0.0] * len(groups)
    for i in sorted(load, key=lambda i: (-load[i], i)):
        g = totals.index(min(totals))
        groups[g].append(i)
        totals[g] += load[i]
    return [sorted(g) for g in groups]


# ---- the child ---------------------------------------------------------------------------------


def _child(run: Run, indices: Sequence[int], sock: socket.socket, inherited: Sequence[socket.socket]) -> None:
    """Run the models of the ports `indices`; send their events in chunks, then the stats."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes the socket
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)  # (forked from an event loop: its signals are not ours to report)
    for other in inherited:  # forked: the other ends are the parent's and the other children's
        other.close()
    try:
        try:
            _generate(run, indices, sock)
            _send(sock, _END, 0, 0, orjson.dumps(dict(run.stats)))
        except (BrokenPipeError, ConnectionResetError):
            return  # the publisher has gone
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent, which raises it
            with contextlib.suppress(OSError):
                _send(sock, _FAILED, 0, 0, orjson.dumps({"type": type(exc).__name__, "message": str(exc)}))
    finally:
        sock.close()


def _send(sock: socket.socket, index: int, count: int, upto_ms: int, payload: bytes) -> None:
    sock.sendall(HEADER.pack(index, count, upto_ms, len(payload)))
    sock.sendall(payload)


def _generate(run: Run, indices: Sequence[int], sock: socket.socket) -> None:
    made = {i: run.model(i) for i in indices}
    models = {i: model for i, (model, _) in made.items()}
    if not run.faults.any_in_stream and all(isinstance(m, NativePortModel) for m in models.values()):
        for index, upto_ms, count, payload in compiled_chunks(run, models, joined=True):  # type: ignore[arg-type]
            _send(sock, index, count, upto_ms, payload)  # type: ignore[arg-type]
        return
    streams = {i: stream for i, (_, stream) in made.items()}
    buffers: dict[int, list[bytes]] = {i: [] for i in indices}
    since: dict[int, float] = dict.fromkeys(indices, inf)  # event time of each buffer's first round
    held: dict[int, tuple[int, bytes]] = {}  # the first event past the horizon, per port
    horizon = int(run.start_s * 1000)
    while streams:
        horizon += SLICE_MS
        for i in list(streams):
            buf = buffers[i]
            if not buf:
                since[i] = horizon
            first = held.pop(i, None)
            if first is not None:
                if first[0] >= horizon:
                    held[i] = first
                    continue
                buf.append(first[1])
            for ms, data in streams[i]:
                if ms >= horizon:
                    held[i] = (ms, data)
                    break
                buf.append(data)
            else:
                del streams[i]  # the port's run is over
            if buf and (len(buf) >= CHUNK_EVENTS or i not in streams or horizon - since[i] >= FLUSH_MS):
                _send(sock, i, len(buf), horizon, b"\n".join(buf))
                buf.clear()


def compiled_chunks(
    run: Run, models: Mapping[int, NativePortModel], joined: bool = False
) -> Iterator[tuple[int, int, int, list[bytes] | bytes]]:
    """(port index, event time reached in ms, event count, [event bytes]) of compiled models without
    stream faults, in the chunks `_generate` makes (the compiled model stops at a slice's horizon itself);
    `joined`: the events as one bytes object, joined by newlines, as a chunk goes on the wire."""
    live = dict(models)
    parts: dict[int, list[bytes]] = {i: [] for i in live}  # (joined: pieces of the payload to come)
    counts = dict.fromkeys(live, 0)
    since: dict[int, float] = dict.fromkeys(live, inf)
    horizon = int(run.start_s * 1000)
    while live:
        horizon += SLICE_MS
        for i, model in list(live.items()):
            if not counts[i]:
                since[i] = horizon
            while True:
                if joined:
                    n, blob = model.take_joined(CHUNK_EVENTS, horizon)
                    if n:
                        parts[i].append(blob)
                else:
                    got = model.take_bytes(CHUNK_EVENTS, horizon)
                    parts[i] += got
                    n = len(got)
                counts[i] += n
                if n < CHUNK_EVENTS:
                    break
            if not model.running():
                del live[i]
            if counts[i] and (counts[i] >= CHUNK_EVENTS or i not in live or horizon - since[i] >= FLUSH_MS):
                yield i, horizon, counts[i], b"\n".join(parts[i]) if joined else parts[i]
                parts[i], counts[i] = [], 0


# ---- the parent --------------------------------------------------------------------------------


class ModelsHere:
    """`async with ModelsHere(run) as chunks: async for index, upto_ms, count, events in chunks: ...`, as
    ModelProcesses, with the compiled models in this process (`compiled_here(run)` says when it can),
    on a thread of their own: the compiled code makes events without the GIL while the event loop sends.

    A compiled model makes an event in about a third of the CPU the publisher spends sending it, and
    less than a child process spends sending it over a socket and this one reading and splitting it
    again; with the broker on the same two cores the CPU per event bounds the rate. bench/publish,
    150,000 events, a loaded 2-CPU machine, ratio to the bare producer in the same run: Python models
    in a child process 0.34-0.49 (7 runs), compiled models in a child process 0.57-0.70 (2), compiled
    models here between sends 0.64-0.96 (5), here on a thread 0.69-1.09 (10, median 0.79)."""

    AHEAD = 8  # chunks the thread makes per hand-over

    def __init__(self, run: Run) -> None:
        self.run = run
        self._models = {i: run.model(i)[0] for i in range(len(run.ports))}  # (a bad override fails here)

    async def __aenter__(self) -> ModelsHere:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def __aiter__(self) -> AsyncIterator[tuple[int, int, int, bytes]]:
        chunks = compiled_chunks(self.run, self._models, joined=True)  # type: ignore[arg-type]

        def some() -> list[tuple[int, int, int, bytes]]:
            return list(itertools.islice(chunks, self.AHEAD))  # type: ignore[arg-type]

        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="crossing-model") as thread:
            pending = loop.run_in_executor(thread, some)
            while True:
                got = await pending
                if not got:
                    return
                pending = loop.run_in_executor(thread, some)  # the next ones are made while these go out
                for index, upto_ms, count, events in got:
                    yield index, upto_ms, count, events


def compiled_here(run: Run) -> bool:
    """Whether `simulate --speed max` makes the events in this process: the compiled model is there and no
    fault is applied to the streams (duplicates, missed events and offline sensors stay Python)."""
    return native_available() and not run.faults.any_in_stream


class ModelProcesses:
    """`async with ModelProcesses(run) as chunks: async for index, upto_ms, count, events in chunks: ...`

    Yields (port index, event time the port's process has reached in ms, event count, the events joined
    by b"\n") as the children send them; each port's events in its own order. Leaving the block stops
    the children."""

    def __init__(self, run: Run, processes: int | None = None) -> None:
        self.run = run
        # (share_out reads every port's configuration: a bad override fails here, before any process)
        self.groups = share_out(run, processes or default_processes(len(run.ports)))
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._socks: list[socket.socket] = []  # our ends
        self._readers: list[asyncio.Task] = []
        self._queue: asyncio.Queue = asyncio.Queue(QUEUE_CHUNKS)

    async def __aenter__(self) -> ModelProcesses:
        ctx = _context()
        forked = ctx.get_start_method() == "fork"
        pairs = [socket.socketpair() for _ in self.groups]
        self._socks = [mine for mine, _ in pairs]
        try:
            sys.stdout.flush()  # (a forked child must not write what is buffered here a second time)
            sys.stderr.flush()
            for group, (_, theirs) in zip(self.groups, pairs, strict=True):
                inherited = [s for pair in pairs for s in pair if s is not theirs and s.fileno() >= 0] if forked else []
                proc = ctx.Process(
                    target=_child, args=(self.run, group, theirs, inherited), daemon=True, name="crossing-model"
                )
                proc.start()
                self._procs.append(proc)
                theirs.close()
        except BaseException:
            for _, theirs in pairs:
                theirs.close()
            await self.close()
            raise
        for mine in self._socks:
            mine.setblocking(False)
            self._readers.append(asyncio.ensure_future(self._read(mine)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _read(self, sock: socket.socket) -> None:
        """One child's chunks into the queue; then None, or the exception that ended it."""
        header = bytearray(HEADER.size)
        try:
            while True:
                await _receive(sock, header)
                index, count, upto_ms, size = HEADER.unpack(header)
                payload = bytearray(size)
                await _receive(sock, payload)
                if index >= 0:
                    events = bytes(payload)
                    if (sent := events.count(b"\n") + 1) != count:
                        raise RuntimeError(f"a model process sent {sent} events for {count}")
                    await self._queue.put((index, upto_ms, count, events))
                elif index == _END:
                    self.run.stats.update(orjson.loads(payload))
                    await self._queue.put(None)
                    return
                else:
                    failure = orjson.loads(payload)
                    if failure["type"] == "ConfigError":
                        raise ConfigError(failure["message"])
                    raise RuntimeError(f"a model process failed: {failure['type']}: {failure['message']}")
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            await self._queue.put(exc)

    async def __aiter__(self) -> AsyncIterator[tuple[int, int, int, bytes]]:
        running = len(self._readers)
        get = self._queue.get
        while running:
            item = await get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item

    async def close(self) -> None:
        """Stop reading, close the sockets (a child still sending stops), and wait for the children."""
        for task in self._readers:
            task.cancel()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sock in self._socks:
            sock.close()
        for proc in self._procs:
            proc.join(JOIN_SECONDS)
            if proc.is_alive():
                proc.terminate()
                proc.join(JOIN_SECONDS)
        self._readers.clear()
        self._socks.clear()
        self._procs.clear()


async def _receive(sock: socket.socket, buffer: bytearray) -> None:
    """Fill `buffer` from the socket; EOF first is a child that stopped before its end."""
    loop = asyncio.get_running_loop()
    view = memoryview(buffer)
    got, size = 0, len(buffer)
    while got < size:
        n = await loop.sock_recv_into(sock, view[got:])
        if n == 0:
            raise RuntimeError("a model process stopped before its ports were done")
        got += n
