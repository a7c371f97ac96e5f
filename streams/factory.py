"""Build the worker's Faust app: topics, checkpoint table, batch hand-off, agent, timer, signals, views.

Thin by design: judging and folding events is the metric core's job (`crossing_monitor.core`, the
same code `analyze` runs), the bookkeeping around it is `streams.processor.Processor`'s; this module
only connects them to Faust. Nothing is built at import: `create_app` makes a new app each call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import faust

from crossing_monitor.core.catalogue import Catalogue, load_catalogue
from crossing_monitor.kafka.security import KafkaSecurity
from streams import web
from streams.adapters import AppGroup, ConsumerSource, PortHome, TableCheckpoints, TopicDeadLetters, TopicForwards
from streams.processor import Processor
from streams.settings import Settings
from streams.transport import BatchHandoff
from streams.watch import RebalanceWatch, exit_now
from streams.workerapp import WorkerApp

log = logging.getLogger("crossing_monitor.worker")

MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024
# The checkpoints' changelog: compacted, and cleanable soon. Faust's in-memory store reads it from the
# start on every rebalance, so what a new owner reads is the cleaned part (one checkpoint per partition)
# plus the segments not cleaned yet: short segments (rolled after 5 minutes, or 64 MiB: never less than
# one snapshot) and a low dirty ratio keep that to a few minutes of checkpoints whatever the topic's age.
CHANGELOG_CONFIGS = {
    "cleanup.policy": "compact",
    "max.message.bytes": str(MAX_SNAPSHOT_BYTES),
    "segment.bytes": str(2 * MAX_SNAPSHOT_BYTES),
    "segment.ms": str(5 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": str(60 * 60 * 1000),  # tombstones (none written today) kept an hour
}


def create_app(settings: Settings, catalogue: Catalogue, security: KafkaSecurity) -> WorkerApp:
    """A worker app for these settings, ready for `faust.worker.Worker`."""
    app = WorkerApp(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=security.faust_credentials(),  # TLS/SASL (None: plaintext)
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        datadir=settings.data_dir,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=5000,  # records per fetch, all partitions together
        consumer_max_fetch_size=4 * 1024 * 1024,
        producer_max_request_size=MAX_SNAPSHOT_BYTES,
        producer_acks=-1,
        broker_commit_interval=1.0,
        broker_session_timeout=10.0,  # a killed worker's partitions move on after 10 s, not 60
        broker_heartbeat_interval=1.0,
        # Standbys of the in-memory store can miss the newest checkpoint when they turn active; a new owner
        # reads the (compacted, one message per partition) changelog from the start instead.
        table_standby_replicas=0,
        web_in_thread=False,
        stream_wait_empty=False,  # nothing is acked through Faust: the checkpoint is the commit
    )
    app.settings = settings
    app.catalogue = catalogue
    app.events_topic = app.topic(
        settings.topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    # Subscribed, so that the group assigns its partitions (and the checkpoints table's changelog
    # partitions with them); its records reach the `fold` agent through `batches`, not one by one.
    app.topics.add(app.events_topic)
    batches = app.channel(maxsize=4)
    app.hand_off(BatchHandoff(frozenset({settings.topic}), batches.put))
    dlq_topic = app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="raw", partitions=1)
    # One compressed checkpoint per source partition, in a changelog-backed Faust table.
    checkpoints = app.Table(
        "checkpoints",
        default=None,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        extra_topic_configs=CHANGELOG_CONFIGS,
    )
    app.processor = Processor(
        catalogue,
        settings.topic,
        store=TableCheckpoints(checkpoints),
        dead_letters=TopicDeadLetters(dlq_topic),
        source=ConsumerSource(app, settings.topic),
        group=AppGroup(app, settings.topic),
        forwards=TopicForwards(app.events_topic),
        home=PortHome(app, settings.topic),
        checkpoint_events=settings.checkpoint_events,
        checkpoint_max_age=settings.checkpoint_max_age,
        stall_seconds=settings.stall_seconds,
        rebalance_seconds=settings.rebalance_seconds,
    )
    _connect(app, app.processor, batches, settings)
    # started with the app, not after its first recovery as timers are: that recovery can end for good too
    app.background.append(RebalanceWatch(app, app.processor, settings.bootstrap, security.aiokafka_kwargs()).run)
    collector = web.register(app)
    # what a state counted since the last scrape is read before a rebalance drops it
    app.processor.on_forget = collector.rejected.update
    return app


def _connect(app: WorkerApp, processor: Processor, batches: Any, settings: Settings) -> None:
    """The agent, the checkpoint timer and the rebalance signals, each one call into the processor."""

    async def fold(stream: faust.StreamT) -> None:
        """Every sensor event, in partition order, into the metric core, a fetched batch at a time."""
        async for batch in stream:
            if await processor.handle(batch):
                await asyncio.sleep(0)  # let the consumer ask for the next batch while this one is folded

    async def checkpoint_timer() -> None:
        """Checkpoint what is due, wait until Kafka has it, commit the offsets it holds; stuck partitions."""
        await processor.tick()
        await processor.watch_stalls()

    async def on_revoked(sender: faust.App, revoked: set, **kwargs: Any) -> None:
        await processor.revoked()

    async def on_shutdown(sender: faust.App, **kwargs: Any) -> None:
        """A clean stop leaves a checkpoint of everything folded in, if Kafka takes it soon enough."""
        if app.stop_deadline is not None:
            _exit_after(app.stop_deadline)
        await processor.checkpoint_on_shutdown(settings.shutdown_checkpoint_seconds)

    async def on_assigned(sender: faust.App, assigned: set, **kwargs: Any) -> None:
        processor.assigned()

    async def on_rebalance_complete(sender: faust.App, **kwargs: Any) -> None:
        await processor.rebalance_complete()

    app.agent(batches, name="fold")(fold)
    app.timer(settings.checkpoint_seconds, name="checkpoint")(checkpoint_timer)
    app.on_partitions_revoked.connect(on_revoked)
    app.on_before_shutdown.connect(on_shutdown)
    app.on_partitions_assigned.connect(on_assigned)
    app.on_rebalance_complete.connect(on_rebalance_complete)


def _exit_after(seconds: float) -> None:
    """End the process if the stop now beginning is not over in `seconds` (a daemon timer, so a stop
    that ends in time exits as usual). Armed only in a worker process (`WorkerApp.stop_deadline`, set by
    `crossing-monitor worker` and `streams.app`), never in a process that only embeds an app. Safe:
    offsets are committed only behind acknowledged checkpoints, so the next owner reads again whatever
    this worker could not save."""

    def hard_exit() -> None:
        log.warning("stop: not over after %.0f s (Kafka unreachable?); exiting now, nothing is lost", seconds)
        exit_now(0)

    timer = threading.Timer(seconds, hard_exit)
    timer.daemon = True
    timer.start()


def create_app_from_env(environ: Mapping[str, str] | None = None) -> WorkerApp:
    """The app `faust -A streams.app worker` runs: every setting from the environment."""
    env = os.environ if environ is None else environ
    settings = Settings.from_env(env)
    return create_app(settings, load_catalogue(settings.catalogue), KafkaSecurity.from_env(env))
