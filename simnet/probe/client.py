"""The NAT probe client: RFC 5780 behaviour discovery from a host inside the emulated network.

Its sockets are created in the host's namespace and driven from this process's event loop, so a
probe costs no process start.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Network

from simnet.addresses import IPV4, Family, IPAddress
from simnet.errors import SimnetError
from simnet.net import netns
from simnet.probe.classify import (
    Endpoint,
    NatObservation,
    classify_allocation,
    classify_filtering,
    classify_mapping,
    lifetime_bounds,
)
from simnet.probe.server import PORTS
from simnet.scenario.nat import Filtering

ANSWER_TIMEOUT_S = 0.3  # the emulated network is lossless and sub-millisecond unless impaired
ATTEMPTS = 3
ALLOCATION_SAMPLES = 6
LIFETIME_STEPS = 12


@dataclass(frozen=True)
class Reply:
    """A datagram the probed host received, as far as the probe reads it (JSON on the wire):
    the probe server's answer to request `id` (a bind's answer has `mapped`, the source address
    the server saw; a poke's has `poked`), the packet a poke sends (`poke`), or a neighbour's
    hairpin packet (`hairpin`)."""

    id: str | None = None
    mapped: Endpoint | None = None
    poked: bool = False
    poke: bool = False
    hairpin: str | None = None

    @classmethod
    def parse(cls, data: bytes) -> Reply | None:
        """The reply in `data`, or None for a datagram that is not one."""
        try:
            message = json.loads(data)
        except ValueError:
            return None
        if not isinstance(message, dict):
            return None
        mapped = message.get("mapped")
        hairpin = message.get("hairpin")
        return cls(
            id=None if message.get("id") is None else str(message["id"]),
            mapped=(
                (str(mapped[0]), int(mapped[1]))
                if isinstance(mapped, list) and len(mapped) == 2
                else None
            ),
            poked=message.get("poked") is True,
            poke=message.get("poke") is True,
            hairpin=None if hairpin is None else str(hairpin),
        )


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[Reply, Endpoint]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = Reply.parse(data)
        except (TypeError, ValueError):  # a mapped address that is no address
            return
        if reply is not None:
            self.messages.put_nowait((reply, (str(addr[0]), int(addr[1]))))


class ProbeSocket:
    """One UDP socket of the probed host, i.e. one internal endpoint and its mapping."""

    def __init__(self, transport: asyncio.DatagramTransport, inbox: _Inbox) -> None:
        self.transport = transport
        self.inbox = inbox
        self.local_port: int = transport.get_extra_info("sockname")[1]

    @classmethod
    async def open(cls, ns: str, family: Family = IPV4) -> ProbeSocket:
        if family == IPV4:
            sock = netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("0.0.0.0", 0))
        else:
            sock = netns.socket_in(ns, socket.AF_INET6, socket.SOCK_DGRAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(("::", 0))
        sock.setblocking(False)
        transport, inbox = await asyncio.get_running_loop().create_datagram_endpoint(
            _Inbox, sock=sock
        )
        return cls(transport, inbox)

    def close(self) -> None:
        self.transport.close()

    def send(self, message: dict[str, str | float | list[str | int]], to: Endpoint) -> None:
        """Send `message` as JSON (the probe server's requests, a hairpin packet)."""
        self.transport.sendto(json.dumps(message).encode(), to)

    async def expect(self, wanted: Callable[[Reply], bool], timeout: float) -> Reply | None:
        """The next reply that is `wanted`, or None after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    reply, _ = await self.inbox.messages.get()
                    if wanted(reply):
                        return reply
        except TimeoutError:
            return None

    async def request(
        self,
        to: Endpoint,
        *,
        op: str = "bind",
        target: Endpoint | None = None,
        reply_from: tuple[int, int] | None = None,
        delay: float = 0.0,
        attempts: int = ATTEMPTS,
        timeout: float = ANSWER_TIMEOUT_S,
    ) -> Reply | None:
        """Ask the probe server at `to`: `op` "bind" (tell me my mapped address, after `delay`
        seconds) or "poke" (send a packet to `target` from the endpoint `reply_from`); the
        answer comes from `reply_from` (address index, port index) if given."""
        request_id = secrets.token_hex(4)
        message: dict[str, str | float | list[str | int]] = {
            "id": request_id, "op": op, "delay": delay
        }  # fmt: skip
        if target is not None:
            message["target"] = list(target)
        if reply_from is not None:
            message["from"] = list(reply_from)
        for _ in range(attempts):
            self.send(message, to)
            answer = await self.expect(lambda reply: reply.id == request_id, timeout + delay)
            if answer is not None:
                return answer
        return None

    async def mapped(self, to: Endpoint) -> Endpoint:
        answer = await self.request(to)
        if answer is None or answer.mapped is None:
            raise ProbeFailed(f"the probe server at {to[0]}:{to[1]} did not answer")
        return answer.mapped


class ProbeFailed(SimnetError):
    """The probe could not reach its server at all: the network, not the NAT, is broken."""


class NatProber:
    """Runs the RFC 5780 tests from host namespace `ns` against a two-address probe server."""

    def __init__(
        self,
        ns: str,
        server: list[IPAddress],
        neighbour_ns: str | None = None,
        race: bool = True,
        nat64: IPv6Network | None = None,
    ) -> None:
        """`race=False` skips the simultaneous-open pokes: behind a chain of NATs an outer NAT
        that filters less may admit the poke and open a real session the inner NAT drops, which
        hides the outer mapping. Each NAT of a chain is raced by its own directly-attached probe.

        `nat64`: the probed host is IPv6-only and reaches the IPv4 probe server through a NAT64
        with this prefix. Its sockets are then IPv6 and each IPv4 endpoint it sends to (the
        server's, a mapped one when hairpinning) is written in the prefix (RFC 6052), as a
        DNS64 resolver would have handed it out; the server still sees, and answers, IPv4.
        """
        self.race = race
        self.ns = ns
        self.neighbour_ns = neighbour_ns or ns
        self.nat64 = nat64
        # the family probed: the server's, or IPv6 to reach an IPv4 server through a NAT64
        self.family: Family = server[0].version if nat64 is None else nat64.version
        self.a = [self.reach(str(server[0])), self.reach(str(server[1]))]
        self.sockets: list[ProbeSocket] = []

    def endpoint(self, a: int, p: int) -> Endpoint:
        return (self.a[a], PORTS[p])

    def reach(self, address: str) -> str:
        """Where the probed host sends to reach `address`: itself, or through the NAT64."""
        if self.nat64 is None:
            return address
        return str(self.nat64.network_address + int(IPv4Address(address)))

    async def _socket(self, ns: str | None = None) -> ProbeSocket:
        sock = await ProbeSocket.open(ns or self.ns, self.family)
        self.sockets.append(sock)
        return sock

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()

    async def filtering(self) -> tuple[bool, bool]:
        """Do answers from the other address / the other port reach a fresh mapping?"""
        results = []
        for reply_from in ((1, 1), (0, 1)):
            sock = await self._socket()
            await sock.mapped(self.endpoint(0, 0))
            answer = await sock.request(self.endpoint(0, 0), reply_from=reply_from, attempts=2)
            results.append(answer is not None)
        return results[0], results[1]

    async def mapping(self, filtering: Filtering) -> tuple[Endpoint, Endpoint, Endpoint]:
        """Mapped endpoint seen by A1:P1, A2:P1, A2:P2 from one socket.

        Before talking to a new server endpoint, the host first gets an unsolicited packet
        *from* it wherever the filter drops such packets: the simultaneous-open race
        (docs/kernel-notes.md#simultaneous-open-pitfall), which must not change the mapping.
        (Where the filter admits it, the packet opens a real session and the race does not exist.)
        """
        sock = await self._socket()
        first = await sock.mapped(self.endpoint(0, 0))
        seen = [first]
        contacted = {0}
        for a, p in ((1, 0), (1, 1)):
            dropped = self.race and (
                filtering is Filtering.APDF or (filtering is Filtering.ADF and a not in contacted)
            )
            contacted.add(a)
            if dropped:
                poked = await sock.request(
                    self.endpoint(0, 0), op="poke", target=seen[-1], reply_from=(a, p)
                )
                if poked is None:
                    raise ProbeFailed("the probe server did not confirm a poke")
            seen.append(await sock.mapped(self.endpoint(a, p)))
        return seen[0], seen[1], seen[2]

    async def allocation(self) -> list[tuple[int, int]]:
        pairs = []
        for _ in range(ALLOCATION_SAMPLES):
            sock = await self._socket()
            pairs.append((sock.local_port, (await sock.mapped(self.endpoint(0, 0)))[1]))
        return pairs

    async def hairpin(self) -> bool:
        """Can a neighbour behind the same NAT reach this host through its public mapping?

        The neighbour is another host, as in a call between two peers behind one NAT: what ICE
        needs when both peers only know each other's server-reflexive candidates.
        """
        target = await self._socket()
        mapped = await target.mapped(self.endpoint(0, 0))
        sender = await self._socket(self.neighbour_ns)
        token = secrets.token_hex(4)
        for _ in range(ATTEMPTS):
            sender.send({"hairpin": token}, (self.reach(mapped[0]), mapped[1]))
            if await target.expect(lambda reply: reply.hairpin == token, ANSWER_TIMEOUT_S):
                return True
        return False

    async def lifetime(self, max_wait_s: float) -> tuple[float, float | None]:
        """Bracket the binding timeout: fresh mappings answered after growing delays."""
        delays = [max_wait_s * (i + 1) / LIFETIME_STEPS for i in range(LIFETIME_STEPS)]
        sockets = [await self._socket() for _ in delays]

        async def one(sock: ProbeSocket, delay: float) -> tuple[float, bool]:
            answer = await sock.request(self.endpoint(0, 0), delay=delay, attempts=1)
            return delay, answer is not None

        results = await asyncio.gather(*(one(s, d) for s, d in zip(sockets, delays, strict=True)))
        return lifetime_bounds(results)

    async def observe(self, local_address: IPAddress) -> NatObservation:
        """Everything but the binding lifetime (see `lifetime`)."""
        other_address, other_port = await self.filtering()
        filtering = classify_filtering(other_address, other_port)
        first, by_address, by_both = await self.mapping(filtering)
        pairs = await self.allocation()
        hairpin = await self.hairpin()
        self.close()
        return NatObservation(
            translates=first[0] != str(local_address),
            mapped_address=f"{first[0]}:{first[1]}",
            mapping=classify_mapping(first, by_address, by_both),
            filtering=filtering,
            port_allocation=classify_allocation(pairs),
            hairpin=hairpin,
        )
