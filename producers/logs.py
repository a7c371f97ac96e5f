"""Writing recorded logs (SPEC §1): one event per line, gzip-compressed when the name ends in `.gz`."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable
from typing import BinaryIO

from crossing_monitor.errors import UserError

GZIP_LEVEL = 5  # a good deal smaller than level 1, and still several times faster than level 9
CHUNK = 4096  # lines joined per write call


def open_out(path: str) -> BinaryIO:
    """Open `path` for writing a log; `-` is standard output; a clear error for a bad path."""
    if path == "-":
        import sys

        return sys.stdout.buffer
    if not path.endswith((".jsonl", ".jsonl.gz", ".gz")):
        raise UserError(f"{path}: a log is named .jsonl or .jsonl.gz")
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "wb", compresslevel=GZIP_LEVEL)  # type: ignore[return-value]
        return open(path, "wb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc.strerror or exc}") from None


def write_lines(out: BinaryIO, lines: Iterable[bytes]) -> int:
    """Write serialised events, one per line, in chunks; returns how many."""
    n = 0
    chunk: list[bytes] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= CHUNK:
            out.write(b"\n".join(chunk) + b"\n")
            n += len(chunk)
            chunk.clear()
    if chunk:
        out.write(b"\n".join(chunk) + b"\n")
        n += len(chunk)
    return n


def write_log(path: str | os.PathLike[str], lines: Iterable[bytes]) -> int:
    """The whole log at once (tests, benchmarks): returns the number of lines written."""
    out = open_out(os.fspath(path))
    try:
        return write_lines(out, lines)
    finally:
        if out is not getattr(__import__("sys").stdout, "buffer", None):
            out.close()
