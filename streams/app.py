"""The module `faust -A streams.app worker` loads: its `app`, built from the environment.

The only module of `streams` that builds anything at import; everything else (and
`crossing-monitor worker`) goes through `streams.factory.create_app`.
"""

from streams.factory import create_app_from_env

app = create_app_from_env()
app.stop_deadline = app.settings.stop_seconds  # this process is the worker: its stop is bounded
