"""asyncio helpers that keep a cancellation (a Ctrl-C, a SIGTERM) from being lost.

Python 3.11's `asyncio.wait_for` swallows a cancellation of its caller when the awaited operation
completes in the same loop iteration: it returns that result, or raises that exception, instead of
`CancelledError`. simnet's run owner cancels its main task on a signal, so a signal that arrived
while coturn's readiness probe got its (fast, ICMP) error came out of `wait_for` as `OSError`,
which the polling loop treats as "not ready yet": the run carried on and made its call. (Fixed in
3.12, where `wait_for` is built on `asyncio.timeout`.) `asyncio.timeout` counts cancellations
(`Task.uncancel`) and re-raises one that was not its own, so `within` is built on it; ruff bans
`asyncio.wait_for` in simnet (pyproject.toml) so it does not come back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

_T = TypeVar("_T")


async def within(awaitable: Awaitable[_T], timeout_s: float | None) -> _T:
    """`await awaitable`, or `TimeoutError` after `timeout_s` (None: no limit); a cancellation
    of the caller always propagates as `CancelledError`."""
    async with asyncio.timeout(timeout_s):
        return await awaitable
