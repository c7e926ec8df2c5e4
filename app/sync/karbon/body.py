"""Decoding a Karbon response body into JSON that PostgreSQL can store.

PostgreSQL's text and jsonb hold neither the NUL character nor a lone UTF-16 surrogate, both
of which JSON allows (`"\\u0000"`, `"\\ud800"`, or a surrogate's bytes, which Python's decoder
lets through). One such character in a note or a name would make every write of its page
fail, on every run, so the sync could never get past it. Each is replaced with U+FFFD, the
Unicode replacement character, in keys and values alike; the rest of the body is kept as
Karbon sent it.
"""

import json
import logging
import re
from typing import Any

logger = logging.getLogger(__name__)

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# What such a character looks like in a body's bytes: escaped, or a surrogate's UTF-8 form
# (its first byte is shared with some Hangul, which then costs only a needless look). Searching
# for one byte is several times faster than for several, so escapes are looked for only in a
# body that has a backslash at all.
_ESCAPES = (b"\\u0000", b"\\ud", b"\\uD")


def _may_hold_unstorable(content: bytes) -> bool:
    if b"\xed" in content:
        return True
    return b"\\" in content and any(escape in content for escape in _ESCAPES)


def decode_json(content: bytes, *, url: str) -> Any:
    """The decoded body; raises ValueError when it is not JSON."""
    body = json.loads(content)
    if _may_hold_unstorable(content):
        storable = _storable(body)
        if storable != body:
            logger.warning(
                "Karbon sent characters PostgreSQL cannot store in %s; replaced with U+FFFD", url
            )
        return storable
    return body


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value
