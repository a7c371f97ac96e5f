"""The webhook receiver the project ships records what Alertmanager delivers, by path."""

from __future__ import annotations

import io
import json

import httpx

from dashboards.webhook import WebhookReceiver


def test_receiver_records_notifications_as_json_lines():
    out = io.StringIO()
    payload = {
        "status": "firing",
        "receiver": "ops-room",
        "alerts": [{"status": "firing", "labels": {"alertname": "CrossingQueueBuildUp", "port": "khorgos"}}],
    }
    with WebhookReceiver(out=out) as receiver:
        assert httpx.post(receiver.url + "/room", json=payload, timeout=5).status_code == 200
        assert httpx.post(receiver.url + "/room", content=b"not json", timeout=5).status_code == 400
        assert httpx.get(receiver.url, timeout=5).json() == {"notifications": 1}
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["path"] == "/room" and entry["payload"] == payload
    (alert,) = receiver.recorder.alerts()
    assert alert["labels"]["port"] == "khorgos" and alert["path"] == "/room"
