"""aioice's internals are touched in exactly one module, and they are what that module expects.

Why: simnet reads the selected candidate pair, hooks the nominated pair's socket and drives TURN
from its own sockets through aioice attributes that are not public API. An aioice upgrade that
renames one would otherwise fail deep inside a call as a wrong result ("no selected pair") rather
than an error. These tests fail first, naming the attribute.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import subprocess
import sys
from pathlib import Path

from aioice import stun
from aioice import turn as aioice_turn
from aioice.candidate import Candidate, candidate_priority
from aioice.ice import Connection

import simnet
from simnet.peer.aiortc import aioice_adapter
from simnet.peer.aiortc.aioice_adapter import nominated_pairs, prefer_ipv6_hosts, resend_checks_to

ADAPTER = Path(aioice_adapter.__file__).resolve()
PACKAGE = Path(simnet.__file__).resolve().parent


def _foreign_private_attributes(path: Path) -> set[str]:
    """Private attribute names read on objects other than `self`/`cls` in one source file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
        ):
            names.add(node.attr)
    return names


def test_the_adapter_is_the_only_module_touching_aioice_privates() -> None:
    touched = _foreign_private_attributes(ADAPTER)
    assert {"_nominated", "_connection", "_connect"} <= touched
    elsewhere = {
        str(path.relative_to(PACKAGE)): hits
        for path in PACKAGE.rglob("*.py")
        if path != ADAPTER and (hits := _foreign_private_attributes(path) & touched)
    }
    assert elsewhere == {}


def test_the_attributes_it_relies_on_exist_in_the_installed_aioice() -> None:
    connection = Connection(ice_controlling=True)
    assert nominated_pairs(connection) == []  # `_nominated` is still a dict of pairs

    assert inspect.iscoroutinefunction(aioice_turn.TurnTransport._connect)

    async def inner_protocol() -> object:
        protocol = aioice_turn.TurnClientUdpProtocol(
            ("192.0.2.1", 3478), username="u", password="p", lifetime=600,
            channel_refresh_time=300,
        )  # fmt: skip
        transport = aioice_turn.TurnTransport(protocol)
        return getattr(transport, "_TurnTransport__inner_protocol", None) is protocol

    assert asyncio.run(inner_protocol())
    assert callable(aioice_turn.create_turn_endpoint)  # what `recording_turn` wraps


class _Protocol:
    """A STUN protocol's part `resend_checks_to` uses: its transactions in flight, its sender."""

    def __init__(self) -> None:
        self.transactions: dict[bytes, stun.Transaction] = {}
        self.sent: list[tuple[stun.Message, tuple[str, int]]] = []

    def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
        self.sent.append((message, addr))


async def test_a_check_in_flight_to_the_sender_of_a_check_is_resent_at_once() -> None:
    """aioice's Transaction keeps its request and address where `resend_checks_to` reads them."""
    protocol = _Protocol()
    for host in ("2001:db8:1::10", "198.51.100.7"):
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        protocol.transactions[request.transaction_id] = stun.Transaction(
            request, (host, 40000), protocol
        )
    assert resend_checks_to(protocol, ("2001:db8:1::10", 40000, 0, 0)) == 1  # an IPv6 4-tuple
    ((message, addr),) = protocol.sent
    assert addr == ("2001:db8:1::10", 40000) and message.message_method == stun.Method.BINDING
    assert resend_checks_to(protocol, ("198.51.100.7", 40001)) == 0  # another port: not ours


def test_ipv6_hosts_rank_above_ipv4_hosts_and_types_keep_their_order() -> None:
    def candidate(kind: str, host: str) -> Candidate:
        return Candidate(
            foundation="f", component=1, transport="udp",
            priority=candidate_priority(1, kind), host=host, port=1, type=kind,
        )  # fmt: skip

    v4, v6 = candidate("host", "10.0.0.10"), candidate("host", "2001:db8::a")
    srflx = candidate("srflx", "198.51.100.7")
    prefer_ipv6_hosts([v4, v6, srflx])
    assert v6.priority > v4.priority > srflx.priority
    assert srflx.priority == candidate_priority(1, "srflx")  # only hosts are ranked by family


def test_the_orchestrators_turn_client_pays_for_neither_aiortc_nor_the_call_protocol() -> None:
    """`simnet.services.turn_client` imports this adapter (`turn_connect`); the adapter (and the
    proxy module it reads the agent's proxy from) must not load aiortc or the peer protocol's
    models at import time: the module's docstring promises it, and a controller pays for them."""
    code = (
        "import sys, simnet.services.turn_client; "
        "print(sorted(m for m in ('aiortc', 'simnet.peer.protocol') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
