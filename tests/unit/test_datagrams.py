"""The hosting process's event loop reads a ready UDP socket's datagrams in one callback.

Why: with asyncio's one datagram per turn of the loop, a process hosting 50 calls' peers fell
seconds behind its sockets (see `simnet.peer.aiortc.datagrams`). What must hold: every waiting
datagram is delivered, in order, up to the bound, and the rest on the next turn; nothing else
about the transport changes. Loopback sockets of the test's own process: no namespace is touched.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from simnet.peer.aiortc.datagrams import DRAIN_DATAGRAMS, DrainingEventLoop


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append(data)


async def _one_callback_reads(waiting: int) -> tuple[int, int]:
    """Datagrams delivered by one readiness callback with `waiting` queued, and in all."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Collect, local_addr=("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(waiting):
            sender.sendto(b"%d" % i, transport.get_extra_info("sockname"))
        transport._read_ready()  # type: ignore[attr-defined]  # one readiness callback
        first = len(protocol.received)
        while len(protocol.received) < waiting:  # the rest on the loop's next turns
            await asyncio.sleep(0)
        assert protocol.received == [b"%d" % i for i in range(waiting)]  # all, in order
        return first, len(protocol.received)
    finally:
        sender.close()
        transport.close()


def test_a_ready_socket_is_read_up_to_the_bound_in_one_callback() -> None:
    with asyncio.Runner(loop_factory=DrainingEventLoop) as runner:
        assert runner.run(_one_callback_reads(5)) == (5, 5)
        more = DRAIN_DATAGRAMS + 8
        assert runner.run(_one_callback_reads(more)) == (DRAIN_DATAGRAMS, more)


def test_asyncios_own_loop_reads_one() -> None:
    """What the hosting process had before (the reason for the subclass)."""
    with asyncio.Runner() as runner:
        assert runner.run(_one_callback_reads(5)) == (1, 5)
