"""Is a Kafka broker there at all? A plain TCP connect to the bootstrap servers, shared by the
publishers (one line per look while they wait out an outage) and the worker (which must not give up
on a stuck rebalance while the broker is simply away)."""

from __future__ import annotations

import asyncio
import contextlib

PROBE_SECONDS = 2.0


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
