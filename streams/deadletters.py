"""Dead letters (SPEC §2) that always fit in their topic: the payload is cut, never the facts.

A rejected record's payload is escaped in the letter's JSON, and escaping can make it six times
larger (a control byte becomes `\\u0001`): a 900 KB record can grow past the dead-letter topic's
1 MB limit, and a letter Kafka refuses is a lost letter. So when the encoded letter would exceed
the limit, the payload is cut to the longest prefix that fits, and the letter says so with the
payload's full length and SHA-256; reason, detail and source position are never cut. Pure: no
Faust, no Kafka, so the worker and tests build letters the same way.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import orjson

# The broker's default max.message.bytes is 1,048,588 for a whole record batch; this leaves room
# for the batch and record headers around one letter's key and value.
LIMIT = 1_000_000


def dead_letter(
    topic: str, partition: int, offset: int, raw: bytes, reason: str, detail: str, limit: int = LIMIT
) -> tuple[bytes, bytes]:
    """(key, value) of the dead letter for the record at topic/partition/offset; len(key + value) <= limit.

    The payload is the record's text when it is UTF-8; otherwise that text with replacement
    characters (for people) and `payload_base64`, the exact bytes (for machines).
    """
    key = f"{topic}/{partition}/{offset}".encode()
    head: dict[str, Any] = {
        "reason": reason,
        "detail": detail,
        "topic": topic,
        "partition": partition,
        "offset": offset,
    }
    room = limit - len(key)
    encode = _utf8 if _is_utf8(raw) else _bytes
    whole = encode(head, raw, len(raw))
    if len(whole) <= room:
        return key, whole
    cut = {
        **head,
        "payload_bytes": len(raw),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
        "payload_truncated": True,
    }
    if len(encode(cut, raw, 0)) > room:
        cut = _cut_detail(cut, encode, room)
    lo, hi = 0, len(raw)  # the longest prefix that fits: lo fits, hi + 1 does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(encode(cut, raw, mid)) <= room:
            lo = mid
        else:
            hi = mid - 1
    return key, encode(cut, raw, lo)


Encoder = Callable[[dict[str, Any], bytes, int], bytes]


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _utf8(head: dict[str, Any], raw: bytes, n: int) -> bytes:
    """The letter with the first `n` bytes of a UTF-8 payload (a character cut in two is left out)."""
    return orjson.dumps({**head, "payload": raw[:n].decode("utf-8", errors="ignore")})


def _bytes(head: dict[str, Any], raw: bytes, n: int) -> bytes:
    """The letter with the first `n` bytes of a payload that is not UTF-8: readable text and exact bytes."""
    prefix = raw[:n]
    text = prefix.decode("utf-8", errors="replace")
    return orjson.dumps({**head, "payload": text, "payload_base64": base64.b64encode(prefix).decode()})


def _cut_detail(cut: dict[str, Any], encode: Encoder, room: int) -> dict[str, Any]:
    """The one case where the detail is cut: alone it is larger than the limit, and a letter must fit."""
    detail = cut["detail"]
    lo, hi = 0, len(detail)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(encode({**cut, "detail": detail[:mid], "detail_truncated": True}, b"", 0)) <= room:
            lo = mid
        else:
            hi = mid - 1
    shorter = {**cut, "detail": detail[:lo], "detail_truncated": True}
    if len(encode(shorter, b"", 0)) > room:
        raise ValueError(f"no dead letter of {cut['topic']}/{cut['partition']}/{cut['offset']} fits in {room} bytes")
    return shorter
