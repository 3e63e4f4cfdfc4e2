"""Real WebRTC calls between two warm peer agents in an emulated network.

Why: the call is what simnet measures, so each claim a result makes is checked against the
network itself: the phases happen in order on one shared clock (the answerer receives the offer
after the offerer sent it), the selected candidate pair is the path the packets really take
(nftables counters in the receiving namespaces show the bytes arriving from the peer's NAT for a
direct call and only from the TURN server for a relay-only call), media flows both ways, and a
broken TURN configuration fails quickly with a name, not by hanging.

alice sits behind a port-restricted-cone NAT, bob has a public address; coturn and the
signaling server are public servers; each peer is a `PeerAgent` process in its host's namespace.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from simnet.callspec import ANSWERER_MILESTONES, OFFERER_MILESTONES, MediaSpec, VideoSpec
from simnet.net.builder import Network
from simnet.peer.control.agent import PeerAgent, PeerAgentError, result_of
from simnet.peer.protocol import CallResult
from simnet.services.signaling import SignalingServer
from tests.integration.peerbench import (
    ALICE_BEHIND_NAT,
    DATA_BYTES,
    TIMEOUTS,
    TURN_USER,
    Bench,
    Events,
    aiortc_agent,
    assert_phases_in_order,
    bench_call,
    built,
    commands,
    first_t,
    ice_servers,
    install_counters,
    read_counters,
)
from tests.integration.peerbench import bench as make_bench

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
]


@pytest.fixture
def network() -> Iterator[Network]:
    # Built outside the test's event loop: pyroute2's IPRoute runs its own loop.
    with built(ALICE_BEHIND_NAT, "test-peer-call") as net:
        yield net


@pytest.fixture
async def bench(network: Network) -> AsyncIterator[Bench]:
    async with make_bench(network, aiortc_agent, aiortc_agent) as running:
        yield running


async def joined(signaling: SignalingServer, room: str, timeout_s: float = 10.0) -> None:
    """Wait until a peer has opened its signaling channel in `room` (polling the server)."""
    async with asyncio.timeout(timeout_s):
        while room not in signaling.rooms():
            await asyncio.sleep(0.01)


def assert_signaling_causal(alice: Events, bob: Events) -> None:
    """One clock for all namespaces: a description is received after it was sent."""
    assert first_t(alice, "offer_sent") <= first_t(bob, "offer_received")
    assert first_t(bob, "answer_sent") <= first_t(alice, "answer_received")


# --- tests ----------------------------------------------------------------------------------


async def test_agents_start_warm_in_their_namespaces(bench: Bench) -> None:
    for host, agent in (("alice", bench.alice), ("bob", bench.bob)):
        assert agent.ready_event["netns"] == bench.net.ns(host)  # entered before importing
        assert agent.pid in bench.net.run.pids  # registered: the run's teardown kills it
        assert agent.ready_s is not None and agent.ready_s > 0
        print(
            f"\n{host}: spawn->ready {agent.ready_s * 1000:.0f} ms "
            f"(aiortc imported after {agent.ready_event['import_s'] * 1000:.0f} ms, "
            f"then {agent.ready_event['warm_s'] * 1000:.0f} ms of imports and warm-up)"
        )
    pid = bench.alice.pid
    await bench.alice.close()
    assert not os.path.exists(f"/proc/{pid}")  # reaped, not a zombie
    with pytest.raises(PeerAgentError):
        await bench.alice.call(commands(bench)[0])


async def test_agent_in_a_missing_namespace_fails_to_start(network: Network) -> None:
    with pytest.raises(PeerAgentError) as info:
        await PeerAgent.start(network.run, f"sn-{network.run.id}-nosuchhost", timeout_s=10)
    assert info.value.kind == "start"
    assert "nosuchhost" in str(info.value)  # the end of the agent's log says what went wrong


async def test_agent_death_and_exit_during_a_call(bench: Bench) -> None:
    """A call waiting on a peer that never comes is ended by close(): the agent cancels it
    (still closing its peer connection) and exits, long before the call's own 60 s wait would
    end; an agent killed mid-call is an error for the caller, not a wait."""
    slow = TIMEOUTS.model_copy(update={"signaling_s": 60.0})
    _, answer = commands(bench, timeouts=slow)
    waiting = asyncio.ensure_future(bench.bob.call(answer))
    await joined(bench.signaling, answer.room)  # the agent is in the call
    # An agent that kept waiting in its call would be killed when this grace runs out (its
    # return code then -9): exiting by itself, with 0, is the behaviour checked, not a time.
    await bench.bob.close(timeout_s=30.0)
    assert bench.bob.process.returncode == 0  # exited on request, not killed
    with pytest.raises(PeerAgentError) as info:
        await waiting
    assert info.value.kind == "exited"

    offer, _ = commands(bench, timeouts=slow)
    waiting = asyncio.ensure_future(bench.alice.call(offer))
    await joined(bench.signaling, offer.room)
    os.kill(bench.alice.pid, signal.SIGKILL)
    with pytest.raises(PeerAgentError) as info:
        await asyncio.wait_for(waiting, 5.0)
    assert info.value.kind == "exited"


async def test_direct_call(bench: Bench) -> None:
    net = bench.net
    install_counters(net.ns("bob"), {"from_home": str(net.address("home"))})
    alice_events, bob_events = await bench_call(bench, *commands(bench))
    alice, bob = result_of(alice_events), result_of(bob_events)
    for result in (alice, bob):
        assert result.error is None, result.error_detail
        assert result.connected
        assert result.dc_goodput_mbps is not None and result.dc_goodput_mbps > 0
        assert result.dc_bytes == DATA_BYTES
        assert result.dc_rtt_ms is not None and result.dc_rtt_ms > 0
    assert_phases_in_order(alice_events, OFFERER_MILESTONES)
    assert_phases_in_order(bob_events, ANSWERER_MILESTONES)
    assert_signaling_causal(alice_events, bob_events)

    # alice's host socket, through her NAT, straight to bob's public address
    assert alice.selected_pair is not None and bob.selected_pair is not None
    assert alice.selected_pair.local.type == "host"
    assert alice.selected_pair.remote.type == "host"
    assert alice.selected_pair.remote.address == str(net.address("bob"))
    assert bob.selected_pair.remote.address == str(net.address("home"))  # alice's NAT mapping
    assert bob.selected_pair.remote.type in ("srflx", "prflx")
    assert alice.selected_pair.relay is None and bob.selected_pair.relay is None
    # ...and that is where the megabyte came from
    _, received = read_counters(net.ns("bob"))["from_home"]
    assert received > DATA_BYTES
    print(f"\ndirect: {_figures(alice, bob)}")


@pytest.mark.parametrize(
    ("transport", "url"),
    [
        ("udp", "turn:{ip}:3478?transport=udp"),
        ("tcp", "turn:{ip}:3478?transport=tcp"),
        ("tls", "turns:{ip}:5349?transport=tcp"),  # trusts coturn's certificate via ca_file
    ],
)
async def test_relay_only_call_goes_through_turn(bench: Bench, transport: str, url: str) -> None:
    net = bench.net
    turn_url = url.format(ip=bench.turn.address)
    home, turn = str(net.address("home")), str(bench.turn.address)
    install_counters(net.ns("bob"), {"from_home": home, "from_turn": turn})
    install_counters(net.ns("turn"), {"from_home": home})
    offer, answer = commands(
        bench,
        ice_servers=ice_servers(bench.turn, turn_url),
        ice_transport_policy="relay",
    )
    alice_events, bob_events = await bench_call(bench, offer, answer)
    alice, bob = result_of(alice_events), result_of(bob_events)
    for result in (alice, bob):
        assert result.error is None, result.error_detail
        assert result.connected
        assert result.local_candidates == {"relay": 1}
        pair = result.selected_pair
        assert pair is not None and pair.relay is not None
        assert pair.local.type == "relay" and pair.remote.type == "relay"
        assert pair.local.address == turn and pair.remote.address == turn
        assert pair.relay.transport == transport
        assert pair.relay.server_url == turn_url
        assert pair.relay.server.startswith(f"{turn}:")
        assert result.dc_goodput_mbps is not None and result.dc_goodput_mbps > 0
        assert [a.ok for a in result.turn_attempts] == [True]
    assert_phases_in_order(alice_events, OFFERER_MILESTONES)
    assert_phases_in_order(bob_events, ANSWERER_MILESTONES)

    # The kernel's view: bob never hears from alice's NAT, everything comes from coturn, and
    # coturn got alice's megabyte from her NAT.
    at_bob = read_counters(net.ns("bob"))
    assert at_bob["from_home"] == (0, 0)
    assert at_bob["from_turn"][1] > DATA_BYTES
    assert read_counters(net.ns("turn"))["from_home"][1] > DATA_BYTES
    print(f"\nrelay over {transport}: {_figures(alice, bob)}")


async def test_turns_checks_the_certificate(bench: Bench) -> None:
    """Without coturn's certificate as ca_file, TURN over TLS is refused (verification is on,
    not switched off to make the test pass), and the result says why."""
    turn_url = f"turns:{bench.turn.address}:5349?transport=tcp"
    offer, answer = commands(
        bench,
        ice_servers=ice_servers(bench.turn, turn_url),
        ice_transport_policy="relay",
        ca_file=None,
    )
    alice_events, bob_events = await bench_call(bench, offer, answer)
    alice, bob = result_of(alice_events), result_of(bob_events)
    assert alice.error == "ice-failed" and bob.error == "ice-failed"
    assert [a.ok for a in alice.turn_attempts] == [False]
    assert "CERTIFICATE_VERIFY_FAILED" in (alice.turn_attempts[0].error or "")
    assert "CERTIFICATE_VERIFY_FAILED" in (alice.error_detail or "")


async def test_audio_and_video_flow_both_ways(bench: Bench) -> None:
    media = MediaSpec(audio=True, video=VideoSpec(width=320, height=240, fps=15))
    offer, answer = commands(bench, media=media, duration_s=3.0, data_bytes=100_000)
    alice_events, bob_events = await bench_call(bench, offer, answer)
    for events in (alice_events, bob_events):
        result = result_of(events)
        assert result.error is None, result.error_detail
        assert result.media_window_s is not None and result.media_window_s >= 3.0
        firsts = {(e["kind"], e["direction"]) for e in events if e["event"] == "first_frame"}
        assert firsts == {(k, d) for k in ("audio", "video") for d in ("send", "recv")}
        assert first_t(events, "dtls_connected") <= first_t(events, "first_frame")
        stats = {m.kind: m for m in result.media}
        assert set(stats) == {"audio", "video"}
        for kind, expected_fps in (("audio", 50), ("video", 15)):  # 20 ms audio frames
            sent, received = stats[kind].sent, stats[kind].received
            assert sent is not None and sent.bitrate_kbps > 0
            assert received is not None and received.frames > 0 and received.packets > 0
            assert received.fps > expected_fps / 2
            assert received.packets_lost == 0  # no impairment in this network
        print(
            f"\n{result.role}: "
            + ", ".join(
                f"{m.kind} sent {m.sent.bitrate_kbps:.0f} kbit/s, received {m.received.fps:.1f} "
                f"fps, jitter {m.received.jitter_ms:.1f} ms, RTCP RTT {m.rtt_ms} ms"
                for m in result.media
                if m.sent and m.received
            )
        )


@pytest.mark.parametrize("wrong", ["both", "answerer"])
async def test_wrong_turn_password_fails_fast_with_a_name(bench: Bench, wrong: str) -> None:
    """Relay-only with a bad password: the peer that was refused says "turn-auth" (coturn's
    401, recorded from aioice's allocation attempt); its partner, left without a remote
    candidate, says "ice-failed". Both within milliseconds, not at a phase timeout."""
    username, _ = TURN_USER
    bad = ice_servers(bench.turn, credentials=(username, "wrong"))
    offer, answer = commands(bench, ice_transport_policy="relay")
    answer = answer.model_copy(update={"ice_servers": bad})
    if wrong == "both":
        offer = offer.model_copy(update={"ice_servers": bad})
    started = time.monotonic()
    alice_events, bob_events = await bench_call(bench, offer, answer)
    elapsed = time.monotonic() - started  # reported only: the error kinds say how it failed
    alice, bob = result_of(alice_events), result_of(bob_events)
    assert not alice.connected and not bob.connected
    assert alice.selected_pair is None and bob.selected_pair is None
    assert bob.error == ("ice-failed" if wrong == "both" else "turn-auth"), bob.error_detail
    assert alice.error == ("turn-auth" if wrong == "both" else "ice-failed"), alice.error_detail
    if wrong == "both":
        assert [a.error_code for a in alice.turn_attempts] == [401]
        assert not bob.turn_attempts  # aioice gathers nothing for an offer without candidates
    else:
        assert [a.error_code for a in bob.turn_attempts] == [401]
        assert [a.ok for a in alice.turn_attempts] == [True]
    print(f"\nwrong TURN password ({wrong}): both peers failed in {elapsed * 1000:.0f} ms")


async def test_signaling_failures_are_bounded(bench: Bench) -> None:
    # nothing listens on this port: refused ("signaling"), not waited out ("timeout:signaling")
    offer, _ = commands(bench, signaling_url_base=f"http://{bench.signaling.address}:9")
    result = result_of(await bench.alice.call(offer))
    assert result.error == "signaling" and not result.connected
    # the answerer waits for an offer that never comes: the signaling timeout, not a hang
    timeouts = TIMEOUTS.model_copy(update={"signaling_s": 1.0})
    _, answer = commands(bench, timeouts=timeouts)
    started = time.monotonic()
    result = result_of(await bench.bob.call(answer))
    assert result.error == "timeout:signaling"
    assert time.monotonic() - started >= 1.0  # not before its timeout; never a hang: the
    # controller's own limit on the call (PeerAgent.call) would have raised instead
    # the agents are still usable afterwards
    alice_events, bob_events = await bench_call(bench, *commands(bench, data_bytes=10_000))
    assert result_of(alice_events).error is None and result_of(bob_events).error is None


def _figures(alice: CallResult, bob: CallResult) -> str:
    assert alice.setup_s is not None
    return (
        f"setup (offer created -> data channel open) {alice.setup_s * 1000:.0f} ms, "
        f"goodput {bob.dc_goodput_mbps:.1f} Mbit/s, data-channel RTT {alice.dc_rtt_ms:.2f} ms"
    )
