"""Shared fixtures. `kafka`: one real broker for the whole session (started once: ~5 s)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def kafka() -> Iterator[object]:
    """A running broker with a `.bootstrap`: $CROSSING_MONITOR_TEST_BOOTSTRAP if set, else a LocalKafka."""
    if external := os.environ.get("CROSSING_MONITOR_TEST_BOOTSTRAP"):
        yield SimpleNamespace(bootstrap=external)
        return
    from crossing_monitor.errors import UserError
    from crossing_monitor.kafka.broker import LocalKafka

    try:
        broker = LocalKafka().start()
    except UserError as exc:  # java/mvn missing, broker died: the reason, not a traceback
        pytest.fail(f"cannot start the local Kafka broker: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()
