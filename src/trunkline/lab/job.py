"""One lab process's part of a fanned-out pretest run, as a self-contained JSON job.

A job carries everything a worker needs and nothing it must share with the
coordinator's disk: the scenario files' *texts* (in the order the coordinator loaded
them, so the worker plans the same calls from the same seed), the profile, the seed,
the target, and which share of the calls to make. The same job travels over a pipe to
a local worker process (:mod:`trunkline.lab.fanout`) or through a Redis stream to a
worker on another machine (:mod:`trunkline.lab.workers_redis`).

Workers and the coordinator then speak in small JSON messages (``{"t": kind, ...}``):

- worker -> coordinator: ``claimed`` (a Redis worker took the job), ``ready`` (voices
  rendered), ``start`` (call ``i`` began), ``result`` (a ``CallResult``), ``tick`` (once
  a second: calls in progress, send lateness, CPU), ``end`` (the share's lab health),
  ``error`` (the job was refused or the worker failed);
- coordinator -> worker: ``go`` (``start_at``: the run's start on the wall clock, which
  every machine reads the same to within NTP's few milliseconds) or ``abort``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trunkline.lab.emodel import codec_profile
from trunkline.lab.profile_parse import parse_profile
from trunkline.lab.profiles import ProfileError
from trunkline.lab.runner import Share

#: Bumped when a job's fields change meaning; a worker refuses a job of another version.
JOB_VERSION = 1
#: A job larger than this is refused unread: scenario files are small (the loader caps
#: one at 1 MiB), and a stream entry is no place for more.
MAX_JOB_BYTES = 8 * 1024 * 1024


class JobError(ValueError):
    """A job that cannot be run: malformed JSON, a missing field, a bad scenario."""


@dataclass(frozen=True, slots=True)
class RunJob:
    """One share of a run (see the module docstring).

    Attributes:
        run_id: the run's id, shared by its jobs (the Redis results stream is named by it).
        scenario_files: ``(source, text)`` of each scenario file, in load order.
        scenario_names: the scenarios the coordinator loaded, to check the worker agrees.
        profile: the profile's text (``parse_profile`` reads it back).
        seed: the run's seed.
        target: the target's text.
        part: this share's number (calls whose index is ``part`` mod ``parts``).
        parts: how many shares the run has.
        rtp_ports: the worker's RTP port range (disjoint between local workers).
        label: the A/B side's name, or empty.
        variables: scenario variable overrides.
        transcript_url: the agent's transcript URL template, or None.
        mos_codec: the E-model's codec profile by name (``emodel.CODECS``).
        claim_by: a worker taking the job after this (wall clock) skips it: its
            coordinator has given up on it (0: no deadline).
    """

    run_id: str
    scenario_files: tuple[tuple[str, str], ...]
    scenario_names: tuple[str, ...]
    profile: str
    seed: int
    target: str
    part: int = 0
    parts: int = 1
    rtp_ports: tuple[int, int] = (40000, 49999)
    label: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    transcript_url: str | None = None
    mos_codec: str = "g711"
    claim_by: float = 0.0

    @property
    def share(self) -> Share:
        return Share(self.part, self.parts)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": JOB_VERSION,
                "run_id": self.run_id,
                "scenario_files": [list(pair) for pair in self.scenario_files],
                "scenario_names": list(self.scenario_names),
                "profile": self.profile,
                "seed": self.seed,
                "target": self.target,
                "part": self.part,
                "parts": self.parts,
                "rtp_ports": list(self.rtp_ports),
                "label": self.label,
                "variables": self.variables,
                "transcript_url": self.transcript_url,
                "mos_codec": self.mos_codec,
                "claim_by": self.claim_by,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RunJob:
        """Read a job; every way it can be wrong is a :class:`JobError` saying which.

        Raises:
            JobError: not JSON, another version, a missing or mistyped field.
        """
        if len(text) > MAX_JOB_BYTES:
            raise JobError(f"job of {len(text)} bytes is over {MAX_JOB_BYTES}")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise JobError(f"job is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise JobError("job is not a JSON object")
        if data.get("version") != JOB_VERSION:
            raise JobError(f"job version {data.get('version')!r} is not {JOB_VERSION}")
        try:
            job = cls(
                run_id=_typed(data, "run_id", str),
                scenario_files=tuple(
                    (_str(pair[0]), _str(pair[1])) for pair in _typed(data, "scenario_files", list)
                ),
                scenario_names=tuple(_str(n) for n in _typed(data, "scenario_names", list)),
                profile=_typed(data, "profile", str),
                seed=_typed(data, "seed", int),
                target=_typed(data, "target", str),
                part=_typed(data, "part", int),
                parts=_typed(data, "parts", int),
                rtp_ports=_port_range(_typed(data, "rtp_ports", list)),
                label=_typed(data, "label", str),
                variables={_str(k): _str(v) for k, v in _typed(data, "variables", dict).items()},
                transcript_url=data.get("transcript_url") and _str(data["transcript_url"]),
                mos_codec=_str(data.get("mos_codec", "g711")),
                claim_by=_number(data.get("claim_by", 0.0)),
            )
        except (TypeError, IndexError, KeyError) as exc:
            raise JobError(f"job field is malformed: {exc}") from None
        if not job.run_id or not 0 <= job.part < job.parts:
            raise JobError(f"job has no run id or no share {job.part} of {job.parts}")
        try:
            codec_profile(job.mos_codec)
        except ValueError as exc:
            raise JobError(f"job's mos_codec: {exc}") from None
        return job

    def build(self) -> tuple[list[Any], Any]:
        """The scenarios and the profile, parsed as the coordinator parsed them.

        Raises:
            JobError: a scenario or the profile does not parse, or the scenarios are not
                the ones the coordinator loaded.
        """
        from trunkline.lab.scenario import ScenarioError
        from trunkline.lab.scenario_build import parse_scenarios

        scenarios: list[Any] = []
        try:
            for source, text in self.scenario_files:
                scenarios.extend(parse_scenarios(text, source))
            profile = parse_profile(self.profile)
        except (ScenarioError, ProfileError) as exc:
            raise JobError(f"job does not parse: {exc}") from None
        names = tuple(s.name for s in scenarios)
        if names != self.scenario_names:
            raise JobError(f"job's scenarios {names} are not the run's {self.scenario_names}")
        return scenarios, profile


def scenario_files(scenarios: Sequence[Any]) -> tuple[tuple[str, str], ...]:
    """The ``(source, text)`` of each file the scenarios came from, in load order.

    Raises:
        OSError: a file can no longer be read.
    """
    sources = list(dict.fromkeys(s.source for s in scenarios))
    out = []
    for source in sources:
        with open(source, encoding="utf-8") as fh:
            out.append((source, fh.read()))
    return tuple(out)


def split_ports(ports: tuple[int, int], parts: int) -> list[tuple[int, int]]:
    """``ports`` cut into ``parts`` disjoint ranges, one per local worker.

    Raises:
        ValueError: fewer than two ports per part (RTP takes an even/odd pair).
    """
    lo, hi = ports
    size = (hi - lo + 1) // parts
    if size < 2:
        raise ValueError(f"RTP ports {lo}-{hi} are too few for {parts} workers")
    return [(lo + k * size, lo + (k + 1) * size - 1) for k in range(parts)]


def _typed(data: dict[str, Any], key: str, kind: type) -> Any:
    if key not in data:
        raise JobError(f"job has no {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise JobError(f"job's {key!r} is not {kind.__name__}: {value!r}")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise JobError(f"expected text, got {value!r}")
    return value


def _number(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise JobError(f"expected a number, got {value!r}")
    return float(value)


def _port_range(value: list[Any]) -> tuple[int, int]:
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise JobError(f"job's rtp_ports is not [LO, HI]: {value!r}")
    lo, hi = value
    if not 0 < lo <= hi < 65536:
        raise JobError(f"job's rtp_ports {lo}-{hi} is not a port range")
    return lo, hi
