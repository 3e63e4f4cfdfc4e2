"""`simnet.aio.within` never swallows a cancellation (a signal to the run owner).

Why: Python 3.11's `asyncio.wait_for` returns (or raises) what the awaited operation produced
when it completes in the same loop iteration as the caller's cancellation, and the cancellation is
lost. A SIGTERM while coturn's readiness probe got its ICMP error therefore let the run go on.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from simnet.aio import within


def cancelled_as_it_completes(wait: Callable[[Awaitable[Any], float], Awaitable[Any]]) -> str:
    """Cancel a task in the very iteration its awaited future fails; what the task ends with."""

    async def scenario() -> str:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        async def probe() -> None:
            await wait(future, 5.0)

        task = asyncio.ensure_future(probe())
        await asyncio.sleep(0)  # the task now waits on the future
        future.set_exception(ConnectionRefusedError())  # the probe's ICMP error...
        task.cancel()  # ...and the signal, in one iteration
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        except OSError:
            return "OSError"
        return "returned"

    return asyncio.run(scenario())


def test_within_propagates_the_cancellation() -> None:
    assert cancelled_as_it_completes(within) == "cancelled"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for was rebuilt in 3.12")
def test_wait_for_of_this_python_loses_it() -> None:
    """The reason `within` exists (and ruff bans `asyncio.wait_for` in simnet)."""
    lost = cancelled_as_it_completes(asyncio.wait_for)
    assert lost == "OSError"


def test_within_times_out_and_returns() -> None:
    async def scenario() -> tuple[str, int]:
        try:
            await within(asyncio.sleep(10), 0.01)
        except TimeoutError:
            timed_out = "timeout"
        return timed_out, await within(asyncio.sleep(0, result=7), 1.0)

    assert asyncio.run(scenario()) == ("timeout", 7)
