"""The peer side of signaling: one channel to the other peer of a call, over WebSocket or HTTP.

Used inside a peer process that has already entered its host's namespace, so it makes ordinary
aiohttp connections: they leave through the host's NAT and reach the signaling server
(`simnet.services.signaling`) over the emulated internet, exactly as a real client would.

`url_base` is the server's root, e.g. `http://192.0.2.11:8080` (`SignalingServer.base_url`).
Either scheme is accepted for either transport (`ws://` is turned into `http://` for the
long-poll channel and vice versa), so a caller can hand over one string whatever the transport.

Both channels read in a background task into a local inbox, so `receive(timeout_s)` is a plain
wait on that inbox: a timeout never cuts a message in half or loses one, and a server that goes
away is noticed even while nobody is receiving. The long-poll reader asks the server for at most
`POLL_S` at a time and drops its request when the channel closes; the server then keeps whatever
was not handed out, so nothing is acknowledged that the peer never read.

Failures are `SignalingError`s with a `kind` the agent can report without parsing messages:
"connect" (no connection within the time given: refused, unreachable, no answer), "rejected"
(the server answered no: a bad name, a full room, a message over 64 KiB), "timeout" (nothing
arrived in time), "closed" (the channel ended: the server closed it or went away, or we did).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import websockets

from simnet.aio import within
from simnet.errors import SimnetError
from simnet.peer.http_proxy import HttpProxy

Transport = Literal["ws", "http"]
SignalingErrorKind = Literal["connect", "rejected", "timeout", "closed"]

POLL_S = 25.0  # one long poll; well under the server's cap (60 s)
POLL_GRACE_S = 10.0  # how much longer than the poll the client waits for its answer
WS_CLOSE_TIMEOUT_S = 2.0


class SignalingError(SimnetError):
    """Signaling with the other peer failed; `kind` says how (see the module docstring)."""

    def __init__(self, message: str, *, kind: SignalingErrorKind) -> None:
        super().__init__(message)
        self.kind: SignalingErrorKind = kind


def _endpoint(kind: Transport, url_base: str, room: str, peer: str) -> str:
    parts = urlsplit(url_base.rstrip("/"))
    secure = parts.scheme in ("https", "wss")
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError(
            f"signaling url_base must be http(s):// or ws(s)://HOST:PORT: {url_base!r}"
        )
    scheme = {("ws", False): "ws", ("ws", True): "wss", ("http", False): "http"}.get(
        (kind, secure), "https"
    )
    path = f"{parts.path}/{kind}/{quote(room, safe='')}/{quote(peer, safe='')}"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


#: A message on the channel, as JSON: the channel relays whatever object a peer sends (the
#: server adds `from`); `simnet.peer.aiortc.signaling_router.parse` reads it into a typed message.
SignalingMessage = dict[str, Any]


def _decode(text: str) -> SignalingMessage | None:
    try:
        message = json.loads(text)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


class Channel(ABC):
    """A bidirectional JSON-object channel to the other peer(s) of a room."""

    kind: Transport

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.url = url
        self._session = session
        self._inbox: asyncio.Queue[SignalingMessage | None] = asyncio.Queue()
        self._failure: SignalingError | None = None
        self._reader: asyncio.Task[None] | None = None

    def _start_reader(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read_forever())

    async def _read_forever(self) -> None:
        try:
            await self._read()
        except SignalingError as exc:  # whatever went wrong, the channel has ended
            self._end(exc if exc.kind == "closed" else SignalingError(exc.message, kind="closed"))
        except Exception as exc:  # any other reader failure still ends the channel visibly
            self._end(SignalingError(f"signaling channel failed: {exc!r}", kind="closed"))
        else:
            self._end(SignalingError("signaling channel ended", kind="closed"))

    def _end(self, failure: SignalingError) -> None:
        if self._failure is None:
            self._failure = failure
            self._inbox.put_nowait(None)  # wakes a receive() with the failure

    @abstractmethod
    async def _read(self) -> None:
        """Put every message from the server into `_inbox` until the channel ends."""

    @abstractmethod
    async def send(self, message: SignalingMessage) -> None:
        """Deliver `message` to the other peer(s) of the room (buffered there if absent)."""

    async def receive(self, timeout_s: float) -> SignalingMessage:
        """The next message from the other peer; SignalingError("timeout") after `timeout_s`."""
        try:
            item = await within(self._inbox.get(), timeout_s)
        except TimeoutError:
            raise SignalingError(
                f"no signaling message within {timeout_s:g} s ({self.url})", kind="timeout"
            ) from None
        if item is None:
            self._inbox.put_nowait(None)  # every later receive() fails the same way
            assert self._failure is not None
            raise self._failure
        return item

    async def close(self) -> None:
        """Stop reading and close the connection(s); idempotent."""
        self._end(SignalingError("signaling channel closed by this peer", kind="closed"))
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._close_transport()
        await self._session.close()

    async def _close_transport(self) -> None:
        return None

    def _check_open(self) -> None:
        if self._failure is not None:
            raise SignalingError(self._failure.message, kind="closed")

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class _WsChannel(Channel):
    kind: Transport = "ws"

    def __init__(
        self, session: aiohttp.ClientSession, url: str, ws: aiohttp.ClientWebSocketResponse
    ) -> None:
        super().__init__(session, url)
        self._ws = ws

    async def _read(self) -> None:
        while True:
            msg = await self._ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                message = _decode(msg.data)
                if message is not None:
                    self._inbox.put_nowait(message)
            elif msg.type is aiohttp.WSMsgType.CLOSE:
                reason = f": {msg.extra}" if msg.extra else ""
                raise SignalingError(
                    f"signaling server closed the WebSocket (code {msg.data}{reason})",
                    kind="closed",
                )
            elif msg.type is aiohttp.WSMsgType.ERROR:
                raise SignalingError(f"signaling WebSocket failed: {msg.data!r}", kind="closed")
            elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                code = self._ws.close_code
                raise SignalingError(f"signaling WebSocket closed (code {code})", kind="closed")

    async def send(self, message: SignalingMessage) -> None:
        self._check_open()
        try:
            await self._ws.send_str(json.dumps(message))
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise SignalingError(f"signaling WebSocket is closed: {exc}", kind="closed") from None

    async def _close_transport(self) -> None:
        await self._ws.close()


class _HttpChannel(Channel):
    kind: Transport = "http"

    def __init__(self, session: aiohttp.ClientSession, url: str, request_timeout_s: float) -> None:
        super().__init__(session, url)
        self._request_timeout_s = request_timeout_s

    async def poll(self, wait_s: float, timeout_s: float, failing: SignalingErrorKind) -> None:
        """One long poll; its messages go to the inbox. Errors are raised as `failing`."""
        try:
            async with self._session.get(
                self.url,
                params={"timeout": f"{wait_s:g}"},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                await _check_status(response, "poll")
                messages = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise _transport_error(exc, self.url, timeout_s, failing) from None
        for message in messages if isinstance(messages, list) else []:
            if isinstance(message, dict):
                self._inbox.put_nowait(message)

    async def _read(self) -> None:
        while True:
            await self.poll(POLL_S, POLL_S + POLL_GRACE_S, "closed")

    async def send(self, message: SignalingMessage) -> None:
        self._check_open()
        timeout = self._request_timeout_s
        try:
            async with self._session.post(
                self.url, json=message, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                await _check_status(response, "message")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc, self.url, timeout, "closed") from None


class _TunnelledWsChannel(Channel):
    """The WebSocket through an HTTP proxy's `CONNECT` tunnel, as browsers open it (the
    `websockets` client's proxy support); `session` only serves the base class's close."""

    kind: Transport = "ws"

    def __init__(
        self, session: aiohttp.ClientSession, url: str, ws: websockets.ClientConnection
    ) -> None:
        super().__init__(session, url)
        self._ws = ws

    async def _read(self) -> None:
        try:
            async for data in self._ws:
                message = _decode(data if isinstance(data, str) else data.decode(errors="replace"))
                if message is not None:
                    self._inbox.put_nowait(message)
        except websockets.ConnectionClosed as exc:
            raise SignalingError(f"signaling WebSocket closed: {exc}", kind="closed") from None
        raise SignalingError(
            f"signaling server closed the WebSocket (code {self._ws.close_code})", kind="closed"
        )

    async def send(self, message: SignalingMessage) -> None:
        self._check_open()
        try:
            await self._ws.send(json.dumps(message))
        except websockets.ConnectionClosed as exc:
            raise SignalingError(f"signaling WebSocket is closed: {exc}", kind="closed") from None

    async def _close_transport(self) -> None:
        await self._ws.close()


async def _open_tunnelled_ws(
    session: aiohttp.ClientSession, url: str, proxy: HttpProxy, timeout_s: float
) -> Channel:
    try:
        ws = await websockets.connect(
            url,
            proxy=proxy.url,
            open_timeout=timeout_s,
            ping_interval=None,
            close_timeout=WS_CLOSE_TIMEOUT_S,
        )
    except websockets.InvalidStatus as exc:
        status = exc.response.status_code
        raise SignalingError(
            f"signaling server refused the WebSocket: HTTP {status}", kind="rejected"
        ) from None
    except websockets.InvalidProxyStatus as exc:
        status = exc.response.status_code
        raise SignalingError(
            f"the proxy {proxy.address} refused to tunnel to the signaling server: HTTP {status}",
            kind="rejected",
        ) from None
    except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
        raise _transport_error(exc, url, timeout_s, "connect") from None
    return _TunnelledWsChannel(session, url, ws)


async def _check_status(response: aiohttp.ClientResponse, what: str) -> None:
    if response.status >= 400:
        detail = (await response.text()).strip()
        raise SignalingError(
            f"signaling server refused the {what}: HTTP {response.status} {detail}",
            kind="rejected",
        )


def _transport_error(
    exc: BaseException, url: str, timeout_s: float, failing: SignalingErrorKind
) -> SignalingError:
    if isinstance(exc, SignalingError):
        return exc
    if isinstance(exc, TimeoutError):
        kind: SignalingErrorKind = "connect" if failing == "connect" else "timeout"
        return SignalingError(
            f"signaling server {url} gave no answer within {timeout_s:g} s", kind=kind
        )
    return SignalingError(f"signaling server {url} unreachable: {exc}", kind=failing)


async def open_channel(
    kind: Transport,
    url_base: str,
    room: str,
    peer: str,
    timeout_s: float,
    proxy: HttpProxy | None = None,
) -> Channel:
    """Connect peer `peer` to `room` on the server at `url_base` within `timeout_s`, through
    `proxy` when given (`simnet.peer.http_proxy`).

    Fails fast with SignalingError("connect") when nothing listens (no retry: the orchestrator
    starts the server before any peer), "rejected" when the server refuses. `timeout_s` also
    bounds each later HTTP `send`.
    """
    url = _endpoint(kind, url_base, room, peer)
    channel: Channel
    session = (
        aiohttp.ClientSession()
        if proxy is None
        else aiohttp.ClientSession(
            proxy=proxy.address,
            proxy_auth=aiohttp.BasicAuth(proxy.user, proxy.password or "") if proxy.user else None,
        )
    )
    try:
        if kind == "ws" and proxy is not None:
            channel = await _open_tunnelled_ws(session, url, proxy, timeout_s)
        elif kind == "ws":
            try:
                async with asyncio.timeout(timeout_s):
                    ws = await session.ws_connect(
                        url,
                        heartbeat=None,
                        timeout=aiohttp.ClientWSTimeout(ws_close=WS_CLOSE_TIMEOUT_S),
                    )
            except aiohttp.WSServerHandshakeError as exc:
                raise SignalingError(
                    f"signaling server refused the WebSocket: HTTP {exc.status} {exc.message}",
                    kind="rejected",
                ) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _transport_error(exc, url, timeout_s, "connect") from None
            channel = _WsChannel(session, url, ws)
        else:
            http = _HttpChannel(session, url, timeout_s)
            await http.poll(0, timeout_s, "connect")  # proves the server answers; takes backlog
            channel = http
    except BaseException:
        await session.close()
        raise
    channel._start_reader()
    return channel
