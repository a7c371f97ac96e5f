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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed test that ran workers says what their logs tell of membership, recovery and trouble,
    so that a failure seen once (in CI, say) can be understood from its report alone."""
    outcome = yield
    report = outcome.get_result()
    if call.when == "setup":
        from workers import WorkerProcess

        WorkerProcess.started.clear()
    if report.failed and call.when == "call":
        from workers import WorkerProcess

        for worker in WorkerProcess.started:
            report.sections.append((f"worker log {worker.log_path.name}: membership and trouble", worker.story()))
