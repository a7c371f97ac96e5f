"""The one error type that ends a command with a single line for the operator, not a traceback.

Library code (producers, the Kafka helpers, the dashboards) raises it for what the person running
the command can act on: a bad argument, an unreachable broker, a file that cannot be written. The
command line (`crossing_monitor.cli`) prints it and exits 2.
"""

from __future__ import annotations

import os


class UserError(Exception):
    """Something the person running the command must fix: printed as one line, exit code 2."""


def env_choice(var: str, choices: tuple[str, ...]) -> str:
    """Environment variable `var` as one of `choices` (case aside; unset or blank: the first). Any other
    value is a UserError naming those it may take, rather than a setting silently ignored."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return choices[0]
    if raw.lower() not in choices:
        raise UserError(f"{var}={raw!r}: say {' or '.join(choices)} (unset: {choices[0]})")
    return raw.lower()
