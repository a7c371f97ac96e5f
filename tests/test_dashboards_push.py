"""`crossing-monitor dashboards push` against a stand-in Grafana: an HTTP server in the test that
records every API call and answers like Grafana's HTTP API (no Grafana binary can run here)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

from crossing_monitor.cli import main as cli_main
from dashboards.generate import JSON_DIR
from dashboards.grafana import DATASOURCE_NAME, DATASOURCE_UID


class FakeGrafana:
    """Data sources, folders and dashboards in memory, with Grafana's status codes and answers."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.datasources: dict[str, dict] = {}
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}
        self._next_id = 1

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.split("?")[0].strip("/").split("/")]
        not_found = (404, {"message": "Not found"})
        match method, parts:
            case "GET", ["api", "datasources", "uid", uid]:
                return (200, self.datasources[uid]) if uid in self.datasources else not_found
            case "GET", ["api", "datasources", "name", name]:
                found = [d for d in self.datasources.values() if d["name"] == name]
                return (200, found[0]) if found else not_found
            case "POST", ["api", "datasources"]:
                if any(d["name"] == body["name"] for d in self.datasources.values()):
                    return 409, {"message": "data source with the same name already exists"}
                ds = {**body, "id": self._id()}
                self.datasources[ds["uid"]] = ds
                return 200, {"datasource": ds, "id": ds["id"], "message": "Datasource added", "name": ds["name"]}
            case "PUT", ["api", "datasources", "uid", uid]:
                if uid not in self.datasources:
                    return not_found
                self.datasources[uid] = {**body, "id": self.datasources[uid]["id"]}
                return 200, {"datasource": self.datasources[uid], "message": "Datasource updated"}
            case "GET", ["api", "folders", uid]:
                return (200, self.folders[uid]) if uid in self.folders else not_found
            case "POST", ["api", "folders"]:
                if body["uid"] in self.folders:
                    return 409, {"message": "a folder with the same uid already exists"}
                self.folders[body["uid"]] = {**body, "id": self._id()}
                return 200, self.folders[body["uid"]]
            case "POST", ["api", "dashboards", "db"]:
                dash = body["dashboard"]
                old = self.dashboards.get(dash["uid"])
                if old and not body.get("overwrite"):
                    return 412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
                version = old["version"] + 1 if old else 1
                ident = old["id"] if old else self._id()
                self.dashboards[dash["uid"]] = {"body": body, "version": version, "id": ident}
                saved = self.dashboards[dash["uid"]]
                url = f"/d/{dash['uid']}/{dash['title'].lower().replace(' ', '-')}"
                return 200, {"id": saved["id"], "uid": dash["uid"], "url": url, "status": "success", "version": version}
        return not_found


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            fake.calls.append(
                {"method": self.command, "path": self.path, "body": body, "auth": self.headers.get("Authorization")}
            )
            status, answer = fake.handle(self.command, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - http.server's naming

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("GRAFANA_TOKEN", "GRAFANA_USER", "GRAFANA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _push(url: str, prometheus: str = "http://127.0.0.1:9090") -> int:
    return cli_main(["dashboards", "push", "--grafana-url", url, "--prometheus-url", prometheus])


def _committed() -> dict[str, dict]:
    out = {}
    for path in sorted(JSON_DIR.glob("*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        out[d["uid"]] = d
    return out


def test_push_creates_the_data_source_and_the_committed_dashboards(grafana, env, capsys):
    fake, url = grafana
    env.setenv("GRAFANA_TOKEN", "glsa_test_token")
    assert _push(url, "http://prometheus.example:9090") == 0

    assert {c["auth"] for c in fake.calls} == {"Bearer glsa_test_token"}
    created = [c for c in fake.calls if c["method"] == "POST" and c["path"] == "/api/datasources"]
    assert len(created) == 1
    ds = created[0]["body"]
    assert (ds["uid"], ds["name"], ds["type"], ds["url"]) == (
        DATASOURCE_UID,
        DATASOURCE_NAME,
        "prometheus",
        "http://prometheus.example:9090",
    )
    posted = [c["body"] for c in fake.calls if c["path"] == "/api/dashboards/db"]
    committed = _committed()
    assert {b["dashboard"]["uid"] for b in posted} == set(committed)
    for body in posted:
        assert body["overwrite"] is True
        assert body["dashboard"] == {k: v for k, v in committed[body["dashboard"]["uid"]].items() if k != "id"}
    out = capsys.readouterr().out
    assert "created" in out and "/d/crossing-wall?kiosk" in out


def test_push_twice_updates_and_duplicates_nothing(grafana, env):
    fake, url = grafana
    env.setenv("GRAFANA_TOKEN", "t")
    assert _push(url) == 0
    first = len(fake.calls)
    assert _push(url, "http://127.0.0.1:9999") == 0
    second = fake.calls[first:]

    assert not [c for c in second if c["method"] == "POST" and c["path"] in ("/api/datasources", "/api/folders")]
    assert [c["path"] for c in second if c["method"] == "PUT"] == [f"/api/datasources/uid/{DATASOURCE_UID}"]
    assert len(fake.datasources) == 1 and fake.datasources[DATASOURCE_UID]["url"] == "http://127.0.0.1:9999"
    assert len(fake.folders) == 1
    assert set(fake.dashboards) == set(_committed())
    assert all(d["version"] == 2 for d in fake.dashboards.values())
    ids_after_second = {uid: d["id"] for uid, d in fake.dashboards.items()}
    assert len(set(ids_after_second.values())) == len(ids_after_second)


def test_user_and_password_come_from_the_environment(grafana, env):
    fake, url = grafana
    env.setenv("GRAFANA_USER", "admin")
    env.setenv("GRAFANA_PASSWORD", "s3cret")
    assert _push(url) == 0
    expected = "Basic " + base64.b64encode(b"admin:s3cret").decode()
    assert {c["auth"] for c in fake.calls} == {expected}


def test_no_credentials_or_credentials_in_the_url_are_refused(grafana, env, capsys):
    fake, url = grafana
    assert _push(url) == 2
    assert "GRAFANA_TOKEN" in capsys.readouterr().err
    env.setenv("GRAFANA_TOKEN", "t")
    assert _push(url.replace("http://", "http://admin:admin@")) == 2
    err = capsys.readouterr().err
    assert "credentials" in err and len(err.strip().splitlines()) == 1
    assert fake.calls == []


def test_a_foreign_data_source_with_our_name_is_not_overwritten(grafana, env, capsys):
    fake, url = grafana
    fake.datasources["other"] = {"uid": "other", "name": DATASOURCE_NAME, "type": "prometheus", "id": 99}
    env.setenv("GRAFANA_TOKEN", "t")
    assert _push(url) == 2
    assert "rename or delete it" in capsys.readouterr().err
    assert not [c for c in fake.calls if c["method"] in ("POST", "PUT")]


def test_unreachable_grafana_is_one_line(env, capsys):
    env.setenv("GRAFANA_TOKEN", "t")
    assert _push("http://127.0.0.1:1") == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
