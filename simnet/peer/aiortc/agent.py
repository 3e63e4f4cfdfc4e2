"""The warm peer agent: `python -m simnet.peer.aiortc.agent --netns NS`.

Why a long-lived process per peer: starting Python and importing aiortc costs about a second,
which would otherwise land inside every measured call. The agent pays it once, before the clock
starts: it enters the namespace first (so every socket, thread and child it ever makes lives
there), imports aiortc and its codecs, warms a throw-away peer connection, then announces
`{"event": "ready", "t": ..., "protocol": 1, "peer_kind": "aiortc", "peer_version", "pid",
"netns", "import_s", "warm_s"}` (`import_s`: start to aiortc imported; `warm_s`: the call
module's other imports and the warm-up) and serves
commands, one JSON object per line on stdin:

- `{"cmd": "call", ...CallCommand}`: run one call, emitting its events and a final
  `{"event": "result", ...CallResult}`;
- `{"cmd": "exit"}` (or stdin closing): stop, cancelling a call in progress (its peer
  connection is still closed);
- `{"cmd": "ice-restart"}`: answered `{"event": "ice_restart", "supported": false, "reason":
  NO_ICE_RESTART}`, and the call goes on: aiortc cannot restart ICE.

Events go out one JSON object per line, each with `"t"` = `time.monotonic()` (one clock for all
namespaces). The command loop, the event stream (the original stdout, moved to a private
descriptor before anything is imported) and the answers to bad commands are the ones every
agent shares (`simnet.peer.serve`); this module supplies the aiortc side.

Imports aiortc only inside `main()`, after `netns.enter_for_good`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from simnet import settings
from simnet.net import netns
from simnet.peer.serve import EventWriter, configure_logging, current_netns, serve, stdin_lines

if TYPE_CHECKING:
    from simnet.peer.protocol import CallCommand

#: why this agent answers an ice-restart command with supported: false (aiortc 1.x has no
#: `restartIce()`, and aioice's Connection cannot take new credentials)
NO_ICE_RESTART = "aiortc has no ICE restart (RTCPeerConnection.restartIce is not implemented)"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simnet.peer.aiortc.agent", description=__doc__)
    parser.add_argument(
        "--netns",
        help="network namespace to live in (omitted: stay in the caller's)",
    )
    parser.add_argument("--log-level", default=settings.agent_log_level())
    parser.add_argument(
        "--proxy",
        help="HTTP proxy (http://[user:password@]address:port) signaling and TURN over TCP/TLS "
        "go through",
    )
    return parser.parse_args(argv)


def configure_ice() -> str:
    """Apply `SIMNET_AIORTC_ICE` to this process's peers; the peer version rows show (`aiortc
    1.16.0`, or `aiortc 1.16.0 +rfc8445` when simnet's agent adds what aioice lacks)."""
    import aiortc  # loaded by the agent before "ready" anyway; not by the controller

    from simnet.peer.aiortc.aioice_adapter import follow_rfc8445, ice_mode_suffix  # (aioice too)

    mode = settings.aiortc_ice()
    if mode == "rfc8445":
        follow_rfc8445()
    return f"aiortc {aiortc.__version__}{ice_mode_suffix(mode)}"


async def warm_up() -> None:
    """Exercise a call's first-use paths (certificate, SDP, codec set-up) once, off the clock.

    Measured: about 5 ms here, and within noise of nothing on the first call's set-up; kept
    because it is that cheap and lazy initialisation elsewhere would land inside a measurement.
    """
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.codecs import get_decoder, get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("warm-up")
    await pc.createOffer()
    await pc.close()
    for mime, rate, channels in (("audio/opus", 48000, 2), ("video/VP8", 90000, None)):
        codec = RTCRtpCodecParameters(mimeType=mime, clockRate=rate, channels=channels)
        get_encoder(codec)
        get_decoder(codec)


class AiortcBackend:
    """The aiortc backend of the command loop (`simnet.peer.serve`)."""

    def __init__(self, emit: EventWriter) -> None:
        self.emit = emit

    async def call(self, cmd: CallCommand) -> None:
        await _call(cmd, self.emit)

    async def ice_restart(self, in_call: bool) -> None:
        self.emit(
            {
                "event": "ice_restart",
                "t": time.monotonic(),
                "supported": False,
                "reason": NO_ICE_RESTART,
            }
        )

    def background(self) -> list[asyncio.Task[Any] | None]:
        return []


async def _serve(emit: EventWriter, started: float, imported: float) -> int:

    import simnet.peer.aiortc.call  # noqa: F401  its imports (aiohttp, aioice, ...) before "ready"
    from simnet.peer.protocol import PROTOCOL_VERSION

    await warm_up()
    reader = await stdin_lines()
    emit(
        {
            "event": "ready",
            "t": time.monotonic(),
            "protocol": PROTOCOL_VERSION,
            "peer_kind": "aiortc",
            "peer_version": configure_ice(),
            "pid": os.getpid(),
            "netns": current_netns(),
            "import_s": imported - started,
            "warm_s": time.monotonic() - imported,
        }
    )
    await serve(reader, emit, AiortcBackend(emit))
    return 0


async def _call(cmd: CallCommand, emit: EventWriter) -> None:
    """Run one call and emit its result; a crash still ends in a result, so the controller
    never waits for one that will not come."""
    from simnet.peer.aiortc.call import run_call
    from simnet.peer.protocol import CallResult

    try:
        result = await run_call(cmd, emit)
    except Exception as exc:
        logging.getLogger("simnet.peer.aiortc.agent").exception("call crashed")
        result = CallResult(role=cmd.role, connected=False, error="agent", error_detail=f"{exc!r}")
    emit({"event": "result", "t": time.monotonic(), **result.model_dump(mode="json")})


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = _parse_args(argv)
    if args.netns:
        netns.enter_for_good(args.netns)  # before any thread, socket or import that makes one
    emit = EventWriter()
    configure_logging(args.log_level)
    import aiortc  # noqa: F401  the point of a warm agent: pay for this before the clock starts

    if args.proxy:
        from simnet.peer.aiortc.http_proxy import PROXY
        from simnet.peer.http_proxy import HttpProxy

        PROXY.set(HttpProxy.from_url(args.proxy))  # before the loop: every call inherits it

    imported = time.monotonic()
    return asyncio.run(_serve(emit, started, imported))


if __name__ == "__main__":
    sys.exit(main())
