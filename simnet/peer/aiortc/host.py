"""One process hosting many aiortc peers:
`python -m simnet.peer.aiortc.host --channel NS:IN:OUT ...`.

Why: a load run needs a hundred peers on a 2-core machine; a process per peer spends ~100 MB and
~1 s of CPU on Python and aiortc each before any call (the harness would be the ceiling). Here
one interpreter imports aiortc once and one event loop runs every hosted peer's calls.

Each `--channel NS:IN:OUT` is one peer: namespace NS (by name in /run/netns), the descriptor IN
it reads commands from and OUT it writes events to (pipes the controller passes in,
`simnet.peer.control.hosting`). On each channel the process speaks the peer protocol exactly as the
single-peer agent does on stdin/stdout (`simnet.peer.serve`: the same loop, the same aiortc
backend), so the controller drives a hosted peer like any other; its ready event adds
`"hosted": N`, the number of peers in the process. Every socket a peer makes lives in its
namespace (`simnet.peer.aiortc.namespaced`); the process itself is started in the first channel's
namespace, so nothing it does unattributed ever touches the host's. It ends when every channel
has ended (`exit`, or its command pipe closing).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

from simnet import settings
from simnet.peer.aiortc.datagrams import DrainingEventLoop
from simnet.peer.aiortc.namespaced import CURRENT, bound, install
from simnet.peer.serve import EventWriter, configure_logging, serve, stdin_lines


def _channel(value: str) -> tuple[str, int, int]:
    try:
        name, read_fd, write_fd = value.rsplit(":", 2)
        return name, int(read_fd), int(write_fd)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not NS:IN_FD:OUT_FD") from None


def _name_the_peer(record: logging.LogRecord) -> bool:
    """Say whose log line it is: every hosted peer writes to the same log."""
    record.peer = CURRENT.get() or "-"
    return True


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simnet.peer.aiortc.host", description=__doc__)
    parser.add_argument("--channel", type=_channel, action="append", required=True)
    parser.add_argument("--log-level", default=settings.agent_log_level())
    return parser.parse_args(argv)


async def _peer(name: str, read_fd: int, write_fd: int, ready: dict[str, object]) -> None:
    """One hosted peer: announce it on its channel, then serve its commands."""
    from simnet.peer.aiortc.agent import AiortcBackend

    emit = EventWriter(write_fd)
    reader = await stdin_lines(read_fd)
    emit({"event": "ready", "t": time.monotonic(), **ready, "netns": name})
    try:
        await serve(reader, emit, AiortcBackend(emit))
    finally:
        os.close(write_fd)  # the controller reads the end of this peer's stream


async def _serve(channels: list[tuple[str, int, int]], started: float, imported: float) -> int:

    import simnet.peer.aiortc.call  # noqa: F401  its imports (aiohttp, aioice, ...) before "ready"
    from simnet.peer.aiortc.agent import configure_ice, warm_up
    from simnet.peer.protocol import PROTOCOL_VERSION

    install()
    await warm_up()
    ready: dict[str, object] = {
        "protocol": PROTOCOL_VERSION,
        "peer_kind": "aiortc",
        "peer_version": configure_ice(),
        "pid": os.getpid(),
        "import_s": imported - started,
        "warm_s": time.monotonic() - imported,
        "hosted": len(channels),
    }
    loop = asyncio.get_running_loop()
    peers = [
        loop.create_task(_peer(name, read_fd, write_fd, ready), context=bound(name))
        for name, read_fd, write_fd in channels
    ]
    results = await asyncio.gather(*peers, return_exceptions=True)
    for (name, _, _), result in zip(channels, results, strict=True):
        if isinstance(result, BaseException):
            logging.getLogger("simnet.peer.aiortc.host").error("peer in %s ended: %r", name, result)
    return 0


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = _parse_args(argv)
    os.dup2(2, 1)  # stray prints land in the log; events go to each channel's own descriptor
    configure_logging(args.log_level, "%(asctime)s %(peer)s %(name)s %(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_name_the_peer)
    import aiortc  # noqa: F401  paid once for every hosted peer, before any clock starts

    imported = time.monotonic()
    # many peers' sockets, thousands of datagrams a second: read them in batches
    with asyncio.Runner(loop_factory=DrainingEventLoop) as runner:
        return runner.run(_serve(args.channel, started, imported))


if __name__ == "__main__":
    sys.exit(main())
