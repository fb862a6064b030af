"""Load profiles: parsing (CLI text and mappings), arrivals, closed-model targets, and
the breakpoint search state machine."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trunkline.lab.breakpoint import BreakpointSearch, BreakpointUsageError, Phase
from trunkline.lab.load_shape import Segment
from trunkline.lab.profile_parse import parse_profile
from trunkline.lab.profiles import (
    DEFAULT_MAX_CALLS,
    MAX_BREAKPOINT_LEVELS,
    ArrivalMode,
    BreakpointProfile,
    LoadModel,
    LoadProfile,
    Profile,
    ProfileError,
    ProfileKind,
    ProfileUsageError,
)


def shaped(text: str) -> LoadProfile:
    profile = parse_profile(text)
    assert isinstance(profile, LoadProfile)
    return profile


def breakpoint(text: str) -> BreakpointProfile:
    profile = parse_profile(text)
    assert isinstance(profile, BreakpointProfile)
    return profile


# --- parsing --------------------------------------------------------------------------


def test_the_documented_examples_parse() -> None:
    c = shaped("constant:rate=5,duration=60")
    assert (c.kind, c.model, c.duration_s, c.max_calls) == (
        ProfileKind.CONSTANT, LoadModel.OPEN, 60.0, DEFAULT_MAX_CALLS,
    )  # fmt: skip
    assert c.segments == (Segment(0, 60, 5, 5),) and c.arrival_mode is ArrivalMode.POISSON
    closed = shaped("closed:concurrency=50,duration=120")
    assert (closed.kind, closed.model, closed.peak) == (ProfileKind.CONSTANT, LoadModel.CLOSED, 50)
    assert shaped("ramp:from=1,to=20,duration=60").segments == (Segment(0, 60, 1, 20),)
    step = shaped("step:levels=5/10/20,step=30")
    assert step.duration_s == 90 and step.segments == (
        Segment(0, 30, 5, 5), Segment(30, 60, 10, 10), Segment(60, 90, 20, 20),
    )  # fmt: skip
    spike = shaped("spike:base=2,factor=8,at=20,for=10,duration=60")
    assert spike.segments == (Segment(0, 20, 2, 2), Segment(20, 30, 16, 16), Segment(30, 60, 2, 2))
    soak = shaped("soak:rate=2,duration=1h")
    assert (soak.kind, soak.duration_s, soak.text) == (
        ProfileKind.SOAK, 3600.0, "soak:rate=2,duration=3600",
    )  # fmt: skip
    bp = breakpoint("breakpoint:start=10,step=10,max=1000,hold=20")
    assert (bp.model, bp.start, bp.step, bp.factor, bp.max_level, bp.hold_s, bp.refine) == (
        LoadModel.CLOSED, 10, 10, None, 1000, 20, 0,
    )  # fmt: skip
    assert len(bp.ladder()) == 100 and bp.duration_s == 100 * 20


def test_options_units_and_canonical_text() -> None:
    p = shaped(" Ramp : from=0 , to=4, duration=90s, model=closed , max_calls=77 ")
    assert p.model is LoadModel.CLOSED and p.max_calls == 77
    assert p.text == "ramp:from=0,to=4,duration=90,model=closed,max_calls=77"
    assert shaped("constant:rate=1,duration=1.5m,arrivals=even").text == (
        "constant:rate=1,duration=90,arrivals=even"
    )
    assert (
        shaped("constant:concurrency=3,duration=500ms").text == "closed:concurrency=3,duration=0.5"
    )
    step = shaped("step:levels=1/2,step=10,duration=35")  # the last level holds to the end
    assert step.segments == (Segment(0, 10, 1, 1), Segment(10, 35, 2, 2))
    assert shaped("step:levels=1/2/3,step=10,duration=15").segments == (
        Segment(0, 10, 1, 1), Segment(10, 15, 2, 2),
    )  # fmt: skip
    bp = breakpoint("breakpoint:start=1,factor=2,max=100,hold=5,refine=3")
    assert bp.ladder() == (1, 2, 4, 8, 16, 32, 64, 100)
    assert bp.text == "breakpoint:start=1,factor=2,max=100,hold=5,refine=3"
    assert bp.duration_s == (8 + 3) * 5
    hold = bp.hold_profile(16)
    assert (hold.model, hold.duration_s, hold.segments) == (
        LoadModel.CLOSED,
        5,
        (Segment(0, 5, 16, 16),),
    )


EXAMPLES = [
    "constant:rate=5,duration=60",
    "closed:concurrency=50,duration=120",
    "ramp:from=1,to=20,duration=60",
    "step:levels=5/10/20,step=30",
    "spike:base=2,factor=8,at=20,for=10,duration=60",
    "soak:rate=2,duration=3600",
    "breakpoint:start=10,step=10,max=1000,hold=20",
    "breakpoint:start=0.5,factor=1.5,max=40,hold=10,refine=4,model=open,arrivals=even",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_mapping_form_and_canonical_text_give_the_same_profile(text: str) -> None:
    profile = parse_profile(text)
    assert parse_profile(profile.text) == profile
    kind, _, rest = text.partition(":")
    mapping: dict[str, object] = {"kind": kind}
    for item in rest.split(","):
        key, _, value = item.partition("=")
        mapping[key] = value if key in ("levels", "model", "arrivals") else float(value)
    assert parse_profile(mapping) == profile


def test_mapping_specific_forms() -> None:
    got = parse_profile({"kind": "step", "levels": [1, 2], "step": "30s", "max_calls": 9})
    assert isinstance(got, LoadProfile) and got.max_calls == 9 and got.duration_s == 60
    with pytest.raises(ProfileError, match="missing kind") as info:
        parse_profile({"rate": 5})
    assert info.value.key == "kind"
    with pytest.raises(ProfileError) as info:
        parse_profile({"kind": "constant", "rate": True, "duration": 5})
    assert (info.value.key, str(info.value)) == ("rate", "rate: expected a number, got True")
    with pytest.raises(ProfileError, match="parameter names are text"):
        parse_profile({"kind": "constant", 5: 1})
    with pytest.raises(ProfileError, match="expected levels"):
        parse_profile({"kind": "step", "levels": [], "step": 3})
    with pytest.raises(ProfileError, match="expected text or a mapping"):
        parse_profile(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("", None, "empty profile; expected e.g. constant:rate=5,duration=60"),
        ("constnat:rate=5", None, "unknown profile kind 'constnat'; expected one of constant, "
         "soak, closed, ramp, step, spike, breakpoint; did you mean 'constant'?"),
        ("constant:rate=5", "duration", "duration: missing; e.g. constant:rate=5,duration=60"),
        ("constant:duration=5", "rate",
         "rate: missing: give rate (calls per second) or concurrency"),
        ("constant:rate=1,concurrency=2,duration=5", "concurrency",
         "concurrency: give rate (open model) or concurrency (closed), not both"),
        ("constant:rate=5,duraton=60", "duraton",
         "duraton: unknown parameter for constant; did you mean 'duration'?"),
        ("constant:rate=5,,duration=60", None, "'' is not key=value"),
        ("constant:rate=5,duration", "duration", "duration: 'duration' is not key=value"),
        ("constant:rate=5,rate=6,duration=1", "rate", "rate: given twice"),
        ("constant:rate=fast,duration=1", "rate", "rate: expected a number, got 'fast'"),
        ("constant:rate=nan,duration=1", "rate", "rate: expected a finite number, got 'nan'"),
        ("constant:rate=1e999,duration=1", "rate", "rate: expected a finite number, got '1e999'"),
        ("constant:rate=0,duration=1", "rate", "rate: must be above 0"),
        ("constant:rate=5000,duration=1", "rate", "rate: 5000 is out of range 0..1000"),
        ("closed:concurrency=2.5,duration=1", "concurrency",
         "concurrency: expected a whole number, got 2.5"),
        ("closed:concurrency=2,duration=1,arrivals=even", "arrivals",
         "arrivals: only for the open model (calls per second)"),
        ("constant:rate=1,duration=1,arrivals=bursty", "arrivals",
         "arrivals: expected one of poisson, even, got 'bursty'"),
        ("constant:rate=1,duration=0", "duration", "duration: must be above 0, got 0"),
        ("constant:rate=1,duration=3 days", "duration",
         "duration: expected seconds such as 90, 90s, 1.5m or 2h; got '3 days'"),
        ("soak:rate=1,duration=200h", "duration", "duration: 720000 is out of range 0..604800"),
        ("constant:rate=1,duration=9,max_calls=0", "max_calls",
         "max_calls: 0 is out of range 1..100000000"),
        ("ramp:from=0,to=0,duration=5", "to", "to: a ramp from 0 to 0 starts no calls"),
        ("ramp:from=1,to=2,duration=5,model=half", "model",
         "model: expected one of open, closed, got 'half'"),
        ("step:levels=0/0,step=5", "levels", "levels: every level is 0: no calls"),
        ("step:levels=1/x,step=5", "levels", "levels: expected a number, got 'x'"),
        ("step:levels=" + "/".join(["1"] * 101) + ",step=5", "levels",
         "levels: 101 levels; at most 100"),
        ("step:levels=1/2,step=400000", "step",
         "step: 2 levels of 400000 s pass the longest run (604800 s)"),
        ("spike:base=2,factor=8,at=60,for=10,duration=60", "at",
         "at: the spike must start within the run (0 <= at < 60)"),
        ("spike:base=2,factor=8,at=55,for=10,duration=60", "for",
         "for: the spike ends at 65 s, after the run"),
        ("spike:base=200,factor=8,at=5,for=10,duration=60", "factor",
         "factor: base x factor = 1600 is over 1000"),
        ("spike:base=0,factor=8,at=5,for=10,duration=60", "base",
         "base: a spike on a base of 0 is 0"),
        ("breakpoint:start=10,max=100,hold=5", "step",
         "step: give step (added per level) or factor (multiplied), one of them"),
        ("breakpoint:start=10,step=1,factor=2,max=100,hold=5", "step",
         "step: give step (added per level) or factor (multiplied), one of them"),
        ("breakpoint:start=10,factor=1,max=100,hold=5", "factor",
         "factor: must be above 1 to climb"),
        ("breakpoint:start=10,step=1,max=5,hold=5", "max", "max: 5 is out of range 10..100000"),
        ("breakpoint:start=1,step=1,max=1000,hold=5", "max",
         f"max: more than {MAX_BREAKPOINT_LEVELS} levels from 1 to 1000; take bigger steps"),
        ("breakpoint:start=500,step=1e-20,max=501,hold=5,model=open", "max",
         f"max: more than {MAX_BREAKPOINT_LEVELS} levels from 500 to 501; take bigger steps"),
        ("breakpoint:start=1,step=1,max=9,hold=5,refine=11", "refine",
         "refine: 11 is out of range 0..10"),
        ("breakpoint:start=1,step=1,max=9,hold=5,arrivals=even", "arrivals",
         "arrivals: only for the open model (calls per second)"),
        ("x" * 1001, None, "profile is longer than 1000 characters"),
    ],
)  # fmt: skip
def test_errors_name_the_offending_key(text: str, key: str | None, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile(text)
    assert (info.value.key, str(info.value)) == (key, message)


_KEYWORDS = ["rate", "concurrency", "duration", "from", "to", "levels", "step", "base",
             "factor", "at", "for", "start", "max", "hold", "refine", "model", "arrivals",
             "max_calls"]  # fmt: skip
_VALUES = st.one_of(
    st.sampled_from(
        [
            "5",
            "0",
            "-1",
            "1.5",
            "1e3",
            "nan",
            "inf",
            "2h",
            "90s",
            "1/2/3",
            "open",
            "closed",
            "even",
            "",
            "1e999",
            "0.0001",
        ]
    ),  # fmt: skip
    st.text(max_size=8),
    st.floats(allow_nan=True).map(repr),
)
_PROFILE_TEXT = st.builds(
    lambda kind, items: f"{kind}:" + ",".join(f"{k}={v}" for k, v in items),
    st.sampled_from(["constant", "closed", "soak", "ramp", "step", "spike", "breakpoint", "x"]),
    st.lists(st.tuples(st.sampled_from(_KEYWORDS), _VALUES), max_size=7),
)


_NUM = st.one_of(st.integers(1, 500).map(str), st.floats(0.01, 500).map(repr))
_SECS = st.one_of(
    st.integers(1, 3000).map(str),
    st.floats(0.01, 1000).map(repr),
    st.integers(1, 50).map("{}m".format),
    st.integers(1, 5).map("{}h".format),
)
_LIKELY_VALID = st.builds(
    "{}{}".format,
    st.one_of(
        st.builds("constant:rate={},duration={}".format, _NUM, _SECS),
        st.builds("soak:concurrency={},duration={}".format, st.integers(1, 900), _SECS),
        st.builds("ramp:from={},to={},duration={}".format, _NUM, _NUM, _SECS),
        st.builds("step:levels={}/{},step={}".format, _NUM, _NUM, _SECS),
        st.builds("spike:base={},factor={},at=0,for={},duration=20000".format,
                  st.floats(0.01, 10).map(repr), st.floats(0.1, 50).map(repr), _SECS),
        st.builds("breakpoint:start={},step={},max={},hold={},model=open".format,
                  _NUM, _NUM, _NUM, st.integers(1, 3600)),
    ),
    st.sampled_from(["", ",arrivals=even", ",max_calls=5", ",model=closed"]),
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=120), _PROFILE_TEXT, _LIKELY_VALID))
def test_any_text_parses_or_raises_profile_error(text: str) -> None:
    try:
        profile = parse_profile(text)
    except ProfileError as exc:
        assert str(exc)
        return
    assert parse_profile(profile.text) == profile
    assert 0 < profile.duration_s <= 7 * 86_400 and profile.max_calls >= 1


# --- arrivals and the closed model ------------------------------------------------------


def test_poisson_arrivals_are_seeded_and_near_the_rate() -> None:
    p = shaped("constant:rate=5,duration=60")
    assert p.expected_calls == 300
    first = list(p.arrivals(1))
    assert first == list(p.arrivals(1)) and first != list(p.arrivals(2))
    for seed in range(5):  # fixed seeds: the counts are deterministic, near 300 +- 3 sigma
        assert 248 < len(list(p.arrivals(seed))) < 352


def test_even_arrivals_follow_the_rate_exactly() -> None:
    p = shaped("constant:rate=5,duration=2,arrivals=even")
    assert [round(t, 9) for t in p.arrivals(0)] == [round(0.1 + 0.2 * k, 9) for k in range(10)]
    spike = shaped("spike:base=2,factor=8,at=20,for=10,duration=60,arrivals=even")
    times = list(spike.arrivals(0))
    assert len(times) == round(spike.expected_calls) == 2 * 50 + 16 * 10
    assert sum(20 <= t < 30 for t in times) == 160 and sum(t < 20 for t in times) == 40
    ramp = shaped("ramp:from=0,to=10,duration=10,arrivals=even")  # Λ(t) = t²/2
    got = list(ramp.arrivals(0))
    assert len(got) == 50 and all(math.isclose(t, math.sqrt(2 * k + 1)) for k, t in enumerate(got))


def test_max_calls_caps_the_arrivals() -> None:
    p = shaped("constant:rate=100,duration=100,max_calls=10")
    assert len(list(p.arrivals(3))) == 10
    assert (
        len(list(shaped("constant:rate=100,duration=100,arrivals=even,max_calls=7").arrivals(0)))
        == 7
    )


_OPEN_TEXT = st.one_of(
    st.builds("constant:rate={},duration={}".format, st.floats(0.01, 40), st.floats(0.01, 60)),
    st.builds("ramp:from={},to={},duration={}".format,
              st.floats(0, 40), st.floats(0.01, 40), st.floats(0.01, 60)),
    st.builds("step:levels={}/{}/{},step={}".format, st.floats(0, 30), st.floats(0.01, 30),
              st.floats(0, 30), st.floats(0.01, 20)),
    st.builds("spike:base={},factor={},at={},for={},duration=60".format,
              st.floats(0.01, 5), st.floats(0.1, 8), st.floats(0, 40), st.floats(0.01, 20)),
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _OPEN_TEXT,
    st.sampled_from(["", ",arrivals=even"]),
    st.one_of(st.just(""), st.integers(1, 50).map(",max_calls={}".format)),
    st.integers(0, 2**64),
)
def test_arrivals_are_bounded_sorted_and_within_the_run(
    text: str, mode: str, cap: str, seed: int
) -> None:
    profile = shaped(text + mode + cap)
    limit = profile.max_calls
    times = list(itertools.islice(profile.arrivals(seed), limit + 1))
    assert len(times) <= limit
    assert times == sorted(times)
    assert all(0 <= t < profile.duration_s for t in times)
    assert all(profile.level_at(t) > 0 or _at_edge(profile, t) for t in times)
    if mode and not cap:
        assert len(times) == round(profile.expected_calls) or math.isclose(
            profile.expected_calls % 1, 0.5, abs_tol=1e-6
        )


def _at_edge(profile: LoadProfile, t: float) -> bool:
    """A call may land where a ramp touches 0 (the rate is 0 only at that instant)."""
    return any(math.isclose(t, s.start_s) or math.isclose(t, s.end_s) for s in profile.segments)


def test_closed_model_targets_and_starts() -> None:
    p = shaped("ramp:from=0,to=10,duration=10,model=closed,max_calls=12")
    assert [p.concurrency_at(t) for t in (-1, 0, 0.4, 0.5, 5, 9.99, 10, 11)] == [
        0, 0, 0, 1, 5, 10, 0, 0,
    ]  # fmt: skip
    assert p.calls_to_start(5, active=2, started=2) == 3
    assert p.calls_to_start(5, active=7, started=7) == 0  # never negative
    assert p.calls_to_start(9.5, active=0, started=10) == 2  # the cap: 12 calls in all
    assert p.calls_to_start(9.5, active=0, started=12) == 0
    with pytest.raises(ProfileUsageError, match="arrivals"):
        p.arrivals(1)
    with pytest.raises(ProfileUsageError, match="expected_calls"):
        _ = p.expected_calls
    with pytest.raises(ProfileUsageError, match="concurrency_at"):
        shaped("constant:rate=1,duration=1").concurrency_at(0)


def test_level_at_is_zero_outside_the_run() -> None:
    p = shaped("step:levels=3/6,step=10")
    assert [p.level_at(t) for t in (-0.1, 0, 9.9, 10, 19.9, 20)] == [0, 3, 3, 6, 6, 0]


# --- breakpoint search ------------------------------------------------------------------


def run_search(profile: Profile, capacity: float, limit: int = 1000) -> BreakpointSearch:
    """Drive a search against a target that passes every level up to ``capacity``."""
    assert isinstance(profile, BreakpointProfile)
    search = BreakpointSearch(profile)
    for _ in range(limit):
        level = search.next_level()
        if level is None:
            break
        search.report(level, level <= capacity, {"p95_ms": level * 2})
    assert search.done
    return search


def test_breakpoint_climbs_then_bisects_to_the_knee() -> None:
    search = run_search(parse_profile("breakpoint:start=10,step=10,max=1000,hold=20,refine=5"), 437)
    result = search.result
    assert (result.knee, result.first_failure, result.reached_max) == (437, 438, False)
    levels = [s.level for s in result.steps]
    assert levels == [*range(10, 450, 10), 435, 437, 438]
    assert [s.phase for s in result.steps][-4:] == [
        Phase.CLIMB,
        Phase.REFINE,
        Phase.REFINE,
        Phase.REFINE,
    ]
    assert result.knee_figures == {"p95_ms": 874}


def test_breakpoint_without_refinement_and_edge_outcomes() -> None:
    plain = run_search(parse_profile("breakpoint:start=10,step=10,max=100,hold=1"), 55).result
    assert (plain.knee, plain.first_failure, len(plain.steps)) == (50, 60, 6)
    top = run_search(parse_profile("breakpoint:start=1,factor=2,max=100,hold=1,refine=3"), 1e9)
    assert (top.result.knee, top.result.reached_max, top.result.first_failure) == (100, True, None)
    assert [s.level for s in top.result.steps] == [1, 2, 4, 8, 16, 32, 64, 100]
    none = run_search(parse_profile("breakpoint:start=10,step=10,max=100,hold=1,refine=3"), 5)
    assert (none.result.knee, none.result.first_failure, none.result.knee_figures) == (
        None,
        10,
        None,
    )
    opened = run_search(
        parse_profile("breakpoint:start=1,step=1,max=9,hold=1,refine=4,model=open"), 4.3
    )
    assert [s.level for s in opened.result.steps][4:] == [5, 4.5, 4.25, 4.375, 4.3125]
    assert (opened.result.knee, opened.result.first_failure) == (4.25, 4.3125)


def test_breakpoint_usage_errors() -> None:
    search = BreakpointSearch(breakpoint("breakpoint:start=10,step=10,max=20,hold=1"))
    with pytest.raises(BreakpointUsageError, match="asked for 10"):
        search.report(20, True)
    assert search.report(10, True) == 20 and search.report(20, True) is None
    with pytest.raises(BreakpointUsageError, match="the search is over"):
        search.report(20, True)
    assert search.next_level() is None and search.result.reached_max


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([
        "breakpoint:start=1,step=3,max=60,hold=1",
        "breakpoint:start=2,factor=1.7,max=500,hold=1",
        "breakpoint:start=0.5,factor=2,max=64,hold=1,model=open",
    ]),
    st.integers(0, 10),
    st.lists(st.booleans(), max_size=80),
)  # fmt: skip
def test_breakpoint_search_is_finite_and_its_knee_consistent(
    base: str, refine: int, verdicts: list[bool]
) -> None:
    profile = breakpoint(f"{base},refine={refine}")
    search = BreakpointSearch(profile)
    bound = len(profile.ladder()) + refine
    answers = iter(verdicts)
    for _ in range(bound + 1):
        level = search.next_level()
        if level is None:
            break
        search.report(level, next(answers, False))
    assert search.done and len(search.result.steps) <= bound
    result = search.result
    passed = {s.level for s in result.steps if s.passed}
    failed = {s.level for s in result.steps if not s.passed}
    if result.knee is not None:
        assert result.knee in passed
    if result.first_failure is not None:
        assert result.first_failure in failed
        assert result.knee is None or result.knee < result.first_failure
    assert result.reached_max == (result.first_failure is None)
    with pytest.raises(BreakpointUsageError):
        search.report(profile.start, True)
