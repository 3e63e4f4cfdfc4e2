"""A browser's JSON commands over one WebSocket: what Chrome's DevTools protocol
(`simnet.peer.chromium.cdp`) and WebDriver BiDi (`simnet.peer.firefox.bidi`) share.

Both send a command `{"id", "method", "params"}` and get back one answer carrying its `id`
(a result, or an error) and, meanwhile, events (a `method` and its `params`). So one connection
(`RpcConnection`) numbers the commands, keeps a future per command waiting for its answer, runs
one reader task that settles those futures and hands each event to the listeners, and fails every
waiting and later command at once when the connection ends (the browser died). A protocol's
layer says which message is an event and which answer is an error.

Failures: the layer's `RpcError` (the browser answered with an error), its `RpcClosed` (the
connection ended), `TimeoutError` (no answer within the command's `timeout_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any, ClassVar, NotRequired, Self, TypedDict

import websockets
from websockets.asyncio.client import ClientConnection

from simnet.aio import within

log = logging.getLogger("simnet.peer.browser.rpc")

#: A command's params or result, or an event's params, as JSON: each method's own fields.
JsonObject = dict[str, Any]
#: event method, params, session id (None: the browser's own events, or a protocol without)
Listener = Callable[[str, JsonObject, str | None], None]
#: an event as a protocol's layer reads it: method, params, session id
EventMessage = tuple[str, JsonObject, str | None]

COMMAND_TIMEOUT_S = 10.0  # a command's default bound: the browser answers in milliseconds


class Command(TypedDict):
    """One message to the browser."""

    id: int
    method: str
    params: JsonObject
    sessionId: NotRequired[str]


class RpcError(Exception):
    """The browser answered a command with an error."""


class RpcClosed(Exception):
    """The connection has ended (the browser exited or closed it)."""


def command(
    command_id: int, method: str, params: JsonObject | None = None, session_id: str | None = None
) -> Command:
    """One command message (for the target session `session_id`, where the protocol has
    them)."""
    message: Command = {"id": command_id, "method": method, "params": params or {}}
    if session_id is not None:
        message["sessionId"] = session_id
    return message


class RpcConnection:
    """One WebSocket to a browser; `await <layer>.connect(url)`, `send()`, `close()`."""

    #: the connection's name in its failures ("DevTools connection lost: ...")
    name: ClassVar[str]
    #: the protocol's name in the log ("CDP listener failed on ..."), and its logger
    protocol: ClassVar[str]
    log: ClassVar[logging.Logger] = log
    #: what a command raises once the connection has ended
    closed_error: ClassVar[type[RpcClosed]] = RpcClosed

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[JsonObject]]] = {}
        self._listeners: list[Listener] = []
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str, timeout_s: float = COMMAND_TIMEOUT_S) -> Self:
        # max_size None: a page's stats report or an event's payload can exceed 1 MiB;
        # no compression and no pings: a local socket, and a busy browser must not be dropped
        ws = await within(
            websockets.connect(url, max_size=None, compression=None, ping_interval=None),
            timeout_s,
        )
        return cls(ws)

    # --- the protocol's layer -----------------------------------------------------------------

    def event_of(self, message: JsonObject) -> EventMessage | None:
        """`message` as an event, or None if it is none (an answer, or nothing known)."""
        raise NotImplementedError

    def error_of(self, method: str, message: JsonObject) -> RpcError | None:
        """The error an answer to command `method` carries, or None for a result."""
        raise NotImplementedError

    # --- the same for every protocol ----------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` for every event; returns the function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def send(
        self,
        method: str,
        params: JsonObject | None = None,
        *,
        session_id: str | None = None,
        timeout_s: float = COMMAND_TIMEOUT_S,
    ) -> JsonObject:
        """Run one command (in target session `session_id`, where the protocol has them); its
        `result` object, as JSON."""
        if self.closed.done():
            raise self.closed_error(self.closed.result())
        command_id = next(self._ids)
        future: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = (method, future)
        try:
            try:
                await self._ws.send(json.dumps(command(command_id, method, params, session_id)))
            except websockets.ConnectionClosed as exc:
                raise self.closed_error(f"{self.name} connection closed: {exc}") from None
            return await within(future, timeout_s)
        finally:
            self._pending.pop(command_id, None)

    async def _read(self) -> None:
        reason = f"{self.name} connection closed by the browser"
        try:
            async for raw in self._ws:
                message = json.loads(raw)  # the protocol's own shape: read, not trusted
                if not isinstance(message, dict):
                    continue
                event = self.event_of(message)
                if event is not None:
                    self._dispatch(*event)
                elif isinstance(message.get("id"), int):
                    self._answer(message)
        except websockets.ConnectionClosed as exc:
            reason = f"{self.name} connection lost: {exc}"
        except Exception as exc:
            reason = f"{self.name} connection failed: {exc!r}"
        finally:
            self._end(reason)

    def _dispatch(self, method: str, params: JsonObject, session_id: str | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(method, params, session_id)
            except Exception:  # a listener's bug must not stop the reader
                self.log.exception("%s listener failed on %s", self.protocol, method)

    def _answer(self, message: JsonObject) -> None:
        entry = self._pending.get(message["id"])
        if entry is None:
            return  # its sender timed out and left
        method, future = entry
        if future.done():
            return
        error = self.error_of(method, message)
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(message.get("result") or {})

    def _end(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(self.closed_error(reason))

    async def close(self) -> None:
        """Close the connection and stop the reader; idempotent."""
        self._end(f"{self.name} connection closed by the agent")
        with contextlib.suppress(Exception):
            await self._ws.close()
        if not self._reader.done():
            self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
