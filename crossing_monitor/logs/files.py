"""Recorded logs (SPEC §1): one JSON event per line, `.jsonl` or gzip-compressed `.jsonl.gz`."""

from __future__ import annotations

import gzip
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"


class LogError(OSError):
    """A log that cannot be opened or read; the message is one line for the operator."""


@contextmanager
def open_log(path: str) -> Iterator[tuple[BinaryIO, BinaryIO, int]]:
    """Open a log for reading lines as bytes: (lines, raw file, size in bytes or 0 if unknown).

    Compression is recognised by its magic bytes, not the name, so a renamed file still reads;
    the raw file's position measures progress through a compressed file.
    """
    if path == "-":
        yield sys.stdin.buffer, sys.stdin.buffer, 0
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
