"""Messages that a careless gateway sends, and the valid events among them, for record and analyze tests."""

from __future__ import annotations

import orjson
from eventlog import crossing, event
from eventlog import lines as event_lines

from crossing_monitor.logs.files import GZIP_MAGIC

VALID = event_lines(
    crossing("t1", "2024-05-01T08:00:00+08:00", "2024-05-01T08:10:00+08:00", "2024-05-01T08:40:00+08:00")
    + crossing("t2", "2024-05-01T08:05:00+08:00", "2024-05-01T08:20:00+08:00", None, port="lektse")
)
PRETTY = orjson.dumps(
    event("gate.exited", "2024-05-01T09:00:00+08:00", "t3", cargo_tonnes=12.5), option=orjson.OPT_INDENT_2
)
TRICKY = [
    PRETTY,  # a valid event over several lines: counted
    b"\n" + VALID[0] + b"\n",  # a resend of a valid event, wrapped in newlines: a duplicate
    None,  # a tombstone: malformed
    b"",  # an empty value: malformed
    b"  \t\r\x0b",  # blank: malformed (analyze would skip a blank line)
    VALID[1] + b"\n" + VALID[2],  # two events in one message: malformed, not two events
    b'{"event_id": "x\nsplit", "port": "khorgos"}',  # a raw newline inside a string: malformed
    GZIP_MAGIC + b"\x08\x00binary",  # looks like gzip: malformed, and must not make the log look gzipped
    b"back\\slash\n\\n",  # escapes of the escape
    b"!tombstone",  # a message that is the tombstone marker: malformed, like the tombstone
    b"[1,\n2]",  # JSON, but not an object
]
