"""A browser's processes, as a browser peer's agent keeps them: started to die with the agent,
reaped (helpers included) when the browser closes, and its fresh profile.

Why here, not in each browser's package: every browser leaves helper processes (Chromium's
zygotes and renderers, Firefox's content processes) that outlive it by a moment, and both agents
are their child subreaper (`PR_SET_CHILD_SUBREAPER`), so the same code reaps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path

from simnet.aio import within

log = logging.getLogger("simnet.peer.browser.processes")

CLOSE_TIMEOUT_S = 5.0
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child before exec: SIGKILL when the agent (the forking thread) dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def children(parent: int | None = None) -> list[int]:
    """The pids whose parent is `parent` (default: this process), zombies included."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


async def reap_orphans(keep: Sequence[int] = (), timeout_s: float = CLOSE_TIMEOUT_S) -> int:
    """Reap every child of this process but `keep` (the processes asyncio waits for): wait for
    each to exit, SIGKILL those still running after `timeout_s`, and repeat while exiting
    helpers hand theirs over. Returns how many were reaped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    reaped = 0
    while pids := [p for p in children() if p not in keep]:
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            try:
                exited = asyncio.Event()
                loop.add_reader(fd, exited.set)
                try:
                    await within(exited.wait(), max(deadline - loop.time(), 0.0))
                except TimeoutError:
                    log.info("killing browser helper %d: still running after its browser", pid)
                    with contextlib.suppress(ProcessLookupError):
                        signal.pidfd_send_signal(fd, signal.SIGKILL)
                    await exited.wait()
                finally:
                    loop.remove_reader(fd)
            finally:
                os.close(fd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
                reaped += 1
    return reaped


def fresh_profile(profile: Path) -> None:
    """An empty profile directory at `profile` (created, or emptied: it is the agent's)."""
    if profile.exists():
        shutil.rmtree(profile)
    profile.mkdir(parents=True)


async def kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL `process` (if still running) and wait for it, within CLOSE_TIMEOUT_S."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(TimeoutError):
            await within(process.wait(), CLOSE_TIMEOUT_S)
