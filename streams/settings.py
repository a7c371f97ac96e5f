"""Worker settings, from the environment, so that both `crossing-monitor worker` and
`faust -A streams.app worker` build the same app."""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    replication: int  # of the topics the worker creates; Faust reads the same variable for its own

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ.get
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
        )
