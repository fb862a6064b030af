"""The Acme scenario set: it loads, and every line of it works against the Acme agent.

Each scenario is replayed at the text level into the real Acme flow brain, backed by
the real demo CRM on loopback: every spoken line must be a whole sentence of the
grammar the agent listens with in that state (so pocketsphinx can hear it), DTMF must
go to a state that collects keys, a silence must outlast the no-input timeout, and
every expectation (turn replies, transfer, who hangs up, check URLs) must hold. Audio,
timing and impairments are the caller engine's part and are not exercised here.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from collections.abc import Sequence

import aiohttp
import pytest

from trunkline.agent import (
    AgentSpec,
    BrainContext,
    Digits,
    FlowBrain,
    Hangup,
    Interrupted,
    NoInput,
    Say,
    Speech,
    ToolRunner,
    Transfer,
)
from trunkline.agent.brain import Action
from trunkline.agent.demo_crm import CrmServer
from trunkline.lab import script as steps
from trunkline.lab.scenario import BargeInTurn, SayTurn, Scenario
from trunkline.lab.scenario_build import load_scenarios
from trunkline.lab.scenario_plan import plan_call

SCENARIOS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "acme" / "scenarios"
ACME_SET = {s.name: s for s in load_scenarios([SCENARIOS])}


def test_the_set_loads_and_covers_the_brief() -> None:
    assert set(ACME_SET) == {
        "order-status", "reschedule", "balance-pin", "talk-to-a-person",
        "barge-in-greeting", "silent-caller", "noisy-caller",
    }  # fmt: skip
    kinds = {turn.kind for s in ACME_SET.values() for turn in s.turns}
    assert kinds >= {"say", "dtmf", "silence", "barge_in"}
    assert ACME_SET["talk-to-a-person"].expect.transfer is True
    noisy = ACME_SET["noisy-caller"].impairment
    assert noisy is not None and noisy.noise is not None and noisy.loss is not None


def pinned(scenario: Scenario) -> list[Scenario]:
    """One scenario per spoken variant, with that variant as the only choice, so every
    variant of every line is replayed (a seed would pick only some)."""
    out = [scenario]
    for i, turn in enumerate(scenario.turns):
        if isinstance(turn, SayTurn | BargeInTurn) and len(turn.variants) > 1:
            for variant in turn.variants:
                turns = list(scenario.turns)
                turns[i] = dataclasses.replace(turn, variants=(variant,))
                out.append(dataclasses.replace(scenario, turns=tuple(turns)))
    return out


@pytest.mark.parametrize("name", sorted(ACME_SET))
async def test_every_line_works_against_the_acme_agent(
    name: str, acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    for seed, scenario in enumerate(pinned(ACME_SET[name])):
        await replay(scenario, seed, acme_spec, crm, tools)


async def replay(
    scenario: Scenario, seed: int, spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    script = plan_call(scenario, seed, variables={"crm": crm.url})
    brain = FlowBrain(spec, BrainContext(tools=tools, variables={"crm": crm.url}))
    actions = brain.start()
    where = f"{scenario.name} (seed {seed})"
    transfer: Transfer | None = None
    hangup_by: str | None = None
    for index, step in enumerate(script.steps):
        assert not brain.ended, f"{where}: the agent ended the call before step {index}"
        listen = brain.listen_spec()
        if isinstance(step, steps.Say | steps.BargeIn):
            assert listen.matcher is not None
            match = listen.matcher.match(step.text)
            assert match is not None and match.complete, (
                f"{where}: {step.text!r} is not a sentence of state {brain.state!r}"
            )
            if isinstance(step, steps.BargeIn):
                assert listen.barge_in, f"{where}: state {brain.state!r} ignores barge-in"
                await brain.on_input(Interrupted(played_text=""))
            actions = await brain.on_input(Speech(step.text))
        elif isinstance(step, steps.Press):
            assert listen.dtmf is not None, f"{where}: state {brain.state!r} takes no keys"
            actions = await brain.on_input(Digits(step.digits))
        elif isinstance(step, steps.Silence):
            assert step.seconds * 1000 > listen.no_input_timeout_ms, where
            actions = await brain.on_input(NoInput())
        elif isinstance(step, steps.HangUp):
            hangup_by = "caller"
            break
        else:  # Listen: what the agent said last is the reply
            pass
        reply = " ".join(a.text for a in actions if isinstance(a, Say))
        expect = getattr(step, "expect", None)
        if expect is not None:
            for phrase in expect.contains:
                assert phrase.lower() in reply.lower(), f"{where}: step {index}: {reply!r}"
            if expect.matches is not None:
                assert re.search(expect.matches, reply, re.IGNORECASE), f"{where}: {reply!r}"
        transfer = transfer or _first(actions, Transfer)
        if _first(actions, Hangup) is not None:
            hangup_by = "agent"
    want = script.expect
    if want.transfer is not None:
        assert (transfer is not None) == want.transfer, where
    if want.transfer_target is not None:
        assert transfer is not None and want.transfer_target in transfer.target, where
    if want.hangup_by is not None:
        assert hangup_by == want.hangup_by, where
    for check in want.checks:
        await _check_url(check, where)


def _first(actions: Sequence[Action], kind: type[Transfer] | type[Hangup]) -> Action | None:
    return next((a for a in actions if isinstance(a, kind)), None)


async def _check_url(check: steps.CheckUrl, where: str) -> None:
    url = check.url.format(call_id="replay")
    assert url.startswith("http://127.0.0.1:"), f"{where}: {url} is not the local CRM"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == check.status, f"{where}: {url} answered {response.status}"
        body = json.loads(await response.text())
    value: object = body
    for part in check.path.split(".") if check.path else ():
        assert isinstance(value, dict) and part in value, f"{where}: no {check.path} in {body}"
        value = value[part]
    if check.value is not None:
        assert value == check.value, f"{where}: {check.path} = {value!r}"
