"""How a call's phase ends badly: `CallFailed` with its error kind, and the timeout that makes
every wait end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

_T = TypeVar("_T")


class CallFailed(Exception):
    """The call stopped; `kind` is one of `simnet.callspec.ERROR_KINDS`."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


async def bounded(
    phase: str, awaitable: Awaitable[_T], timeout_s: float, what: str | None = None
) -> _T:
    """`awaitable`'s value, or the call fails as `timeout:<phase>` after `timeout_s`; `what`
    names the wait in the detail when a phase has several (which one ran out is the clue)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except TimeoutError:
        waited = phase if what is None else f"{phase} ({what})"
        raise CallFailed(f"timeout:{phase}", f"{waited} not done within {timeout_s:g} s") from None


def settle(future: asyncio.Future[_T], value: _T) -> None:
    """Give `future` its value unless it already has one (events may repeat)."""
    if not future.done():
        future.set_result(value)
