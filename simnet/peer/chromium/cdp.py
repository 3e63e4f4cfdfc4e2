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

The WebSocket plumbing (ids, pending answers, events, the connection ending) is every browser
protocol's (`simnet.peer.browser.rpc`); this layer reads CDP's answers and events and their
typed results (`call`).

Failures: `CdpError` (the browser answered a command with an error), `CdpClosed` (the
connection ended: every pending and later command raises it), `TimeoutError` (no answer within
the command's `timeout_s`).
"""

from __future__ import annotations

import logging
from typing import TypeVar, cast

from pydantic import BaseModel, ValidationError

from simnet.peer.browser.rpc import (
    COMMAND_TIMEOUT_S,
    EventMessage,
    RpcClosed,
    RpcConnection,
    RpcError,
)
from simnet.peer.chromium.cdp_types import ErrorBody, JsonObject, Message

log = logging.getLogger("simnet.peer.chromium.cdp")

Result = TypeVar("Result", bound=BaseModel)


class CdpError(RpcError):
    """The browser answered a command with an error."""

    def __init__(self, method: str, error: ErrorBody) -> None:
        super().__init__(f"{method}: {error.get('message', error)} (code {error.get('code')})")
        self.method = method
        self.code = error.get("code")


class CdpClosed(RpcClosed):
    """The DevTools connection has ended (the browser exited or closed it)."""


class CdpConnection(RpcConnection):
    """One DevTools WebSocket; `await CdpConnection.connect(url)`, `send()`, `call()`,
    `close()`. A command or event of a page carries its flat session's id (`session_id`)."""

    name = "DevTools"
    protocol = "CDP"
    log = log
    closed_error = CdpClosed

    def event_of(self, message: JsonObject) -> EventMessage | None:
        read = cast(Message, message)  # CDP's own shape: read, not trusted
        if "id" in read or "method" not in read:
            return None
        return read["method"], read.get("params", {}), read.get("sessionId")

    def error_of(self, method: str, message: JsonObject) -> CdpError | None:
        read = cast(Message, message)
        return CdpError(method, read["error"]) if "error" in read else None

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
