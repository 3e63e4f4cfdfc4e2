"""Two peers behind real NATs exchange an offer and an answer through the signaling server.

Why: signaling is the first thing a call needs, and it has to work from where peers really sit:
alice behind a home (port-restricted cone) NAT, bob behind a carrier (symmetric) NAT, the server
a public host in the emulated internet. The server runs in this test's process and loop with its
socket in the signaling node's namespace, as the orchestrator will run it; each peer is its own
process started with `ip netns exec` in its host's namespace, as the peer agents will be, and
uses the client exactly as they do. The server's record of where each message came from must be
the peer's NAT, which proves the messages crossed the emulated network and its NATs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simnet.net import netns
from simnet.net.builder import Network, emulated_network
from simnet.net.plan import plan_network
from simnet.peer.aiortc.signaling_client import Transport
from simnet.scenario.load import scenario_from_dict
from simnet.services.signaling import SignalingServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
]

SCENARIO = {
    "name": "signaling-test",
    "nats": {"home": {"preset": "port-restricted-cone"}, "carrier": {"preset": "symmetric"}},
    "hosts": {"alice": {"behind": "home"}, "bob": {"behind": "carrier"}},
    "servers": {"signaling": {"kind": "signaling"}},
}
ROOT = Path(__file__).resolve().parents[2]
PEER_DEADLINE_S = 30.0  # a loaded CI machine may take a while to start Python and aiohttp

# One peer of the exchange, run in its host's namespace: prints what it received as JSON.
PEER = """
import asyncio, json, sys
from simnet.peer.aiortc.signaling_client import open_channel

async def main(kind, base, room, me):
    async with await open_channel(kind, base, room, me, 10.0) as channel:
        if me == "alice":
            await channel.send({"type": "offer", "sdp": "v=0 from alice"})
            got = await channel.receive(10.0)
        else:
            got = await channel.receive(10.0)
            await channel.send({"type": "answer", "sdp": "v=0 from bob"})
    print(json.dumps(got))

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.fixture
def network() -> Iterator[Network]:
    # Built outside the test's event loop: pyroute2's synchronous IPRoute runs its own loop.
    plan = plan_network(scenario_from_dict(SCENARIO))
    with emulated_network(plan, label="test-signaling") as net:
        yield net
    assert not netns.list_names(f"sn-{net.run.id}-")


async def _peer(net: Network, host: str, kind: Transport, base: str, room: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", net.ns(host), sys.executable, "-c", PEER, kind, base, room, host,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PEER_DEADLINE_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, f"{host} failed:\n{err.decode()}"
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.parametrize("kind", ["ws", "http"])
async def test_offer_and_answer_cross_both_nats(network: Network, kind: Transport) -> None:
    async with SignalingServer(network.ns("signaling"), network.address("signaling")) as server:
        room = f"call-{kind}"
        started = time.monotonic()
        alice_got, bob_got = await asyncio.gather(
            _peer(network, "alice", kind, server.base_url, room),
            _peer(network, "bob", kind, server.base_url, room),
        )
        assert bob_got == {"type": "offer", "sdp": "v=0 from alice"}
        assert alice_got == {"type": "answer", "sdp": "v=0 from bob"}

        offer, answer = server.events(room)
        assert (offer.sender, offer.type, offer.via) == ("alice", "offer", kind)
        assert (answer.sender, answer.type, answer.via) == ("bob", "answer", kind)
        # what the server saw: each peer's NAT, never its private address
        assert offer.source.split(":")[0] == str(network.address("home"))
        assert answer.source.split(":")[0] == str(network.address("carrier"))
        assert started < offer.t < offer.delivered["bob"] < answer.t < answer.delivered["alice"]
    assert server.base_url == f"http://{network.address('signaling')}:8080"
