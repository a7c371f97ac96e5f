"""The stuck-rebalance watch: end a worker whose rebalance never ends, so its partitions move on.

Faust ends its table recovery for good when one of its steps waits longer than
broker_request_timeout (mode's `wait_first` reads the time-out as "stopped"): the app then stays
`rebalancing`, every batch is dropped, and this worker's partitions are served by no one; no later
rebalance can end here either (the recovery loop is gone). The processor says when a rebalance is overdue
(`Processor.rebalance_overdue`); this task, started with the app and not waiting for its first
recovery as Faust's timers do, then asks whether Kafka serves. If it does, the process ends with
exit code 75 (a supervisor starts it again; safe like any crash: offsets are committed only behind
acknowledged checkpoints, and the group moves the partitions on after the session time-out). If it
does not, a new process could not join either: the watch looks again every second and counts the
rebalance's time again from the moment Kafka answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from crossing_monitor.kafka.probe import not_serving

log = logging.getLogger("crossing_monitor.worker")

EXIT_STUCK = 75  # EX_TEMPFAIL: start me again
WATCH_SECONDS = 1.0


class Watched(Protocol):
    def rebalance_overdue(self) -> float | None: ...

    def broker_away(self) -> None: ...


def exit_now(code: int) -> None:
    """End the process at once, logs flushed: no stop that could hang on the Faust services that are stuck."""
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)


def exit_stuck() -> None:
    exit_now(EXIT_STUCK)


class RebalanceWatch:
    """One look per second at the processor's rebalance clock (see the module doc)."""

    def __init__(
        self,
        app: Any,
        processor: Watched,
        bootstrap: str,
        security: dict[str, Any] | None = None,
        *,
        probe: Callable[[str, dict[str, Any] | None], Awaitable[str | None]] = not_serving,
        end: Callable[[], None] = exit_stuck,
    ) -> None:
        self.app = app  # read: should_stop
        self.processor = processor
        self.bootstrap = bootstrap
        self.security = security
        self.probe = probe
        self.end = end
        self.away = False  # Kafka was found not serving and has not answered since

    async def run(self) -> None:
        while not self.app.should_stop:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                await self.look()
            except Exception:  # a fault of the watch must not end a healthy worker (mode would crash the app)
                log.exception("the stuck-rebalance watch failed to look; looking again in %.0f s", WATCH_SECONDS)

    async def look(self) -> None:
        lasted = self.processor.rebalance_overdue()  # (read every second: the clock follows each rebalance)
        if self.away:
            if await self.probe(self.bootstrap, self.security) is not None:
                self.processor.broker_away()
                return
            self.away = False
            self.processor.broker_away()  # the rebalance gets its whole time again from now
            log.info("Kafka at %s answers again; the rebalance going on is watched from now", self.bootstrap)
            return
        if lasted is None:
            return
        reason = await self.probe(self.bootstrap, self.security)
        if reason is not None:
            self.away = True
            self.processor.broker_away()
            log.warning(
                "rebalance not over after %.0f s; Kafka at %s is not serving (%s): waiting for it",
                lasted,
                self.bootstrap,
                reason,
            )
            return
        if self.app.should_stop:
            return  # stopping anyway: the stop's own exit code
        log.error(
            "rebalance not over after %.0f s though Kafka at %s serves (Faust's table recovery has ended?): "
            "exiting with %d so that the group gives this worker's partitions to another and a supervisor "
            "starts it again; nothing is lost",
            lasted,
            self.bootstrap,
            EXIT_STUCK,
        )
        self.end()
