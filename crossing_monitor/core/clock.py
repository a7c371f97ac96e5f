"""Event time in a port's time zone: calendar days, local instants and their RFC 3339 text."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

SECOND = 1_000_000
_QUARTER_HOUR = 900 * SECOND


class DayClock:
    """Event time → calendar day in one time zone; cached per quarter hour (offsets change on those)."""

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)
        self._days: dict[int, str] = {}

    def day(self, ts: int) -> str:
        quarter = ts // _QUARTER_HOUR
        found = self._days.get(quarter)
        if found is None:
            if len(self._days) > 100_000:
                self._days.clear()
            found = self._days[quarter] = datetime.fromtimestamp(quarter * 900, self.tz).date().isoformat()
        return found

    def names(self, first: int, count: int) -> list[str]:
        """The days `day` names for `count` quarter hours from quarter `first` (ts // 15 min) on: the
        compiled fold asks for a day's worth at once (a call from it costs more than naming a quarter)."""
        tz = self.tz
        return [datetime.fromtimestamp(q * 900, tz).date().isoformat() for q in range(first, first + count)]

    def local(self, ts: int) -> datetime:
        seconds, micros = divmod(ts, SECOND)
        return datetime.fromtimestamp(seconds, self.tz).replace(microsecond=micros)

    def day_start(self, day: str) -> float:
        """Unix time (seconds) of local midnight starting `day`."""
        return datetime.combine(date.fromisoformat(day), time(0), self.tz).timestamp()


def format_ts(local: datetime) -> str:
    """RFC 3339 with the offset, and only as many fraction digits as the instant needs."""
    micros = local.microsecond
    spec = "seconds" if micros == 0 else "milliseconds" if micros % 1000 == 0 else "microseconds"
    return local.isoformat(timespec=spec)
