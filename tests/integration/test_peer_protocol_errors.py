"""A peer that breaks the peer protocol is one `protocol` error naming it: never a false "exited",
a stray task exception, or pydantic's whole dump.

Why: a team's own peer is new code; when it prints a line over the event stream's limit, a
ready event that only looks right (`"protocol": true`, `"t": NaN`) or a malformed result, the
controller must say which peer broke which rule. Each peer here is a few lines of Python run
inside a real namespace, as a team's peer would be (`PeerAgent.start(..., argv=...)`).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from simnet.net.builder import Network
from simnet.peer.control.agent import STREAM_LIMIT_BYTES, PeerAgent, PeerAgentError
from simnet.peer.protocol import CallCommand
from tests.integration.peerbench import ALICE_BEHIND_NAT, built

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

READY = (
    "import json, sys, time\n"
    "def say(event): print(json.dumps(event), flush=True)\n"
    "READY = {'event': 'ready', 't': time.monotonic(), 'protocol': 1, 'peer_kind': 'bad',"
    " 'peer_version': '0'}\n"
)
COMMAND = CallCommand(
    role="answer", signaling_url_base="http://192.0.2.1:1", room="r", peer="b", remote_peer="a"
)


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    with built(ALICE_BEHIND_NAT, "test-peer-protocol-errors") as net:
        yield net


def _peer(body: str) -> list[str]:
    return [sys.executable, "-c", READY + body]


async def _start(network: Network, body: str) -> PeerAgent:
    return await PeerAgent.start(network.run, network.ns("bob"), argv=_peer(body))


async def test_a_line_over_the_limit_at_start_is_a_protocol_error(network: Network) -> None:
    loop = asyncio.get_running_loop()
    stray: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: stray.append(context))
    huge = STREAM_LIMIT_BYTES + 1024
    body = f"sys.stdout.write('x' * {huge} + '\\n'); sys.stdout.flush(); sys.stdin.read()\n"
    with pytest.raises(PeerAgentError) as caught:
        await _start(network, body)
    gc.collect()
    await asyncio.sleep(0)  # let a collected task report its exception, if one were left
    assert caught.value.kind == "protocol"
    message = str(caught.value)
    assert f"peer in {network.ns('bob')} broke the peer protocol" in message
    assert "over 16 MiB" in message and "exited" not in message
    assert len(message) < 300
    assert not stray, stray


async def test_a_line_over_the_limit_in_a_call_is_a_protocol_error(network: Network) -> None:
    body = (
        "say(READY)\n"
        "sys.stdin.readline()\n"
        f"sys.stdout.write('x' * {STREAM_LIMIT_BYTES + 1024} + '\\n'); sys.stdout.flush()\n"
        "sys.stdin.read()\n"
    )
    agent = await _start(network, body)
    try:
        with pytest.raises(PeerAgentError) as caught:
            await agent.call(COMMAND, timeout_s=30)
        assert caught.value.kind == "protocol" and "over 16 MiB" in str(caught.value)
    finally:
        await agent.close()
    assert agent.process.returncode is not None  # it was ended, not left running


@pytest.mark.parametrize(
    ("ready", "named"),
    [
        ("{**READY, 'protocol': True}", "speaks peer protocol True"),
        ("{**READY, 't': float('nan')}", "ready.t: Input should be a finite number"),
    ],
)
async def test_a_ready_event_that_only_looks_right_is_refused(
    network: Network, ready: str, named: str
) -> None:
    with pytest.raises(PeerAgentError) as caught:
        await _start(network, f"say({ready})\nsys.stdin.read()\n")
    assert caught.value.kind == "start"
    assert named in str(caught.value)


async def test_a_malformed_result_is_a_short_protocol_error(network: Network) -> None:
    body = (
        "say(READY)\n"
        "sys.stdin.readline()\n"
        "say({'event': 'result', 't': time.monotonic(), 'role': 'answer', 'connected': 1,"
        " 'setup_s': float('nan')})\n"
        "sys.stdin.read()\n"
    )
    agent = await _start(network, body)
    try:
        with pytest.raises(PeerAgentError) as caught:
            await agent.call(COMMAND, timeout_s=30)
    finally:
        await agent.close()
    message = str(caught.value)
    assert caught.value.kind == "protocol"
    assert "result.connected: Input should be a valid boolean, got 1" in message
    assert "result.setup_s: Input should be a finite number" in message
    assert "\n" not in message and "errors.pydantic.dev" not in message
