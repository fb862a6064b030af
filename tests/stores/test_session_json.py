"""Session.to_json / from_json: round trips, and garbage only ever raises SessionFormatError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.runtime.stores.session import SESSION_FORMAT, Session, SessionFormatError

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12,
)
json_object = st.dictionaries(st.text(max_size=8), json_value, max_size=5)

sessions = st.builds(
    Session,
    call_id=st.text(min_size=1, max_size=40),
    agent=st.text(max_size=20),
    tenant=st.text(max_size=20),
    flow_state=st.none() | st.text(max_size=20),
    slots=json_object,
    transcript=st.lists(json_object, max_size=5),
    pending_tool=st.none() | json_object,
    sip_dialog=st.none() | json_object,
    version=st.integers(min_value=1, max_value=2**53),
    updated_at=st.floats(min_value=0, max_value=4e9),
)


@settings(max_examples=80, deadline=None)
@given(sessions)
def test_round_trip(session: Session) -> None:
    data = session.to_json()
    assert Session.from_json(data) == session
    assert Session.from_json(data).to_json() == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_format_error(data: bytes) -> None:
    try:
        Session.from_json(data)
    except SessionFormatError:
        pass


@settings(max_examples=60, deadline=None)
@given(sessions, st.data())
def test_truncated_or_mutated_raises_format_error_only(
    session: Session, data: st.DataObject
) -> None:
    encoded = session.to_json()
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(SessionFormatError):
        Session.from_json(encoded[:cut])
    pos = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    mutated = encoded[:pos] + bytes([data.draw(st.integers(0, 255))]) + encoded[pos + 1 :]
    try:
        Session.from_json(mutated)
    except SessionFormatError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["format", "call_id", "agent", "tenant", "flow_state", "slots",
                     "transcript", "pending_tool", "sip_dialog", "version", "updated_at"]),
    json_value,
))
def test_wrong_field_types_raise_format_error(doc: dict[str, Any]) -> None:
    doc = {"format": SESSION_FORMAT, **doc}
    try:
        Session.from_json(json.dumps(doc).encode())
    except SessionFormatError:
        pass


def test_unknown_format_is_a_clear_error() -> None:
    doc = json.loads(Session(call_id="c", agent="a").to_json())
    doc["format"] = SESSION_FORMAT + 1
    with pytest.raises(SessionFormatError, match=rf"format {SESSION_FORMAT + 1} is not supported"):
        Session.from_json(json.dumps(doc).encode())
    del doc["format"]
    with pytest.raises(SessionFormatError, match="format None"):
        Session.from_json(json.dumps(doc).encode())


@pytest.mark.parametrize(
    ("field", "value"),
    [("version", 0), ("version", True), ("version", 1.5), ("slots", []), ("call_id", 5),
     ("transcript", ["not an object"]), ("updated_at", "now"), ("updated_at", 10**400)],
)
def test_specific_bad_fields(field: str, value: Any) -> None:
    doc = json.loads(Session(call_id="c", agent="a").to_json())
    doc[field] = value
    with pytest.raises(SessionFormatError):
        Session.from_json(json.dumps(doc).encode())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), b"bytes", {1, 2}, object()])
def test_non_json_values_refused_at_encode(bad: Any) -> None:
    with pytest.raises(SessionFormatError, match="not JSON"):
        Session(call_id="c", agent="a", slots={"x": bad}).to_json()


def test_lone_surrogate_text_round_trips() -> None:
    session = Session(call_id="c", agent="a", transcript=[{"role": "caller", "text": "\ud800x"}])
    assert Session.from_json(session.to_json()) == session
