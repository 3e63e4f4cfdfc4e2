"""Which region relayed a call, from the offerer's selected pair alone.

Why: the region was once read from the allocating side's own report of its relay, and a call in
which the offerer sent from its host candidate to the answerer's relay named no region (the
answerer's nominated pair was not the offerer's). The relay candidate's address is one of its
TURN server's relay addresses whichever side allocated it.
"""

from __future__ import annotations

from pathlib import Path

from simnet.call.row import call_row
from simnet.peer.protocol import CallResult, CandidateInfo, RelayInfo, SelectedPair
from simnet.results.schema import CallOutcome
from simnet.run.one_call import inferred_relay_protocol, relay_region
from simnet.scenario.load import load_scenario
from simnet.scenario.model import CallSpec

SCENARIO = load_scenario(Path(__file__).resolve().parents[2] / "scenarios/two-turn-regions.yaml")
ADDRESSES = {"turn-eu": {"192.0.2.10"}, "turn-us": {"192.0.2.11"}}


def _pair(local: tuple[str, str], remote: tuple[str, str]) -> SelectedPair:
    def info(kind: str, address: str) -> CandidateInfo:
        return CandidateInfo(type=kind, protocol="udp", address=address, port=50000)

    return SelectedPair(local=info(*local), remote=info(*remote))


def test_the_answerers_relay_names_its_region() -> None:
    pair = _pair(("host", "10.0.0.2"), ("relay", "192.0.2.11"))
    assert relay_region(SCENARIO, ADDRESSES, pair) == "us"


def test_the_offerers_relay_names_its_region() -> None:
    pair = _pair(("relay", "192.0.2.10"), ("prflx", "203.0.113.5"))
    assert relay_region(SCENARIO, ADDRESSES, pair) == "eu"


def test_a_direct_call_or_no_pair_has_no_region() -> None:
    direct = _pair(("srflx", "203.0.113.4"), ("srflx", "203.0.113.5"))
    assert relay_region(SCENARIO, ADDRESSES, direct) is None
    assert relay_region(SCENARIO, ADDRESSES, None) is None


def test_the_answerers_relay_report_counts_only_for_the_candidate_the_offerer_uses() -> None:
    """The offerer (Chromium) has moved to the answerer's eu relay while the answerer still
    sends through its us relay: the row must not say region eu and server us."""
    offer_pair = _pair(("prflx", "203.0.113.5"), ("relay", "192.0.2.10"))
    on_eu = _pair(("relay", "192.0.2.10"), ("prflx", "203.0.113.5"))
    on_us = _pair(("relay", "192.0.2.11"), ("prflx", "203.0.113.5"))

    def row(answer_pair: SelectedPair, server: str) -> tuple[str | None, str | None]:
        relay = RelayInfo(server_url=None, server=server, transport="udp")
        offer = CallResult(role="offer", connected=True, selected_pair=offer_pair)
        answer = CallResult(
            role="answer",
            connected=True,
            selected_pair=answer_pair.model_copy(update={"relay": relay}),
        )
        outcome = call_row(offer, answer)
        return outcome.relay_server, outcome.relay_protocol

    assert row(on_eu, "192.0.2.10:3478") == ("192.0.2.10:3478", "udp")
    assert row(on_us, "192.0.2.11:3478") == (None, None)  # not the relay the offerer used


def test_a_relay_transport_is_inferred_only_from_a_single_offered_transport() -> None:
    """aiortc takes one TURN URL; a browser gets every listed transport, so with udp and tcp
    listed the first would be a guess."""
    unknown = CallOutcome(connected=True, path="relay")
    one = inferred_relay_protocol(unknown, CallSpec(turn_transports=["tcp"]))
    assert (one.relay_protocol, one.relay_protocol_inferred) == ("tcp", True)
    several = inferred_relay_protocol(unknown, CallSpec(turn_transports=["udp", "tcp"]))
    assert (several.relay_protocol, several.relay_protocol_inferred) == (None, False)
    known = unknown.model_copy(update={"relay_protocol": "udp"})
    assert inferred_relay_protocol(known, CallSpec(turn_transports=["tcp"])) == known
