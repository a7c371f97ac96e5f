"""Shared fixtures. `kafka`: one real broker for the whole session (started once: ~5 s)."""

from __future__ import annotations

import os
import sys
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


def _started_workers() -> list:
    """Every WorkerProcess started in this session so far ([] when no test module imported `workers`)."""
    workers = sys.modules.get("workers")
    return workers.WorkerProcess.started if workers is not None else []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    item.workers_before = len(_started_workers())  # type: ignore[attr-defined]
    return (yield)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A test that failed (in setup, body or teardown) with workers says what their logs tell of
    membership, recovery and trouble, so that a failure seen once (in CI, say) can be understood from
    its report alone: the workers started since its setup began, and those of wider fixtures still running."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    started = _started_workers()
    before = getattr(item, "workers_before", len(started))
    running = [w for w in started[:before] if w.proc is not None and w.proc.poll() is None]
    for worker in running + started[before:]:
        report.sections.append((f"worker log {worker.log_path.name}: membership and trouble", worker.story()))
