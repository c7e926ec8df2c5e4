"""Karbon bodies decode to JSON PostgreSQL can store, and otherwise exactly as sent."""

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.sync.karbon.body import REPLACEMENT, decode_json


def _unstorable(character: str) -> bool:
    return character == "\x00" or 0xD800 <= ord(character) <= 0xDFFF


SPECIAL = "\x00\ud800\udbff\udc00\udfff\ud55c\\"
"""NUL, lone surrogates, a character whose UTF-8 form starts like a surrogate's, a backslash."""


def bodies(special: str) -> st.SearchStrategy[Any]:
    # Any code point, surrogates included (Hypothesis leaves them out by default), mixed with
    # many of the special characters: one NUL anywhere changes how the whole body is read.
    # (A list of characters, not st.text: st.text draws the special ones too rarely.)
    character = st.sampled_from(special) | st.characters(exclude_categories=())
    texts = st.lists(character, min_size=1).map("".join)
    return st.recursive(
        texts | st.none() | st.integers(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
        max_leaves=20,
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (key, *_strings(item))]
    return []


def _replaced(value: Any) -> Any:
    """What the decoder should give: the same structure, each such character replaced."""
    if isinstance(value, str):
        return "".join(REPLACEMENT if _unstorable(c) else c for c in value)
    if isinstance(value, list):
        return [_replaced(item) for item in value]
    if isinstance(value, dict):
        return {_replaced(key): _replaced(item) for key, item in value.items()}
    return value


@given(st.sampled_from([SPECIAL, SPECIAL.replace("\x00", "")]).flatmap(bodies), st.booleans())
def test_decoded_bodies_hold_only_storable_text_and_nothing_else_changes(
    body: Any, ascii_only: bool
) -> None:
    content = json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    decoded = decode_json(content, url="https://karbon.example/v3/Users")
    assert not any(_unstorable(c) for s in _strings(decoded) for c in s)
    # What JSON means by the body (an escaped surrogate pair is one character), then each
    # character PostgreSQL cannot store replaced.
    assert decoded == _replaced(json.loads(content))
