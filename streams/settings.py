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
    checkpoint_seconds: float
    replication: int  # of every topic the worker creates, its own and Faust's
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
    "CROSSING_MONITOR_ALERTMANAGER": "alertmanager",
}
