"""Routing calls to agents by dialled number or name (pure: strings in, targets out)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.runtime.routing import (
    Route,
    Router,
    RoutingError,
    call_key,
    normalize,
    parse_agent_option,
    sip_keys,
    ws_keys,
)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("1001", "1001"),
        ("+1 (555) 010-0100", "+15550100100"),
        ("555.0100", "5550100"),
        ("*98", "*98"),
        ("Sales", "sales"),
        ("sales-desk", "sales-desk"),
        ("%2B15550100", "+15550100"),  # RFC 3261 §19.1.2 escapes are decoded
        ("", None),
        ("+", None),
        ("a b", None),
        ("has/slash", None),
        ("café", None),
        ("9" * 65, None),
    ],
)
def test_normal_form(text: str, key: str | None) -> None:
    assert normalize(text) == key


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("sip:1001@127.0.0.1:5060;transport=tcp", "1001"),
        ('"Bob" <sip:Sales@example.com>;tag=abc', "sales"),
        ("<sips:+1-555-0100@example.com>", "+15550100"),
        ("tel:+1-555-0100", "+15550100"),
        ("+15550100", "+15550100"),
        ("sip:example.com", None),  # no user part
        ("mailto:x@example.com", None),  # a scheme we do not route on
        ("<sip:broken", None),
        ("   ", None),
        (None, None),
    ],
)
def test_call_key(text: str | None, key: str | None) -> None:
    assert call_key(text) == key


def test_sip_keys_prefer_the_request_uri() -> None:
    assert sip_keys("sip:1001@h", "<sip:2002@h>") == ["1001", "2002"]
    assert sip_keys("not a uri", "<sip:2002@h>") == [None, "2002"]


def test_ws_keys_prefer_the_path() -> None:
    assert ws_keys("1001", {"to": "+1 555 0100"}) == ["1001", "+15550100"]
    assert ws_keys(None, {}) == [None, None]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("agent.yaml", (None, "agent.yaml")),
        ("1001=billing.yaml", ("1001", "billing.yaml")),
        ("+1-555-0100=sales.yaml", ("+15550100", "sales.yaml")),
        ("Sales=a=b.yaml", ("sales", "a=b.yaml")),  # the first '=' ends MATCH
    ],
)
def test_agent_option(text: str, parsed: tuple[str | None, str]) -> None:
    assert parse_agent_option(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "needs a spec file"),
        ("=agent.yaml", "nothing before '='"),
        ("1001=", "no spec file after '='"),
        ("sales desk=a.yaml", "neither a number"),
        ("dir/x=a.yaml", "neither a number"),
    ],
)
def test_bad_agent_options(text: str, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        parse_agent_option(text)


def test_select_by_precedence_then_default() -> None:
    router = Router([Route(None, "main"), Route("1001", "billing"), Route("sales", "sales")])
    assert router.select(["1001", "sales"]) == "billing"
    assert router.select([None, "sales"]) == "sales"
    assert router.select(["9999", None]) == "main"
    assert router.default == "main"
    assert router.matches == ["1001", "sales"]
    assert router.target("sales") == "sales"


def test_without_a_default_unmatched_calls_get_none() -> None:
    router = Router([Route("1001", "a"), Route("2002", "b")])
    assert router.select(["2002"]) == "b"
    assert router.select(["3003", None]) is None


def test_single() -> None:
    assert Router.single("only").select([None]) == "only"


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ([], "no agent"),
        ([Route(None, "a", "a.yaml"), Route(None, "b", "b.yaml")], r"two agents without MATCH"),
        ([Route("1", "a", "a.yaml"), Route("1", "b", "b.yaml")], r"'1' is given twice"),
        ([Route("Sales", "a")], "not in normal form"),
    ],
)
def test_bad_route_sets(routes: list[Route[str]], message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        Router(routes)


def test_duplicate_message_names_both_files() -> None:
    with pytest.raises(RoutingError) as exc:
        Router([Route("1", "a", "1=a.yaml"), Route("1", "b", "1=b.yaml")])
    assert "1=a.yaml" in str(exc.value) and "1=b.yaml" in str(exc.value)


@given(st.text(max_size=80))
def test_call_key_never_raises_and_is_idempotent(text: str) -> None:
    key = call_key(text)
    if key is not None:
        assert normalize(key) == key
