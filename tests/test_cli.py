"""Bad command lines are refused at start with a message that names the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from trunkline.cli import build_parser, make_app


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--sip", "127.0.0.1"], "expected HOST:PORT"),
        (["serve", "--sip", "127.0.0.1:99999"], "port out of range"),
        (["serve", "--http", ":8080"], "expected HOST:PORT"),
        (["serve", "--rtp-ports", "20000"], "expected LO-HI"),
        (["serve", "--rtp-ports", "30000-20000"], "must be within 1024-65535"),
        (["serve", "--rtp-ports", "80-2000"], "must be within 1024-65535"),
    ],
)
def test_bad_flags_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_defaults_match_the_documented_addresses() -> None:
    args = build_parser().parse_args(["serve"])
    assert args.sip == ("127.0.0.1", 5060)
    assert args.http == ("127.0.0.1", 8080)
    assert args.ring_ms == 0
    assert args.app == ["echo"]


def test_ipv6_listen_address() -> None:
    args = build_parser().parse_args(["serve", "--sip", "[::1]:5070"])
    assert args.sip == ("::1", 5070)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["karaoke"], "unknown app 'karaoke'"),
        (["echo", "extra"], "unknown app 'echo extra'"),
        (["playback"], "unknown app 'playback'"),
        (["playback", "/nonexistent/prompt.wav"], "cannot play"),
    ],
)
def test_bad_apps_are_refused(spec: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        make_app(spec)


def test_playback_of_a_file_that_is_not_wav(tmp_path: Path) -> None:
    path = tmp_path / "junk.wav"
    path.write_bytes(b"this is not a RIFF file at all")
    with pytest.raises(SystemExit, match="cannot play"):
        make_app(["playback", str(path)])
