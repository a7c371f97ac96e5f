"""Topic administration shared by the worker, the producers and the tests: create topics and wait
for their leaders; quieten aiokafka's connection noise while polling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["create_topics", "create_topics_async", "quiet_logger"]


@contextlib.contextmanager
def quiet_logger(logger: str) -> Iterator[None]:
    """aiokafka logs every refused connection at ERROR; while polling for readiness that is noise."""
    lg = logging.getLogger(logger)
    level = lg.level
    lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        lg.setLevel(level)


async def create_topics_async(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    replication: int = 1,
    timeout: float = 30.0,
    security: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics (name -> partitions) that do not exist yet and wait until they have leaders.

    Existing topics are left as they are, whatever their partition count. Returns the names created.
    `security`: aiokafka's TLS/SASL keyword arguments (`KafkaSecurity.aiokafka_kwargs()`).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
    from aiokafka.structs import TopicPartition

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **(security or {}))
    await admin.start()
    created: list[str] = []
    try:
        response = await admin.create_topics([NewTopic(n, p, replication) for n, p in topics.items()])
        for name, code, *rest in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:
                message = rest[0] if rest and rest[0] else for_code(code).__name__
                raise KafkaError(f"cannot create topic {name!r}: {message}")
        # CreateTopics returns when the controller committed; wait for the broker's metadata too.
        client = admin._client
        deadline = time.monotonic() + timeout
        while True:
            await client.force_metadata_update()
            cluster = client.cluster
            pending = [
                n
                for n in topics
                if not (parts := cluster.partitions_for_topic(n))
                or any(cluster.leader_for_partition(TopicPartition(n, p)) in (None, -1) for p in parts)
            ]
            if not pending:
                return created
            if time.monotonic() > deadline:
                raise KafkaError(f"topics {', '.join(pending)} have no leader after {timeout:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def create_topics(
    bootstrap: str, topics: Mapping[str, int], *, replication: int = 1, timeout: float = 30.0
) -> list[str]:
    """Synchronous `create_topics_async` (for tests and scripts; not from inside an event loop)."""
    return asyncio.run(create_topics_async(bootstrap, topics, replication=replication, timeout=timeout))
