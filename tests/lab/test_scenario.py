"""Scenario files: the model, every load error with its line, the loader, and planning."""

from __future__ import annotations

import pathlib
import textwrap

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trunkline.lab.impairment_spec import (
    Codec,
    ImpairmentSpec,
    JitterSpec,
    LossModel,
    LossSpec,
    NoiseKind,
    NoiseSpec,
)
from trunkline.lab.scenario import (
    BargeInTurn,
    DtmfTurn,
    HangupTurn,
    ListenTurn,
    PersonaSpec,
    ReplyExpectation,
    SayTurn,
    Scenario,
    ScenarioError,
    SilenceTurn,
    UrlCheck,
)
from trunkline.lab.scenario_build import load_scenarios, parse_scenarios
from trunkline.lab.scenario_plan import (
    MIN_CALL_LIMIT_S,
    OVERRUN_FACTOR,
    choose_scenario,
    derive_seed,
    fill_template,
    plan_call,
    script_for,
)
from trunkline.lab.script import BargeIn, HangUp, Listen, Press, Say, Silence

FULL = """\
name: full-example
description: Every kind of turn.
weight: 2.5
transport: {kind: ws, caller: "+15550001111", params: {tier: gold}}
persona: {voice: en-gb+f3, rate: 150, pitch: 60, gap_ms: [200, 900]}
vars:
  crm: http://127.0.0.1:8089
reply_timeout_s: 12
turns:
  - wait_for_agent: {timeout_s: 9}
    expect: [thank you for calling]
  - say: {variants: [order status, check my order, where is my order, track my order]}
    expect: {contains: order number, matches: "five digit"}
  - dtmf: "12345#"
    inter_digit_ms: 120
  - say: "no"
    wait_for_agent: false
  - silence: 7.5
    expect: didn't hear
  - barge_in: {after_ms: 800, say: agent}
  - hangup: {}
expect:
  transfer: {target: "sip:agent@127.0.0.1"}
  hangup_by: caller
  max_duration_s: 90
  check_url:
    - url: "{crm}/orders/12345?call={call_id}&s={scenario}"
      path: status
      equals: shipped
    - url: "http://127.0.0.1:8080/calls/{call_id}"
      status: 404
impairment:
  noise: {kind: pink, snr_db: 15}
  loss: {model: gilbert_elliott, p: 0.02, r: 0.4}
  jitter: {ms: 30, reorder_pct: 1}
  drift: {ppm: -40}
  level: {db: -6}
  codec: pcma
"""


def load(text: str, **kw: object) -> list[Scenario]:
    return parse_scenarios(textwrap.dedent(text).lstrip("\n"), "s.yaml", **kw)  # type: ignore[arg-type]


def issues(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ScenarioError) as info:
        load(text)
    assert all(source == "s.yaml" for source, _ in info.value.problems)
    return [(i.line, i.path, i.message) for _, i in info.value.problems]


# --- the happy path -------------------------------------------------------------------


def test_full_scenario_loads_into_the_model() -> None:
    [s] = parse_scenarios(FULL, "full.yaml")
    assert (s.name, s.description, s.weight, s.line, s.source) == (
        "full-example", "Every kind of turn.", 2.5, 1, "full.yaml",
    )  # fmt: skip
    assert s.transport.kind == "ws" and s.transport.caller == "+15550001111"
    assert dict(s.transport.params or {}) == {"tier": "gold"}
    assert s.persona == PersonaSpec("en-gb+f3", 150, 60, (200, 900))
    assert s.reply_timeout_s == 12.0 and dict(s.variables) == {"crm": "http://127.0.0.1:8089"}
    assert s.turns == (
        ListenTurn(9.0, ReplyExpectation(("thank you for calling",)), 10),
        SayTurn(
            ("order status", "check my order", "where is my order", "track my order"),
            True, ReplyExpectation(("order number",), "five digit"), 12,
        ),
        DtmfTurn("12345#", 120, True, None, 14),
        SayTurn(("no",), False, None, 16),
        SilenceTurn(7.5, ReplyExpectation(("didn't hear",)), 18),
        BargeInTurn(800, ("agent",), None, 20),
        HangupTurn(True, 21),
    )  # fmt: skip
    assert [t.kind for t in s.turns] == [
        "listen", "say", "dtmf", "say", "silence", "barge_in", "hangup",
    ]  # fmt: skip
    e = s.expect
    assert (e.transfer, e.transfer_target, e.hangup_by, e.max_duration_s) == (
        True, "sip:agent@127.0.0.1", "caller", 90.0,
    )  # fmt: skip
    assert e.checks == (
        UrlCheck("{crm}/orders/12345?call={call_id}&s={scenario}", 200, "status", "shipped", 27),
        UrlCheck("http://127.0.0.1:8080/calls/{call_id}", 404, "", None, 30),
    )
    assert s.impairment == ImpairmentSpec(
        noise=NoiseSpec(NoiseKind.PINK, 15.0),
        loss=LossSpec(LossModel.GILBERT_ELLIOTT, p=0.02, r=0.4, h=0.0, k=1.0),
        jitter=JitterSpec(30.0, 1.0),
        drift_ppm=-40.0,
        level_db=-6.0,
        codec=Codec.PCMA,
    )
    assert not s.impairment.is_clean and s.impairment_ref is None


def test_defaults_and_short_forms() -> None:
    [s] = load(
        """
        name: short
        turns:
          - say: hello
          - dtmf: "1"
          - wait_for_agent: true
          - wait_for_agent:
          - hangup
        expect: {transfer: "sip:desk@127.0.0.1"}
        impairment: {loss: {percent: 3}}
        """
    )
    assert s.weight == 1.0 and s.persona == PersonaSpec() and s.reply_timeout_s is None
    assert s.transport.kind is None and s.impairment_ref is None
    assert s.turns[1] == DtmfTurn("1", 250, True, None, 4)
    assert s.turns[2] == ListenTurn(15.0, None, 5) and s.turns[3] == ListenTurn(15.0, None, 6)
    assert s.turns[4] == HangupTurn(True, 7)
    assert (s.expect.transfer, s.expect.transfer_target) == (True, "sip:desk@127.0.0.1")
    assert s.impairment == ImpairmentSpec(loss=LossSpec(LossModel.RANDOM, percent=3.0))


def test_a_file_may_hold_a_list_and_gap_forms() -> None:
    got = load(
        """
        - name: a
          persona: {gap_ms: 300}
          turns: [{say: hi}]
        - name: b
          persona: {gap_ms: {min: 100, max: 200}}
          transport: sip
          turns: [{say: hi}]
          impairment: {codec: pcmu}
        """
    )
    assert [s.name for s in got] == ["a", "b"]
    assert got[0].persona.gap_ms == (300, 300) and got[1].persona.gap_ms == (100, 200)
    assert got[1].transport.kind == "sip" and got[1].line == 4
    assert got[1].impairment == ImpairmentSpec(codec=Codec.PCMU)
    assert got[1].impairment.is_clean  # a codec alone impairs nothing


def test_impairment_presets_are_resolved_by_name() -> None:
    text = "name: n\nturns: [{say: hi}]\nimpairment: street\n"
    [unresolved] = parse_scenarios(text)
    assert (unresolved.impairment, unresolved.impairment_ref) == (None, "street")
    street = ImpairmentSpec(noise=NoiseSpec(NoiseKind.BABBLE, 5.0))
    [resolved] = parse_scenarios(text, impairments={"street": street})
    assert (resolved.impairment, resolved.impairment_ref) == (street, "street")
    with pytest.raises(ScenarioError) as info:
        parse_scenarios(text, "p.yaml", impairments={"quiet": ImpairmentSpec()})
    assert str(info.value).splitlines()[1] == (
        "p.yaml:3: impairment: no impairment preset named 'street'; known: quiet"
    )
    with pytest.raises(ValueError, match="was not resolved"):
        plan_call(unresolved, 1)


# --- errors, each with its line ---------------------------------------------------------


def test_every_field_error_is_reported_with_its_line() -> None:
    got = issues(
        """
        name: "bad name!"
        weight: 0
        persona: {voice: "EN US", rate: 900, pitch: high, gap_ms: [900, 100], tone: 3}
        transport: {kind: pstn}
        turns:
          - say: ""
          - say: {variants: []}
          - dtmf: 1234
          - dtmf: "12x"
            inter_digit_ms: -5
          - silence: 0
          - silence: forever
          - barge_in: {say: hi}
          - wait_for_agent: {timeout_s: 0.1}
          - say: hi
            dtmf: "1"
          - say: hi
            wait_for_agent: maybe
          - say: hi
            expect: {matches: "(unclosed"}
          - say: hi
            expect: {}
          - say: hi
            expext: typo
          - hangup: now
          - say: after hangup
        expect:
          hangup_by: nobody
          max_duration_s: 0
          check_url:
            - url: "ftp://example.com/x"
            - url: "http://127.0.0.1/{nope}"
            - {url: "http://127.0.0.1/x", equals: 3}
            - {url: "http://127.0.0.1/x", path: "a..b", status: 700}
        impairment:
          noise: {kind: brown, snr_db: 200}
          loss: {model: gilbert_elliott, p: 0.1, r: 0}
          jitter: {ms: -1}
          drift: 50
          codec: g729
        """
    )
    assert got == [
        (1, "name", "'bad name!': use letters, digits, '_', '-' or '.' (64 at most)"),
        (2, "weight", "weight must be above 0 (remove the scenario to disable it)"),
        (3, "persona.gap_ms", "min 900 is above max 100"),
        (3, "persona.pitch", "expected a whole number, got text"),
        (3, "persona.rate", "900 is out of range 80..450"),
        (3, "persona.tone", "unknown field; expected one of gap_ms, pitch, rate, voice"),
        (3, "persona.voice", "'EN US' is not an espeak-ng voice name (e.g. en-us, en+f3)"),
        (4, "transport.kind", "unknown transport 'pstn'; expected one of sip, ws"),
        (6, "turns[0].say", "nothing to say: the text has no words"),
        (7, "turns[1].say.variants", "needs at least one variant"),
        (8, "turns[2].dtmf", 'write keys in quotes, e.g. dtmf: "1234" (a bare number loses zeros)'),
        (9, "turns[3].dtmf", "'12x' is not a key sequence (0-9, *, #, A-D; 64 at most)"),
        (10, "turns[3].inter_digit_ms", "-5 is out of range 0..5000"),
        (11, "turns[4].silence", "0 is out of range 0.1..300"),
        (12, "turns[5].silence", "expected a number, got text"),
        (13, "turns[6].barge_in", "missing required field 'after_ms'"),
        (14, "turns[7].wait_for_agent.timeout_s", "0.1 is out of range 0.5..300"),
        (15, "turns[8]", "a turn needs exactly one of say, dtmf, silence, barge_in, hangup "
         "(found say, dtmf)"),
        (18, "turns[9].wait_for_agent", "expected true or false, got text"),
        (20, "turns[10].expect.matches",
         "bad regular expression: missing ), unterminated subpattern at position 0"),
        (22, "turns[11].expect", "expect needs 'contains' or 'matches'"),
        (24, "turns[12].expext", "unknown field; did you mean 'expect'?"),
        (25, "turns[13].hangup", "hangup takes no options: write 'hangup: {}'"),
        (26, "turns[14]", "unreachable: the caller has already hung up"),
        (28, "expect.hangup_by", "unknown side 'nobody'; expected one of agent, caller"),
        (29, "expect.max_duration_s", "0 is out of range 1..3600"),
        (31, "expect.check_url[0].url", "'ftp://example.com/x' is not an http(s) URL with a host"),
        (32, "expect.check_url[1].url",
         "unknown placeholder {nope}; known: call_id, scenario, seed, index"),
        (33, "expect.check_url[2].equals", "'equals' needs a JSON 'path' to compare"),
        (34, "expect.check_url[3].path", "bad JSON path 'a..b'"),
        (34, "expect.check_url[3].status", "700 is out of range 100..599"),
        (36, "impairment.noise.kind",
         "unknown noise kind 'brown'; expected one of white, pink, babble"),
        (36, "impairment.noise.snr_db", "200 is out of range -20..80"),
        (37, "impairment.loss.r", "r = 0 with p > 0 never leaves the bad state; use r > 0"),
        (38, "impairment.jitter.ms", "-1 is out of range 0..2000"),
        (39, "impairment.drift", "expected a mapping such as {ppm: ...}, got int"),
        (40, "impairment.codec", "unknown codec 'g729'; expected one of pcmu, pcma"),
    ]  # fmt: skip


def test_structure_errors() -> None:
    assert issues("name: x\n") == [(1, "", "missing required field 'turns'")]
    assert issues("[]\n") == [(1, "", "the file holds an empty list; expected scenarios")]
    assert issues("just text\n") == [
        (1, "", "expected a scenario (a mapping with name and turns), got text")
    ]
    assert issues("name: x\nturns: []\n") == [(2, "turns", "a scenario needs at least one turn")]
    assert issues("name: x\nturns: {say: hi}\n") == [(2, "turns", "expected a list, got a mapping")]
    assert issues("name: x\nturns: [{say: a}]\nname: y\n") == [(3, "name", "duplicate key")]
    assert issues("- {name: a, turns: [hangup]}\n- {name: a, turns: [hangup]}\n") == [
        (2, "name", "scenario name 'a' is already used at line 1")
    ]
    assert issues("turns: [hangup]\nvars: {call_id: x, 2bad: y}\n") == [
        (1, "", "missing required field 'name'"),
        (2, "vars.2bad",
         "'2bad' is not a valid name (letters, digits and _, not starting with a digit)"),
        (2, "vars.call_id", "'call_id' is filled in by the lab; choose another name"),
    ]  # fmt: skip
    assert issues("name: x\nturns: [{loss: {percent: 101}}]\n")[0][2].startswith(
        "a turn needs exactly one of"
    )
    assert issues("name: x\nturns: [hangup]\nimpairment: {loss: {percent: 101}}\n") == [
        (3, "impairment.loss.percent", "101 is out of range 0..100")
    ]


def test_yaml_syntax_errors_name_their_line() -> None:
    got = issues("name: x\nturns:\n  - say: [unclosed\n")
    assert len(got) == 1 and got[0][0] == 4 and got[0][2].startswith("YAML syntax error")
    assert issues("") == [(1, "", "the spec is empty")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.binary(max_size=200)))
def test_any_input_loads_or_raises_scenario_error(data: str | bytes) -> None:
    try:
        got = parse_scenarios(data)
    except ScenarioError as exc:
        assert exc.problems
    else:
        assert all(isinstance(s, Scenario) for s in got)


# --- files and directories ------------------------------------------------------------


def test_load_scenarios_reads_files_and_sorted_directories(tmp_path: pathlib.Path) -> None:
    d = tmp_path / "set"
    d.mkdir()
    (d / "b.yaml").write_text("name: second\nturns: [hangup]\n")
    (d / "a.yaml").write_text("- {name: first, turns: [hangup]}\n- {name: also, turns: [hangup]}\n")
    (d / "notes.txt").write_text("not a scenario")
    extra = tmp_path / "extra.yaml"
    extra.write_text("name: third\nturns: [hangup]\n")
    got = load_scenarios([d, extra])
    assert [s.name for s in got] == ["first", "also", "second", "third"]
    assert got[0].source == str(d / "a.yaml")


def test_load_scenarios_collects_problems_of_every_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "one.yaml").write_text("name: same\nturns: [hangup]\n")
    (tmp_path / "two.yaml").write_text("weight: 1\n\nname: same\nturns: [{silence: -1}]\n")
    (tmp_path / "three.yaml").write_text("name: same\nturns: [hangup]\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ScenarioError) as info:
        load_scenarios([tmp_path, empty, tmp_path / "missing.yaml"])
    one, three, two = (str(tmp_path / n) for n in ("one.yaml", "three.yaml", "two.yaml"))
    assert str(info.value).splitlines() == [
        "4 problems in scenarios",
        f"{empty}: no *.yaml files in this directory",
        f"{tmp_path / 'missing.yaml'}: no such file or directory",
        f"{three}:1: name: scenario name 'same' is already used at {one}:1",
        f"{two}:4: turns[0].silence: -1 is out of range 0.1..300",
    ]


# --- planning -------------------------------------------------------------------------


def test_plan_maps_every_turn_and_fills_the_check_urls() -> None:
    [s] = parse_scenarios(FULL)
    script = plan_call(s, 7, index=3, variables={"crm": "http://127.0.0.1:9999"})
    assert (script.scenario, script.seed, script.reply_timeout_s) == ("full-example", 7, 12.0)
    persona = script.persona
    assert (persona.voice, persona.rate, persona.pitch) == ("en-gb+f3", 150, 60)
    kinds = [type(step) for step in script.steps]
    assert kinds == [Listen, Say, Press, Say, Silence, BargeIn, HangUp]
    listen, ask, press, no, silence, barge, hangup = script.steps
    assert isinstance(listen, Listen) and listen.timeout_s == 9.0
    assert listen.expect is not None and listen.expect.contains == ("thank you for calling",)
    assert isinstance(ask, Say) and ask.text in s.turns[1].variants  # type: ignore[union-attr]
    assert 0.2 <= ask.gap_s <= 0.9 and ask.wait_for_agent
    assert ask.expect is not None and ask.expect.matches == "five digit"
    assert isinstance(press, Press) and (press.digits, press.inter_digit_s) == ("12345#", 0.12)
    assert isinstance(no, Say) and (no.text, no.gap_s, no.wait_for_agent) == ("no", 0.0, False)
    assert isinstance(silence, Silence) and silence.seconds == 7.5
    assert isinstance(barge, BargeIn) and (barge.text, barge.after_s) == ("agent", 0.8)
    assert isinstance(hangup, HangUp) and hangup.wait_for_agent
    assert script.impairment is s.impairment
    assert [c.url for c in script.expect.checks] == [
        "http://127.0.0.1:9999/orders/12345?call={call_id}&s=full-example",
        "http://127.0.0.1:8080/calls/{call_id}",
    ]
    assert script.expect.checks[0].url.format(call_id="c1").endswith("call=c1&s=full-example")
    assert (script.expect.checks[0].path, script.expect.checks[0].value) == ("status", "shipped")
    assert script.expect.checks[1].status == 404
    assert script.expect.hangup_by == "caller" and script.expect.transfer is True
    assert script.max_duration_s >= max(MIN_CALL_LIMIT_S, 90 * OVERRUN_FACTOR)


def test_plan_is_the_same_for_a_seed_and_varies_across_seeds() -> None:
    [s] = parse_scenarios(FULL)
    for seed in (0, 1, 12345, 2**62):
        assert plan_call(s, seed) == plan_call(s, seed)
    plans = {plan_call(s, seed).steps for seed in range(20)}
    assert len(plans) > 10  # 4 variants x 701 gaps x 701 gaps: repeats are rare
    texts = {step.text for p in plans for step in p if isinstance(step, Say)}
    assert {"order status", "check my order", "where is my order", "track my order"} <= texts


def test_the_call_limit_covers_the_script() -> None:
    quick = load("name: q\nturns: [{say: hi}]\n")[0]
    assert plan_call(quick, 1).max_duration_s == MIN_CALL_LIMIT_S
    long = load("name: l\nturns: [{silence: 300}, {silence: 300}]\n")[0]
    assert plan_call(long, 1).max_duration_s >= 600
    bounded = load("name: b\nturns: [{say: hi}]\nexpect: {max_duration_s: 1000}\n")[0]
    assert plan_call(bounded, 1).max_duration_s == 1000 * OVERRUN_FACTOR


def test_choose_scenario_follows_the_weights_and_the_seed() -> None:
    heavy, light = load(
        "- {name: heavy, weight: 3, turns: [hangup]}\n- {name: light, turns: [hangup]}\n"
    )
    picks = [choose_scenario([heavy, light], derive_seed(99, i)).name for i in range(2000)]
    assert 0.70 < picks.count("heavy") / len(picks) < 0.80  # 0.75 expected; fixed seeds
    assert picks == [choose_scenario([heavy, light], derive_seed(99, i)).name for i in range(2000)]
    with pytest.raises(ValueError, match="no scenarios"):
        choose_scenario([], 1)


def test_script_for_derives_each_calls_seed_from_the_run() -> None:
    scenarios = load(
        "- {name: a, turns: [{say: {variants: [x, y, z]}}]}\n- {name: b, turns: [hangup]}\n"
    )
    first = [script_for(scenarios, 5, i) for i in range(30)]
    assert first == [script_for(scenarios, 5, i) for i in range(30)]
    assert len({s.seed for s in first}) == 30 and {s.scenario for s in first} == {"a", "b"}
    assert all(0 <= s.seed < 2**63 for s in first)
    assert [s.seed for s in first] != [script_for(scenarios, 6, i).seed for i in range(30)]


def test_fill_template_leaves_the_engines_placeholder_and_literal_braces() -> None:
    got = fill_template("{base}/x/{call_id}?q={{raw}}&s={seed}", {"base": "http://h", "seed": "4"})
    assert got == "http://h/x/{call_id}?q={{raw}}&s=4"
    assert got.format(call_id="abc") == "http://h/x/abc?q={raw}&s=4"


_WORDS = [
    "name", "turns", "say", "dtmf", "silence", "barge_in", "hangup", "wait_for_agent",
    "expect", "contains", "matches", "variants", "after_ms", "timeout_s", "persona", "voice",
    "rate", "pitch", "gap_ms", "min", "max", "transport", "kind", "params", "caller",
    "impairment", "noise", "loss", "jitter", "drift", "level", "codec", "snr_db", "model",
    "percent", "p", "r", "ms", "ppm", "db", "check_url", "url", "status", "path", "equals",
    "transfer", "target", "hangup_by", "max_duration_s", "weight", "vars", "inter_digit_ms",
]  # fmt: skip
_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=True),
    st.sampled_from(["hi", "1234#", "agent", "pink", "gilbert_elliott", "{crm}/x", "http://h/{call_id}",
                     "(", "en-us", "", "a.b", "yes"]),
)  # fmt: skip
_DOCS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(_WORDS), inner, max_size=5)
    ),
    max_leaves=25,
)

_TEXT = st.sampled_from(["hi", "order status", "", 5, None, ["a"], {"variants": ["a", "b"]}])
_EXPECT = st.sampled_from([None, "menu", ["a", "b"], {"matches": "(x"}, {"contains": 3}, {}])
_TURN = st.one_of(
    st.builds(lambda t: {"say": t}, _TEXT),
    st.builds(lambda d, g: {"dtmf": d, "inter_digit_ms": g},
              st.sampled_from(["12#", 12, "x", "A*"]), st.integers(-1, 6000)),
    st.builds(lambda x: {"silence": x}, st.one_of(st.floats(allow_nan=True), st.integers(-1, 400))),
    st.builds(lambda a, t: {"barge_in": {"after_ms": a, "say": t}}, st.integers(-1, 40000), _TEXT),
    st.sampled_from([{"wait_for_agent": {"timeout_s": 3}}, "hangup", {"hangup": {}}]),
    st.dictionaries(st.sampled_from(_WORDS), _DOCS, min_size=1, max_size=3),
).flatmap(
    lambda turn: _EXPECT.map(
        lambda e: {**turn, "expect": e} if isinstance(turn, dict) and e is not None else turn
    )
)  # fmt: skip
_SECTIONS = {
    "persona": st.fixed_dictionaries({}, optional={
        "voice": st.sampled_from(["en-us", "en+f3", "XX", 3]), "rate": st.integers(0, 600),
        "pitch": st.integers(-1, 120),
        "gap_ms": st.one_of(_LEAVES, st.lists(st.integers(-1, 20000)))}),
    "expect": st.fixed_dictionaries({}, optional={
        "transfer": st.one_of(st.booleans(), st.just("sip:x@h"), _DOCS),
        "hangup_by": st.sampled_from(["agent", "caller", "nobody"]),
        "max_duration_s": st.one_of(st.integers(-1, 5000), st.floats(allow_nan=True)),
        "check_url": st.one_of(_DOCS, st.fixed_dictionaries(
            {"url": st.sampled_from(["http://h/{call_id}", "{crm}/o", "ftp://x", "http://h/{"])},
            optional={"path": st.sampled_from(["a.0", "", 3]), "equals": _LEAVES,
                      "status": st.integers(0, 700)}))}),
    "impairment": st.one_of(
        st.sampled_from(["street", "2bad"]), st.fixed_dictionaries({}, optional={
        "noise": st.fixed_dictionaries({"kind": st.sampled_from(["pink", "red"]),
                                        "snr_db": st.integers(-30, 90)}),
        "loss": st.one_of(st.fixed_dictionaries({"percent": st.floats(-1, 101)}), _DOCS),
        "jitter": _DOCS, "drift": _DOCS, "level": _DOCS,
        "codec": st.sampled_from(["pcmu", "g729"])}),
    ),
    "transport": st.one_of(st.sampled_from(["sip", "ws", "pstn"]), _DOCS),
    "vars": st.one_of(st.just({"crm": "http://127.0.0.1:1"}), _DOCS),
}  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["n", "m", "o", "bad name", 5]),
            "turns": st.lists(_TURN, max_size=3),
        },
        optional=_SECTIONS,
    )
)
def test_any_document_shape_loads_or_raises_scenario_error(doc: dict[str, object]) -> None:
    try:
        got = parse_scenarios(yaml.safe_dump(doc))
    except ScenarioError as exc:
        assert exc.problems
        return
    for scenario in got:
        if scenario.impairment_ref is not None:
            with pytest.raises(ValueError, match="not resolved"):
                plan_call(scenario, 1)
        else:
            assert plan_call(scenario, 1) == plan_call(scenario, 1)
