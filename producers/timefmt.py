"""Event-time stamps as SPEC §1 wants them: RFC 3339, milliseconds, the port's own offset.

Formatting a datetime per event is the simulator's most expensive step, so the text is built
once per minute (date, hour, minute and offset) and the seconds and milliseconds come from a
table of all 60,000 `SS.mmm`. A minute's text comes from its hour's when the offset is whole
hours and the same all hour long (every zone of the shipped catalogue), so datetime is asked once
an hour, not once a minute.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

_CACHE_SIZE = 4096
_SECONDS: list[str] = []  # `SS.mmm` for each millisecond of a minute, made on first use


def _seconds() -> list[str]:
    if not _SECONDS:
        millis = [f"{ms:03d}" for ms in range(1000)]  # two small tables joined: a tenth of the time of
        _SECONDS.extend(s + ms for s in [f"{s:02d}." for s in range(60)] for ms in millis)  # 60,000 formats
    return _SECONDS


class TimestampFormatter:
    """Epoch milliseconds → `2023-09-27T08:15:02.123+08:00` in one time zone.

    A caller formatting millions of stamps may inline `__call__`: `minutes.get(ms // 60_000) or
    minute(ms // 60_000)` gives the minute's (prefix, offset), `seconds[ms % 60_000]` the rest."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.minutes: dict[int, tuple[str, str]] = {}  # the cache of minute(), by epoch minute
        self._hours: dict[int, tuple[str, str] | None] = {}
        self.seconds = _seconds()

    def _hour(self, hour: int) -> tuple[str, str] | None:
        """`2023-09-27T08:` and the offset, when every minute of this UTC hour is that local hour
        with that offset; None when the offset is not whole hours or changes within the hour."""
        first = datetime.fromtimestamp(hour * 3600, self.tz)
        last = datetime.fromtimestamp(hour * 3600 + 3540, self.tz)
        found = None
        if first.minute == first.second == 0 and first.utcoffset() == last.utcoffset():
            text = first.isoformat(timespec="seconds")  # 2023-09-27T08:00:00+08:00
            found = (text[:14], text[19:])
        if len(self._hours) >= _CACHE_SIZE:
            self._hours.clear()
        self._hours[hour] = found
        return found

    def minute(self, minute: int) -> tuple[str, str]:
        """`2023-09-27T08:15:` and the offset `+08:00` for the epoch minute `minute` (cached)."""
        hour, into = divmod(minute, 60)
        whole = self._hours.get(hour, False)
        if whole is False:
            whole = self._hour(hour)
        if whole is not None:
            parts = (f"{whole[0]}{into:02d}:", whole[1])
        else:
            text = datetime.fromtimestamp(minute * 60, self.tz).isoformat(timespec="seconds")
            parts = (text[:17], text[19:])
        if len(self.minutes) >= _CACHE_SIZE:
            self.minutes.clear()
        self.minutes[minute] = parts
        return parts

    def __call__(self, ms: int) -> str:
        minute = ms // 60_000
        parts = self.minutes.get(minute) or self.minute(minute)
        return f"{parts[0]}{self.seconds[ms % 60_000]}{parts[1]}"
