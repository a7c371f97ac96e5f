"""Is a Kafka broker there? A plain TCP connect to the bootstrap servers (`unreachable`), for the
publishers' one line per look while they wait out an outage; and that plus a metadata request
(`not_serving`), for the worker, which must not give up on a stuck rebalance while the broker is away."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

PROBE_SECONDS = 2.0


def _servers(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        with contextlib.suppress(ValueError):
            out.append((host.strip("[]") or "localhost", int(port)))
    return out


async def _first_accepting(bootstrap: str, timeout: float) -> tuple[str | None, str]:
    """("host:port" of the first bootstrap server that accepts a TCP connection, "") or (None, why none does)."""
    reason = "no usable host:port in the bootstrap servers"
    for host, port in _servers(bootstrap):
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            reason = f"no answer within {timeout:.0f} s"
        except ConnectionRefusedError:
            reason = "connection refused"
        except (OSError, UnicodeError) as exc:  # (a host name that cannot be encoded: UnicodeError)
            reason = (getattr(exc, "strerror", None) or type(exc).__name__).lower()
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}", ""
    return None, reason


async def unreachable(bootstrap: str, timeout: float = PROBE_SECONDS) -> str | None:
    """Why no bootstrap server accepts a TCP connection (e.g. "connection refused"); None if one does.

    A plain connect, not a Kafka request: it needs no TLS/SASL settings and says enough to tell
    "the broker is gone" from "the broker is there but slow"."""
    server, reason = await _first_accepting(bootstrap, timeout)
    return None if server is not None else reason


async def not_serving(bootstrap: str, security: dict[str, Any] | None = None, timeout: float = 10.0) -> str | None:
    """Why Kafka at `bootstrap` does not serve: no TCP connection, or a connection but no answer to a
    metadata request (a broker still starting, a proxy in front of none); None when it answers. The
    request goes to the server that accepted the connection, so a dead one beside it does not count."""
    server, reason = await _first_accepting(bootstrap, PROBE_SECONDS)
    if server is None:
        return reason
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=server, request_timeout_ms=int(timeout * 1000), **(security or {}))
    try:
        async with asyncio.timeout(timeout):
            await client.bootstrap()
    except Exception as exc:  # noqa: BLE001 - any failure means: not serving
        return f"accepts connections but answers no metadata request ({exc or type(exc).__name__})"
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    return None
