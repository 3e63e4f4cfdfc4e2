"""The controller/agent protocol without processes: what crosses the pipe parses back the same,
mistakes are refused before a call starts, and the TURN URL reported for a relay is the one
aiortc really uses (it takes exactly one, silently skipping those it cannot)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from simnet.callspec import ERROR_KINDS, MediaSpec, Timeouts, VideoSpec
from simnet.peer.aioice_adapter import used_turn_url
from simnet.peer.control import result_of
from simnet.peer.protocol import CallCommand, CallResult, IceServer, command_line


def _command(**fields: object) -> CallCommand:
    base: dict[str, object] = {
        "role": "offer",
        "signaling_url_base": "http://192.0.2.11:8080",
        "room": "r1",
        "peer": "alice",
        "remote_peer": "bob",
    }
    return CallCommand.model_validate({**base, **fields})


def test_command_line_round_trips() -> None:
    cmd = _command(
        ice_servers=[IceServer(urls=["turn:192.0.2.10:3478"], username="u", credential="p")],
        media=MediaSpec(audio=True, video=VideoSpec(width=640, height=480, fps=30)),
        duration_s=2.5,
    )
    line = command_line(cmd)
    assert line.endswith("\n") and "\n" not in line[:-1]  # one line, whatever the content
    sent = json.loads(line)
    assert sent.pop("cmd") == "call"
    assert CallCommand.model_validate(sent) == cmd


@pytest.mark.parametrize(
    "fields",
    [
        {"role": "caller"},
        {"ice_transport_policy": "direct"},
        {"signaling_kind": "carrier-pigeon"},
        {"data_bytes": -1},
        {"media": {"video": {"fps": 0}}},
        {"timeouts": {"ice_s": 0}},
        {"unknown_knob": 1},
    ],
)
def test_bad_commands_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _command(**fields)


def test_total_bound_covers_every_phase_and_the_media_time() -> None:
    timeouts = Timeouts()
    phases = timeouts.model_dump()
    assert timeouts.total_s() > sum(phases.values())
    assert timeouts.total_s(10.0) == pytest.approx(timeouts.total_s() + 10.0)
    assert {f"timeout:{name.removesuffix('_s')}" for name in phases} <= set(ERROR_KINDS)


def test_the_turn_url_reported_is_the_one_aiortc_uses() -> None:
    servers = [
        IceServer(urls=["stun:192.0.2.10:3478"]),
        IceServer(
            urls=[
                "turn:192.0.2.10:3478?transport=sctp",  # not a transport aiortc takes
                "turns:192.0.2.10:5349?transport=udp",  # DTLS: not supported either
                "turn:192.0.2.10:3478?transport=tcp",
                "turn:192.0.2.10:3478?transport=udp",
            ],
            username="u",
            credential="p",
        ),
    ]
    assert used_turn_url(servers) == "turn:192.0.2.10:3478?transport=tcp"
    assert used_turn_url(servers[:1]) is None


def test_result_of_reads_the_result_event() -> None:
    result = CallResult(role="answer", connected=False, error="timeout:ice")
    events = [
        {"event": "call_started", "t": 1.0},
        {"event": "result", "t": 2.0, **result.model_dump(mode="json")},
    ]
    assert result_of(events) == result
    with pytest.raises(ValueError):
        result_of(events[:1])
