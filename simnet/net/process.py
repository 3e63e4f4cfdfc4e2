"""Managed processes: every process simnet starts, started, watched and stopped one way.

Why one helper: coturn, iperf3, the NFQUEUE delay lines, the peer agents and tcpdump all need
the same five things, and each got them slightly differently before:

1. **Start inside a namespace.** The child is forked from a thread that is inside the namespace
   (`netns.entered`), so it inherits it without `ip netns exec`; it gets its own session, so its
   whole process group can be signalled.
2. **Register with the run before start.** The run's state file (/run/simnet/ID.json) names the
   process *before* the fork, and the child carries `SIMNET_RUN=ID` in its environment. A pid can
   only be written after the fork, so an owner killed with SIGKILL between the fork and that write
   would otherwise leave an unknown process; `simnet cleanup` finds it by the environment tag
   instead (`simnet.net.run_tag`), and also every process it forked.
3. **Wait for readiness on a real event**: a line on one of its pipes (`wait_line`,
   `await_line`) or a condition of the system polled until it holds (`wait_until`, e.g. a
   listening socket); never a sleep guessing at start-up time. A process that exits first ends the
   wait at once: its exit is watched through a pidfd, not by polling.
4. **Stop with a grace period**: SIGTERM to the process group, SIGKILL to the group after the
   grace, then whatever is left of the group (children the leader did not take down) is killed too.
5. **Reap**: the leader is always waited for, so no zombie stays and `returncode` is set.

Nothing here imports the rest of simnet except `netns`, the run's registry and its tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from simnet.aio import within
from simnet.errors import EnvironmentProblem, SimnetError, cut
from simnet.net import netns, resolv
from simnet.net.registry import Run
from simnet.net.run_tag import NAME_ENV, RUN_ENV

STOP_GRACE_S = 2.0
POLL_S = 0.01  # the interval of `wait_until` polls (the exit of the process ends it sooner)
Stream = Literal["stdout", "stderr"]


def readable(fd: int, timeout_s: float) -> bool:
    """`fd` is readable within `timeout_s` (poll, not select: a run of hundreds of peer
    processes holds descriptors numbered past select's 1024)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(timeout_s, 0.0) * 1000))


class ProcessFailed(SimnetError):
    """A managed process exited, or did not get ready in time, before the event waited for."""


@dataclass
class ManagedProcess:
    """One process a run started. `popen` is the `subprocess.Popen`; use the methods to wait
    for it and stop it, so that the process group and the reaping are handled the same way."""

    name: str
    ns: str | None
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log: Path | None = None  # where its output goes, if a file: quoted in errors
    started_t: float = 0.0  # time.monotonic() just before the fork
    _buffers: dict[int, bytes] = field(default_factory=dict)
    _pidfd: int | None = None
    # One exit watch per process, shared by every `await_exited` of it: a loop holds one reader
    # per descriptor, so a second `add_reader` on the pidfd (a call task seeing the agent's
    # stdout end while `close()` waits for its exit) would replace the first waiter's callback,
    # which would then sleep out its whole timeout after the process had gone.
    _exit_watch: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def alive(self) -> bool:
        """Still running (a zombie is not). Does not reap, so the group id stays reserved."""
        if self.popen.returncode is not None:
            return False
        fd = self.pidfd()
        return fd is not None and not readable(fd, 0)

    def pidfd(self) -> int | None:
        """A descriptor that becomes readable when the process exits (Linux pidfd); None once
        the process has been reaped (by us, or by a run's teardown behind Popen's back)."""
        if self._pidfd is None and self.popen.returncode is None:
            try:
                self._pidfd = os.pidfd_open(self.pid)
            except ProcessLookupError:
                return None
        return self._pidfd

    # --- readiness ------------------------------------------------------------------------

    def _pipe(self, stream: Stream) -> IO[bytes]:
        pipe = self.popen.stdout if stream == "stdout" else self.popen.stderr
        if pipe is None:
            raise ValueError(f"{self.name}: {stream} is not a pipe; start it with {stream}=PIPE")
        return pipe

    def _take_line(self, fd: int) -> str | None:
        buffer = self._buffers.get(fd, b"")
        if b"\n" not in buffer:
            return None
        line, self._buffers[fd] = buffer.split(b"\n", 1)
        return line.decode(errors="replace").rstrip("\r")

    def _feed(self, fd: int) -> bool:
        """Read what the pipe has; False at end of file."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        self._buffers[fd] = self._buffers.get(fd, b"") + chunk
        return bool(chunk)

    def wait_line(
        self, match: Callable[[str], bool], *, stream: Stream = "stdout", timeout_s: float
    ) -> str:
        """Block until a line for which `match` is true appears on `stream`; return it.

        Lines before it are dropped. Raises `ProcessFailed` if the stream ends (the process
        exited or closed it) or `timeout_s` passes first.
        """
        fd = self._pipe(stream).fileno()
        deadline = time.monotonic() + timeout_s
        while True:
            while (line := self._take_line(fd)) is not None:
                if match(line):
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._failure(f"no ready line on its {stream} within {timeout_s:g} s")
            if readable(fd, left) and not self._feed(fd):
                raise self._failure(f"its {stream} ended before the ready line")

    async def await_line(
        self, match: Callable[[str], bool], *, stream: Stream = "stdout", timeout_s: float
    ) -> str:
        """`wait_line` for an event loop: the loop keeps running while the line is awaited."""
        fd = self._pipe(stream).fileno()
        os.set_blocking(fd, False)
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                while (line := self._take_line(fd)) is not None:
                    if match(line):
                        return line
                readable: asyncio.Future[None] = loop.create_future()
                loop.add_reader(fd, _settle, readable)
                try:
                    left = deadline - time.monotonic()
                    await within(readable, max(left, 0.0))
                except TimeoutError:
                    raise self._failure(
                        f"no ready line on its {stream} within {timeout_s:g} s"
                    ) from None
                finally:
                    loop.remove_reader(fd)
                if not self._feed(fd):
                    raise self._failure(f"its {stream} ended before the ready line")
        finally:
            os.set_blocking(fd, True)

    def wait_until(self, ready: Callable[[], bool], what: str, *, timeout_s: float) -> None:
        """Poll `ready()` every `POLL_S` until it holds; the process's exit ends the wait."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            if not self.alive():
                raise self._failure(f"it exited before {what}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._failure(f"not {what} within {timeout_s:g} s")
            self.exited_within(min(POLL_S, left))

    def _failure(self, what: str) -> ProcessFailed:
        code = self.exit_status()
        status = "running" if code is None else f"exit code {code}"
        return ProcessFailed(
            f"{self.name} ({self.argv[0]}, pid {self.pid}, {status}) failed to start: {what}"
            + log_tail(self.log)
        )

    # --- exit and stop --------------------------------------------------------------------

    def exited_within(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the exit, without reaping (the zombie keeps the pid and
        so the process group id from being reused while the group is signalled)."""
        fd = self.pidfd()
        return fd is None or readable(fd, timeout_s)

    async def await_exited(self, timeout_s: float) -> bool:
        """`exited_within` for an event loop, woken by the pidfd; any number of waiters may
        wait at once (they share one watch of the descriptor)."""
        fd = self.pidfd()
        if fd is None or readable(fd, 0):
            return True
        try:
            await within(asyncio.shield(self._watch_exit(fd)), max(timeout_s, 0.0))
        except TimeoutError:
            return False
        return True

    def _watch_exit(self, fd: int) -> asyncio.Future[None]:
        """The future that completes when `fd` (the pidfd) turns readable: made once per loop."""
        loop = asyncio.get_running_loop()
        watch = self._exit_watch
        if watch is None or watch.get_loop() is not loop:
            watch = self._exit_watch = loop.create_future()

            def exited() -> None:
                loop.remove_reader(fd)
                _settle(watch)

            loop.add_reader(fd, exited)
        return watch

    def _unwatch_exit(self) -> None:
        """Before the pidfd is closed: drop its reader and release the waiters."""
        watch, self._exit_watch = self._exit_watch, None
        if watch is None or self._pidfd is None:
            return
        loop = watch.get_loop()
        if loop.is_closed():  # its waiters are gone with it
            return
        loop.remove_reader(self._pidfd)
        if not watch.done():
            loop.call_soon_threadsafe(_settle, watch)

    def wait_exit(self, timeout_s: float) -> int | None:
        """The exit code once the process has exited (reaped), or None after `timeout_s`."""
        return self._reap() if self.exited_within(timeout_s) else None

    async def await_exit(self, timeout_s: float) -> int | None:
        """`wait_exit` for an event loop, woken by the pidfd rather than by polling."""
        return self._reap() if await self.await_exited(timeout_s) else None

    def signal_group(self, sig: signal.Signals) -> None:
        """Send `sig` to the process group (the leader's pid is its group id), unless the
        leader has been reaped: its pid could then belong to someone else."""
        if self.pidfd() is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM the group; SIGKILL it after `grace_s`; kill what the leader left; reap.

        Returns the leader's exit code (negative: the signal that ended it) once nothing of
        its group runs any more. Safe to call twice, and after the run's teardown ended it.
        """
        if not self.exited_within(0):
            self.signal_group(signal.SIGTERM)
            if not self.exited_within(grace_s):
                self.signal_group(signal.SIGKILL)
                self.exited_within(STOP_GRACE_S)
        self._end_group()
        return self._reap()

    async def astop(self, grace_s: float = STOP_GRACE_S) -> int:
        """`stop` for an event loop."""
        if not await self.await_exited(0):
            self.signal_group(signal.SIGTERM)
            if not await self.await_exited(grace_s):
                self.signal_group(signal.SIGKILL)
                await self.await_exited(STOP_GRACE_S)
        self._end_group()
        return self._reap()

    def kill(self) -> int:
        """SIGKILL the group at once and reap."""
        self.signal_group(signal.SIGKILL)
        self.exited_within(STOP_GRACE_S)
        self._end_group()
        return self._reap()

    def _end_group(self) -> None:
        """SIGKILL what is left of the group (children that outlived their leader) and wait
        until each has died: a signal is delivered when its target next runs, not at once."""
        if self.pidfd() is None:
            return  # reaped: the group id may be someone else's now
        members = [pid for pid in group_members(self.pid) if pid != self.pid]
        if not members:
            return
        self.signal_group(signal.SIGKILL)
        fds = []
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                fds.append(os.pidfd_open(pid))
        try:
            deadline = time.monotonic() + STOP_GRACE_S
            while fds and (left := deadline - time.monotonic()) > 0:
                poller = select.poll()
                for fd in fds:
                    poller.register(fd, select.POLLIN)
                for fd, _ in poller.poll(left * 1000):
                    fds.remove(fd)
                    os.close(fd)
        finally:
            for fd in fds:
                os.close(fd)

    def exit_status(self) -> int | None:
        """The exit code if the process has exited (a zombie is peeked at, not reaped)."""
        if self.popen.returncode is not None:
            return self.popen.returncode
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return None
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def _reap(self) -> int:
        code = self.popen.wait()
        if self._pidfd is not None:
            self._unwatch_exit()
            os.close(self._pidfd)
            self._pidfd = None
        return code


def start(
    run: Run,
    name: str,
    argv: list[str],
    *,
    ns: str | None = None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    **popen_kwargs: Any,
) -> ManagedProcess:
    """Start `argv` in namespace `ns` (None: this process's) as a process of `run`.

    The run's state file names the process before the fork; the child is tagged with the run's
    id in its environment and gets its own session; its pid is recorded as soon as it exists.
    `popen_kwargs` go to `subprocess.Popen` (stdin, stdout, stderr, cwd, ...). In a namespace
    with a resolv.conf of its own (`simnet.net.resolv`) the command runs under `ip netns exec`,
    which shows it that file as /etc/resolv.conf.
    """
    command = resolv.wrap(ns, argv)
    run.register_pending(name, ns, command)
    child_env = {**(os.environ if env is None else env), RUN_ENV: run.id, NAME_ENV: name}
    started = time.monotonic()
    with netns.entered(ns) if ns is not None else contextlib.nullcontext():
        popen = subprocess.Popen(command, start_new_session=True, env=child_env, **popen_kwargs)
    run.register_process(popen.pid, name)
    return ManagedProcess(name, ns, list(argv), popen, log=log, started_t=started)


def start_logged(
    run: Run, name: str, argv: list[str], *, ns: str, log: Path, missing: str, fix: str
) -> ManagedProcess:
    """Start a daemon (coturn, squid, tayga, unbound) in namespace `ns` with its stdout and
    stderr in `log` and no stdin; a program that is not installed is an `EnvironmentProblem`
    saying `missing`, with `fix`, instead of a traceback."""
    with open(log, "wb") as out:
        try:
            return start(
                run,
                name,
                argv,
                ns=ns,
                log=log,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise EnvironmentProblem(missing, fix=fix) from None


def spawn(run: Run, ns: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a process inside namespace `ns`, in its own process group, owned by `run`
    (`start`, for a caller that only needs the `Popen`)."""
    return start(run, Path(argv[0]).name, argv, ns=ns, **kwargs).popen


def log_tail(log: Path | None, lines: int = 20) -> str:
    """The last lines of a log file, formatted to end an error message ('' if none).

    Quoted, not cited: a process's log lies in its run's work directory, which the run's
    teardown removes before the error reaches the user."""
    if log is None:
        return ""
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return ""
    if not text:
        return " (its log is empty)"
    shown = [cut(line, 200) for line in text.splitlines()[-lines:]]
    return f"\n  the last lines of its log ({log.name}):\n    " + "\n    ".join(shown)


def group_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid` (from /proc/PID/stat)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(entry))
    return members


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def line_matches(pattern: str) -> Callable[[str], bool]:
    """A `match` for `wait_line`: the line contains a match of the regular expression."""
    compiled = re.compile(pattern)
    return lambda line: compiled.search(line) is not None
