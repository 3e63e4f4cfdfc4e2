"""A small Chrome DevTools Protocol client: one WebSocket to the browser, flat sessions.

Why plain CDP and not Playwright: the agent needs five things from the browser (open a page,
evaluate JavaScript, a binding for the page's events, the crash events, close), all plain CDP
methods. Playwright for Python would add a Node.js driver process per peer (memory and start-up
time on a 2-core machine running two browsers, counted in the warm start), is not installed, and
its own browser builds are exactly what this harness must not download; pointed at the system
binary it would still speak CDP underneath. The cost of plain CDP is this module.

One connection to the browser endpoint (the `ws://127.0.0.1:PORT/devtools/browser/ID` URL the
browser prints) carries every target: `Target.attachToTarget(flatten=True)` gives a session id,
and a command or event carries that id (`session_id`), so one reader task serves the browser and
its pages, and the connection closing (the browser died) fails every waiting command at once.

Failures: `CdpError` (the browser answered a command with an error), `CdpClosed` (the
connection ended: every pending and later command raises it), `TimeoutError` (no answer within
the command's `timeout_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from typing import TypeVar, cast

import websockets
from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import ClientConnection

from simnet.aio import within
from simnet.peer.chromium.cdp_types import Command, ErrorBody, JsonObject, Message

log = logging.getLogger("simnet.peer.chromium.cdp")

#: event method, params, session id (None: the browser target's own events)
Listener = Callable[[str, JsonObject, str | None], None]
Result = TypeVar("Result", bound=BaseModel)

COMMAND_TIMEOUT_S = 10.0  # a command's default bound: the browser answers in milliseconds


class CdpError(Exception):
    """The browser answered a command with an error."""

    def __init__(self, method: str, error: ErrorBody) -> None:
        super().__init__(f"{method}: {error.get('message', error)} (code {error.get('code')})")
        self.method = method
        self.code = error.get("code")


class CdpClosed(Exception):
    """The DevTools connection has ended (the browser exited or closed it)."""


class CdpConnection:
    """One DevTools WebSocket; `await CdpConnection.connect(url)`, `send()`, `close()`."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[JsonObject]]] = {}
        self._listeners: list[Listener] = []
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str, timeout_s: float = COMMAND_TIMEOUT_S) -> CdpConnection:
        # max_size None: a page's stats report or a binding payload can exceed 1 MiB;
        # no compression and no pings: a local socket, and a busy browser must not be dropped
        ws = await within(
            websockets.connect(url, max_size=None, compression=None, ping_interval=None),
            timeout_s,
        )
        return cls(ws)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` for every event; returns the function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def call(
        self,
        method: str,
        result: type[Result],
        params: JsonObject | None = None,
        *,
        session_id: str | None = None,
        timeout_s: float = COMMAND_TIMEOUT_S,
    ) -> Result:
        """Run one command; its `result` object read as `result` (`simnet.peer.chromium.
        cdp_types`). An answer without the fields the model needs is a `CdpError`."""
        answer = await self.send(method, params, session_id=session_id, timeout_s=timeout_s)
        try:
            return result.model_validate(answer)
        except ValidationError as exc:
            raise CdpError(method, {"code": 0, "message": f"unexpected answer: {exc}"}) from None

    async def send(
        self,
        method: str,
        params: JsonObject | None = None,
        *,
        session_id: str | None = None,
        timeout_s: float = COMMAND_TIMEOUT_S,
    ) -> JsonObject:
        """Run one command; its `result` object, as JSON (`call` reads it as a model)."""
        if self.closed.done():
            raise CdpClosed(self.closed.result())
        command_id = next(self._ids)
        message: Command = {"id": command_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = (method, future)
        try:
            try:
                await self._ws.send(json.dumps(message))
            except websockets.ConnectionClosed as exc:
                raise CdpClosed(f"DevTools connection closed: {exc}") from None
            return await within(future, timeout_s)
        finally:
            self._pending.pop(command_id, None)

    async def _read(self) -> None:
        reason = "DevTools connection closed by the browser"
        try:
            async for raw in self._ws:
                message = cast(Message, json.loads(raw))  # CDP's own shape: read, not trusted
                if "id" in message:
                    self._answer(message)
                elif "method" in message:
                    method = message["method"]
                    for listener in list(self._listeners):
                        try:
                            listener(method, message.get("params", {}), message.get("sessionId"))
                        except Exception:  # a listener's bug must not stop the reader
                            log.exception("CDP listener failed on %s", method)
        except websockets.ConnectionClosed as exc:
            reason = f"DevTools connection lost: {exc}"
        except Exception as exc:
            reason = f"DevTools connection failed: {exc!r}"
        finally:
            self._end(reason)

    def _answer(self, message: Message) -> None:
        entry = self._pending.get(message["id"])
        if entry is None:
            return  # its sender timed out and left
        method, future = entry
        if future.done():
            return
        if "error" in message:
            future.set_exception(CdpError(method, message["error"]))
        else:
            future.set_result(message.get("result", {}))

    def _end(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(CdpClosed(reason))

    async def close(self) -> None:
        """Close the connection and stop the reader; idempotent."""
        self._end("DevTools connection closed by the agent")
        with contextlib.suppress(Exception):
            await self._ws.close()
        if not self._reader.done():
            self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
