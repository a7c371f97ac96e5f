"""The Alertmanager webhook receiver the project ships: it records every notification it gets.

Alertmanager needs somewhere to deliver; in the demo and in the tests that somewhere is this
receiver, so that alerts can be seen landing (one JSON line per notification, with the path it
came on: /page, /room or /platform, see deploy/alertmanager/alertmanager.yml).

    python -m dashboards.webhook [--port 9095] [--out alerts.jsonl]

Without --out the lines go to standard output.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

DEFAULT_PORT = 9095


class AlertRecorder:
    """Notifications received so far (in memory), each also written as a JSON line."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, path: str, payload: Any) -> None:
        entry = {"received_at": time.time(), "path": path, "payload": payload}
        with self._lock:
            self.notifications.append(entry)
            if self.out is not None:
                self.out.write(json.dumps(entry, sort_keys=True) + "\n")
                self.out.flush()

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification, with the path it arrived on and its group status."""
        with self._lock:
            return [
                {**alert, "path": n["path"]}
                for n in self.notifications
                if isinstance(n["payload"], dict)
                for alert in n["payload"].get("alerts", [])
            ]


def _handler(recorder: AlertRecorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            try:
                payload: Any = json.loads(body)
            except ValueError:
                self.send_error(400, "body is not JSON")
                return
            recorder.record(self.path, payload)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - a health check for the demo
            body = json.dumps({"notifications": len(recorder.notifications)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep stderr for errors only
            pass

    return Handler


class WebhookReceiver:
    """The receiver on a loopback port, served from a thread (tests, the demo)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, out: TextIO | None = None) -> None:
        self.recorder = AlertRecorder(out)
        self.server = ThreadingHTTPServer((host, port), _handler(self.recorder))
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.webhook", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--out", help="append JSON lines to this file (default: standard output)")
    args = parser.parse_args(argv)
    out = Path(args.out).open("a", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115 - lives until exit
    receiver = WebhookReceiver(args.host, args.port, out)
    print(f"webhook receiver on {receiver.url}", file=sys.stderr)
    try:
        receiver.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
