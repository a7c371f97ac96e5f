"""The Faust app class of the worker: what one app instance carries, for its views and its consumer.

Why a subclass: the web views and the consumer need this instance's processor, settings, catalogue
and the batch hand-off of its transport; keeping them on the app (set by `streams.factory.create_app`) means no module
globals, so two apps can live in one process and nothing is built at import.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from crossing_monitor.core.catalogue import Catalogue
from streams.processor import Processor
from streams.settings import Settings
from streams.transport import BatchHandoff, BatchTransport

FLUSH_TIMEOUT = 2.0  # seconds


class WorkerApp(faust.App):
    """A Faust app whose Kafka consumer hands the source topic on in batches (`streams.transport`)."""

    settings: Settings
    catalogue: Catalogue
    processor: Processor
    events_topic: Any  # faust TopicT of the source topic: misrouted events are forwarded through it
    registry: Any  # prometheus_client CollectorRegistry of /metrics (set by streams.web.register)
    reports: Any  # streams.reports.ReportCache of the /api/ports views (set by streams.web.register)
    # seconds after which a stop ends the process at once (None: never; see streams.factory._exit_after)
    stop_deadline: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # tasks started with the app itself (`on_start`), before its first recovery, unlike Faust's timers
        self.background: list[Callable[[], Awaitable[None]]] = []

    async def on_start(self) -> None:
        await super().on_start()
        for make in self.background:
            self.add_future(make())

    def _new_transport(self) -> BatchTransport:
        return BatchTransport(self.conf.broker_consumer, self)

    async def _producer_flush(self, logger: Any) -> None:
        """Faust flushes its producer on stop; with the broker gone that waits for the request timeout.
        Bounded: what is not sent by then is a checkpoint the next owner does without."""
        try:
            await asyncio.wait_for(super()._producer_flush(logger), FLUSH_TIMEOUT)
        except TimeoutError:
            logger.warning("stop: producer not flushed within %.0f s; going on", FLUSH_TIMEOUT)

    def hand_off(self, handoff: BatchHandoff) -> None:
        """Hand the records of `handoff.topics` to `handoff.on_batch` (before the consumer starts)."""
        transport = self.transport
        if not isinstance(transport, BatchTransport):
            raise TypeError(f"transport {transport!r} cannot hand batches on")
        transport.handoff = handoff
