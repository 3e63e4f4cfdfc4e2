"""The bench the peer-call tests share: a network, real coturn and signaling, warm agents.

Why one module: the aiortc, Chromium and external-peer tests check the same claims (phases in
order on one clock, the selected pair is the path the packets take, nothing survives the
teardown) for different stacks behind the same protocol, so they build the same bench the
same way; only which agent each host runs differs.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nftables

from simnet.callspec import Timeouts
from simnet.net import netns
from simnet.net.builder import Network, apply_nft, emulated_network
from simnet.net.plan import plan_network
from simnet.peer import firefox
from simnet.peer.chromium import agent_argv
from simnet.peer.control.agent import PeerAgent
from simnet.peer.protocol import CallCommand, IceServer
from simnet.scenario.load import scenario_from_dict
from simnet.services.coturn import CoturnHandle, LongTermAuth, TurnConfig, start_coturn
from simnet.services.signaling import SignalingServer

TURN_USER = ("alice", "correct-horse")
DATA_BYTES = 1_000_000
# Short enough that a regression shows as a failure, not a long wait; generous for 2 loaded cores.
TIMEOUTS = Timeouts(gathering_s=5, signaling_s=5, ice_s=10, dtls_s=5, datachannel_s=10, media_s=10)
COUNTER_TABLE = "simnet_test_counters"
#: alice behind a port-restricted-cone NAT, bob with a public address, coturn and signaling
ALICE_BEHIND_NAT = {
    "name": "peer-call",
    "nats": {"home": {"preset": "port-restricted-cone"}},
    "hosts": {"alice": {"behind": "home"}, "bob": {"behind": "internet"}},
    "servers": {"turn": {"kind": "turn"}, "signaling": {"kind": "signaling"}},
}

Events = list[dict[str, Any]]


@contextmanager
def built(scenario: dict[str, Any], label: str) -> Iterator[Network]:
    """The scenario's network; afterwards, nothing of the run may survive: no namespace, no
    process it started, no process carrying its environment tag (a browser's children too)."""
    with emulated_network(plan_network(scenario_from_dict(scenario)), label=label) as net:
        yield net
    assert not netns.list_names(f"sn-{net.run.id}-")
    survivors = [pid for pid in net.run.pids if os.path.exists(f"/proc/{pid}")]
    assert not survivors, f"processes of run {net.run.id} survived its teardown: {survivors}"
    assert not run_processes(net.run.id), f"a process of run {net.run.id} survived its teardown"


def run_processes(run_id: str) -> list[tuple[int, str]]:
    """(pid, comm) of live processes carrying the run's environment tag (browser children too)."""
    tag = f"SIMNET_RUN={run_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if tag in environ.split(b"\0") and stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append((int(entry), Path(f"/proc/{entry}/comm").read_text().strip()))
    return found


def ice_servers(
    turn: CoturnHandle,
    *turn_urls: str,
    credentials: tuple[str, str] | None = None,
    stun: bool = True,
) -> list[IceServer]:
    """coturn's STUN service and its TURN URLs (default `turn:ADDR:PORT?transport=udp`);
    `credentials` default to the server's own."""
    host = f"{turn.address}:{turn.config.port}"
    username, password = credentials or turn.credentials()
    servers = [IceServer(urls=[f"stun:{host}"])] if stun else []
    servers.append(
        IceServer(
            urls=list(turn_urls) or [f"turn:{host}?transport=udp"],
            username=username,
            credential=password,
        )
    )
    return servers


@dataclass
class Services:
    net: Network
    turn: CoturnHandle
    signaling: SignalingServer


@dataclass
class Bench(Services):
    alice: PeerAgent
    bob: PeerAgent


AgentStarter = Callable[[Services, str], Awaitable[PeerAgent]]


async def aiortc_agent(services: Services, host: str) -> PeerAgent:
    return await PeerAgent.start(services.net.run, services.net.ns(host))


async def chromium_agent(services: Services, host: str) -> PeerAgent:
    """A Chromium agent that trusts coturn's certificate from its launch."""
    return await start_chromium(services.net, host, (services.turn.files.ca,))


async def start_chromium(net: Network, host: str, trust: tuple[Path, ...] = ()) -> PeerAgent:
    ns = net.ns(host)
    argv = agent_argv(ns, net.run.workdir / f"chromium-{host}", trust=trust)
    return await PeerAgent.start(net.run, ns, argv=argv, timeout_s=60)


async def firefox_agent(services: Services, host: str) -> PeerAgent:
    """A Firefox agent, its profile in the run's work directory, trusting coturn's certificate
    from its launch."""
    return await start_firefox(services.net, host, (services.turn.files.ca,))


async def start_firefox(net: Network, host: str, trust: tuple[Path, ...] = ()) -> PeerAgent:
    ns = net.ns(host)
    argv = firefox.agent_argv(ns, net.run.workdir / f"firefox-{host}", trust=trust)
    return await PeerAgent.start(net.run, ns, argv=argv, timeout_s=60)


@asynccontextmanager
async def services(network: Network) -> AsyncIterator[Services]:
    """coturn (long-term credentials `TURN_USER`) and the signaling server, both started."""
    turn = await start_coturn(network, "turn", TurnConfig(auth=LongTermAuth.single(*TURN_USER)))
    signaling = SignalingServer(network.ns("signaling"), network.address("signaling"))
    await signaling.start()
    try:
        yield Services(network, turn, signaling)
    finally:
        signaling.close()
        await signaling.wait_closed()


@asynccontextmanager
async def bench(network: Network, alice: AgentStarter, bob: AgentStarter) -> AsyncIterator[Bench]:
    """The services and a warm agent on alice and on bob, each started by its starter."""
    async with services(network) as running:
        agents: list[PeerAgent] = []
        try:
            for host, start in (("alice", alice), ("bob", bob)):
                agents.append(await start(running, host))
            yield Bench(running.net, running.turn, running.signaling, *agents)
        finally:
            for agent in agents:
                await agent.close()


def commands(
    services: Services, offerer: str = "alice", answerer: str = "bob", **fields: Any
) -> tuple[CallCommand, CallCommand]:
    """The offerer's and the answerer's commands for one call in a fresh room."""
    common: dict[str, Any] = {
        "signaling_url_base": services.signaling.base_url,
        "room": uuid.uuid4().hex[:12],
        "ice_servers": ice_servers(services.turn),
        "ca_file": str(services.turn.files.ca),
        "data_bytes": DATA_BYTES,
        "timeouts": TIMEOUTS,
        **fields,
    }
    return (
        CallCommand(role="offer", peer=offerer, remote_peer=answerer, **common),
        CallCommand(role="answer", peer=answerer, remote_peer=offerer, **common),
    )


async def call(
    offerer: PeerAgent, answerer: PeerAgent, offer: CallCommand, answer: CallCommand
) -> tuple[Events, Events]:
    """Both sides of one call at once; each side's events, its result last."""
    offer_events, answer_events = await asyncio.gather(offerer.call(offer), answerer.call(answer))
    return offer_events, answer_events


async def bench_call(
    bench: Bench, offer: CallCommand, answer: CallCommand
) -> tuple[Events, Events]:
    """One call, alice offering to bob."""
    return await call(bench.alice, bench.bob, offer, answer)


def first_t(events: Events, name: str) -> float:
    for event in events:
        if event["event"] == name:
            return float(event["t"])
    raise AssertionError(f"no {name} event among {[e['event'] for e in events]}")


def assert_phases_in_order(events: Events, phases: tuple[str, ...]) -> None:
    times = [first_t(events, phase) for phase in phases]
    assert times == sorted(times), list(zip(phases, times, strict=True))
    assert events[-1]["event"] == "result"
    assert all(e["t"] <= events[-1]["t"] for e in events)


# --- traffic, seen by the kernel ----------------------------------------------------------


def install_counters(ns: str, sources: dict[str, str]) -> None:
    """Count every packet arriving in namespace `ns` from each source address (by name)."""
    counters = "".join(f"  counter {name} {{}}\n" for name in sources)
    rules = "".join(f"    ip saddr {ip} counter name {name}\n" for name, ip in sources.items())
    ruleset = (
        f"table ip {COUNTER_TABLE} {{\n{counters}"
        "  chain input {\n    type filter hook input priority -300; policy accept;\n"
        f"{rules}  }}\n}}\n"
    )
    with netns.entered(ns):
        apply_nft(ruleset, where=ns)


def read_counters(ns: str, family: str = "ip") -> dict[str, tuple[int, int]]:
    """name -> (packets, bytes) of the counters `install_counters` made in `ns` (or another
    table named COUNTER_TABLE, of nftables family `family`)."""
    with netns.entered(ns):
        nft = nftables.Nftables()
        nft.set_json_output(True)
        rc, out, err = nft.cmd(f"list counters table {family} {COUNTER_TABLE}")
    assert rc == 0, err
    found = {}
    for item in json.loads(out)["nftables"]:
        counter = item.get("counter")
        if counter:
            found[counter["name"]] = (int(counter["packets"]), int(counter["bytes"]))
    return found
