"""From a scenario and a seed to the one call it describes (a :class:`CallScript`).

A scenario leaves room: a line may have variants, the persona's gap is a range, and a
run mixes scenarios by weight. Planning makes every one of those draws from
``random.Random(seed)`` (nothing global), in turn order, so the same scenario and seed
always give the same script: a call is replayed by planning it again.

Seeds: a run has one seed; call ``i`` gets ``derive_seed(run_seed, i)``, and the
scenario it plays is drawn from a stream derived from that (:func:`script_for`), so
adding a call to a run does not change the calls before it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import random
import string
from collections.abc import Mapping, Sequence

from trunkline.lab.scenario import (
    BargeInTurn,
    DtmfTurn,
    ListenTurn,
    ReplyExpectation,
    SayTurn,
    Scenario,
    SilenceTurn,
    Turn,
    UrlCheck,
)
from trunkline.lab.script import (
    BargeIn,
    CallExpectations,
    CallScript,
    CheckUrl,
    Expect,
    HangUp,
    Listen,
    Press,
    Say,
    Silence,
    Step,
)
from trunkline.lab.voices import Persona

# A call is never cut short before this, whatever its script adds up to: two minutes
# holds any ordinary support call.
MIN_CALL_LIMIT_S = 120.0
# Over the script's own worst case, time for the agent's last words and the hangup.
LIMIT_SLACK_S = 30.0
# A call that must end within ``max_duration_s`` is cut at 1.5 times that, so an
# overrun is measured (and fails) rather than hidden by the cut.
OVERRUN_FACTOR = 1.5
# Placeholders the engine fills itself, after the call; planning leaves them as written.
ENGINE_PLACEHOLDERS = frozenset({"call_id"})

_DEFAULT_REPLY_TIMEOUT_S = next(
    float(f.default)
    for f in dataclasses.fields(CallScript)
    if f.name == "reply_timeout_s" and isinstance(f.default, int | float)
)


def plan_call(
    scenario: Scenario,
    seed: int,
    *,
    index: int = 0,
    variables: Mapping[str, str] | None = None,
) -> CallScript:
    """The concrete script of one call of ``scenario``.

    Args:
        seed: every draw (variants, gaps) comes from ``random.Random(seed)``.
        index: the call's number in the run (fills ``{index}`` in check URLs).
        variables: override the scenario's ``vars`` in check URLs.

    Raises:
        ValueError: the scenario names an impairment preset that was never resolved
            (load it with ``load_scenarios(..., impairments=presets)``).
    """
    if scenario.impairment_ref is not None and scenario.impairment is None:
        raise ValueError(
            f"scenario {scenario.name!r}: impairment preset {scenario.impairment_ref!r} "
            "was not resolved; pass the presets to load_scenarios"
        )
    rng = random.Random(seed)
    steps = tuple(_step(turn, scenario, rng) for turn in scenario.turns)
    expect = scenario.expect
    fill = {
        **scenario.variables,
        **(variables or {}),
        "scenario": scenario.name,
        "seed": str(seed),
        "index": str(index),
    }
    checks = tuple(_check(check, fill) for check in expect.checks)
    reply_timeout = scenario.reply_timeout_s or _DEFAULT_REPLY_TIMEOUT_S
    persona = scenario.persona
    return CallScript(
        scenario=scenario.name,
        seed=seed,
        persona=Persona(voice=persona.voice, rate=persona.rate_wpm, pitch=persona.pitch),
        steps=steps,
        expect=CallExpectations(
            transfer=expect.transfer,
            transfer_target=expect.transfer_target,
            hangup_by=expect.hangup_by,
            max_duration_s=expect.max_duration_s,
            checks=checks,
        ),
        impairment=scenario.impairment,
        max_duration_s=call_limit_s(scenario, steps, reply_timeout),
        reply_timeout_s=reply_timeout,
    )


def derive_seed(seed: int, *labels: str | int) -> int:
    """A new 63-bit seed from ``seed`` and labels, the same on every machine and run
    (unlike ``hash()``, which is salted per process)."""
    text = ":".join(str(part) for part in (seed, *labels))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def choose_scenario(scenarios: Sequence[Scenario], seed: int) -> Scenario:
    """One scenario, drawn by weight with ``random.Random(seed)``.

    Raises:
        ValueError: ``scenarios`` is empty.
    """
    if not scenarios:
        raise ValueError("no scenarios to choose from")
    cumulative = list(itertools.accumulate(s.weight for s in scenarios))
    point = random.Random(seed).random() * cumulative[-1]
    for scenario, upto in zip(scenarios, cumulative, strict=True):
        if point < upto:
            return scenario
    return scenarios[-1]  # point == total only by float rounding


def script_for(
    scenarios: Sequence[Scenario],
    run_seed: int,
    index: int,
    *,
    variables: Mapping[str, str] | None = None,
) -> CallScript:
    """Call ``index`` of a run: its seed, its scenario (by weight), its script."""
    seed = derive_seed(run_seed, index)
    scenario = choose_scenario(scenarios, derive_seed(seed, "scenario"))
    return plan_call(scenario, seed, index=index, variables=variables)


def call_limit_s(scenario: Scenario, steps: Sequence[Step], reply_timeout_s: float) -> float:
    """A hard bound on the call: the script's worst case (every wait timing out) plus
    slack, at least :data:`MIN_CALL_LIMIT_S`, and past ``max_duration_s`` by
    :data:`OVERRUN_FACTOR` so an overrun is measured."""
    rate = scenario.persona.rate_wpm / 60.0  # words per second
    worst = reply_timeout_s  # the agent's last words after the script
    for step in steps:
        if isinstance(step, Say):
            worst += reply_timeout_s + step.gap_s + len(step.text.split()) / rate
        elif isinstance(step, Press):
            worst += reply_timeout_s + step.gap_s + len(step.digits) * step.inter_digit_s
        elif isinstance(step, Silence):
            worst += reply_timeout_s + step.seconds
        elif isinstance(step, BargeIn):
            worst += reply_timeout_s + step.after_s + len(step.text.split()) / rate
        elif isinstance(step, Listen):
            worst += step.timeout_s
        else:
            worst += reply_timeout_s
    limit = max(MIN_CALL_LIMIT_S, worst + LIMIT_SLACK_S)
    if scenario.expect.max_duration_s is not None:
        limit = max(limit, scenario.expect.max_duration_s * OVERRUN_FACTOR)
    return limit


def _step(turn: Turn, scenario: Scenario, rng: random.Random) -> Step:
    if isinstance(turn, SayTurn):
        text = _pick(turn.variants, rng)
        gap = _gap_s(scenario, rng) if turn.wait_for_agent else 0.0
        return Say(text, gap, turn.wait_for_agent, _expect(turn.expect))
    if isinstance(turn, DtmfTurn):
        gap = _gap_s(scenario, rng) if turn.wait_for_agent else 0.0
        inter_digit_s = turn.inter_digit_ms / 1000.0
        return Press(turn.digits, gap, inter_digit_s, turn.wait_for_agent, _expect(turn.expect))
    if isinstance(turn, SilenceTurn):
        return Silence(turn.seconds, _expect(turn.expect))
    if isinstance(turn, BargeInTurn):
        text = _pick(turn.variants, rng)
        return BargeIn(text, turn.after_ms / 1000.0, _expect(turn.expect))
    if isinstance(turn, ListenTurn):
        return Listen(turn.timeout_s, _expect(turn.expect))
    return HangUp(turn.wait_for_agent)


def _pick(variants: tuple[str, ...], rng: random.Random) -> str:
    return variants[0] if len(variants) == 1 else rng.choice(variants)


def _gap_s(scenario: Scenario, rng: random.Random) -> float:
    lo, hi = scenario.persona.gap_ms
    return (lo if lo == hi else rng.randint(lo, hi)) / 1000.0


def _expect(expect: ReplyExpectation | None) -> Expect | None:
    return None if expect is None else Expect(expect.contains, expect.matches)


def _check(check: UrlCheck, values: Mapping[str, str]) -> CheckUrl:
    return CheckUrl(
        url=fill_template(check.url, values),
        path=check.path,
        value=check.value,
        status=check.status,
    )


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders from ``values``; leave the engine's own
    (:data:`ENGINE_PLACEHOLDERS`) and literal braces (``{{``, ``}}``) for its
    ``str.format``. The template was validated at load: every name is known."""
    out: list[str] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        if name in ENGINE_PLACEHOLDERS or name not in values:
            out.append(f"{{{name}}}")
        else:
            out.append(values[name].replace("{", "{{").replace("}", "}}"))
    return "".join(out)
