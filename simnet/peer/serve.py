"""The command loop every simnet peer agent runs: peer protocol v1 on stdin and stdout.

Why one loop for all agents: the protocol (`simnet.peer.protocol`) is the interface, and what
an agent does with a line (a bad line, an unknown command, a second call while one runs, a
mid-call `ice-restart`, `exit` or stdin closing) must not depend on which stack is behind it.
An agent supplies a `Backend` (how to run a call, how to restart ICE); this module reads the
commands, validates them, and answers the ones every agent answers the same way.

Also here, for the same reason: the event stream writer (`EventWriter`, which moves the real
stdout out of the way of stray prints) and the namespace an agent reports in its ready event.
This module imports no aiortc and no browser code; pydantic is imported inside `serve`, once
the agent has entered its namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Protocol

from simnet.net import netns

if TYPE_CHECKING:
    from simnet.peer.protocol import CallCommand, Event

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def configure_logging(level: str, fmt: str = LOG_FORMAT) -> None:
    """Log to stderr (the agent's log file) at `level` (`simnet.settings.agent_log_level`),
    simnet's own loggers from INFO up whatever the level: what an agent says of itself (a
    browser's launch, its console) is worth its lines, a library's INFO chatter is not."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format=fmt)
    own = logging.getLogger("simnet")
    own.setLevel(min(own.getEffectiveLevel(), logging.INFO))


class EventWriter:
    """Writes one JSON line per event to a private copy of the original stdout.

    File descriptor 1 then points at stderr, so a library (or a C codec) printing to stdout
    lands in the agent's log and can never corrupt the stream the controller parses. A process
    hosting several peers gives each its own descriptor (`fd`) instead.
    """

    def __init__(self, fd: int | None = None) -> None:
        if fd is not None:
            self._fd = fd
            return
        sys.stdout.flush()
        self._fd = os.dup(1)
        os.dup2(2, 1)
        os.set_inheritable(self._fd, False)

    def __call__(self, event: Event) -> None:
        data = (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]


def current_netns() -> str:
    """Name of the namespace this thread is in (by inode), or "" if it has none in /run/netns."""
    try:
        own = os.stat("/proc/thread-self/ns/net")
    except OSError:
        return ""
    for name in netns.list_names():
        with contextlib.suppress(OSError):
            st = os.stat(netns.path_of(name))
            if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
                return name
    return ""


async def stdin_lines(fd: int | None = None) -> asyncio.StreamReader:
    """stdin (or the command pipe `fd` of a hosted peer) as an asyncio stream (a call command
    with a large SDP can exceed 64 KiB)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 << 20)
    pipe = sys.stdin if fd is None else os.fdopen(fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


class Backend(Protocol):
    """What differs between agents behind the protocol."""

    async def call(self, cmd: CallCommand) -> None:
        """Run one call, emitting its events and, whatever happens, one final result event."""

    async def ice_restart(self, in_call: bool) -> None:
        """Answer `{"cmd": "ice-restart"}` with one `ice_restart` event (supported or why not)."""

    def background(self) -> list[asyncio.Task[Any] | None]:
        """Tasks of the backend's own (e.g. a page being replaced) to cancel when serving ends."""


async def serve(
    reader: asyncio.StreamReader,
    emit: EventWriter,
    backend: Backend,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve commands until `exit`, stdin closing (the controller went away: never outlive
    it) or `stop` (e.g. SIGTERM); then cancel what is still running and wait for it, so a
    call in progress still closes its peer connection."""
    from pydantic import ValidationError

    from simnet.peer.protocol import CallCommand

    def error(text: str) -> None:
        emit({"event": "error", "t": time.monotonic(), "error": text})

    call: asyncio.Task[None] | None = None
    restart: asyncio.Task[None] | None = None
    stopping = asyncio.ensure_future((stop or asyncio.Event()).wait())
    try:
        while True:
            reading = asyncio.ensure_future(reader.readline())
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                break
            line = reading.result()
            if not line:
                break
            try:
                command = json.loads(line)
                name = command.pop("cmd")
            except (ValueError, KeyError, AttributeError):
                error(f"bad command line: {line!r}")
                continue
            if name == "exit":
                break
            running = call is not None and not call.done()
            if name == "ice-restart":
                restart = asyncio.ensure_future(backend.ice_restart(running))
                continue
            if name != "call":
                error(f"unknown command {name!r}")
                continue
            try:
                cmd = CallCommand.model_validate(command)
            except ValidationError as exc:
                error(f"invalid call: {exc}")
                continue
            if running:
                error("a call is already running")
                continue
            call = asyncio.ensure_future(backend.call(cmd))
    finally:
        stopping.cancel()
        for task in (call, restart, *backend.background()):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
