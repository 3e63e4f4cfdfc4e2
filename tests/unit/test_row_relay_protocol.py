"""A relayed row names the relay's transport even when the answerer's selected pair is not the
one the offerer reports (the two sides' pairs can differ for a moment): every relay the
answerer allocated shares one transport, so its relay candidate has it."""

from __future__ import annotations

from simnet.call.row import call_row
from simnet.peer.protocol import CallResult, CandidateInfo, SelectedPair, TurnAttempt


def _candidate(kind: str, address: str, port: int) -> CandidateInfo:
    return CandidateInfo(type=kind, protocol="udp", address=address, port=port)


def _result(role: str, pair: SelectedPair, attempts: list[TurnAttempt]) -> CallResult:
    return CallResult(
        role=role,  # type: ignore[arg-type]
        connected=True,
        selected_pair=pair,
        turn_attempts=attempts,
    )


def _attempt(transport: str) -> TurnAttempt:
    return TurnAttempt(
        server="192.0.2.10:3478",
        transport=transport,  # type: ignore[arg-type]
        ok=True,
        elapsed_ms=3,
    )


def test_the_answerers_only_relay_transport_names_a_remote_relay() -> None:
    relay = _candidate("relay", "192.0.2.10", 50000)
    offer = _result(
        "offer", SelectedPair(local=_candidate("host", "192.168.1.10", 4000), remote=relay), []
    )
    # the answerer reports another pair than the offerer's (its prflx towards the offerer)
    other = SelectedPair(
        local=_candidate("host", "192.168.2.10", 5000),
        remote=_candidate("prflx", "198.51.100.1", 4000),
    )
    answer = _result("answer", other, [_attempt("udp")])
    row = call_row(offer, answer)
    assert (row.path, row.remote_candidate, row.relay_protocol) == ("relay", "relay", "udp")
    # with relays of two transports the answerer's candidate could be either: unknown
    both = _result("answer", other, [_attempt("udp"), _attempt("tcp")])
    assert call_row(offer, both).relay_protocol is None
