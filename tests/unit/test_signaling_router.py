"""The signaling router's pure parts: what each message means, and the order candidates reach
the peer connection (after the remote description, in arrival order, the end last), whatever
order the messages came in. The peer connection is a recorder here; the same router against
real aiortc and a trickling peer is tests/integration/test_external_peer.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from simnet.peer.aiortc.signaling_router import (
    BadMessage,
    ChannelEnded,
    Description,
    EndOfCandidates,
    RemoteCandidate,
    SignalingRouter,
    parse,
)

HOST = "candidate:1 1 udp 2130706431 192.168.1.2 50000 typ host"
RELAY = "candidate:3 1 udp 16777215 192.0.2.10 3000 typ relay raddr 198.51.100.1 rport 40000"
SRFLX = "candidate:2 1 udp 1694498815 198.51.100.1 40000 typ srflx raddr 192.168.1.2 rport 50000"


def _msg(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "from": "alice", "to": "bob", **fields}


def _candidate(candidate: str = HOST, **fields: Any) -> dict[str, Any]:
    return _msg("candidate", candidate=candidate, **{"sdpMid": "0", "sdpMLineIndex": 0, **fields})


def test_parse_reads_each_message_type() -> None:
    offer = parse(_msg("offer", sdp="v=0"), "bob", "alice")
    assert isinstance(offer, Description) and (offer.kind, offer.sdp) == ("offer", "v=0")
    candidate = parse(_candidate(SRFLX, sdpMid=None), "bob", "alice")
    assert isinstance(candidate, RemoteCandidate)
    assert (candidate.candidate, candidate.sdp_mid, candidate.sdp_mline_index) == (SRFLX, None, 0)
    assert candidate.value == SRFLX.removeprefix("candidate:")
    assert isinstance(parse(_msg("end-of-candidates"), "bob", "alice"), EndOfCandidates)
    # the WebRTC API's end-of-candidates: an RTCIceCandidate whose candidate is ""
    assert isinstance(parse(_candidate(""), "bob", "alice"), EndOfCandidates)


@pytest.mark.parametrize(
    "message",
    [
        {**_msg("offer", sdp="v=0"), "from": "carol"},  # another peer of the room
        {**_msg("offer", sdp="v=0"), "to": "carol"},  # addressed to another peer
        _msg("bye"),  # a type this peer does not know: forward compatible
        {"type": "offer", "sdp": "v=0"},  # no sender: not the remote peer's
    ],
)
def test_parse_ignores_what_is_not_for_this_peer(message: dict[str, Any]) -> None:
    assert parse(message, "bob", "alice") is None


def test_a_message_without_to_is_for_every_peer() -> None:
    message = _msg("answer", sdp="v=0")
    del message["to"]
    answer = parse(message, "bob", "alice")
    assert isinstance(answer, Description) and (answer.kind, answer.sdp) == ("answer", "v=0")


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (_msg("offer"), "without an 'sdp'"),
        (_msg("answer", sdp=""), "without an 'sdp'"),
        (_msg("candidate"), "without a 'candidate'"),
        (_candidate(HOST.removeprefix("candidate:")), "is not 'candidate:"),
        (_candidate("a=" + HOST), "is not 'candidate:"),
        (_candidate("candidate:1 1 udp 2130706431 192.168.1.2"), "is not 'candidate:"),
        (_candidate(sdpMid=None, sdpMLineIndex=None), "neither sdpMid nor sdpMLineIndex"),
        (_candidate(sdpMid=0), "sdpMid 0"),
        (_candidate(sdpMLineIndex=True), "sdpMLineIndex True"),
        (_candidate(sdpMLineIndex=-1), "sdpMLineIndex -1"),
    ],
)
def test_parse_names_what_is_wrong_with_a_malformed_message(
    message: dict[str, Any], why: str
) -> None:
    with pytest.raises(BadMessage, match=why):
        parse(message, "bob", "alice")


class Bench:
    """A router fed from a queue; `applied` records what reached the 'peer connection'."""

    def __init__(self, refuse: str | None = None) -> None:
        self.inbox: asyncio.Queue[dict[str, Any] | Exception] = asyncio.Queue()
        self.applied: list[str | None] = []
        self.refuse = refuse
        self.router = SignalingRouter(self._receive, "bob", "alice", self._apply)

    async def _receive(self) -> dict[str, Any]:
        item = await self.inbox.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def _apply(self, item: RemoteCandidate | EndOfCandidates) -> None:
        await asyncio.sleep(0)  # applying is asynchronous in aiortc too
        if isinstance(item, RemoteCandidate) and item.candidate == self.refuse:
            raise ValueError("refused")
        self.applied.append(item.candidate if isinstance(item, RemoteCandidate) else None)

    def send(self, *messages: dict[str, Any] | Exception) -> None:
        for message in messages:
            self.inbox.put_nowait(message)

    async def settle(self) -> None:
        """Let the reader and the applier run until both wait for more."""
        for _ in range(20):
            await asyncio.sleep(0)


async def test_candidates_wait_for_the_remote_description_then_keep_their_order() -> None:
    bench = Bench()
    bench.router.start()
    # a trickling offerer's candidate can overtake nothing, but this side may still be busy:
    # here the first candidate is read before anyone asked for the offer
    bench.send(_msg("offer", sdp="v=0 offer"), _candidate(HOST))
    await bench.settle()
    assert (await bench.router.description("offer", 1.0)).sdp == "v=0 offer"  # kept until asked
    bench.send(_candidate(SRFLX))
    await bench.settle()
    assert bench.applied == []  # no remote description yet: nothing is added
    assert bench.router.pending == 2
    bench.router.remote_description_set()
    await bench.settle()
    assert bench.applied == [HOST, SRFLX]
    bench.send(_candidate(RELAY), _msg("end-of-candidates"))
    await bench.settle()
    assert bench.applied == [HOST, SRFLX, RELAY, None]
    # after the end, nothing more is added
    bench.send(_candidate(HOST.replace("50000", "50001")), _msg("end-of-candidates"))
    await bench.settle()
    assert bench.applied[-1] is None and len(bench.applied) == 4
    assert len(bench.router.ignored) == 2
    await bench.router.stop()


async def test_a_description_asked_for_late_carries_the_time_it_arrived() -> None:
    """Its "<kind>_received" milestone is its arrival, as a trickled candidate's is: a
    candidate read right after the offer can never seem to come before it (CI saw that when
    the milestone was stamped when the waiting code resumed)."""
    bench = Bench()
    bench.router.start()
    before = time.monotonic()
    bench.send(_msg("offer", sdp="v=0 offer"), _candidate(HOST))
    await bench.settle()
    await asyncio.sleep(0.01)  # this side is busy: the offer waits to be asked for
    asked = time.monotonic()
    offer = await bench.router.description("offer", 1.0)
    assert before <= offer.t < asked
    await bench.router.stop()


async def test_ignored_messages_do_not_disturb_the_call() -> None:
    bench = Bench(refuse=SRFLX)
    bench.router.start()
    bench.send(
        {**_candidate(HOST), "from": "carol"},  # someone else's
        _candidate("bogus"),  # malformed: named, then ignored
        _msg("answer", sdp="v=0 first"),
        _msg("answer", sdp="v=0 second"),  # a second answer is not the answer
        _candidate(SRFLX),  # the stack refuses this one
        _candidate(HOST),
    )
    bench.router.remote_description_set()
    assert (await bench.router.description("answer", 1.0)).sdp == "v=0 first"
    await bench.settle()
    assert bench.applied == [HOST]
    assert [why.split(":")[0] for why in bench.router.ignored] == [
        "candidate from alice",
        "a second answer from alice",
        "candidate from alice refused",
    ]
    await bench.router.stop()


async def test_a_description_wait_ends_with_the_channel_or_its_timeout() -> None:
    bench = Bench()
    bench.router.start()
    with pytest.raises(TimeoutError):
        await bench.router.description("offer", 0.05)
    waiting = asyncio.ensure_future(bench.router.description("offer", 5.0))
    await bench.settle()
    bench.send(ConnectionResetError("server went away"))
    with pytest.raises(ChannelEnded) as info:
        await waiting
    assert isinstance(info.value.cause, ConnectionResetError)
    with pytest.raises(ChannelEnded):  # a later wait fails the same way, at once
        await bench.router.description("answer", 5.0)
    await bench.router.stop()


async def test_stop_ends_reading_and_applying() -> None:
    bench = Bench()
    bench.router.start()
    bench.router.remote_description_set()
    await bench.router.stop()
    bench.send(_candidate(HOST))
    await bench.settle()
    assert bench.applied == []
    await bench.router.stop()  # idempotent
