"""Waiting out a broker that is away: back-off with a cap, a total patience, and a reason to print.

The publisher keeps its place while Kafka is down; these are the pieces that decide how long it
waits between looks, when it gives up, and what the one line per look says.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

FIRST_BACKOFF = 1.0  # seconds before the first retry; doubles on every further attempt
MAX_BACKOFF = 30.0
DEFAULT_PATIENCE = 600.0  # seconds without any acknowledgement before a command gives up
PROBE_SECONDS = 2.0


@dataclass
class Backoff:
    """1 s doubling to 30 s between attempts, within `patience` seconds from the first failure."""

    patience: float = DEFAULT_PATIENCE
    first: float = FIRST_BACKOFF
    cap: float = MAX_BACKOFF
    attempt: int = 0
    said: bool = False  # a line went out about this wait (so the recovery gets one too)
    started: float = field(default_factory=time.monotonic)
    _delay: float = 0.0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def next_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or None once patience is spent; counts the attempt."""
        left = self.patience - self.elapsed
        if left <= 0:
            return None
        self._delay = self.first if not self._delay else min(self._delay * 2, self.cap)
        self.attempt += 1
        return min(self._delay, left)


def duration(seconds: float) -> str:
    """`0.4 s`, `45 s`, `10 min`, `2 h` — for the lines an operator reads."""
    if seconds < 0.95:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _servers(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        with contextlib.suppress(ValueError):
            out.append((host.strip("[]") or "localhost", int(port)))
    return out


async def unreachable(bootstrap: str, timeout: float = PROBE_SECONDS) -> str | None:
    """Why no bootstrap server accepts a TCP connection (e.g. "connection refused"); None if one does.

    A plain connect, not a Kafka request: it needs no TLS/SASL settings and says enough to tell
    "the broker is gone" from "the broker is there but slow"."""
    reason = "no usable host:port in the bootstrap servers"
    for host, port in _servers(bootstrap):
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            reason = f"no answer within {timeout:.0f} s"
        except ConnectionRefusedError:
            reason = "connection refused"
        except OSError as exc:
            reason = (exc.strerror or type(exc).__name__).lower()
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return None
    return reason
