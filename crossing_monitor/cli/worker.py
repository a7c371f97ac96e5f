"""`crossing-monitor worker`: check the broker, make sure the topics exist, run the Faust worker."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

from crossing_monitor.cli import bootstrap_of
from crossing_monitor.errors import UserError
from crossing_monitor.kafka.admin import create_topics_async
from crossing_monitor.kafka.security import KafkaSecurity

log = logging.getLogger("crossing_monitor.worker")

CONNECT_ATTEMPTS = 10
CONNECT_DELAY = 2.0


def wait_for_broker(
    bootstrap: str,
    topics: dict[str, int],
    attempts: int = CONNECT_ATTEMPTS,
    *,
    replication: int = 1,
    security: KafkaSecurity | None = None,
) -> None:
    """Retry until the broker answers, with one line per attempt; UserError if it never does."""
    from aiokafka.errors import KafkaError

    kwargs = security.aiokafka_kwargs() if security else None
    for attempt in range(1, attempts + 1):
        try:
            create = create_topics_async(bootstrap, topics, replication=replication, security=kwargs)
            asyncio.run(asyncio.wait_for(create, timeout=20))
            return
        except (TimeoutError, KafkaError, OSError) as exc:
            reason = type(exc).__name__ if not str(exc) else str(exc)
            print(
                f"crossing-monitor worker: Kafka at {bootstrap} not reachable ({reason}); attempt {attempt}/{attempts}",
                file=sys.stderr,
                flush=True,
            )
            if attempt < attempts:
                time.sleep(CONNECT_DELAY)
    raise UserError(
        f"Kafka at {bootstrap} is not reachable; start one with `crossing-monitor broker` "
        "or name another with --bootstrap"
    )


def main(args: argparse.Namespace) -> int:
    from crossing_monitor.core.catalogue import CatalogueError, load_catalogue
    from streams.settings import Settings

    bootstrap = bootstrap_of(args)
    try:
        settings = Settings.from_env(
            bootstrap=bootstrap,
            topic=args.topic,
            web_host=args.web_host,
            web_port=args.web_port,
            catalogue=args.catalogue or None,  # else $CROSSING_MONITOR_CATALOGUE, else the shipped one
            data_dir=args.data_dir or None,
            alertmanager=getattr(args, "alertmanager", None) or None,
        )
        catalogue = load_catalogue(settings.catalogue)
    except CatalogueError as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:  # a number variable that is not one
        raise UserError(f"worker settings: {exc}") from None
    security = KafkaSecurity.from_env()
    wait_for_broker(
        bootstrap,
        {settings.topic: settings.partitions, settings.dlq_topic: 1},
        replication=settings.replication,
        security=security,
    )
    os.makedirs(settings.data_dir, exist_ok=True)

    from faust.worker import Worker

    from crossing_monitor.logs import native
    from streams.factory import create_app

    app = create_app(settings, catalogue, security)
    app.stop_deadline = settings.stop_seconds  # SIGTERM ends this process within that, whatever Kafka does
    print(
        f"crossing-monitor worker: consuming {settings.topic} at {bootstrap} ({security.describe()}); "
        f"http://{settings.web_host}:{settings.web_port}/api/ports and /metrics; {native.describe()}",
        file=sys.stderr,
        flush=True,
    )
    worker = Worker(app, loglevel=args.loglevel, quiet=True)
    # No terminal spinner: at --loglevel warning or above Faust would hang it on the root logger and set
    # that to DEBUG, so every debug record of aiokafka and Faust (one per Kafka frame) would be built.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0
