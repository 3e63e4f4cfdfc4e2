"""The DevTools protocol's messages and the results and event parameters the agent reads, typed.

A CDP message is JSON: a command's answer (`id`, then `result` or `error`) or an event
(`method`, `params`, `sessionId` for a page's). What the agent reads of a result or an event's
parameters is parsed here into a model (unknown fields ignored, as CDP adds fields over
versions), so a browser that answers something else fails with the field named rather than a
`KeyError` deep inside the agent. Parameters the agent sends stay plain JSON objects: they are
written from literals beside each call.
"""

from __future__ import annotations

from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from simnet.peer.browser.rpc import JsonObject as JsonObject  # params and results, as JSON


class ErrorBody(TypedDict):
    """A command's `error` member."""

    code: int
    message: str


class Message(TypedDict, total=False):
    """One message from the browser: an answer (`id`) or an event (`method`)."""

    id: int
    result: JsonObject
    error: ErrorBody
    method: str
    params: JsonObject
    sessionId: str


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class BrowserVersion(_Read):
    """`Browser.getVersion`: "Chrome/156.0.8078.108" even for Chromium."""

    product: str = ""


class TargetInfo(_Read):
    target_id: str = Field(alias="targetId")
    type: str
    url: str = ""


class Targets(_Read):
    """`Target.getTargets`."""

    target_infos: list[TargetInfo] = Field(default_factory=list, alias="targetInfos")


class CreatedTarget(_Read):
    """`Target.createTarget`."""

    target_id: str = Field(alias="targetId")


class AttachedTarget(_Read):
    """`Target.attachToTarget`."""

    session_id: str = Field(alias="sessionId")


class Navigated(_Read):
    """`Page.navigate`: `errorText` when the page could not be loaded."""

    error_text: str | None = Field(default=None, alias="errorText")


class RemoteObject(_Read):
    value: Any = None
    description: str | None = None


class ExceptionDetails(_Read):
    text: str = ""
    exception: RemoteObject | None = None

    @property
    def shown(self) -> str:
        """The exception as the page's console would show it."""
        return (self.exception.description if self.exception else None) or self.text


class Evaluated(_Read):
    """`Runtime.evaluate` with `returnByValue`."""

    result: RemoteObject = Field(default_factory=RemoteObject)
    exception_details: ExceptionDetails | None = Field(default=None, alias="exceptionDetails")


class TargetEvent(_Read):
    """`Target.targetCrashed` and `Target.detachedFromTarget`."""

    target_id: str | None = Field(default=None, alias="targetId")
    session_id: str | None = Field(default=None, alias="sessionId")
    status: str | None = None


class BindingCalled(_Read):
    """`Runtime.bindingCalled`: the page's `window.<name>(payload)`."""

    name: str
    payload: str = ""


class ExceptionThrown(_Read):
    """`Runtime.exceptionThrown`."""

    exception_details: ExceptionDetails = Field(
        default_factory=ExceptionDetails, alias="exceptionDetails"
    )


class ConsoleCalled(_Read):
    """`Runtime.consoleAPICalled`."""

    type: str = ""
    args: list[RemoteObject] = Field(default_factory=list)
