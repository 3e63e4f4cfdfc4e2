"""The run owner's signal handling: how the process that owns a run turns SIGTERM, SIGHUP and
SIGINT into exceptions at points where `finally` blocks can still tear everything down.

On the ground floor (standard library only): the network layer uses it while building and tearing
down, and the jobs in `simnet.run` use it around whole runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine, Iterator
from types import FrameType
from typing import Any, TypeVar

_T = TypeVar("_T")


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM so that `finally` blocks tear the run down."""


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM (and SIGHUP) into `Terminated` while the body runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_terminable(main: Coroutine[Any, Any, _T]) -> _T:
    """`asyncio.run(main)`, where SIGINT/SIGTERM/SIGHUP cancel `main` instead of raising in a
    callback, and are raised once the loop is done (`KeyboardInterrupt`, `Terminated`).

    An exception raised by a signal handler inside an asyncio callback is swallowed by the event
    loop (the run carries on or hangs until a timeout); cancelling the main task instead unwinds
    every `finally`. A signal is never lost: should `main` return although it was cancelled (a
    cancellation swallowed on its way, see `simnet.aio`), the signal is raised all the same.
    SIGINT is handled here too, not by `asyncio.run`, for that reason.
    """
    received: list[signal.Signals] = []

    async def guarded() -> _T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(sig: signal.Signals) -> None:
            received.append(sig)
            task.cancel()

        watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        for sig in watched:
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            return await main
        finally:
            for sig in watched:
                loop.remove_signal_handler(sig)

    try:
        result = asyncio.run(guarded())
    except asyncio.CancelledError:
        if not received:
            raise
    else:
        if not received:
            return result
    if received[0] == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(received[0].name)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP until the body is done, then act on the first one.

    Building runs pyroute2's private event loop; an exception raised from a signal handler in one
    of its callbacks is swallowed by asyncio, which can leave the netlink request waiting forever.
    So signals during a build are only recorded, and raised once the build is out of that loop.
    """
    pending: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, record) for s in watched}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if pending:
        if pending[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signal.Signals(pending[0]).name)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Block SIGINT/SIGTERM/SIGHUP so a second Ctrl-C cannot cut a teardown short."""
    blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
