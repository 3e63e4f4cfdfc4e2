"""The NAT probe server: two public addresses x two ports, answering from whichever is asked.

This is the server side of RFC 5780 behaviour discovery, with a JSON-over-UDP wire format
instead of STUN so that it can also do what the tests need and STUN cannot: answer after a
delay (binding lifetime) and send an unsolicited "poke" from another endpoint first (the
simultaneous-open race, docs/kernel-notes.md#simultaneous-open-pitfall).

Requests (JSON objects):
  {"id": ..., "op": "bind", "from": [a, p], "delay": s}
      reply after `delay` seconds from address a, port p with {"id", "mapped": [ip, port]}
  {"id": ..., "op": "poke", "from": [a, p], "target": [ip, port]}
      send {"poke": true} from (a, p) to `target`, then reply {"id", "poked": true}
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
from typing import Any, cast

from simnet.addresses import IPAddress, socket_family
from simnet.net import netns

PORTS = (3478, 3479)


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, server: ProbeServer, key: tuple[int, int]) -> None:
        self.server = server
        self.key = key
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.server.handle(data, (str(addr[0]), int(addr[1])), self.key)


class ProbeServer:
    """Listens on every (address, port) pair; created inside the server's namespace."""

    def __init__(self, ns: str, addresses: list[IPAddress]) -> None:
        if len(addresses) < 2:
            raise ValueError("an RFC 5780 probe server needs two addresses")
        self.ns = ns
        self.addresses = addresses[:2]
        self.endpoints: dict[tuple[int, int], _Endpoint] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for a, address in enumerate(self.addresses):
            for p, port in enumerate(PORTS):
                sock = netns.socket_in(self.ns, socket_family(address), socket.SOCK_DGRAM)
                sock.bind((str(address), port))
                sock.setblocking(False)
                factory = functools.partial(_Endpoint, self, (a, p))
                _, protocol = await loop.create_datagram_endpoint(factory, sock=sock)
                self.endpoints[(a, p)] = protocol

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for endpoint in self.endpoints.values():
            if endpoint.transport is not None:
                endpoint.transport.close()

    def handle(self, data: bytes, source: tuple[str, int], receiver: tuple[int, int]) -> None:
        try:
            request = json.loads(data)
            reply_from = self._endpoint(request.get("from", receiver))
        except (ValueError, TypeError, KeyError, AttributeError):
            return  # not ours: a probe server ignores garbage, like any server
        if request.get("op") == "poke":
            target = request.get("target")
            if isinstance(target, list) and len(target) == 2:
                reply_from.sendto(json.dumps({"poke": True}).encode(), (target[0], target[1]))
            ack = {"id": request.get("id"), "poked": True}
            self._endpoint(receiver).sendto(json.dumps(ack).encode(), source)
            return
        reply = json.dumps({"id": request.get("id"), "mapped": list(source)}).encode()
        delay = float(request.get("delay", 0) or 0)
        if delay <= 0:
            reply_from.sendto(reply, source)
            return
        task = asyncio.get_running_loop().create_task(self._later(delay, reply_from, reply, source))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _endpoint(self, which: Any) -> asyncio.DatagramTransport:
        a, p = int(which[0]), int(which[1])
        transport = self.endpoints[(a, p)].transport
        assert transport is not None
        return transport

    @staticmethod
    async def _later(
        delay: float, transport: asyncio.DatagramTransport, reply: bytes, to: tuple[str, int]
    ) -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(OSError):
            transport.sendto(reply, to)
