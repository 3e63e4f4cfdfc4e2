"""A peer that is not simnet's, speaking the documented peer protocol, calls simnet's aiortc agent.

Why: the peer protocol (docs/peer-protocol.md) is the interface a team plugs its own client
into, so it must be enough on its own. `examples/peers/minimal_peer.py` is written from the
document, imports nothing of simnet, and is started exactly as a team's peer would be
(`PeerAgent.start(..., argv=...)`, inside the host's namespace). It also trickles its ICE
candidates when it offers, as a browser does (offer first, without candidates, then one
"candidate" message each, then "end-of-candidates"), which is how these tests prove that
simnet's aiortc answerer takes trickled candidates: the answerer's only way to learn the
offerer's host, srflx and relay candidates is those messages. With `--trickle always` it
trickles its answer too, which simnet's aiortc offerer takes the same way.

The network is the peer-call tests' (tests/integration/peerbench.py): alice behind a
port-restricted-cone NAT, bob public, coturn and the signaling server public.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from simnet.callspec import ANSWERER_MILESTONES, OFFERER_MILESTONES, MediaSpec
from simnet.net.builder import Network
from simnet.peer.control.agent import PeerAgent, PeerAgentError, result_of
from simnet.peer.protocol import PROTOCOL_VERSION
from simnet.peerkinds import DEFAULT_KIND, EXTERNAL_KIND
from simnet.run.calls import run_scenario
from simnet.run.peers import peer_argv
from simnet.scenario import load_scenario
from simnet.scenario.model import ExternalPeer, HostSpec
from tests.integration.peerbench import (
    ALICE_BEHIND_NAT,
    DATA_BYTES,
    AgentStarter,
    Services,
    aiortc_agent,
    bench_call,
    built,
    commands,
    first_t,
)
from tests.integration.peerbench import bench as make_bench
from tests.integration.peerbench import services as start_services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
MINIMAL_PEER = [sys.executable, str(ROOT / "examples" / "peers" / "minimal_peer.py")]


@pytest.fixture
def network() -> Iterator[Network]:
    with built(ALICE_BEHIND_NAT, "test-external-peer") as net:
        yield net


@pytest.fixture
async def services(network: Network) -> AsyncIterator[Services]:
    async with start_services(network) as running:
        yield running


def minimal_peer(*flags: str) -> AgentStarter:
    """Starts the example peer on a host, as a team's own peer would be started: as a host
    whose `peer: {command: ...}` names it, through the registry's external kind."""

    async def start(services: Services, host: str) -> PeerAgent:
        net = services.net
        spec = HostSpec(peer=ExternalPeer(command=shlex.join([*MINIMAL_PEER, *flags])))
        argv = peer_argv(spec, net.ns(host), net.run.workdir, host)
        assert argv[1:] == [*MINIMAL_PEER[1:], *flags]  # the program found, its arguments kept
        return await PeerAgent.start(net.run, net.ns(host), argv=argv)

    return start


def test_simnet_run_calls_the_example_named_by_a_scenario() -> None:
    """A scenario's `hosts.bob.peer: {command: ...}` is enough: `run_scenario` starts the
    example through the registry's external kind, calls it and says so in the row."""
    command = shlex.join(MINIMAL_PEER)
    scenario = load_scenario(SCENARIOS / "direct-lan.yaml", [f"hosts.bob.peer.command={command}"])
    assert scenario.hosts["bob"].peer_kind == EXTERNAL_KIND
    (row,) = run_scenario(scenario)
    assert row["connected"] and row["error"] is None, (row["error"], row["error_detail"])
    assert row["path"] == "direct"
    assert (row["offerer_peer"], row["answerer_peer"]) == (DEFAULT_KIND, EXTERNAL_KIND)


def _assert_measured(events: list[dict[str, Any]], milestones: tuple[str, ...]) -> None:
    result = result_of(events)  # validates against CallResult: the example's result is valid
    assert result.error is None, result.error_detail
    assert result.connected
    assert result.dc_bytes == DATA_BYTES
    assert result.dc_goodput_mbps is not None and result.dc_goodput_mbps > 0
    assert result.dc_rtt_ms is not None and result.dc_rtt_ms > 0
    assert result.setup_s is not None and result.setup_s > 0
    assert set(milestones) <= set(result.phase_t)
    for name in milestones:
        assert result.phase_t[name] == first_t(events, name)  # one clock, one value


async def test_a_trickling_external_offerer_calls_the_aiortc_agent(network: Network) -> None:
    async with make_bench(network, minimal_peer(), aiortc_agent) as bench:
        assert bench.alice.ready_event["protocol"] == PROTOCOL_VERSION
        assert bench.alice.ready_event["peer_kind"] == "minimal-example"
        assert bench.bob.ready_event["peer_kind"] == "aiortc"
        alice_events, bob_events = await bench_call(bench, *commands(bench))
    _assert_measured(alice_events, OFFERER_MILESTONES)
    _assert_measured(bob_events, ANSWERER_MILESTONES)

    # alice trickled: her offer left before she had gathered anything
    assert first_t(alice_events, "offer_sent") < first_t(alice_events, "gathering_done")
    # bob took each of her candidates from its own message, after the offer, and ended them
    trickled = [e for e in bob_events if e["event"] == "remote_candidate"]
    assert trickled and all(e["applied"] for e in trickled)
    types = {e["candidate"].split()[7] for e in trickled}
    assert {"host", "srflx", "relay"} <= types  # STUN and TURN both offered to alice
    assert first_t(bob_events, "offer_received") <= min(e["t"] for e in trickled)
    assert first_t(bob_events, "remote_candidates_end") >= max(e["t"] for e in trickled)
    result = result_of(bob_events)
    # aioice knows those candidates (and nothing came in the offer's SDP)
    for kind in ("host", "srflx", "relay"):
        assert result.remote_candidates.get(kind, 0) >= 1
    # the pair is alice's NAT mapping: learned from her trickled srflx or her first check
    pair = result.selected_pair
    assert pair is not None and pair.remote.address == str(network.address("home"))
    print(
        f"\ntrickled offer: {len(trickled)} candidates {sorted(types)}, the last "
        f"{(max(e['t'] for e in trickled) - first_t(bob_events, 'offer_received')) * 1000:.0f} ms "
        f"after the offer; set-up {result_of(alice_events).setup_s * 1000:.0f} ms (alice), "
        f"goodput {result.dc_goodput_mbps:.1f} Mbit/s"
    )


@pytest.mark.parametrize("trickle", ["never", "always"])
async def test_the_aiortc_agent_offers_to_an_external_answerer(
    network: Network, trickle: str
) -> None:
    """The answer complete, or trickled (sent before gathering, as a browser answerer does):
    simnet's aiortc offerer connects either way."""
    async with make_bench(network, aiortc_agent, minimal_peer("--trickle", trickle)) as bench:
        alice_events, bob_events = await bench_call(bench, *commands(bench))
    _assert_measured(alice_events, OFFERER_MILESTONES)
    _assert_measured(bob_events, ANSWERER_MILESTONES)
    pair = result_of(alice_events).selected_pair
    assert pair is not None and pair.remote.address == str(network.address("bob"))
    assert result_of(bob_events).selected_pair is not None  # the example reports its pair too
    trickled = [e for e in alice_events if e["event"] == "remote_candidate"]
    if trickle == "always":
        assert first_t(bob_events, "answer_sent") < first_t(bob_events, "gathering_done")
        assert trickled and all(e["applied"] for e in trickled)
        assert first_t(alice_events, "remote_candidates_end") >= max(e["t"] for e in trickled)
    else:
        assert trickled == []
    print(
        f"\nexternal answerer ({trickle=}): set-up {result_of(alice_events).setup_s * 1000:.0f} ms"
    )


async def test_an_external_peer_refuses_what_it_cannot_do(services: Services) -> None:
    """A call the peer cannot make is refused at once with its reason, not run and failed."""
    net = services.net
    bob = await PeerAgent.start(net.run, net.ns("bob"), argv=MINIMAL_PEER)
    try:
        _, answer = commands(services)
        with pytest.raises(PeerAgentError) as info:
            await bob.call(answer.model_copy(update={"media": MediaSpec(audio=True)}))
        assert info.value.kind == "rejected"
        assert "does not send or measure media" in str(info.value)
    finally:
        await bob.close()
    assert bob.process.returncode == 0  # {"cmd": "exit"} ends it cleanly


@pytest.mark.parametrize(("announced", "shown"), [("2", "2"), ("None", "None")])
async def test_a_peer_of_another_protocol_version_is_refused(
    network: Network,
    announced: str,
    shown: str,
) -> None:
    ready = (
        "import json, sys, time\n"
        "event = {'event': 'ready', 't': time.monotonic(), 'peer_kind': 'future'}\n"
        f"if {announced} is not None: event['protocol'] = {announced}\n"
        "print(json.dumps(event), flush=True)\n"
        "sys.stdin.read()\n"
    )
    with pytest.raises(PeerAgentError) as info:
        await PeerAgent.start(network.run, network.ns("bob"), argv=[sys.executable, "-c", ready])
    assert info.value.kind == "start"
    message = str(info.value)
    assert f"speaks peer protocol {shown}, simnet speaks {PROTOCOL_VERSION}" in message
    assert "docs/peer-protocol.md" in message  # where to read what version 1 is


async def test_a_midcall_command_is_answered_and_never_ends_the_call(network: Network) -> None:
    """`{"cmd": "ice-restart"}` during a call, to a peer that does not know it (the example
    answers `error`) and to one that cannot do it (simnet's aiortc agent answers `ice_restart`
    with supported false and why): both calls go on and are measured as usual; the example's
    `error` is the command's answer (marked with it), not a rejection of the call."""
    import asyncio

    from simnet.peer.aiortc.agent import NO_ICE_RESTART

    sent: list[asyncio.Future[None]] = []

    def restart_on_start(agent: PeerAgent) -> Any:
        def seen(event: dict[str, Any]) -> None:
            if event["event"] == "call_started":
                sent.append(asyncio.ensure_future(agent.command("ice-restart")))

        return seen

    async with make_bench(network, minimal_peer(), aiortc_agent) as bench:
        offer, answer = commands(bench)
        alice_events, bob_events = await asyncio.gather(
            bench.alice.call(offer, on_event=restart_on_start(bench.alice)),
            bench.bob.call(answer, on_event=restart_on_start(bench.bob)),
        )
        await asyncio.gather(*sent)
    _assert_measured(alice_events, OFFERER_MILESTONES)
    _assert_measured(bob_events, ANSWERER_MILESTONES)
    [refused] = [e for e in alice_events if e["event"] == "error"]
    assert refused["cmd"] == "ice-restart" and "ice-restart" in refused["error"], refused
    [answered] = [e for e in bob_events if e["event"] == "ice_restart"]
    assert answered["supported"] is False and answered["reason"] == NO_ICE_RESTART
