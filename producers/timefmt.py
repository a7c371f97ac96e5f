"""Event-time stamps as SPEC §1 wants them: RFC 3339, milliseconds, the port's own offset.

Formatting a datetime per event is the simulator's most expensive step, so the text is built
once per minute (date, hour, minute and offset) and only seconds and milliseconds are added.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

_CACHE_SIZE = 4096


class TimestampFormatter:
    """Epoch milliseconds → `2023-09-27T08:15:02.123+08:00` in one time zone."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._minutes: dict[int, tuple[str, str]] = {}

    def _minute(self, minute: int) -> tuple[str, str]:
        local = datetime.fromtimestamp(minute * 60, self.tz)
        text = local.isoformat(timespec="seconds")  # 2023-09-27T08:15:00+08:00
        if len(self._minutes) >= _CACHE_SIZE:
            self._minutes.clear()
        found = self._minutes[minute] = (text[:17], text[19:])
        return found

    def __call__(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        parts = self._minutes.get(minute) or self._minute(minute)
        seconds, millis = divmod(rest, 1000)
        return f"{parts[0]}{seconds:02d}.{millis:03d}{parts[1]}"
