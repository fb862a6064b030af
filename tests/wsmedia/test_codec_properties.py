"""Property tests: decode's contract (an event or WsMediaProtocolError, nothing else) on
arbitrary and on mutated valid input, and decode(encode(e)) == e for every event."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.wsmedia import (
    Clear,
    Connected,
    Dtmf,
    Event,
    Hangup,
    Mark,
    Media,
    MediaFormat,
    Start,
    Stop,
    Transfer,
    TransferResult,
    WsMediaProtocolError,
    decode,
    encode,
)
from trunkline.wsmedia.events import DTMF_DIGITS

from .test_codec import DOCUMENTED, EXTENSIONS

FAST = settings(max_examples=150, deadline=None)

texts = st.text(max_size=24)
counters = st.none() | st.integers(min_value=0, max_value=10**20 - 1)
sids = st.text(max_size=40)

events: st.SearchStrategy[Event] = st.one_of(
    st.builds(Connected, texts, texts),
    st.builds(
        Start,
        stream_sid=sids,
        call_sid=sids,
        account_sid=sids,
        tracks=st.lists(texts, max_size=3).map(tuple),
        custom_parameters=st.dictionaries(texts, texts, max_size=4),
        media_format=st.builds(MediaFormat, texts, st.integers(), st.integers()),
        sequence_number=counters,
    ),
    st.builds(
        Media, sids, st.binary(max_size=400), st.none() | texts, counters, counters, counters
    ),
    st.builds(Dtmf, sids, st.sampled_from(sorted(DTMF_DIGITS)), texts, counters),
    st.builds(Mark, sids, texts, counters),
    st.builds(Clear, sids),
    st.builds(Stop, sids, sids, sids, counters),
    st.builds(Transfer, sids, texts),
    st.builds(TransferResult, sids, texts, st.booleans(), st.integers(-(2**63), 2**63), texts),
    st.builds(Hangup, sids, texts),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
EVENT_NAMES = sorted(
    {json.loads(text)["event"] for text, _ in DOCUMENTED + EXTENSIONS} | {"ring", ""}
)


def decodes_or_refuses(text: str | bytes) -> Event | None:
    """decode's whole contract: an event, or our protocol error; anything else fails."""
    try:
        return decode(text)
    except WsMediaProtocolError:
        return None


@FAST
@given(events)
def test_every_event_round_trips(event: Event) -> None:
    text = encode(event)
    assert text.isascii()
    assert decode(text) == event


@FAST
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    decodes_or_refuses(text)


@FAST
@given(st.binary())
def test_arbitrary_bytes(data: bytes) -> None:
    decodes_or_refuses(data)


@FAST
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    decodes_or_refuses(json.dumps(value))


@FAST
@given(st.sampled_from(EVENT_NAMES), st.dictionaries(st.text(max_size=16), json_values))
def test_arbitrary_objects_naming_a_real_event(name: str, fields: dict[str, Any]) -> None:
    decodes_or_refuses(json.dumps({**fields, "event": name}))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path into a JSON value, parents before children."""
    found = []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        root = root[key]
    return root


DOC_TEXTS = [text for text, _ in DOCUMENTED + EXTENSIONS]
_REMOVE = object()
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    10**30,
    1.5,
    "",
    "x",
    "-1",
    [],
    {},
    [1],
    {"a": 1},
]


def test_every_field_of_every_documented_message_removed_or_retyped() -> None:
    """Exhaustive over paths and a fixed set of JSON types (Hypothesis samples paths too
    sparsely to be sure of hitting, say, media.payload)."""
    refused = 0
    for text in DOC_TEXTS:
        for path in _paths(json.loads(text)):
            for value in [_REMOVE, *ODD_VALUES]:
                obj = json.loads(text)
                parent = _parent(obj, path)
                if value is _REMOVE:
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = value
                if decodes_or_refuses(json.dumps(obj)) is None:
                    refused += 1
    assert refused > 100  # the mutations do reach the checks


valid_texts = st.sampled_from([text for text, _ in DOCUMENTED + EXTENSIONS]) | events.map(encode)


@FAST
@given(valid_texts, st.data())
def test_valid_message_with_a_field_removed(text: str, data: st.DataObject) -> None:
    obj = json.loads(text)
    paths = _paths(obj)
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    parent = _parent(obj, path)
    del parent[path[-1]]
    decodes_or_refuses(json.dumps(obj))


@FAST
@given(valid_texts, st.data(), json_values)
def test_valid_message_with_a_field_retyped(text: str, data: st.DataObject, value: Any) -> None:
    obj = json.loads(text)
    paths = _paths(obj)
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    _parent(obj, path)[path[-1]] = value
    decodes_or_refuses(json.dumps(obj))


@FAST
@given(events, st.data())
def test_encoded_event_truncated_anywhere_is_refused(event: Event, data: st.DataObject) -> None:
    text = encode(event)
    cut = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    assert decodes_or_refuses(text[:cut]) is None


@FAST
@given(events, st.data())
def test_encoded_event_with_a_char_replaced(event: Event, data: st.DataObject) -> None:
    text = encode(event)
    at = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    char = data.draw(st.characters())
    decodes_or_refuses(text[:at] + char + text[at + 1 :])
