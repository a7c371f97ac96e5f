"""Worker settings. `crossing-monitor worker` passes what its arguments say and the environment gives
the rest; `faust -A streams.app worker` takes them all from the environment. Either way the same
defaults and derived names (dead-letter topic, group id, data directory) apply."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_PARTITIONS = 8  # ports are the unit of parallelism; 8 leaves room above the 7 shipped ports


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    topic: str
    dlq_topic: str
    app_id: str
    partitions: int
    web_host: str
    web_port: int
    data_dir: str
    catalogue: str | None
    checkpoint_seconds: float  # how often the timer looks whether a checkpoint is due
    replication: int  # of every topic the worker creates, its own and Faust's
    # A partition is checkpointed once this many events are unsaved, or once its oldest unsaved event
    # is this old: the source topic holds every event, so a sparse checkpoint loses nothing on a crash
    # (the new owner folds the rest again from the checkpoint's offset), it only costs a longer catch-up.
    # 10 minutes: Khorgos's state is ~175 KB compressed, so at its record-day rate (~14,000 events a day)
    # 144 checkpoints a day are ~1.7 KB per event (goal: at most 2 KB); at 60 s it would be ~18 KB.
    checkpoint_events: int = 20_000
    checkpoint_max_age: float = 600.0
    # How long the broker may hold a fetch for partitions with nothing new (ms): short makes a
    # catch-up fast (no fetch waits on an idle partition), long makes an idle worker poll less often.
    fetch_max_wait_ms: int = 10
    # A partition behind its end offset with no progress for this long is sought again (see Processor).
    stall_seconds: float = 5.0
    # A rebalance still not over after this long (counted again from each new group generation, but three
    # times this at most, and from Kafka's return after an outage) ends the worker (exit 75) so that the
    # group gives its partitions to another worker and a supervisor starts it again: Faust's recovery
    # can end for good mid-rebalance (streams.watch). Recovering a partition's checkpoints takes
    # seconds; 0 turns this off.
    rebalance_seconds: float = 180.0
    # At most this long for the last checkpoint on shutdown: with the broker gone it cannot be written,
    # and nothing is lost without it (the source topic holds the events).
    shutdown_checkpoint_seconds: float = 3.0
    # A stop (SIGTERM) that has not ended after this long ends the process at once: with the broker gone,
    # Faust's producer flush and consumer close each wait a minute. Nothing is lost (see streams.state).
    stop_seconds: float = 8.0
    alertmanager: str | None = None  # base URL whose firing alerts the wall shows

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **given: Any) -> Settings:
        """The settings of `environ` (default: os.environ); a field passed in `given` (not None)
        wins over its variable, and the names derived from it follow it."""
        unknown = set(given) - set(_FIELD_OF.values())
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        environment = os.environ if environ is None else environ

        def env(name: str, default: str | None = None) -> str | None:
            field = _FIELD_OF[name]
            if given.get(field) is not None:
                return str(given[field])
            return environment.get(name, default)

        topic = env("CROSSING_MONITOR_TOPIC", "crossing.events")
        web_port = int(env("CROSSING_MONITOR_WEB_PORT", "6066"))
        return cls(
            bootstrap=env("CROSSING_MONITOR_BOOTSTRAP", "127.0.0.1:9092"),
            topic=topic,
            dlq_topic=env("CROSSING_MONITOR_DLQ_TOPIC", f"{topic}.dlq"),
            app_id=env(
                "CROSSING_MONITOR_APP_ID",
                "crossing-monitor" if topic == "crossing.events" else f"crossing-monitor-{topic}",
            ),
            partitions=int(env("CROSSING_MONITOR_PARTITIONS", str(DEFAULT_PARTITIONS))),
            web_host=env("CROSSING_MONITOR_WEB_HOST", "127.0.0.1"),
            web_port=web_port,
            data_dir=env("CROSSING_MONITOR_DATA_DIR", os.path.join("var", f"worker-{web_port}")),
            catalogue=env("CROSSING_MONITOR_CATALOGUE") or None,
            checkpoint_seconds=float(env("CROSSING_MONITOR_CHECKPOINT_SECONDS", "1.0")),
            replication=int(env("TOPIC_REPLICATION_FACTOR", "1")),
            checkpoint_events=int(env("CROSSING_MONITOR_CHECKPOINT_EVENTS", "20000")),
            checkpoint_max_age=float(env("CROSSING_MONITOR_CHECKPOINT_MAX_AGE", "600")),
            fetch_max_wait_ms=int(env("CROSSING_MONITOR_FETCH_MAX_WAIT_MS", "10")),
            stall_seconds=float(env("CROSSING_MONITOR_STALL_SECONDS", "5")),
            rebalance_seconds=float(env("CROSSING_MONITOR_REBALANCE_SECONDS", "180")),
            shutdown_checkpoint_seconds=float(env("CROSSING_MONITOR_SHUTDOWN_CHECKPOINT_SECONDS", "3")),
            stop_seconds=float(env("CROSSING_MONITOR_STOP_SECONDS", "8")),
            alertmanager=env("CROSSING_MONITOR_ALERTMANAGER") or None,
        )


_FIELD_OF = {
    "CROSSING_MONITOR_BOOTSTRAP": "bootstrap",
    "CROSSING_MONITOR_TOPIC": "topic",
    "CROSSING_MONITOR_DLQ_TOPIC": "dlq_topic",
    "CROSSING_MONITOR_APP_ID": "app_id",
    "CROSSING_MONITOR_PARTITIONS": "partitions",
    "CROSSING_MONITOR_WEB_HOST": "web_host",
    "CROSSING_MONITOR_WEB_PORT": "web_port",
    "CROSSING_MONITOR_DATA_DIR": "data_dir",
    "CROSSING_MONITOR_CATALOGUE": "catalogue",
    "CROSSING_MONITOR_CHECKPOINT_SECONDS": "checkpoint_seconds",
    "TOPIC_REPLICATION_FACTOR": "replication",
    "CROSSING_MONITOR_CHECKPOINT_EVENTS": "checkpoint_events",
    "CROSSING_MONITOR_CHECKPOINT_MAX_AGE": "checkpoint_max_age",
    "CROSSING_MONITOR_FETCH_MAX_WAIT_MS": "fetch_max_wait_ms",
    "CROSSING_MONITOR_STALL_SECONDS": "stall_seconds",
    "CROSSING_MONITOR_REBALANCE_SECONDS": "rebalance_seconds",
    "CROSSING_MONITOR_SHUTDOWN_CHECKPOINT_SECONDS": "shutdown_checkpoint_seconds",
    "CROSSING_MONITOR_STOP_SECONDS": "stop_seconds",
    "CROSSING_MONITOR_ALERTMANAGER": "alertmanager",
}
