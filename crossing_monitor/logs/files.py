"""Recorded logs (SPEC §1): one JSON event per line, `.jsonl` or gzip-compressed `.jsonl.gz`.

Reading rules (`analyze`, `replay`): a line ends at a newline byte; a blank line is no message
(skipped); every other line is one message, judged exactly as the worker judges a Kafka message.
`message_line` is the other side: the line `record` writes for a message, so that a recording
reads back with the worker's verdict on every message.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from orjson import JSONDecodeError, loads

GZIP_MAGIC = b"\x1f\x8b"
TOMBSTONE = b"!tombstone"  # a message without a value: malformed to the worker, and to analyze
MARK = b"!"  # starts the line of a message that is no JSON and cannot be written as it is


class LogError(OSError):
    """A log that cannot be opened or read; the message is one line for the operator."""


@contextmanager
def open_log(path: str) -> Iterator[tuple[BinaryIO, BinaryIO, int]]:
    """Open a log for reading lines as bytes: (lines, raw file, size in bytes or 0 if unknown).

    Compression is recognised by its magic bytes, not the name, so a renamed file still reads;
    the raw file's position measures progress through a compressed file.
    """
    if path == "-":
        stdin = sys.stdin.buffer
        head = stdin.read(len(GZIP_MAGIC))  # blocks until both bytes are there (a pipe may bring one)
        lines = io.BufferedReader(_Rejoined(head, stdin), buffer_size=1 << 20)
        if head == GZIP_MAGIC:
            lines = io.BufferedReader(gzip.GzipFile(fileobj=lines, mode="rb"), buffer_size=1 << 20)  # type: ignore[arg-type]
        yield lines, stdin, 0
        return
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise LogError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LogError(f"{path}: is a directory, not a log") from None
    except OSError as exc:
        raise LogError(f"{path}: cannot open: {exc.strerror or exc}") from None
    try:
        size = os.fstat(raw.fileno()).st_size
        head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
        if head == GZIP_MAGIC:
            lines: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
            lines = io.BufferedReader(lines, buffer_size=1 << 20)  # type: ignore[arg-type]
        else:
            lines = raw
        yield lines, raw, size
    finally:
        raw.close()


def read_lines(lines: BinaryIO, path: str) -> Iterator[bytes]:
    """The lines of an open log, turning a corrupt compressed stream into a LogError."""
    try:
        yield from lines
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise LogError(f"{path}: unreadable: {exc}") from None


def read_chunks(lines: BinaryIO, path: str, size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of an open log in chunks of up to `size` (lines split anywhere), as `read_lines` fails."""
    try:
        while chunk := lines.read(size):
            yield chunk
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise LogError(f"{path}: unreadable: {exc}") from None


class _Rejoined(io.RawIOBase):
    """A stream whose first bytes were read to look at them: those bytes, then the rest of it."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read1(len(buffer))  # what is there now: a pipe is read as it comes
        buffer[: len(data)] = data
        return len(data)


def message_line(value: bytes | None) -> bytes:
    """The line (without its newline) that `record` writes for a Kafka message's value.

    A message that fits on one line is written as it is. A JSON text over several lines has its
    newlines turned into spaces: JSON allows a newline only as whitespace between tokens, so the
    line parses to the same value and gets the worker's verdict. Everything else the worker
    rejects as malformed, and so must analyze: a tombstone becomes `!tombstone`; a message that is
    blank (analyze would skip it), spans lines without being JSON, or starts like a gzip stream
    becomes `!` and its bytes with backslash and newline escaped (`\\\\`, `\\n`). No JSON starts with
    `!`, so such a line is malformed to analyze and, replayed, to the worker.
    """
    if value is None:
        return TOMBSTONE
    if b"\n" not in value:
        if value and not value.isspace() and not value.startswith(GZIP_MAGIC):  # isspace: strip()'s blanks
            return value
    else:
        try:
            loads(value)
        except JSONDecodeError:
            pass
        else:
            return value.replace(b"\n", b" ")
    return MARK + value.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")
