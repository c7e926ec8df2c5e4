"""The patterns the OpenAPI document gives the pasted Karbon keys accept exactly what the
server's format check accepts, so a frontend checking inline never disagrees with it."""

import re

from hypothesis import example, given
from hypothesis import strategies as st

from app.sync.connection import format_errors, normalised
from app.tenancy.schemas import (
    PASTED_ACCESS_KEY_PATTERN,
    PASTED_BEARER_TOKEN_PATTERN,
    PastedCredentials,
)
from tests.tenancy.helpers import ACCESS_KEY, BEARER_TOKEN

_decorations = st.sampled_from(
    ["", " ", "\t", "{", "}", "Bearer ", "bearer  ", "BEARER", "x", "\n"]
)
_cores = st.sampled_from([ACCESS_KEY, BEARER_TOKEN, BEARER_TOKEN.upper(), "eyJ.a", "nope", ""])
_pasted = st.builds(
    lambda before, core, after: "".join(before) + core + "".join(after),
    st.lists(_decorations, max_size=3),
    _cores,
    st.lists(_decorations, max_size=3),
)


def _server_accepts(access_key: str, bearer_token: str) -> set[str]:
    pasted = PastedCredentials(access_key=access_key, bearer_token=bearer_token)
    refused = {error["field"] for error in format_errors(normalised(pasted))}
    return {"access_key", "bearer_token"} - refused


@given(_pasted, _pasted)
# A newline before a closing brace: Python's `$` matched before it, so the server kept the
# newline in the token it stored while the documented pattern refused the value.
@example(ACCESS_KEY, BEARER_TOKEN + "\n{")
@example(ACCESS_KEY + "\n", "{" + BEARER_TOKEN + "}\n")
def test_the_documented_patterns_agree_with_the_server(access_key: str, bearer_token: str) -> None:
    documented = {
        field
        for field, value, pattern in (
            ("access_key", access_key, PASTED_ACCESS_KEY_PATTERN),
            ("bearer_token", bearer_token, PASTED_BEARER_TOKEN_PATTERN),
        )
        if re.search(pattern, value)
    }
    assert documented == _server_accepts(access_key, bearer_token)


def test_the_patterns_are_in_the_schema() -> None:
    properties = PastedCredentials.model_json_schema()["properties"]
    assert properties["access_key"]["pattern"] == PASTED_ACCESS_KEY_PATTERN
    assert properties["bearer_token"]["pattern"] == PASTED_BEARER_TOKEN_PATTERN
