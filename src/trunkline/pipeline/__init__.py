"""The voice pipeline: what runs between a call's leg and its brain.

- :mod:`.frames`: frame tiers (system frames overtake data and control) and the tiered
  queue; :mod:`.processor`: the processor contract and the chain a leg pushes into.
- :mod:`.vad`: webrtcvad with an energy gate and start/stop hysteresis.
- :mod:`.endpointing`: end of turn (per-state silence, early), no-input; sans-IO.
- :mod:`.dtmf`: keypad entries per ``ListenSpec.dtmf``; sans-IO.
- :mod:`.listener`: the ASR streams, fed only the caller's utterances.
- :mod:`.speaker`: TTS sentence by sentence onto the leg, marks, barge-in cuts.
- :mod:`.caller`: the frame path of a turn (VAD events, endpointing, DTMF, barge-in).
- :mod:`.conversation`: the per-call turn manager (brain turns, transfer, hangup).
- :mod:`.journal` and :mod:`.checkpoint`: the call record and the session checkpoints.

``trunkline.apps.agent`` puts it on calls.
"""
