"""A browser as a browser peer's agent runs it, whichever the browser: spawned, its readiness
line awaited, its stderr logged, watched, closed.

Launch: the browser is the agent's child in its process group (so killing the group, as a run's
teardown does, kills it), with the run's environment (its tag: `simnet cleanup` finds it), and
SIGKILL from the kernel if the agent dies first (`PR_SET_PDEATHSIG`). Asked for a kernel-picked
port, it says on stderr where its protocol listens; that line (the kind's `ready_line`) is the
readiness event: no sleep, no polling. The rest of its stderr is copied to the agent's log
(keeping the pipe drained: a full one would block the browser), but for lines that say only that
this machine has no desktop (`log_noise`).

What differs is a kind's (`simnet.peer.chromium.browser`, `simnet.peer.firefox.browser`): its
flags, profile and environment, its protocol (`simnet.peer.browser.rpc`'s layers) and pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from simnet.aio import within
from simnet.peer.browser.processes import CLOSE_TIMEOUT_S, die_with_parent, kill
from simnet.peer.browser.rpc import RpcClosed, RpcConnection, RpcError

LAUNCH_TIMEOUT_S = 30.0  # spawn -> readiness line; ~0.4-2 s here, a loaded machine takes longer


class BrowserError(Exception):
    """The browser could not be started, or a page could not be opened in it."""


@dataclass
class Spawned:
    """A browser just started: its process, the address its readiness line gave, and the task
    copying its stderr to the log."""

    process: asyncio.subprocess.Process
    address: str
    stderr_task: asyncio.Task[None]
    spawned: float  # time.monotonic() at the spawn

    async def abandon(self) -> None:
        """Kill it (its connection could not be opened)."""
        self.stderr_task.cancel()
        await kill(self.process)


class BrowserProcess:
    """A running browser and the protocol connection to it; a kind's `Browser` adds its pages."""

    #: the line of its stderr that gives the protocol's address (group 1)
    ready_line: ClassVar[re.Pattern[str]]
    #: what that address is, in a launch failure ("printed no <it> within 30 s")
    address_name: ClassVar[str]
    #: the launch failure when it exits before that line
    exited_early: ClassVar[str]
    #: its stderr lines in the log: "<prefix>: line", but for those holding one of `log_noise`
    log_prefix: ClassVar[str]
    log_noise: ClassVar[Sequence[str]] = ()
    log: ClassVar[logging.Logger]
    #: the command that asks it to exit
    close_method: ClassVar[str]

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        rpc: RpcConnection,
        version: str,
        stderr_task: asyncio.Task[None],
    ) -> None:
        self.process = process
        self.rpc = rpc
        self.version = version  # "Chromium 156.0.8078.108", "Firefox 153.8.0esr"
        self._stderr_task = stderr_task
        self.start_s = 0.0  # spawn -> its protocol answering

    @classmethod
    async def spawn(
        cls,
        binary: Path,
        flags: Sequence[str],
        env: dict[str, str],
        while_starting: Callable[[], object] | None = None,
    ) -> Spawned:
        """Start `binary` with `flags`; returns once its readiness line has said where its
        protocol listens. `while_starting` runs right after the spawn, while the browser starts
        (the agent's own imports: two cores do both at once)."""
        spawned = time.monotonic()
        argv = [str(binary), *flags]
        cls.log.info("launching %s", " ".join(argv))
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=None,  # the agent's descriptor 1, which is its log (see serve.EventWriter)
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        try:
            if while_starting is not None:
                while_starting()
            assert process.stderr is not None
            address = await within(cls._address(process.stderr), LAUNCH_TIMEOUT_S)
        except TimeoutError:
            await kill(process)
            raise BrowserError(
                f"{binary} printed no {cls.address_name} within {LAUNCH_TIMEOUT_S:g} s"
            ) from None
        except BaseException:
            await kill(process)
            raise
        stderr_task = asyncio.ensure_future(cls._copy_lines(process.stderr))
        return Spawned(process, address, stderr_task, spawned)

    @classmethod
    async def _address(cls, stderr: asyncio.StreamReader) -> str:
        while True:
            line = await stderr.readline()
            if not line:
                raise BrowserError(cls.exited_early)
            text = line.decode(errors="replace").rstrip()
            match = cls.ready_line.search(text)
            if match:
                return match.group(1)
            cls._log_line(text)

    @classmethod
    async def _copy_lines(cls, stream: asyncio.StreamReader | None) -> None:
        """Keep the browser's stderr drained (a full pipe would block it), into the log."""
        if stream is None:
            return
        while line := await stream.readline():
            cls._log_line(line.decode(errors="replace").rstrip())

    @classmethod
    def _log_line(cls, text: str) -> None:
        if text and not any(noise in text for noise in cls.log_noise):
            cls.log.info("%s: %s", cls.log_prefix, text)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None and not self.rpc.closed.done()

    async def exit_reason(self) -> str:
        code = await self.process.wait()
        return f"the browser exited (code {code})"

    async def gone(self, page_ended: asyncio.Future[str]) -> str:
        """Returns (a reason) when `page_ended` is set (the page crashed or closed), the
        connection ends or the browser exits."""
        ended = asyncio.ensure_future(asyncio.shield(page_ended))
        closed = asyncio.ensure_future(asyncio.shield(self.rpc.closed))
        exited = asyncio.ensure_future(self.exit_reason())
        waits: set[asyncio.Future[str]] = {ended, closed, exited}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return next(iter(done)).result()

    async def close(self, polite: bool = True) -> None:
        """Ask the browser to exit; kill it if it does not within CLOSE_TIMEOUT_S. Not
        `polite`: kill it at once (a browser with a hung page may take both timeouts)."""
        if self.process.returncode is None and polite:
            with contextlib.suppress(RpcError, RpcClosed, TimeoutError):
                await self.rpc.send(self.close_method, timeout_s=CLOSE_TIMEOUT_S)
            try:
                await within(self.process.wait(), CLOSE_TIMEOUT_S)
            except TimeoutError:
                await kill(self.process)
        elif self.process.returncode is None:
            await kill(self.process)
        await self.rpc.close()
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task
