"""Spec loading: the Acme spec, error collection with lines and paths, and fuzzing."""

from __future__ import annotations

import pathlib
import textwrap

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ACME
from trunkline.agent import AgentSpec, AgentSpecError, BrainKind, SlotType, parse_agent_spec
from trunkline.agent.spec import DigitsRule, GotoStep, SayStep, ToolStep
from trunkline.agent.spec_loader import MAX_NODES


def issues(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(AgentSpecError) as info:
        parse_agent_spec(textwrap.dedent(text).lstrip("\n"), "agent.yaml")
    return [(i.line, i.path, i.message) for i in info.value.issues]


def test_acme_loads(acme_spec: AgentSpec) -> None:
    assert acme_spec.name == "acme" and acme_spec.brain is BrainKind.FLOW
    assert acme_spec.start == "main"
    assert set(acme_spec.states) == {
        "main", "order_status", "reschedule", "confirm_day", "balance", "anything_else",
    }  # fmt: skip
    order = acme_spec.states["order_status"].slots[0]
    assert order.type is SlotType.DIGITS and order.rule == DigitsRule(5, 5)
    assert ("my", "order", "number", "is", "{value}") in order.phrases
    assert acme_spec.tools["order_status"].result == {"status": ("status",), "eta": ("eta",)}
    assert [i.name for i in acme_spec.global_intents] == ["agent", "goodbye", "main_menu"]
    steps = acme_spec.states["order_status"].on_filled
    assert [type(s) for s in steps] == [SayStep, ToolStep, SayStep, GotoStep]
    lines = ACME.read_text().splitlines()
    state_line = lines.index("  order_status:", lines.index("states:")) + 1
    assert acme_spec.states["order_status"].line == state_line


def test_many_errors_are_all_reported_with_lines_and_paths() -> None:
    got = issues(
        """
        name: bad
        greeting: 42
        tools:
          lookup:
            url: "{{vars.crm}}/x/{{slots.nope}}"
            timeout_ms: fast
            metod: GET
        states:
          main:
            prompt: Hello {{slots.order}}
            intents:
              status:
                examples: [order status, frobnicate the widgets]
                goto: order_stat
          order_status:
            slots:
              order_number:
                type: digit
            on_filled:
              - tool: lookup
              - goto: main
              - say: never said
        """
    )
    assert got == [
        (2, "greeting", "expected text, got int"),
        (5, "tools.lookup.url", "{{vars.crm}}: no variable 'crm' in vars"),
        (5, "tools.lookup.url", "{{slots.nope}}: no slot named 'nope'"),
        (6, "tools.lookup.timeout_ms", "expected a whole number, got text"),
        (7, "tools.lookup.metod", "unknown field; did you mean 'method'?"),
        (
            10,
            "states.main.prompt",
            "{{slots.order}}: no slot named 'order'; did you mean 'order_number'?",
        ),
        (
            13,
            "states.main.intents.status.examples[1]",
            "word 'frobnicate' is not in the recognizer's dictionary",
        ),
        (
            14,
            "states.main.intents.status.goto",
            "no state named 'order_stat'; did you mean 'order_status'?",
        ),
        (
            18,
            "states.order_status.slots.order_number.type",
            "unknown slot type 'digit'; expected one of digits, date, yes_no, list",
        ),
        (22, "states.order_status.on_filled[2]", "unreachable: no step runs after 'goto'"),
    ]


def test_error_message_format() -> None:
    with pytest.raises(AgentSpecError) as info:
        parse_agent_spec(
            "name: x\nstates:\n  s:\n    slots:\n      n: {type: digit}\n", "agent.yaml"
        )
    assert str(info.value).splitlines() == [
        "agent.yaml: 1 problem in agent spec",
        "agent.yaml:5: states.s.slots.n.type: unknown slot type 'digit'; "
        "expected one of digits, date, yes_no, list",
    ]


def test_missing_fields_and_bad_shapes() -> None:
    got = issues(
        """
        greeting: Hi
        brain: llm
        states: [a, b]
        """
    )
    assert got == [
        (1, "", "missing required field 'name'"),
        (1, "llm", "brain is 'llm' but there is no llm section"),
        (3, "states", "expected a mapping, got a list"),
    ]


def test_step_and_slot_rule_errors() -> None:
    got = issues(
        """
        name: x
        states:
          main:
            on_enter:
              - sya: hello
              - {say: hi, goto: main}
              - tool: lookup
            slots:
              code:
                type: digits
                min_length: 6
                max_length: 4
                phrases: ["the code is"]
              colour:
                type: list
                values: {red: [crimson], blue: [crimson]}
              sure:
                type: yes_no
                no: [yes]
            dtmf: {terminator: "x"}
        """
    )
    one_of = "a step needs exactly one of say, tool, goto, transfer, hangup, if"
    assert got == [
        (4, "states.main.on_enter", "tool 'lookup' would run before the caller says anything; "
            "start() cannot wait for tools: call it after the first turn"),
        (5, "states.main.on_enter[0]", f"{one_of} (found none)"),
        (6, "states.main.on_enter[1]", f"{one_of} (found say, goto)"),
        (7, "states.main.on_enter[2].tool", "no tool named 'lookup'"),
        (12, "states.main.slots.code.max_length", "max_length (4) is less than min_length (6)"),
        (13, "states.main.slots.code.phrases[0]",
            "a slot phrase must contain {value} exactly once"),
        (16, "states.main.slots.colour.values.blue", "'crimson' would mean both 'red' and 'blue'"),
        (17, "states.main.slots.sure", "'yes' would mean both yes and no"),
        (20, "states.main.dtmf.terminator", "terminator must be '#', '*' or null, not 'x'"),
    ]  # fmt: skip


def test_template_and_reference_errors() -> None:
    got = issues(
        """
        name: x
        greeting: "Hello {{ slots.x"
        tools:
          t: {url: "http://h/", result: {a: b}}
        states:
          main:
            prompt: "{{tool.t.zzz}} {{tool.u.a}} {{weather.today}} {{call.id}}"
            intents:
              go: {examples: [go], do: [{if: slots.none, then: [{goto: main}]}]}
        start: elsewhere
        """
    )
    assert got == [
        (2, "greeting", "unclosed '{{' in template"),
        (7, "states.main.prompt", "{{tool.t.zzz}}: tool 't' has no result field 'zzz'"),
        (7, "states.main.prompt", "{{tool.u.a}}: no tool named 'u'"),
        (7, "states.main.prompt",
            "{{weather.today}}: unknown root 'weather'; expected one of slots, tool, vars, call"),
        (9, "states.main.intents.go.do[0].if", "{{slots.none}}: no slot named 'none'"),
        (10, "start", "no state named 'elsewhere'"),
    ]  # fmt: skip


def test_duplicate_keys_and_yes_no_stay_text() -> None:
    got = issues(
        """
        name: x
        name: y
        states:
          main:
            intents:
              answer: {examples: [yes, no, on, off], goto: main}
              answer: {examples: [maybe], goto: main}
        """
    )
    assert got == [
        (2, "name", "duplicate key"),
        (7, "states.main.intents.answer", "duplicate key"),
    ]
    spec = parse_agent_spec(
        "name: x\nstates:\n  main:\n    intents:\n      a: {examples: [yes, no, on], goto: main}\n"
    )
    assert spec.states["main"].intents[0].examples == (("yes",), ("no",), ("on",))


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("name: x\nstates:\n  main:\n    prompt: [unclosed\n", 5, "YAML syntax error"),
        ("name: x\n  bad indent: 1\n", 2, "YAML syntax error"),
        ("name: 'x\n", 2, "YAML syntax error"),
        ("- a\n- b\n", 1, "expected a mapping, got a list"),
        ("", 1, "the spec is empty"),
        ("a: 1\n---\nb: 2\n", 2, "YAML syntax error"),
        ("name: !!python/object:os.system x\n", 1, "cannot read value"),
    ],
)
def test_bad_yaml_gives_a_clear_error_with_a_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(AgentSpecError) as info:
        parse_agent_spec(text, "agent.yaml")
    first = info.value.issues[0]
    assert (first.line, fragment in first.message) == (line, True), info.value


def test_alias_bomb_and_binary_garbage_are_spec_errors() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 8):
        bomb += (
            f"{'b' * i}: &{'b' * i} [{', '.join(['*' + ('b' * (i - 1) if i > 1 else 'a')] * 10)}]\n"
        )
    with pytest.raises(AgentSpecError, match=f"more than {MAX_NODES}"):
        parse_agent_spec(bomb)
    with pytest.raises(AgentSpecError, match="not UTF-8"):
        parse_agent_spec(b"name: \xff\xfe")
    with pytest.raises(AgentSpecError, match="nest deeper than 64"):
        parse_agent_spec("a: b\nc: " + "[" * 1_000_000)
    with pytest.raises(AgentSpecError, match="too deep"):
        parse_agent_spec("".join(f"{' ' * i}k{i}:\n" for i in range(1200)))


# --- fuzzing: anything in, AgentSpec or AgentSpecError out -----------------------------

_FIELDS = [
    "name", "greeting", "brain", "llm", "states", "main", "prompt", "reprompt", "intents",
    "examples", "goto", "do", "say", "tool", "tools", "url", "result", "slots", "type",
    "digits", "date", "yes_no", "list", "values", "min_length", "max_length", "dtmf",
    "on_enter", "on_filled", "if", "then", "else", "transfer", "summary", "hangup",
    "no_input", "no_match", "escalate", "reprompts", "phrases", "formats", "start", "vars",
]  # fmt: skip
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 100), st.sampled_from(_FIELDS),
    st.text(max_size=12), st.just("{{slots.x}}"), st.just("{value}"),
)  # fmt: skip
_documents = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(_FIELDS), inner, max_size=5),
    ),
    max_leaves=25,
)


def _never_crashes(text: str | bytes) -> None:
    try:
        spec = parse_agent_spec(text, check_words=True)
    except AgentSpecError as exc:
        assert exc.issues, "an AgentSpecError must carry issues"
        for issue in exc.issues:
            assert issue.message
    else:
        assert isinstance(spec, AgentSpec)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_junk_text_only_raises_spec_errors(text: str | bytes) -> None:
    _never_crashes(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents)
def test_random_documents_only_raise_spec_errors(document: object) -> None:
    _never_crashes(yaml.safe_dump({"name": "x", "states": document}))
    _never_crashes(yaml.safe_dump(document))


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_mutated_acme_only_raises_spec_errors(data: st.DataObject) -> None:
    text = ACME.read_text()
    lines = text.splitlines(keepends=True)
    choice = data.draw(st.sampled_from(["cut", "drop", "swap"]))
    if choice == "cut":
        mutated = text[: data.draw(st.integers(0, len(text)))]
    elif choice == "drop":
        i = data.draw(st.integers(0, len(lines) - 1))
        mutated = "".join(lines[:i] + lines[i + 1 :])
    else:
        i = data.draw(st.integers(0, len(lines) - 1))
        j = data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        mutated = "".join(lines)
    _never_crashes(mutated)


def test_load_agent_spec_names_the_file(tmp_path: pathlib.Path) -> None:
    from trunkline.agent import load_agent_spec

    path = tmp_path / "mine.yaml"
    path.write_text("name: x\nstates: {main: {prompt: 5}}\n")
    with pytest.raises(AgentSpecError) as info:
        load_agent_spec(path)
    assert (
        str(info.value).splitlines()[1] == "mine.yaml:2: states.main.prompt: expected text, got int"
    )
