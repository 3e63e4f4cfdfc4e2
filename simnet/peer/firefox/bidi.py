"""A small WebDriver BiDi client: one WebSocket to Firefox's Remote Agent.

Why plain BiDi and neither geckodriver nor Selenium: the agent needs what it needs of Chromium
(open the call page, evaluate JavaScript, a way for the page to send events, notice the browser
going away, close it), all plain BiDi commands, and Firefox serves BiDi itself
(`--remote-debugging-port`). The WebSocket is the `websockets` library, as Chromium's CDP client
(`simnet.peer.chromium.cdp`) uses.

Messages (the W3C WebDriver BiDi specification): a command `{"id", "method", "params"}`; its
answer `{"type": "success", "id", "result"}` or `{"type": "error", "id", "error", "message"}`;
an event `{"type": "event", "method", "params"}`. A script's value comes back serialized as a
*remote value* (`{"type": "number", "value": 1.5}`, `{"type": "object", "value": [[key,
value], ...]}`), which `plain` turns into JSON.

Failures: `BidiError` (the browser answered with an error), `BidiClosed` (the connection ended:
every pending and later command raises it), `TimeoutError` (no answer within `timeout_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
from collections.abc import Callable
from typing import Any, TypedDict

import websockets
from websockets.asyncio.client import ClientConnection

from simnet.aio import within

log = logging.getLogger("simnet.peer.firefox.bidi")

#: A command's params or result, or an event's params, as JSON: each method's own fields.
JsonObject = dict[str, Any]
#: event method, params
Listener = Callable[[str, JsonObject], None]

COMMAND_TIMEOUT_S = 10.0  # a command's default bound: the browser answers in milliseconds
#: the session endpoint of the Remote Agent's WebSocket server
SESSION_PATH = "/session"


class Command(TypedDict):
    """One message to the browser."""

    id: int
    method: str
    params: JsonObject


class BidiError(Exception):
    """The browser answered a command with an error."""

    def __init__(self, method: str, error: str, message: str) -> None:
        super().__init__(f"{method}: {error}: {message}")
        self.method = method
        self.error = error


class BidiClosed(Exception):
    """The BiDi connection has ended (the browser exited or closed it)."""


def command(command_id: int, method: str, params: JsonObject | None = None) -> Command:
    """One command message."""
    return {"id": command_id, "method": method, "params": params or {}}


def session_url(listening: str) -> str:
    """The session endpoint of a Remote Agent listening at `listening` (`ws://HOST:PORT`)."""
    return listening.rstrip("/") + SESSION_PATH


def plain(value: JsonObject) -> Any:
    """A BiDi remote value as JSON (numbers, strings, booleans, null, arrays, objects); what has
    no JSON form (a node, a function, a promise...) is None, and a special number (NaN,
    Infinity, -0) is the float it names."""
    kind = value.get("type")
    inner = value.get("value")
    if kind in ("undefined", "null"):
        return None
    if kind in ("string", "boolean"):
        return inner
    if kind == "number":
        if isinstance(inner, str):
            return {"NaN": math.nan, "-0": -0.0, "Infinity": math.inf, "-Infinity": -math.inf}[
                inner
            ]
        return inner
    if kind == "bigint":
        return int(str(inner))
    if kind in ("array", "set"):
        return [plain(item) for item in inner or []]
    if kind in ("object", "map"):
        result: JsonObject = {}
        for key, item in inner or []:
            name = key if isinstance(key, str) else str(plain(key))
            result[name] = plain(item)
        return result
    return None


def evaluated(method: str, result: JsonObject) -> Any:
    """The value of a `script.evaluate` / `script.callFunction` result; an exception thrown by
    the script is a `ScriptError`."""
    if result.get("type") == "exception":
        details = result.get("exceptionDetails") or {}
        shown = details.get("text") or json.dumps(details.get("exception", {}))
        raise ScriptError(method, "script exception", str(shown))
    return plain(result.get("result") or {})


class ScriptError(BidiError):
    """A script the agent evaluated threw."""


class BidiConnection:
    """One BiDi WebSocket; `await BidiConnection.connect(url)`, `send()`, `close()`."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[JsonObject]]] = {}
        self._listeners: list[Listener] = []
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str, timeout_s: float = COMMAND_TIMEOUT_S) -> BidiConnection:
        # max_size None: a page's stats report can exceed 1 MiB; no compression and no pings:
        # a local socket, and a busy browser must not be dropped
        ws = await within(
            websockets.connect(url, max_size=None, compression=None, ping_interval=None),
            timeout_s,
        )
        return cls(ws)

    def listen(self, listener: Listener) -> None:
        """Call `listener` for every event."""
        self._listeners.append(listener)

    async def send(
        self, method: str, params: JsonObject | None = None, *, timeout_s: float = COMMAND_TIMEOUT_S
    ) -> JsonObject:
        """Run one command; its `result` object."""
        if self.closed.done():
            raise BidiClosed(self.closed.result())
        command_id = next(self._ids)
        future: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = (method, future)
        try:
            try:
                await self._ws.send(json.dumps(command(command_id, method, params)))
            except websockets.ConnectionClosed as exc:
                raise BidiClosed(f"BiDi connection closed: {exc}") from None
            return await within(future, timeout_s)
        finally:
            self._pending.pop(command_id, None)

    async def _read(self) -> None:
        reason = "BiDi connection closed by the browser"
        try:
            async for raw in self._ws:
                message = json.loads(raw)  # the protocol's own shape: read, not trusted
                if not isinstance(message, dict):
                    continue
                if message.get("type") == "event":
                    method = str(message.get("method", ""))
                    for listener in list(self._listeners):
                        try:
                            listener(method, message.get("params") or {})
                        except Exception:  # a listener's bug must not stop the reader
                            log.exception("BiDi listener failed on %s", method)
                elif isinstance(message.get("id"), int):
                    self._answer(message)
        except websockets.ConnectionClosed as exc:
            reason = f"BiDi connection lost: {exc}"
        except Exception as exc:
            reason = f"BiDi connection failed: {exc!r}"
        finally:
            self._end(reason)

    def _answer(self, message: JsonObject) -> None:
        entry = self._pending.get(message["id"])
        if entry is None:
            return  # its sender timed out and left
        method, future = entry
        if future.done():
            return
        if message.get("type") == "error":
            error = BidiError(method, str(message.get("error")), str(message.get("message", "")))
            future.set_exception(error)
        else:
            future.set_result(message.get("result") or {})

    def _end(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(BidiClosed(reason))

    async def close(self) -> None:
        """Close the connection and stop the reader; idempotent."""
        self._end("BiDi connection closed by the agent")
        with contextlib.suppress(Exception):
            await self._ws.close()
        if not self._reader.done():
            self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
