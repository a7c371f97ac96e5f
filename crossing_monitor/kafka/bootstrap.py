"""Which Kafka to talk to: every client of the project (worker, simulate, record, replay, demo)
resolves its bootstrap servers the same way, so one environment variable points them all at a
port's cluster."""

from __future__ import annotations

import os

__all__ = ["DEFAULT_BOOTSTRAP", "ENV_BOOTSTRAP", "bootstrap_servers"]

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
ENV_BOOTSTRAP = "CROSSING_MONITOR_BOOTSTRAP"


def bootstrap_servers(given: str | None = None) -> str:
    """The servers named on the command line, else $CROSSING_MONITOR_BOOTSTRAP, else the local default."""
    return given or os.environ.get(ENV_BOOTSTRAP) or DEFAULT_BOOTSTRAP
