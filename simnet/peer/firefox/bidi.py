"""A small WebDriver BiDi client: one WebSocket to Firefox's Remote Agent.

Why plain BiDi and neither geckodriver nor Selenium: the agent needs what it needs of Chromium
(open the call page, evaluate JavaScript, a way for the page to send events, notice the browser
going away, close it), all plain BiDi commands, and Firefox serves BiDi itself
(`--remote-debugging-port`). The WebSocket is the `websockets` library, as for Chromium's CDP.

Messages (the W3C WebDriver BiDi specification): a command `{"id", "method", "params"}`; its
answer `{"type": "success", "id", "result"}` or `{"type": "error", "id", "error", "message"}`;
an event `{"type": "event", "method", "params"}`. A script's value comes back serialized as a
*remote value* (`{"type": "number", "value": 1.5}`, `{"type": "object", "value": [[key,
value], ...]}`), which `plain` turns into JSON.

The WebSocket plumbing (ids, pending answers, events, the connection ending) is every browser
protocol's (`simnet.peer.browser.rpc`, Chromium's CDP client's too); this layer reads BiDi's
answers, events and remote values.

Failures: `BidiError` (the browser answered with an error), `BidiClosed` (the connection ended:
every pending and later command raises it), `TimeoutError` (no answer within `timeout_s`).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from simnet.peer.browser.rpc import EventMessage, RpcClosed, RpcConnection, RpcError
from simnet.peer.browser.rpc import JsonObject as JsonObject  # the layer's JSON, as CDP's
from simnet.peer.browser.rpc import command as command  # one command message, as CDP's

log = logging.getLogger("simnet.peer.firefox.bidi")

#: the session endpoint of the Remote Agent's WebSocket server
SESSION_PATH = "/session"


class BidiError(RpcError):
    """The browser answered a command with an error."""

    def __init__(self, method: str, error: str, message: str) -> None:
        super().__init__(f"{method}: {error}: {message}")
        self.method = method
        self.error = error


class BidiClosed(RpcClosed):
    """The BiDi connection has ended (the browser exited or closed it)."""


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


class BidiConnection(RpcConnection):
    """One BiDi WebSocket; `await BidiConnection.connect(url)`, `send()`, `close()`. Its events
    carry no session id (a command names its browsing context in its params)."""

    name = "BiDi"
    protocol = "BiDi"
    log = log
    closed_error = BidiClosed

    def event_of(self, message: JsonObject) -> EventMessage | None:
        if message.get("type") != "event":
            return None
        return str(message.get("method", "")), message.get("params") or {}, None

    def error_of(self, method: str, message: JsonObject) -> BidiError | None:
        if message.get("type") != "error":
            return None
        return BidiError(method, str(message.get("error")), str(message.get("message", "")))
