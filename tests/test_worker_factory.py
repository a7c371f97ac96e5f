"""The worker's wiring without a broker: settings from arguments and environment, apps from the factory."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.kafka.security import KafkaSecurity
from streams.settings import Settings


def test_given_settings_win_over_the_environment_and_derived_names_follow_them():
    env = {
        "CROSSING_MONITOR_TOPIC": "env.events",
        "CROSSING_MONITOR_WEB_PORT": "7000",
        "CROSSING_MONITOR_PARTITIONS": "3",
    }
    from_env = Settings.from_env(env)
    assert (from_env.topic, from_env.dlq_topic, from_env.app_id) == (
        "env.events",
        "env.events.dlq",
        "crossing-monitor-env.events",
    )
    assert from_env.data_dir.endswith("worker-7000") and from_env.partitions == 3
    given = Settings.from_env(env, topic="crossing.events", web_port=7100, catalogue=None)
    assert (given.topic, given.dlq_topic, given.app_id) == (
        "crossing.events",
        "crossing.events.dlq",
        "crossing-monitor",
    )
    assert given.data_dir.endswith("worker-7100") and given.partitions == 3 and given.catalogue is None
    with pytest.raises(TypeError):
        Settings.from_env(env, topc="typo")


def test_importing_the_worker_modules_builds_nothing():
    code = (
        "import gc, faust, streams.web, streams.transport, streams.state, streams.factory, streams.processor\n"
        "assert not [o for o in gc.get_objects() if isinstance(o, faust.App)]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stderr


def test_each_app_from_the_factory_has_its_own_topics_hand_off_and_views():
    from streams.factory import create_app

    catalogue = load_catalogue()
    a = create_app(Settings.from_env({}, topic="a.events", web_port=7201), catalogue, KafkaSecurity())
    b = create_app(Settings.from_env({}, topic="b.events", web_port=7202), catalogue, KafkaSecurity())
    assert a.transport.handoff.topics == frozenset({"a.events"})
    assert b.transport.handoff.topics == frozenset({"b.events"})
    assert a.processor is not b.processor and a.processor.topic == "a.events"
    assert (a.conf.id, b.conf.id) == ("crossing-monitor-a.events", "crossing-monitor-b.events")
    for app in (a, b):
        assert {"/api/ports", "/api/ports/{port}", "/metrics", "/healthz", "/"} <= set(app.web.views)
        assert app.web.views["/healthz"].app is app


def test_the_fetch_wait_and_isolation_level_reach_the_kafka_consumer_and_the_changelog_compacts():
    import asyncio

    from streams.factory import create_app

    async def build() -> tuple[object, object]:
        env = {"CROSSING_MONITOR_FETCH_MAX_WAIT_MS": "250", "CROSSING_MONITOR_CHECKPOINT_EVENTS": "500"}
        app = create_app(Settings.from_env(env, topic="f.events", web_port=7203), load_catalogue(), KafkaSecurity())
        thread = app.consumer._thread
        return app, thread._create_worker_consumer(app.transport)

    app, consumer = asyncio.run(build())
    assert consumer._fetch_max_wait_ms == 250 and consumer._isolation_level == "read_committed"
    assert app.processor.checkpoint_events == 500 and app.processor.checkpoint_max_age == 600.0
    table = app.tables["checkpoints"]
    configs = table.changelog_topic.config
    assert configs["cleanup.policy"] == "compact" and int(configs["segment.ms"]) <= 10 * 60 * 1000
    assert int(configs["segment.bytes"]) >= int(configs["max.message.bytes"])
