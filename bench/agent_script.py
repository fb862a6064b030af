"""The scripted conversation of ``agent_density.py``, shared by the caller and both servers.

The Acme agent (``examples/acme/agent.yaml``) is run by its flow brain on a loop that
never calls a tool, so every turn costs the same on any machine:

    agent:  Thank you for calling Acme. How can I help you? ...
    caller: reschedule appointment   -> Which day would you like instead? ...
    caller: tomorrow                 -> You said <date>. Shall I book it?
    caller: no                       -> Okay, let's pick another day. Which day ...
    caller: tomorrow, no, tomorrow, no, ...

The fake recognizer of the trunkline server answers by the grammar the pipeline asks
for (``recognised_text``); the Pipecat server, which has no flow engine, replays the
replies this module computes with the same flow brain (``agent_texts``), turn by turn.
The caller speaks espeak-ng renderings of the same words (``caller_audio``), cut to the
frames our VAD calls voiced, so that "the caller's last speech frame" is exact.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path

from trunkline.agent import (
    AgentSpec,
    BrainContext,
    FlowBrain,
    Say,
    Speech,
    load_agent_spec,
    state_grammars,
)
from trunkline.media.audio import FRAME_BYTES
from trunkline.media.wav import decode_wav
from trunkline.pipeline.vad import VadProcessor
from trunkline.rtp.g711 import ulaw_decode, ulaw_encode

ACME = Path(__file__).resolve().parents[1] / "examples" / "acme" / "agent.yaml"
#: What the caller says: the first turn, then the rest in a loop.
FIRST_TURN = "reschedule appointment"
LOOP_TURNS = ("tomorrow", "no")
#: The flow state each utterance is said in (its grammar is what the recognizer is given).
STATE_OF = {"reschedule appointment": "main", "tomorrow": "reschedule", "no": "confirm_day"}
#: The caller's voice: espeak-ng's American English at a caller's pace.
VOICE, RATE_WPM = "en-us", 160
#: webrtcvad aggressiveness of ``trunkline serve`` (``agent_app``'s default).
VAD_MODE = 2
#: Turns of a call replayed through the VAD to cut the utterances (a call in the
#: benchmark's window is a few minutes old at most: a few dozen turns).
SIM_TURNS = 40
#: Rounds of cutting before giving up (each round only shortens an utterance).
MAX_CUT_ROUNDS = 20


def caller_text(turn: int) -> str:
    """What the caller says in turn ``turn`` (0 is the first answer to the greeting)."""
    return FIRST_TURN if turn == 0 else LOOP_TURNS[(turn - 1) % len(LOOP_TURNS)]


def recognised_text(spec: AgentSpec) -> dict[str, str]:
    """Grammar (JSGF text) -> what the fake recognizer hears with it."""
    grammars = state_grammars(spec)
    out: dict[str, str] = {}
    for text, state in STATE_OF.items():
        jsgf = grammars[state].jsgf
        assert jsgf is not None, state
        out[jsgf] = text
    return out


async def agent_texts(spec: AgentSpec, turns: int, today: dt.date | None = None) -> AgentTexts:
    """What the flow brain says, greeting first, then per caller turn.

    Raises:
        RuntimeError: the flow left the scripted loop (the spec changed).
    """
    brain = FlowBrain(spec, BrainContext(today=lambda: today or dt.date.today()))

    def said(actions: list[object]) -> list[Say]:
        says = [a for a in actions if isinstance(a, Say)]
        if len(says) != len(actions) or not says:
            raise RuntimeError(f"the scripted loop expects only Says, got {actions!r}")
        return says

    greeting = said(list(brain.start()))
    replies = [said(await brain.on_input(Speech(caller_text(t)))) for t in range(turns)]
    return AgentTexts(
        greeting=" ".join(s.text for s in greeting),
        replies=[" ".join(s.text for s in says) for says in replies],
        cached=[says[0].cacheable for says in replies],
    )


@dataclass(frozen=True)
class AgentTexts:
    """The agent's side of the script.

    ``cached[i]``: reply i opens with a fixed prompt (``Say.cacheable``), which trunkline's
    prompt cache serves without asking the TTS once the process has said it before, so
    that turn waits for no TTS first byte (Pipecat has no such cache and always waits).
    """

    greeting: str
    replies: list[str]
    cached: list[bool]


def load_spec() -> AgentSpec:
    return load_agent_spec(ACME)


def render(text: str) -> list[bytes]:
    """``text`` spoken by espeak-ng as 8 kHz PCM frames, after a G.711 u-law round trip
    (what the server decodes).

    Raises:
        subprocess.CalledProcessError: espeak-ng failed.
    """
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-v", VOICE, "-s", str(RATE_WPM), "--", text],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    pcm = ulaw_decode(ulaw_encode(decode_wav(wav)))
    pcm += bytes(-len(pcm) % FRAME_BYTES)
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


def caller_audio() -> dict[str, list[bytes]]:
    """Each text the caller says, as u-law payloads cut so that the last frame sent is the
    last one the server's VAD calls voiced, in every turn of a call.

    webrtcvad adapts to what it has heard, and it hears only the loud frames (the energy
    gate keeps line silence from it), so its verdict on an utterance's last frames
    depends on the utterances before. The cut is found by replaying ``SIM_TURNS`` turns
    of a call through one ``VadProcessor`` and moving each utterance's end back to its
    last voiced frame until no turn disagrees (each round only shortens, so it ends).

    Raises:
        subprocess.CalledProcessError: espeak-ng failed.
        ValueError: an utterance has no voiced frame, or no stable cut was found.
    """
    texts = (FIRST_TURN, *LOOP_TURNS)
    frames = {text: render(text) for text in texts}
    cut: dict[str, tuple[int, int]] = {}
    for text in texts:  # first guess: a fresh VAD's first and last voiced frame
        vad = VadProcessor(VAD_MODE)
        voiced = [i for i, frame in enumerate(frames[text]) if vad.voiced(frame)]
        if not voiced:
            raise ValueError(f"no voiced frame in the rendering of {text!r}")
        cut[text] = (voiced[0], voiced[-1])
    for _ in range(MAX_CUT_ROUNDS):
        vad = VadProcessor(VAD_MODE)
        stable = True
        for turn in range(SIM_TURNS):
            text = caller_text(turn)
            first, last = cut[text]
            verdicts = [vad.voiced(f) for f in frames[text][first : last + 1]]
            if not any(verdicts):
                raise ValueError(f"the VAD hears nothing of {text!r} in turn {turn}")
            if not verdicts[-1]:
                last = first + max(i for i, v in enumerate(verdicts) if v)
                cut[text] = (first, last)
                stable = False
        if stable:
            return {
                t: [ulaw_encode(f) for f in frames[t][cut[t][0] : cut[t][1] + 1]] for t in texts
            }
    raise ValueError(f"no cut of the caller's utterances was stable in {MAX_CUT_ROUNDS} rounds")


def endpoint_silence_ms(spec: AgentSpec) -> int:
    """The endpoint silence of the states the script talks in (one value for all).

    Raises:
        RuntimeError: the states differ (the overhead could not be computed per turn).
    """
    values = {spec.states[s].silence_ms or spec.silence_ms for s in STATE_OF.values()}
    if len(values) != 1:
        raise RuntimeError(f"the scripted states end turns on different silences: {values}")
    return values.pop()
