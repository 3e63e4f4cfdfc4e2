"""The controller's side of a process hosting many peers (a kind's `hosted_module` in the
registry, `simnet.peerkinds`: for aiortc, `simnet.peer.aiortc.host`).

`start_hosted(run, namespaces, program)` starts one such process (a managed process of the run, like
every agent) with a pair of pipes per peer, and returns a `HostedPeer` per namespace once each
has said ready. A `HostedPeer` is a `PeerAgent`: calls, mid-call commands and events work the
same, over its own pipes. What differs is the process they share: closing a hosted peer ends
only its channel; `PeerHost.close()` then waits for the process to end (it does once every
channel has), and a peer that has to be killed (stuck past its call's limit) takes the whole
process, and every peer in it, with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from simnet.aio import within
from simnet.net.process import ManagedProcess, start
from simnet.net.registry import Run
from simnet.peer.control.agent import (
    CLOSE_TIMEOUT_S,
    READY_TIMEOUT_S,
    STREAM_LIMIT_BYTES,
    PeerAgent,
    PeerAgentError,
)
from simnet.peer.protocol import exit_line, ready_problem


class HostedPeer(PeerAgent):
    """One peer of a hosting process: its own pipes, a shared process."""

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """End this peer's channel (the process goes on for the others)."""
        if self.process.returncode is None and not self._stdin.is_closing():
            with contextlib.suppress(PeerAgentError):
                await self._write(exit_line())
            self._stdin.close()
        with contextlib.suppress(TimeoutError):
            await within(self._drain_until_closed(), timeout_s)
        await self._stop_reader()

    async def _drain_until_closed(self) -> None:
        """Wait for the channel's end of stream (the peer has stopped, its call cancelled)."""
        while True:
            event = await self._events.get()
            if event is None:
                self._events.put_nowait(None)
                return


@dataclass
class PeerHost:
    """A running hosting process and its peers, in the order of their namespaces."""

    process: ManagedProcess
    peers: list[HostedPeer] = field(default_factory=list)

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        await asyncio.gather(*(peer.close(timeout_s) for peer in self.peers))
        if not await self.process.await_exited(timeout_s):
            self.process.kill()
        await self.process.astop()


async def start_hosted(
    run: Run,
    namespaces: list[str],
    program: list[str],
    *,
    name: str = "peer-host",
    timeout_s: float = READY_TIMEOUT_S,
    log_dir: Path | None = None,
) -> PeerHost:
    """One process hosting a peer in each of `namespaces`, every one of them ready.

    `program`: the hosting process's command line (a kind's `hosted_module` run with
    `python -m`), to which one `--channel NS:IN:OUT` per namespace is added."""
    if not namespaces:
        raise ValueError("a hosting process needs at least one namespace")
    log_path = (log_dir or run.workdir) / f"{name}.log"
    pipes = [(os.pipe(), os.pipe()) for _ in namespaces]  # (commands, events) per peer
    argv = list(program)
    for ns, ((command_r, _), (_, event_w)) in zip(namespaces, pipes, strict=True):
        argv += ["--channel", f"{ns}:{command_r}:{event_w}"]
    child_fds = [fd for (command_r, _), (_, event_w) in pipes for fd in (command_r, event_w)]
    spawned = time.monotonic()
    try:
        with open(log_path, "ab") as log:
            process = start(
                run,
                name,
                argv,
                ns=namespaces[0],
                log=log_path,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=child_fds,
            )
    except OSError as exc:
        for (a, b), (c, d) in pipes:
            for fd in (a, b, c, d):
                os.close(fd)
        raise PeerAgentError(f"peer host could not start: {exc}", kind="start") from None
    for fd in child_fds:
        os.close(fd)
    host = PeerHost(process)
    try:
        for ns, ((_, command_w), (event_r, _)) in zip(namespaces, pipes, strict=True):
            stdin, stdout = await _channel_streams(command_w, event_r)
            peer = HostedPeer(ns, process, stdin, stdout, log_path, spawned)
            peer._reader = asyncio.ensure_future(peer._read_events())
            host.peers.append(peer)
        for peer in host.peers:
            event = await peer._next_event(timeout_s, "start")
            problem = ready_problem(event)
            if problem is not None:
                raise PeerAgentError(f"hosted peer in {peer.ns} refused: {problem}", kind="start")
            peer.ready_event = event
            peer.ready_t = float(event["t"])
    except BaseException:
        process.kill()
        for peer in host.peers:
            await peer._stop_reader()
        await process.astop()
        raise
    return host


async def _channel_streams(
    command_w: int, event_r: int
) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STREAM_LIMIT_BYTES)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(event_r, "rb", buffering=0)
    )
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()),
        os.fdopen(command_w, "wb", buffering=0),
    )
    return asyncio.StreamWriter(transport, protocol, None, loop), reader
