"""STUN and TURN clients (aioice's) whose sockets live inside an emulated host's namespace.

A socket belongs to the namespace it was created in, whatever thread uses it later; but
`netns.entered` switches the whole calling thread, so it must never span an `await` (other
coroutines would run inside the namespace). aioice's `create_turn_endpoint` creates its socket
itself inside `loop.create_datagram_endpoint` / `loop.create_connection`, i.e. after awaits, so
it cannot be wrapped in `entered`. What works instead: create the socket synchronously with
`netns.socket_in(ns, ...)`, connect it, and hand it to the event loop with `sock=`; then drive
aioice's own protocol classes (`TurnClientUdpProtocol`, `TurnClientTcpProtocol`) and
`TurnTransport` on it, exactly as `create_turn_endpoint` does. TCP connects with
`loop.sock_connect` (the socket is already in the namespace, so the await is harmless), and TLS
is layered by `loop.create_connection(sock=..., ssl=...)`.

aioice retransmits a STUN transaction for about a minute before giving up, so every step here
has its own timeout, and failures are classified (`TurnAllocationError.kind`): a wrong password
is "unauthorized" within milliseconds, not a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Literal, TypedDict

from aioice import stun
from aioice.turn import (
    DEFAULT_ALLOCATION_LIFETIME,
    DEFAULT_CHANNEL_REFRESH_TIME,
    TurnClientProtocol,
    TurnClientTcpProtocol,
    TurnClientUdpProtocol,
    TurnTransport,
)

from simnet.addresses import socket_family
from simnet.aio import within
from simnet.callspec import TurnTransport as TurnTransportKind
from simnet.errors import SimnetError
from simnet.net import netns
from simnet.peer.aiortc.aioice_adapter import turn_connect

Address = tuple[str, int]
ErrorKind = Literal["unauthorized", "forbidden", "rejected", "timeout", "refused", "network"]

DEFAULT_TIMEOUT_S = 5.0


class TurnAllocationError(SimnetError):
    """A TURN request failed; `kind` says how, `code` is the STUN error code if any."""

    def __init__(self, message: str, *, kind: ErrorKind, code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code


def classify(exc: BaseException, what: str) -> TurnAllocationError:
    """Turn an aioice / socket / timeout exception into a `TurnAllocationError`."""
    if isinstance(exc, stun.TransactionFailed):
        code = exc.response.error_code
        reason = exc.response.attributes.get("ERROR-CODE", (code, ""))[1]
        kind: ErrorKind = "rejected"
        if code == 401:
            kind = "unauthorized"
        elif code == 403:
            kind = "forbidden"
        return TurnAllocationError(f"{what}: {code} {reason}".rstrip(), kind=kind, code=code)
    if isinstance(exc, TimeoutError | stun.TransactionTimeout):
        return TurnAllocationError(f"{what}: no answer (timed out)", kind="timeout")
    if isinstance(exc, ConnectionRefusedError):
        return TurnAllocationError(f"{what}: connection refused", kind="refused")
    return TurnAllocationError(f"{what}: {type(exc).__name__}: {exc}", kind="network")


async def stun_binding(sock: socket.socket, timeout_s: float) -> Address:
    """One STUN Binding transaction on a connected, non-blocking UDP socket; the mapped address.

    Raises `TimeoutError` without an answer, `OSError` on ICMP errors (nothing listening yet)
    and `ValueError` on an error response.
    """
    loop = asyncio.get_running_loop()
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.add_fingerprint()
    deadline = loop.time() + timeout_s
    await loop.sock_sendall(sock, bytes(request))
    while True:
        data = await within(loop.sock_recv(sock, 2048), deadline - loop.time())
        try:
            message = stun.parse_message(data)
        except ValueError:
            continue
        if message.transaction_id != request.transaction_id:
            continue
        if message.message_class != stun.Class.RESPONSE:
            raise ValueError(f"STUN Binding error response {message.error_code}")
        mapped = message.attributes.get("XOR-MAPPED-ADDRESS") or message.attributes.get(
            "MAPPED-ADDRESS"
        )
        if mapped is None:
            raise ValueError("STUN Binding response without a mapped address")
        return (str(mapped[0]), int(mapped[1]))


class _ClientSettings(TypedDict):
    """aioice's TURN client protocol's settings (its keyword arguments)."""

    username: str | None
    password: str | None
    lifetime: int
    channel_refresh_time: int


class _Inbox(asyncio.DatagramProtocol):
    """Receives what peers send to the relayed address (the TurnTransport's user side)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self.errors: list[Exception] = []

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


@dataclass
class TurnAllocation:
    """A live TURN allocation made from inside a namespace."""

    transport: TurnTransportKind
    server: Address
    relayed_address: Address
    mapped_address: Address  # the client's address as the server sees it (its NAT mapping)
    elapsed_s: float  # socket creation to Allocate success, authentication round trip included
    _protocol: TurnClientProtocol
    _turn: TurnTransport
    _inbox: _Inbox = field(repr=False)

    def sendto(self, data: bytes, peer: Address) -> None:
        """Send through the relay (aioice binds a channel first); errors land in `errors`."""
        self._turn.sendto(data, peer)

    @property
    def errors(self) -> list[Exception]:
        return self._inbox.errors

    async def recv(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[bytes, Address]:
        """The next datagram a peer sent to the relayed address."""
        return await within(self._inbox.queue.get(), timeout_s)

    async def permit(self, peer_ip: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """CreatePermission for `peer_ip`; `TurnAllocationError` (kind "forbidden") if denied."""
        request = stun.Message(
            message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
        )
        request.attributes["XOR-PEER-ADDRESS"] = (peer_ip, 0)
        try:
            await within(self._protocol.request_with_retry(request), timeout_s)
        except (stun.TransactionError, TimeoutError, OSError) as exc:
            raise classify(exc, f"TURN CreatePermission for {peer_ip}") from exc

    async def close(self, timeout_s: float = 2.0) -> None:
        """Delete the allocation (Refresh lifetime 0) and close the socket."""
        try:
            await within(self._protocol.delete(), timeout_s)
        except (stun.TransactionError, TimeoutError, OSError):
            pass
        finally:
            self._protocol.transport.close()


async def allocate(
    ns: str,
    server: Address,
    username: str | None,
    password: str | None,
    *,
    transport: TurnTransportKind = "udp",
    ssl_context: ssl.SSLContext | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    lifetime_s: int = DEFAULT_ALLOCATION_LIFETIME,
) -> TurnAllocation:
    """Allocate a UDP relay on `server` (an address literal of either family, and a port) from
    namespace `ns` over UDP, TCP or TLS.

    Raises `TurnAllocationError` (classified) on failure; the whole attempt is bounded by
    `timeout_s`. For "tls", `ssl_context` defaults to one that trusts nothing, so pass one that
    trusts the server's certificate (`CoturnHandle.cert_path`).
    """
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    what = f"TURN allocation on {server[0]}:{server[1]} over {transport}"
    sock_type = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    sock = netns.socket_in(ns, socket_family(ip_address(server[0])), sock_type)
    inner_transport: asyncio.BaseTransport | None = None
    try:
        sock.setblocking(False)
        protocol: TurnClientProtocol
        settings: _ClientSettings = {
            "username": username,
            "password": password,
            "lifetime": lifetime_s,
            "channel_refresh_time": DEFAULT_CHANNEL_REFRESH_TIME,
        }
        async with asyncio.timeout(timeout_s):
            if transport == "udp":
                sock.connect(server)  # UDP connect: no packet, just fixes the destination
                inner_transport, protocol = await loop.create_datagram_endpoint(
                    lambda: TurnClientUdpProtocol(server, **settings), sock=sock
                )
            else:
                await loop.sock_connect(sock, server)
                context = ssl_context
                if transport == "tls" and context is None:
                    context = ssl.create_default_context()
                inner_transport, protocol = await loop.create_connection(
                    lambda: TurnClientTcpProtocol(server, **settings),
                    sock=sock,
                    ssl=context if transport == "tls" else None,
                    server_hostname=server[0] if transport == "tls" else None,
                )
            inbox = _Inbox()
            turn = TurnTransport(protocol)
            # What create_turn_endpoint does after making its own socket: Allocate, then hand
            # the relay to the user protocol.
            await turn_connect(turn, inbox)
    except (stun.TransactionError, TimeoutError, OSError, ssl.SSLError) as exc:
        _close(inner_transport, sock)
        raise classify(exc, what) from exc
    except BaseException:
        _close(inner_transport, sock)
        raise
    assert protocol.relayed_address is not None and protocol.mapped_address is not None
    return TurnAllocation(
        transport=transport,
        server=server,
        relayed_address=(str(protocol.relayed_address[0]), int(protocol.relayed_address[1])),
        mapped_address=(str(protocol.mapped_address[0]), int(protocol.mapped_address[1])),
        elapsed_s=time.monotonic() - started,
        _protocol=protocol,
        _turn=turn,
        _inbox=inbox,
    )


def _close(transport: asyncio.BaseTransport | None, sock: socket.socket) -> None:
    """Close what exists: a transport owns (and closes) its socket."""
    if transport is not None:
        transport.close()
        return
    with contextlib.suppress(OSError):
        sock.close()
