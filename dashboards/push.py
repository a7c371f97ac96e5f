"""`crossing-monitor dashboards push`: put the data source and the committed dashboards into Grafana.

Idempotent: the data source is found by its uid and updated in place, the dashboards are posted
with `overwrite` under fixed uids, so pushing twice leaves one copy of each. Credentials come
from the environment only (GRAFANA_TOKEN, or GRAFANA_USER and GRAFANA_PASSWORD): a token on the
command line would end up in the shell history and in `ps`.
"""

from __future__ import annotations

import argparse
import json
import os
from importlib import resources
from typing import Any
from urllib.parse import urlparse

from crossing_monitor.errors import UserError
from dashboards.grafana import DATASOURCE_NAME, DATASOURCE_UID

FOLDER_UID = "crossing-monitor"
FOLDER_TITLE = "Crossing monitor"
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"


def committed_dashboards() -> dict[str, dict[str, Any]]:
    """The dashboards as committed under dashboards/json (file name → dashboard)."""
    folder = resources.files("dashboards").joinpath("json")
    found = {
        entry.name: json.loads(entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".json")
    }
    if not found:
        raise UserError("no dashboards found in the dashboards/json folder of the installation")
    return found


def datasource_body(prometheus_url: str) -> dict[str, Any]:
    """The Prometheus data source the dashboards refer to by uid."""
    return {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": "prometheus",
        "access": "proxy",
        "url": prometheus_url,
        "isDefault": False,
        "jsonData": {"httpMethod": "POST", "timeInterval": "10s"},
    }


def credential_from_env(env: dict[str, str] | os._Environ[str] = os.environ) -> str | tuple[str, str]:
    """GRAFANA_TOKEN, else (GRAFANA_USER, GRAFANA_PASSWORD)."""
    token = env.get("GRAFANA_TOKEN")
    if token:
        return token
    user, password = env.get("GRAFANA_USER"), env.get("GRAFANA_PASSWORD")
    if user and password:
        return (user, password)
    raise UserError("set GRAFANA_TOKEN, or GRAFANA_USER and GRAFANA_PASSWORD, in the environment")


def _api(grafana_url: str) -> Any:
    from grafana_client import GrafanaApi

    parsed = urlparse(grafana_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UserError(f"--grafana-url must be an http(s) URL, not {grafana_url!r}")
    if parsed.username or parsed.password:
        raise UserError("do not put credentials in --grafana-url; use GRAFANA_TOKEN or GRAFANA_USER/GRAFANA_PASSWORD")
    return GrafanaApi.from_url(grafana_url, credential=credential_from_env(), timeout=10.0)


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "status_code", None) == 404


def ensure_datasource(api: Any, prometheus_url: str) -> str:
    """Create or update the data source; says which."""
    body = datasource_body(prometheus_url)
    try:
        api.datasource.get_datasource_by_uid(DATASOURCE_UID)
    except Exception as exc:
        if not _not_found(exc):
            raise
    else:
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, body)
        return "updated"
    try:
        other = api.datasource.get_datasource_by_name(DATASOURCE_NAME)
    except Exception as exc:
        if not _not_found(exc):
            raise
    else:
        raise UserError(
            f"Grafana already has a data source named {DATASOURCE_NAME!r} with uid {other.get('uid')!r}; "
            f"rename or delete it (the dashboards use uid {DATASOURCE_UID!r})"
        )
    api.datasource.create_datasource(body)
    return "created"


def ensure_folder(api: Any) -> None:
    try:
        api.folder.get_folder(FOLDER_UID)
    except Exception as exc:
        if not _not_found(exc):
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)


def push(api: Any, prometheus_url: str) -> list[str]:
    """Everything a push does; returns one line per object for the operator."""
    lines = [f"data source {DATASOURCE_NAME!r} ({prometheus_url}): {ensure_datasource(api, prometheus_url)}"]
    ensure_folder(api)
    for name, dashboard in committed_dashboards().items():
        dashboard = {k: v for k, v in dashboard.items() if k != "id"}
        answer = api.dashboard.update_dashboard(
            {
                "dashboard": dashboard,
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "crossing-monitor dashboards push",
            }
        )
        url = answer.get("url", f"/d/{dashboard['uid']}") if isinstance(answer, dict) else f"/d/{dashboard['uid']}"
        lines.append(f"dashboard {dashboard['title']!r} ({name}): {url}")
    return lines


def main(args: argparse.Namespace) -> int:
    """Handler of `crossing-monitor dashboards push`."""
    import niquests
    from grafana_client.client import GrafanaException

    api = _api(args.grafana_url)
    try:
        lines = push(api, args.prometheus_url)
    except GrafanaException as exc:
        status = f" (HTTP {exc.status_code})" if exc.status_code else ""
        raise UserError(f"Grafana at {args.grafana_url} refused{status}: {exc.message}".splitlines()[0]) from None
    except niquests.exceptions.RequestException as exc:
        raise UserError(f"cannot reach Grafana at {args.grafana_url}: {type(exc).__name__}") from None
    for line in lines:
        print(line)
    base = args.grafana_url.rstrip("/")
    print(f"wall display: {base}/d/crossing-wall?kiosk")
    return 0
