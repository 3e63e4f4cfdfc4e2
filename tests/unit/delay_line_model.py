"""A delay line on a fake clock, its control channel, and a real helper with no queue bound."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from simnet.net.impair.nfqueue import Helper, wait_ready
from simnet.net.impair.nfqueue_helper import Control, Line
from simnet.net.impair.rules import LinkTarget
from simnet.net.impair.shaping import DirectionConfig
from simnet.scenario.model import LinkSpec


class Timer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    """The part of an event loop a Line uses (`time`, `call_at`), advanced by `run_until`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[Timer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, callback)
        self.timers.append(timer)
        return timer

    def run_until(self, t: float) -> None:
        while due := [x for x in self.timers if not x.cancelled and x.when <= t]:
            timer = min(due, key=lambda x: x.when)
            self.timers.remove(timer)
            self.now = max(self.now, timer.when)
            timer.callback()
        self.now = t


class Packet:
    def __init__(self, clock: Clock, log: list[tuple[int, float | None]], i: int) -> None:
        self.clock, self.log, self.i = clock, log, i

    def accept(self) -> None:
        self.log.append((self.i, self.clock.now))

    def drop(self) -> None:
        self.log.append((self.i, None))


class StampedPacket(Packet):
    def __init__(
        self, clock: Clock, log: list[tuple[int, float | None]], i: int, at: float
    ) -> None:
        super().__init__(clock, log, i)
        self.at = at

    def get_timestamp(self) -> float:
        return self.at


def config(**fields: object) -> DirectionConfig:
    return DirectionConfig.from_dict({"name": "x.up", "queue": 0, **fields})


def control_with(*configs: DirectionConfig) -> tuple[Control, list[DirectionConfig]]:
    clock = Clock()
    lines = {c.queue: Line(cast(asyncio.AbstractEventLoop, clock), c) for c in configs}
    bound: list[DirectionConfig] = []

    def bind(c: DirectionConfig) -> Line:
        if c.queue == 99:
            raise OSError("queue 99 is taken")
        bound.append(c)
        return Line(cast(asyncio.AbstractEventLoop, clock), c)

    return Control(lines, bind), bound


@contextlib.contextmanager
def running_helper(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Helper]]:
    """A real delay-line helper with no queue bound (no kernel needed), ready; terminated at
    the end (its exit code is then the caller's to check)."""
    log = tmp_path / "helper.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "simnet.net.impair.nfqueue_helper", "--config", "[]"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sink,
        )
    helper = Helper(LinkTarget("a", "sn-x-a", "eth0", "sn-x-b", "p1", LinkSpec()), proc, log)
    try:
        wait_ready([helper], deadline_s=30)
        yield proc, helper
    finally:
        proc.terminate()
        proc.wait(timeout=10)
