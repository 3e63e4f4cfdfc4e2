"""The orchestrator's side of a peer agent: start it in a namespace, run calls, stop it.

`PeerAgent.start` returns once the agent says "ready" (its aiortc import and warm-up are done),
so calls are timed without process start-up in them. The agent is a managed process
(`simnet.net.process`): named in the run's state before it is forked, in its own session, so the
run's teardown kills it whatever happens to the orchestrator; `close()` ends it earlier and
politely. Its pipes are wrapped in asyncio streams here. The agent's stderr (its logs, and
anything a library prints) goes to a file in the run's work directory.

Nothing here imports aiortc.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal

from simnet import peerkinds
from simnet.aio import within
from simnet.errors import SimnetError, cut
from simnet.net.process import ManagedProcess, start
from simnet.net.registry import Run
from simnet.peer.protocol import (
    MIDCALL_COMMANDS,
    CallCommand,
    CallResult,
    Event,
    command_line,
    exit_line,
    midcall_line,
    parse_result,
    ready_problem,
)
from simnet.peerkinds import Launch

log = logging.getLogger("simnet.peer.control.agent")

READY_TIMEOUT_S = 30.0  # a loaded 2-core machine imports aiortc in 1-3 s; this is the ceiling
CALL_MARGIN_S = 10.0  # on top of `Timeouts.total_s`: event delivery, a loaded machine
CLOSE_TIMEOUT_S = 5.0
STREAM_LIMIT_BYTES = 16 << 20
LOG_TAIL_LINES = 20
LOG_LINE_CHARS = 200  # of each quoted line of a peer's log

# start: it did not become ready (or is not a peer of this protocol); exited: it died;
# timeout: it said nothing for too long (and was killed); busy: a call is already running;
# rejected: it refused a command ("error" event); protocol: it sent an invalid result.
AgentErrorKind = Literal["start", "exited", "timeout", "busy", "rejected", "protocol"]


class PeerAgentError(SimnetError):
    """The agent itself failed (not the call: that is a result with an `error`)."""

    def __init__(self, message: str, *, kind: AgentErrorKind) -> None:
        super().__init__(message)
        self.kind: AgentErrorKind = kind


class PeerAgent:
    """A running agent process inside namespace `ns`. Use `await PeerAgent.start(run, ns)`."""

    def __init__(
        self,
        ns: str,
        process: ManagedProcess,
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        log_path: Path,
        spawned_t: float,
    ) -> None:
        self.ns = ns
        self.process = process
        self._stdin = stdin
        self._stdout = stdout
        self.log_path = log_path
        self.spawned_t = spawned_t  # time.monotonic() just before the spawn
        self.ready_t: float | None = None  # the agent's own "ready" timestamp
        self.ready_event: Event = {}
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._busy = False
        self._pending: collections.deque[str] = collections.deque()  # mid-call commands sent
        self._broken: str | None = None  # why the event stream ended, when the peer broke it

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ready_s(self) -> float | None:
        """Spawn to "ready": interpreter start, namespace entry, aiortc import and warm-up."""
        return None if self.ready_t is None else self.ready_t - self.spawned_t

    @classmethod
    async def start(
        cls,
        run: Run,
        ns: str,
        *,
        argv: list[str] | None = None,
        timeout_s: float = READY_TIMEOUT_S,
        log_dir: Path | None = None,
    ) -> PeerAgent:
        """Spawn a peer process in namespace `ns` and wait for its ready event.

        `argv` is any program that speaks `simnet.peer.protocol` (default: the registry's
        default kind, `simnet.peerkinds.DEFAULT_KIND`); it starts inside `ns`, in its own
        session, as a managed process of `run`."""
        log_path = (log_dir or run.workdir) / f"agent-{ns}.log"
        if argv is None:
            kind = peerkinds.kind(peerkinds.DEFAULT_KIND)
            argv = peerkinds.agent_argv(kind, Launch(ns, run.workdir / f"{kind.name}-{ns}"))
        spawned = time.monotonic()
        try:
            with open(log_path, "ab") as log:
                process = start(
                    run,
                    f"agent-{ns}",
                    argv,
                    ns=ns,
                    log=log_path,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                )
        except OSError as exc:  # no such namespace, or no such program
            raise PeerAgentError(
                f"peer {_shown(argv)} could not start in {ns}: {exc}", kind="start"
            ) from None
        try:
            stdin, stdout = await _streams(process)
        except BaseException:
            process.kill()
            raise
        agent = cls(ns, process, stdin, stdout, log_path, spawned)
        agent._reader = asyncio.ensure_future(agent._read_events())
        try:
            event = await agent._next_event(timeout_s, "start")
            problem = ready_problem(event)
            if problem is not None:
                raise PeerAgentError(
                    f"peer {_shown(argv)} in {ns} refused: {problem} "
                    f"(docs/peer-protocol.md){agent._log_hint()}",
                    kind="start",
                )
        except BaseException:
            await agent.kill()
            raise
        agent.ready_event = event
        agent.ready_t = float(event["t"])
        return agent

    async def _read_events(self) -> None:
        """Queue each event line; the end of the stream as None. A line over the stream's limit
        ends the stream as a broken protocol (`_broken`): the reader ends cleanly, so its
        error is reported once, as the peer's, not as an unretrieved task exception."""
        try:
            while True:
                try:
                    line = await self._stdout.readline()
                except ValueError:  # asyncio's LimitOverrunError, as readline raises it
                    self._broken = (
                        f"it sent a line over {STREAM_LIMIT_BYTES >> 20} MiB "
                        "(the limit of one event line)"
                    )
                    break
                if not line:
                    break
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # cannot happen by design (see serve.EventWriter); never fatal
                if isinstance(event, dict):
                    self._events.put_nowait(event)
        finally:
            self._events.put_nowait(None)  # end of stream

    async def _next_event(self, timeout_s: float, phase: AgentErrorKind) -> Event:
        try:
            event = await within(self._events.get(), timeout_s)
        except TimeoutError:
            raise PeerAgentError(
                f"peer agent in {self.ns} said nothing for {timeout_s:g} s ({phase})"
                f"{self._log_hint()}",
                kind="timeout",
            ) from None
        if event is None:
            self._events.put_nowait(None)
            if self._broken is not None:
                await self.kill()  # it is still running: nothing it says can be read now
                raise PeerAgentError(
                    f"peer in {self.ns} broke the peer protocol: {self._broken}",
                    kind="protocol",
                )
            code = await self._wait_exit(CLOSE_TIMEOUT_S)
            raise PeerAgentError(
                f"peer agent in {self.ns} exited (code {code}){self._log_hint()}",
                kind="start" if phase == "start" else "exited",
            )
        return event

    async def call(
        self,
        cmd: CallCommand,
        timeout_s: float | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> list[Event]:
        """Run `cmd`; every event of the call, ending with the "result" event. `on_event` sees
        each event as it arrives (a call's timeline starts when the data channel opens).

        `timeout_s` defaults to the sum of the call's phase timeouts plus a margin: the agent
        bounds every phase itself, so hitting this means the agent is stuck, and it is killed.
        """
        if self._busy:
            raise PeerAgentError(f"peer agent in {self.ns} is already in a call", kind="busy")
        if timeout_s is None:
            timeout_s = cmd.timeouts.total_s(cmd.duration_s) + CALL_MARGIN_S
        self._busy = True
        self._pending.clear()
        self._drop_stale_events()
        try:
            await self._write(command_line(cmd))
            events: list[Event] = []
            deadline = time.monotonic() + timeout_s
            while True:
                remaining = deadline - time.monotonic()
                try:
                    event = await self._next_event(max(remaining, 0.0), "timeout")
                except PeerAgentError as exc:
                    if exc.kind == "timeout":
                        await self.kill()
                    raise
                kind = event.get("event")
                if kind == "error" and self._pending:
                    # the answer of a peer that does not know a mid-call command: the call goes on
                    event = {**event, "cmd": self._pending.popleft()}
                elif kind == "error":  # the agent rejected the call command
                    raise PeerAgentError(
                        f"peer agent in {self.ns} rejected the call: {event.get('error')}",
                        kind="rejected",
                    )
                else:
                    self._answered(str(kind))
                events.append(event)
                if on_event is not None:
                    on_event(event)
                if kind == "result":
                    try:
                        result_of([event])
                    except ValueError as exc:  # a short account of each invalid field
                        raise PeerAgentError(
                            f"peer in {self.ns} broke the peer protocol: {exc}", kind="protocol"
                        ) from None
                    return events
        finally:
            self._busy = False
            self._pending.clear()

    async def command(self, name: str) -> None:
        """Send the mid-call command `name` (`MIDCALL_COMMANDS`, e.g. "ice-restart") while
        `call()` runs. Its answer arrives among the call's events (`on_event`); an "error"
        event in answer (a peer that does not know the command) does not fail the call: it is
        passed on with `"cmd": name` added."""
        if not self._busy:
            raise PeerAgentError(f"peer agent in {self.ns} is not in a call", kind="busy")
        line = midcall_line(name)
        self._pending.append(name)
        await self._write(line)

    def _answered(self, event: str) -> None:
        """`event` answers the oldest pending command it belongs to."""
        for name in self._pending:
            if MIDCALL_COMMANDS[name] == event:
                self._pending.remove(name)
                return

    def _drop_stale_events(self) -> None:
        """Events that arrived between calls (a late answer to a mid-call command) belong to
        no call: they must not be read as the next call's (an "error" would reject it)."""
        kept: list[Event | None] = []
        while not self._events.empty():
            event = self._events.get_nowait()
            if event is None:
                kept.append(None)  # the end of the stream stays for the next read
            else:
                log.info("peer agent in %s: event between calls ignored: %s", self.ns, event)
        for item in kept:
            self._events.put_nowait(item)

    async def _write(self, line: str) -> None:
        stdin = self._stdin
        if stdin.is_closing():
            raise PeerAgentError(f"peer agent in {self.ns} is not running", kind="exited")
        try:
            stdin.write(line.encode())
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise PeerAgentError(
                f"peer agent in {self.ns} is gone{self._log_hint()}", kind="exited"
            ) from None

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Ask the agent to exit; kill its process group if it does not within `timeout_s`."""
        if self.process.returncode is None:
            with contextlib.suppress(PeerAgentError):
                await self._write(exit_line())
            self._stdin.close()
            if await self.process.await_exited(timeout_s):
                await self.process.astop()  # reaps it, and ends what it left in its group
            else:
                await self.kill()
        await self._stop_reader()

    async def kill(self) -> None:
        """SIGKILL the agent's process group and reap it."""
        if self.process.returncode is None:
            self.process.kill()
        self._stdin.close()
        await self._stop_reader()

    async def _wait_exit(self, timeout_s: float) -> int | None:
        return await self.process.await_exit(timeout_s)

    async def _stop_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def _log_hint(self) -> str:
        """The end of what the peer wrote to its stderr, quoted in the message itself: its log
        lies in the run's work directory, which the run's teardown removes before the error
        is shown, so the message cannot send the user there."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError:
            return ""
        if not lines:
            return " (it wrote nothing to its stderr)"
        shown = [cut(line, LOG_LINE_CHARS) for line in lines]
        return "\n  the last lines it wrote to its stderr:\n    " + "\n    ".join(shown)

    async def __aenter__(self) -> PeerAgent:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def _streams(process: ManagedProcess) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
    """The agent's stdin and stdout as asyncio streams (one JSON line per command / event)."""
    popen = process.popen
    assert popen.stdin is not None and popen.stdout is not None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STREAM_LIMIT_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), popen.stdout)
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), popen.stdin
    )
    return asyncio.StreamWriter(transport, protocol, None, loop), reader


def _shown(argv: list[str], limit: int = 120) -> str:
    """A peer's command line for an error message (shell-quoted, cut to `limit` characters)."""
    text = shlex.join(argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def result_of(events: list[Event]) -> CallResult:
    """The `CallResult` in a call's events (the last one, "result")."""
    for event in reversed(events):
        if event.get("event") == "result":
            fields = {k: v for k, v in event.items() if k not in ("event", "t")}
            return parse_result(fields)
    raise ValueError("no result event among the call's events")
