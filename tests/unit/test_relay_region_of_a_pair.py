"""Which region relayed a call, from the offerer's selected pair alone.

Why: the region was once read from the allocating side's own report of its relay, and a call in
which the offerer sent from its host candidate to the answerer's relay named no region (the
answerer's nominated pair was not the offerer's). The relay candidate's address is one of its
TURN server's relay addresses whichever side allocated it.
"""

from __future__ import annotations

from pathlib import Path

from simnet.peer.protocol import CandidateInfo, SelectedPair
from simnet.run.calls import relay_region
from simnet.scenario.load import load_scenario

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
