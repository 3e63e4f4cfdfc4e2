"""A call's settings are one definition: what a scenario says (and defaults to) is what the peer
agent is told, and the names of phases, milestones and errors agree everywhere they are used."""

from __future__ import annotations

from simnet.callspec import (
    ANSWERER_MILESTONES,
    ERROR_KINDS,
    OFFERER_MILESTONES,
    PHASES,
    ROW_MILESTONES,
    Liveness,
    MediaSpec,
    Timeouts,
    VideoSpec,
)
from simnet.peer.protocol import CallCommand
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import CallSpec, Expectation


def _command(**fields: object) -> CallCommand:
    return CallCommand.model_validate(
        {"role": "offer", "signaling_url_base": "http://x", "room": "r", "peer": "a",
         "remote_peer": "b", **fields}
    )  # fmt: skip


def test_scenario_and_agent_share_the_defaults() -> None:
    scenario, command = CallSpec(), _command()
    assert command.timeouts == scenario.timeouts == Timeouts()
    assert command.media == scenario.media == MediaSpec()
    assert command.liveness == scenario.liveness == Liveness()  # on by default, both sides


def test_a_scenario_video_reaches_the_agent_as_the_same_object() -> None:
    scenario = scenario_from_dict(
        {"hosts": {"alice": {}, "bob": {}}, "servers": {"signaling": {"kind": "signaling"}},
         "call": {"media": {"video": {}}, "timeouts": {"ice_s": 4}, "liveness": None}}
    )  # fmt: skip
    assert scenario.call is not None
    call = scenario.call
    assert call.media.video == VideoSpec(width=640, height=480, fps=30)
    command = _command(media=call.media, timeouts=call.timeouts, liveness=call.liveness)
    assert command.media is call.media and command.timeouts is call.timeouts
    assert command.timeouts.ice_s == 4 and command.liveness is None
    # What crosses the pipe parses back to the scenario's own values.
    again = CallCommand.model_validate(command.model_dump(mode="json"))
    assert again.media == call.media and again.timeouts == call.timeouts


def test_every_phase_has_a_timeout_and_an_error_kind() -> None:
    timeouts = set(Timeouts.model_fields)
    assert {f"{phase}_s" for phase in PHASES} == timeouts
    assert {f"timeout:{phase}" for phase in PHASES} <= set(ERROR_KINDS)


def test_milestone_lists_agree() -> None:
    both = set(OFFERER_MILESTONES) | set(ANSWERER_MILESTONES) | {"ice_checking"}
    assert set(ROW_MILESTONES) <= both
    # Every shared milestone keeps the same relative order for both roles.
    shared = [m for m in OFFERER_MILESTONES if m in ANSWERER_MILESTONES]
    assert shared == [m for m in ANSWERER_MILESTONES if m in OFFERER_MILESTONES]


def test_expectation_errors_are_the_error_kinds() -> None:
    for kind in ERROR_KINDS:
        assert Expectation(connected=False, error=kind).error == kind
