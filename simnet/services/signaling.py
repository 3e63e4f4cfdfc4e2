"""The signaling server the two peers of a call exchange their offer and answer through.

Why in-process: signaling is not what simnet measures, but it is on the call's critical path, so
it must sit where a real one sits (a public server in the emulated internet, reached through the
peers' NATs) and cost as little start-up time as possible. It therefore runs inside the
orchestrator's own event loop, its listening socket created inside the signaling node's namespace
with `netns.socket_in` and handed to aiohttp (a socket stays in the namespace it was created in,
whichever thread later uses it; `netns.entered` must never span an await).

Two transports, because real deployments use both and some firewalls only let plain HTTP through:

- WebSocket `ws://ADDR:PORT/ws/<room>/<peer>`: every text message (a JSON object) a peer sends is
  delivered to the other peer(s) of the room, in order.
- HTTP long-poll: `POST http://ADDR:PORT/http/<room>/<peer>` with a JSON object body queues it
  (204); `GET http://ADDR:PORT/http/<room>/<peer>?timeout=S` answers a JSON list of this peer's
  pending messages, waiting up to S seconds when there are none (`[]` after S).

Both are views of one per-room log: a message is appended once and every other peer reads it
from its own cursor. So a message sent before the other peer connects is simply read when it
does (buffering), the transports mix freely within a room, and a peer that reconnects under the
same name continues where it stopped. A cursor only advances once a message has been handed to
the connection (WebSocket send done, or long-poll answer about to be written to a live
connection), and a long poll whose client went away is cancelled before it takes anything.

Bounds, so that a runaway peer cannot take the orchestrator down: messages up to 64 KiB (larger:
WebSocket close 1009 / HTTP 413), a per-room backlog (messages and bytes: close 1008 / HTTP 429),
peers per room (409), and rooms per server (when full, the least recently active idle room is
forgotten; with none idle, 503).

Each room also keeps `events`: when (`time.monotonic()`, comparable across namespaces) each
message was relayed and when each recipient got it, so a call's signaling phase can be timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from aiohttp import WSCloseCode, WSMsgType, web

from simnet.addresses import Family, IPAddress, socket_family, url_host
from simnet.aio import within
from simnet.errors import SimnetError
from simnet.net import netns

Transport = Literal["ws", "http"]

MAX_MESSAGE_BYTES = 64 * 1024
MAX_ROOMS = 256
MAX_PEERS_PER_ROOM = 8
MAX_ROOM_MESSAGES = 1024
MAX_ROOM_BYTES = 1024 * 1024
MAX_POLL_S = 60.0
SHUTDOWN_TIMEOUT_S = 2.0
NAME_RE = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")

WS_POLICY_VIOLATION = 1008


#: connections waiting to be accepted: a load level starts every peer's connection at once (400
#: at 200 calls), and past the backlog the kernel drops their SYNs, which a peer's connect then
#: retries for seconds (measured: 47 of 200 pion calls failed to connect at the default 128)
LISTEN_BACKLOG = 4096


@dataclass
class RelayEvent:
    """One relayed message: who sent it, how, when, and when each recipient got it."""

    t: float  # time.monotonic() when the server accepted it
    sender: str
    via: Transport
    size: int  # bytes of its JSON text
    type: str | None  # the message's "type" field, if it has a string one (offer, answer, ...)
    source: str  # "ip:port" the message came from: a NATed peer shows its NAT's mapping
    delivered: dict[str, float] = field(default_factory=dict)  # recipient -> time.monotonic()


@dataclass
class _Entry:
    text: str
    event: RelayEvent


class _Room:
    """One room's log, its peers' cursors and what waits on it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.log: list[_Entry] = []
        self.bytes = 0
        self.cursors: dict[str, int] = {}  # peer -> index of the first log entry it has not had
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.waiters = 0  # long polls and WebSocket pumps currently waiting
        self.active = time.monotonic()
        self._changed = asyncio.Event()

    def join(self, peer: str) -> bool:
        """Register `peer` (idempotent); False when the room already has too many peers."""
        self.active = time.monotonic()
        if peer in self.cursors:
            return True
        if len(self.cursors) >= MAX_PEERS_PER_ROOM:
            return False
        self.cursors[peer] = 0
        return True

    def append(
        self, sender: str, text: str, message: dict[str, object], via: Transport, source: str
    ) -> None:
        size = len(text.encode())
        kind = message.get("type")
        name = kind if isinstance(kind, str) else None
        event = RelayEvent(time.monotonic(), sender, via, size, name, source)
        self.log.append(_Entry(text, event))
        self.bytes += size
        self.active = event.t
        self.wake()

    def full_for(self, size: int) -> bool:
        return len(self.log) >= MAX_ROOM_MESSAGES or self.bytes + size > MAX_ROOM_BYTES

    def pending(self, peer: str) -> list[tuple[int, _Entry]]:
        start = self.cursors.get(peer, 0)
        return [(i, e) for i, e in enumerate(self.log[start:], start) if e.event.sender != peer]

    def ack(self, peer: str, index: int) -> None:
        """`peer` has been handed entry `index` (and everything before it)."""
        self.cursors[peer] = max(self.cursors.get(peer, 0), index + 1)
        self.log[index].event.delivered.setdefault(peer, time.monotonic())
        self.active = time.monotonic()

    def wake(self) -> None:
        """Wake everything waiting on this room (new message, or the server is closing)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_change(self, timeout_s: float) -> None:
        """Wait until `wake()` or `timeout_s`; callers re-check their condition afterwards."""
        changed = self._changed
        self.waiters += 1
        try:
            with contextlib.suppress(TimeoutError):
                await within(changed.wait(), timeout_s)
        finally:
            self.waiters -= 1

    def idle(self) -> bool:
        return not self.sockets and not self.waiters


class SignalingServer:
    """A WebSocket + HTTP long-poll relay listening inside namespace `ns`.

    Use as `async with SignalingServer(ns, address) as server:`, or `await start()`, then
    `close()` and `await wait_closed()`. `port=0` picks a free port (see `port` after start).
    """

    def __init__(
        self, ns: str, address: IPAddress, port: int = 8080, also: Sequence[IPAddress] = ()
    ) -> None:
        """Listens on `address` and on each of `also` (a dual-stack server's address of the
        other family, for clients that have only that family), all on one port."""
        self.ns = ns
        self.address = address
        self.addresses = (address, *(a for a in also if a != address))
        self.port = port
        self._rooms: dict[str, _Room] = {}
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._closed: asyncio.Task[None] | None = None

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; returns once connections are accepted."""
        if self._runner is not None:
            raise RuntimeError("signaling server already started")
        app = web.Application(client_max_size=MAX_MESSAGE_BYTES)
        app.router.add_get("/ws/{room}/{peer}", self._websocket)
        app.router.add_post("/http/{room}/{peer}", self._http_post)
        app.router.add_get("/http/{room}/{peer}", self._http_poll)
        # handler_cancellation: a long poll whose client hung up must not take messages it can
        # no longer deliver.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        sockets: list[socket.socket] = []
        try:
            for address in self.addresses:  # the first one picks the port when it is 0
                sockets.append(self._listen(address))
                self.port = sockets[0].getsockname()[1]
            await runner.setup()
            for sock in sockets:
                await web.SockSite(runner, sock, backlog=LISTEN_BACKLOG).start()
        except BaseException:
            for sock in sockets:
                sock.close()
            await runner.cleanup()
            raise
        self._runner = runner

    def _listen(self, address: IPAddress) -> socket.socket:
        sock = netns.socket_in(self.ns, socket_family(address), socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((str(address), self.port))
            except OSError as exc:
                raise SimnetError(
                    f"signaling server cannot listen on {url_host(address)}:{self.port} in "
                    f"namespace "
                    f"{self.ns}: {exc.strerror}",
                    fix="give it a free port, or an address that node has",
                ) from None
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        """Stop: close every WebSocket (1001), answer pending long polls, stop listening.

        Returns at once (safe in a `finally`); `await wait_closed()` waits until it is done.
        Needs the server's event loop to be running. Idempotent.
        """
        if self._runner is None or self._closed is not None:
            return
        self._closing = True
        for room in self._rooms.values():
            room.wake()
        self._closed = asyncio.get_running_loop().create_task(self._shutdown(self._runner))

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await asyncio.shield(self._closed)

    async def _shutdown(self, runner: web.AppRunner) -> None:
        sockets = [ws for room in self._rooms.values() for ws in room.sockets.values()]
        closes = [
            ws.close(code=WSCloseCode.GOING_AWAY, message=b"server closing") for ws in sockets
        ]
        if closes:
            await asyncio.wait(
                [asyncio.ensure_future(c) for c in closes], timeout=SHUTDOWN_TIMEOUT_S
            )
        await runner.cleanup()

    async def __aenter__(self) -> SignalingServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()

    # --- what callers ask -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://ADDR:PORT`: what `open_channel` takes as `url_base`, for either transport."""
        return f"http://{url_host(self.address)}:{self.port}"

    def base_url_for(self, families: Collection[Family]) -> str:
        """`base_url` at the first address of a family in `families` (a client's): a host
        without the primary address's family reaches the server at its other one."""
        address = next((a for a in self.addresses if a.version in families), self.address)
        return f"http://{url_host(address)}:{self.port}"

    def url(self, kind: Transport, room: str, peer: str) -> str:
        """The full URL peer `peer` of `room` uses with transport `kind`."""
        scheme = "ws" if kind == "ws" else "http"
        return f"{scheme}://{url_host(self.address)}:{self.port}/{kind}/{room}/{peer}"

    def rooms(self) -> list[str]:
        return list(self._rooms)

    def events(self, room: str) -> list[RelayEvent]:
        """What was relayed in `room` so far, in order (empty for an unknown room)."""
        found = self._rooms.get(room)
        return [entry.event for entry in found.log] if found else []

    def forget(self, room: str) -> None:
        """Drop a finished room (its log and events); live WebSockets in it are not closed."""
        self._rooms.pop(room, None)

    # --- rooms ----------------------------------------------------------------------------------

    def _room(self, name: str) -> _Room | None:
        """The room `name`, created if needed; None when the server has no room left."""
        room = self._rooms.get(name)
        if room is not None:
            return room
        if len(self._rooms) >= MAX_ROOMS:
            idle = [r for r in self._rooms.values() if r.idle()]
            if not idle:
                return None
            del self._rooms[min(idle, key=lambda r: r.active).name]
        room = self._rooms[name] = _Room(name)
        return room

    def _enter(self, request: web.Request) -> tuple[_Room, str]:
        """Validate the path's room and peer and join the peer to the room (HTTP errors raise)."""
        room_name, peer = request.match_info["room"], request.match_info["peer"]
        if not (NAME_RE.match(room_name) and NAME_RE.match(peer)):
            raise web.HTTPBadRequest(text="room and peer names: 1-64 of [A-Za-z0-9._~-]\n")
        if self._closing:
            raise web.HTTPServiceUnavailable(text="signaling server closing\n")
        room = self._room(room_name)
        if room is None:
            raise web.HTTPServiceUnavailable(text=f"too many active rooms (max {MAX_ROOMS})\n")
        if not room.join(peer):
            raise web.HTTPConflict(text=f"room is full (max {MAX_PEERS_PER_ROOM} peers)\n")
        return room, peer

    @staticmethod
    def _parse(text: str) -> dict[str, object] | None:
        try:
            message = json.loads(text)
        except ValueError:
            return None
        return message if isinstance(message, dict) else None

    # --- WebSocket ------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        room, peer = self._enter(request)
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=None)
        await ws.prepare(request)
        previous = room.sockets.get(peer)
        room.sockets[peer] = ws
        if previous is not None:  # a reconnect under the same name replaces the old connection
            await previous.close(code=WS_POLICY_VIOLATION, message=b"replaced by a new connection")
        pump = asyncio.get_running_loop().create_task(self._pump(room, peer, ws))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.BINARY:
                    await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"text JSON only")
                elif msg.type is WSMsgType.TEXT:
                    message = self._parse(msg.data)
                    if message is None:
                        await ws.close(code=WSCloseCode.INVALID_TEXT, message=b"not a JSON object")
                    elif room.full_for(len(msg.data.encode())):
                        await ws.close(code=WS_POLICY_VIOLATION, message=b"room backlog full")
                    else:
                        room.append(peer, msg.data, message, "ws", _source(request))
                # an oversize message arrives as ERROR, aiohttp has already closed with 1009
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            if room.sockets.get(peer) is ws:
                del room.sockets[peer]
        return ws

    async def _pump(self, room: _Room, peer: str, ws: web.WebSocketResponse) -> None:
        """Send `peer` everything for it, as it arrives, until its connection ends."""
        while not ws.closed and not self._closing:
            pending = room.pending(peer)
            if not pending:
                await room.wait_change(MAX_POLL_S)
                continue
            for index, entry in pending:
                try:
                    await ws.send_str(entry.text)
                except ConnectionError:
                    return
                room.ack(peer, index)

    # --- HTTP long-poll -------------------------------------------------------------------------

    async def _http_post(self, request: web.Request) -> web.StreamResponse:
        room, peer = self._enter(request)
        text = await request.text()  # over client_max_size: 413 from aiohttp
        message = self._parse(text)
        if message is None:
            raise web.HTTPBadRequest(text="body must be a JSON object\n")
        if room.full_for(len(text.encode())):
            raise web.HTTPTooManyRequests(text="room backlog full\n")
        room.append(peer, text, message, "http", _source(request))
        return web.Response(status=204)

    async def _http_poll(self, request: web.Request) -> web.StreamResponse:
        room, peer = self._enter(request)
        try:
            timeout_s = min(max(float(request.query.get("timeout", "0")), 0.0), MAX_POLL_S)
        except ValueError:
            raise web.HTTPBadRequest(text="timeout must be a number of seconds\n") from None
        deadline = time.monotonic() + timeout_s
        while True:
            pending = room.pending(peer)
            remaining = deadline - time.monotonic()
            if pending or remaining <= 0 or self._closing:
                break
            await room.wait_change(remaining)
        transport = request.transport
        if pending and (transport is None or transport.is_closing()):
            raise ConnectionResetError("long-poll client went away")  # leave them queued
        for index, _ in pending:
            room.ack(peer, index)
        body = "[" + ",".join(entry.text for _, entry in pending) + "]"
        return web.Response(text=body, content_type="application/json")


def _source(request: web.Request) -> str:
    """The connection's remote "ip:port" (what the server sees after the peer's NATs)."""
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peername, tuple) and len(peername) >= 2:
        return f"{peername[0]}:{peername[1]}"
    return str(request.remote)
