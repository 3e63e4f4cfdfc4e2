#!/usr/bin/env python3
"""A WebRTC peer for simnet written from docs/peer-protocol.md alone: it imports nothing of
simnet, only aiortc and aiohttp, and is the proof that the documented protocol is enough to
plug a peer of one's own into simnet.

Plug it in with `hosts.NAME.peer: {command: "python3 examples/peers/minimal_peer.py"}`; simnet
starts it inside the host's network namespace, so every socket it opens is already there.

What it does (protocol version 1):
- announces itself: `{"event": "ready", "protocol": 1, "peer_kind": "minimal-example", ...}`;
- serves `{"cmd": "call", ...}` and `{"cmd": "exit"}` on stdin, one JSON object per line;
- as offerer it trickles, as a browser does: it sends its offer before gathering (no
  candidates in it), then each candidate as a "candidate" message, then "end-of-candidates";
- as answerer it sends a complete answer (`--trickle always`: it trickles that too, `never`:
  neither); either way it accepts trickled remote candidates;
- does the "simnet" data channel's echo and bulk transfer and reports the milestones and a
  result.

What it leaves out, to stay small (and refuses with an "error" event, which simnet reports as a
rejected call, instead of pretending): media, the HTTP long-poll signaling transport. It
ignores `ca_file` (so `turns:` URLs with coturn's self-signed certificate fail), `liveness`
(it reports aiortc's ICE states only) and reports no TURN attempts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import aiortc
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp

PROTOCOL = 1  # the peer protocol version this program speaks
LABEL = "simnet"  # the data channel the two peers measure with
CHUNK_HIGH = 1 << 20  # stop sending bulk data above this much buffered
CHUNK_LOW = 256 << 10  # and resume below this
DONE_WAIT_S = 5.0
CLOSE_WAIT_S = 5.0

log = logging.getLogger("minimal_peer")


def now() -> float:
    """Every "t" of the protocol: CLOCK_MONOTONIC seconds, one clock for all namespaces."""
    return time.monotonic()


class Events:
    """One JSON object per line on the original stdout. File descriptor 1 is pointed at stderr
    first, so that nothing a library prints can break a line the controller parses."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._fd = os.dup(1)
        os.dup2(2, 1)

    def __call__(self, event: str, t: float | None = None, **fields: Any) -> None:
        line = json.dumps({"event": event, "t": now() if t is None else t, **fields}) + "\n"
        data = line.encode()
        while data:
            data = data[os.write(self._fd, data) :]


class Failed(Exception):
    """The call stopped with one of the protocol's error kinds."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


async def bounded(kind: str, awaitable: Any, timeout_s: float) -> Any:
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except TimeoutError:
        raise Failed(f"timeout:{kind}", f"{kind} not done within {timeout_s:g} s") from None


class Call:
    def __init__(self, cmd: dict[str, Any], emit: Events, trickle: str) -> None:
        self.cmd, self.emit, self.trickle = cmd, emit, trickle
        self.role: str = cmd["role"]
        self.timeouts: dict[str, float] = {
            "gathering_s": 5,
            "signaling_s": 5,
            "ice_s": 10,
            "dtls_s": 5,
            "datachannel_s": 10,
            **cmd.get("timeouts", {}),
        }
        self.phase_t: dict[str, float] = {}
        self.loop = asyncio.get_running_loop()
        self.descriptions: dict[str, asyncio.Future[str]] = {
            kind: self.loop.create_future() for kind in ("offer", "answer")
        }
        self.candidates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.remote_types: Counter[str] = Counter()
        self.ice_done: asyncio.Future[bool] = self.loop.create_future()
        self.dtls_done: asyncio.Future[bool] = self.loop.create_future()
        self.dc_open: asyncio.Future[RTCDataChannel] = self.loop.create_future()
        self.dc: RTCDataChannel | None = None
        self.pongs: dict[int, asyncio.Future[float]] = {}
        self.bulk_done: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self.summary: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self.peer_done = asyncio.Event()
        self.rx: dict[str, Any] | None = None
        self.connected = False
        self.result: dict[str, Any] = {"dc_rtt_ms": None, "dc_bytes": None, "dc_goodput_mbps": None}
        self.selected_pair: dict[str, Any] | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=[
                    RTCIceServer(
                        urls=s["urls"], username=s.get("username"), credential=s.get("credential")
                    )
                    for s in cmd.get("ice_servers", [])
                ],
                iceTransportPolicy=RTCIceTransportPolicy(cmd.get("ice_transport_policy", "all")),
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )

    def mark(self, milestone: str, t: float | None = None, **fields: Any) -> None:
        t = now() if t is None else t
        self.phase_t.setdefault(milestone, t)
        self.emit(milestone, t, **fields)

    # --- the call -----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        self.mark("call_started", role=self.role, room=self.cmd["room"])
        failure: Failed | None = None
        async with aiohttp.ClientSession() as session:
            try:
                await self.steps(session)
            except Failed as exc:
                failure = exc
            except Exception as exc:  # still a result: the controller never waits in vain
                log.exception("call failed")
                failure = Failed("agent", repr(exc))
            closing = now()
            self.emit("closing")
            counts = self.local_counts()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT_S):
                    await self.pc.close()
            if self.ws is not None:
                await self.ws.close()
        start = self.phase_t.get("offer_created" if self.role == "offer" else "offer_received")
        opened = self.phase_t.get("dc_open")
        return {
            "role": self.role,
            "connected": self.connected,
            "error": failure.kind if failure else None,
            "error_detail": failure.detail if failure else None,
            "selected_pair": self.selected_pair,
            "local_candidates": counts,
            "remote_candidates": dict(self.remote_types),
            "phase_t": self.phase_t,
            "setup_s": opened - start if start is not None and opened is not None else None,
            **self.result,
            "close_s": now() - closing,
        }

    async def steps(self, session: aiohttp.ClientSession) -> None:
        pc, t = self.pc, self.timeouts
        self.watch()
        await self.open_signaling(session)
        if self.role == "offer":
            self.attach(pc.createDataChannel(LABEL, ordered=True))
            offer = await pc.createOffer()
            self.mark("offer_created")
            await self.describe(offer, trickle=self.trickle in ("offer", "always"))
            answer_sdp = await self.receive("answer")
            self.mark("answer_received")
            await pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
        else:
            pc.on("datachannel", self.attach)
            offer_sdp = await self.receive("offer")
            self.mark("offer_received")
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            answer = await pc.createAnswer()
            await self.describe(answer, trickle=self.trickle == "always")
        self.count_remote_candidates(pc.remoteDescription.sdp)
        self.loop.create_task(self.apply_candidates())  # from now on: after the description

        if not await bounded("ice", self.ice_done, t["ice_s"]):
            raise Failed("ice-failed", "no candidate pair succeeded")
        if not await bounded("dtls", self.dtls_done, t["dtls_s"]):
            raise Failed("dtls", "DTLS handshake failed")
        self.connected = True
        await self.datachannel()
        await self.hold()
        await self.finish()

    async def describe(self, description: RTCSessionDescription, trickle: bool) -> None:
        """Send our description: trickling, before gathering (so it carries no candidate) and
        then each candidate on its own; or complete, after gathering."""
        kind, gathering = description.type, self.timeouts["gathering_s"]
        if trickle:
            await self.send({"type": kind, "sdp": description.sdp})
            self.mark(f"{kind}_sent")
            await bounded("gathering", self.pc.setLocalDescription(description), gathering)
            await self.trickle_local_candidates()
        else:
            await bounded("gathering", self.pc.setLocalDescription(description), gathering)
            self.mark("gathering_done", candidates=self.local_counts())
            await self.send({"type": kind, "sdp": self.pc.localDescription.sdp})
            self.mark(f"{kind}_sent")

    # --- signaling ----------------------------------------------------------------------------

    async def open_signaling(self, session: aiohttp.ClientSession) -> None:
        base = urlsplit(self.cmd["signaling_url_base"].rstrip("/"))
        scheme = "wss" if base.scheme in ("https", "wss") else "ws"
        path = f"{base.path}/ws/{quote(self.cmd['room'], safe='')}/{quote(self.cmd['peer'])}"
        url = urlunsplit((scheme, base.netloc, path, "", ""))
        try:
            async with asyncio.timeout(self.timeouts["signaling_s"]):
                self.ws = await session.ws_connect(url, heartbeat=None)
        except TimeoutError:
            raise Failed("timeout:signaling", f"no connection to {url}") from None
        except aiohttp.ClientError as exc:
            raise Failed("signaling", f"{url}: {exc}") from None
        self.loop.create_task(self.read_signaling())

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        message = {**message, "from": self.cmd["peer"], "to": self.cmd["remote_peer"]}
        try:
            await self.ws.send_str(json.dumps(message))
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise Failed("signaling", f"signaling channel closed: {exc}") from None

    async def read_signaling(self) -> None:
        """The one reader: descriptions to their waiters, candidates into a queue applied once
        the remote description is set (a candidate may arrive before it)."""
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(msg.data)
            if message.get("from") != self.cmd["remote_peer"]:
                continue
            kind = message.get("type")
            if kind in self.descriptions and not self.descriptions[kind].done():
                self.descriptions[kind].set_result(message["sdp"])
            elif kind in ("candidate", "end-of-candidates"):
                self.candidates.put_nowait(message)

    async def receive(self, kind: str) -> str:
        sdp: str = await bounded("signaling", self.descriptions[kind], self.timeouts["signaling_s"])
        return sdp

    async def apply_candidates(self) -> None:
        while True:
            message = await self.candidates.get()
            value = message.get("candidate") or ""
            if message["type"] == "end-of-candidates" or value == "":
                await self.pc.addIceCandidate(None)
                return
            try:
                candidate = candidate_from_sdp(value.removeprefix("candidate:"))
            except (AssertionError, ValueError, IndexError):
                log.warning("ignored a malformed candidate: %r", value)
                continue
            candidate.sdpMid = message.get("sdpMid")
            candidate.sdpMLineIndex = message.get("sdpMLineIndex")
            await self.pc.addIceCandidate(candidate)
            self.remote_types[candidate.type] += 1

    async def trickle_local_candidates(self) -> None:
        """Each local candidate as a message of its own, then the end of them."""
        mid, index, n = None, -1, 0
        for line in self.pc.localDescription.sdp.splitlines():
            if line.startswith("m="):
                index += 1
            elif line.startswith("a=mid:"):
                mid = line[len("a=mid:") :]
            elif line.startswith("a=candidate:") and index == 0:  # max-bundle: one transport
                n += 1
                await self.send(
                    {"type": "candidate", "candidate": line[2:], "sdpMid": mid, "sdpMLineIndex": 0}
                )
        self.mark("gathering_done", candidates=self.local_counts())
        await self.send({"type": "end-of-candidates"})
        log.info("trickled %d candidates", n)

    def count_remote_candidates(self, sdp: str) -> None:
        for line in sdp.splitlines():
            if line.startswith("a=candidate:"):
                self.remote_types[line.split()[7]] += 1

    def local_counts(self) -> dict[str, int]:
        sdp = self.pc.localDescription.sdp if self.pc.localDescription else ""
        return dict(Counter(x.split()[7] for x in sdp.splitlines() if x.startswith("a=candidate:")))

    # --- connection ---------------------------------------------------------------------------

    def watch(self) -> None:
        pc = self.pc

        @pc.on("iceconnectionstatechange")
        def on_ice() -> None:
            state = pc.iceConnectionState
            self.emit("ice_state", kind="ice", state=state)
            if state == "checking":
                self.mark("ice_checking")
            elif state == "completed":  # aiortc's word for a nominated pair
                self.mark("ice_connected")
                self.selected_pair = selected_pair(pc)
                settle(self.ice_done, True)
            elif state == "failed":
                self.mark("ice_failed")
                settle(self.ice_done, False)

        @pc.on("connectionstatechange")
        def on_connection() -> None:
            state = pc.connectionState
            self.emit("ice_state", kind="connection", state=state)
            if state == "connected":
                self.mark("dtls_connected")
                settle(self.dtls_done, True)
            elif state == "failed":
                settle(self.ice_done, False)
                settle(self.dtls_done, False)

    # --- the "simnet" data channel ------------------------------------------------------------

    def attach(self, dc: RTCDataChannel) -> None:
        if self.dc is not None:
            return
        self.dc = dc

        def opened() -> None:
            if not self.dc_open.done():
                self.mark("dc_open")
                self.dc_open.set_result(dc)

        dc.on("open", opened)
        dc.on("message", self.on_message)
        dc.on("close", self.peer_done.set)  # the peer closing counts as its "done"
        if dc.readyState == "open":
            opened()

    def control(self, message: dict[str, Any]) -> None:
        assert self.dc is not None
        self.dc.send(json.dumps(message))

    def on_message(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self.received(len(data))
            return
        message = json.loads(data)
        kind = message.get("type")
        if kind == "ping":
            self.control({"type": "pong", "seq": message["seq"]})
        elif kind == "pong" and message["seq"] in self.pongs:
            settle(self.pongs[message["seq"]], now())
        elif kind == "bulk":
            self.rx = {"bytes": int(message["bytes"]), "t0": float(message["t0"]), "got": 0}
            self.received(0)
        elif kind == "bulk-done":
            settle(self.bulk_done, message)
        elif kind == "summary":
            self.result["dc_rtt_ms"] = message.get("rtt_ms")
            settle(self.summary, message)
        elif kind == "done":
            self.peer_done.set()

    def received(self, size: int) -> None:
        if self.rx is None:
            return
        self.rx["got"] += size
        if self.rx["got"] < self.rx["bytes"]:
            return
        t_last = now()
        elapsed = t_last - self.rx["t0"]  # the sender's t0: the same clock
        report = {
            "type": "bulk-done",
            "bytes": self.rx["got"],
            "t_last": t_last,
            "goodput_mbps": self.rx["got"] * 8 / elapsed / 1e6 if elapsed > 0 else None,
        }
        self.rx = None
        self.control(report)
        settle(self.bulk_done, report)

    async def datachannel(self) -> None:
        limit = self.timeouts["datachannel_s"]
        await bounded("datachannel", self.dc_open, limit)
        size = int(self.cmd.get("data_bytes", 1_000_000))
        if self.role == "offer":
            probes = int(self.cmd.get("rtt_probes", 10))
            if probes:
                await bounded("datachannel", self.probe(probes), limit)
            if size:
                await bounded("datachannel", self.bulk(size), limit)
            self.control({"type": "summary", "rtt_ms": self.result["dc_rtt_ms"]})
        else:
            if size:
                await bounded("datachannel", self.bulk_done, limit)
            await bounded("datachannel", self.summary, limit)
        if self.bulk_done.done():
            report = self.bulk_done.result()
            self.result["dc_bytes"] = report["bytes"]
            self.result["dc_goodput_mbps"] = report.get("goodput_mbps")

    async def probe(self, count: int) -> None:
        samples = []
        for seq in range(count):
            self.pongs[seq] = future = self.loop.create_future()
            sent = now()
            self.control({"type": "ping", "seq": seq})
            samples.append((await future - sent) * 1000)
        self.result["dc_rtt_ms"] = statistics.median(samples)

    async def bulk(self, total: int) -> None:
        dc = self.dc
        assert dc is not None
        low = asyncio.Event()
        dc.bufferedAmountLowThreshold = CHUNK_LOW
        dc.on("bufferedamountlow", low.set)
        chunk = int(self.cmd.get("data_chunk_bytes", 16_384))
        self.control({"type": "bulk", "bytes": total, "t0": now()})
        sent = 0
        while sent < total:
            while dc.bufferedAmount > CHUNK_HIGH:
                low.clear()
                await low.wait()
            size = min(chunk, total - sent)
            dc.send(bytes(size))
            sent += size
        await self.bulk_done

    async def hold(self) -> None:
        """Stay in the call until `hold_s` after the data channel opened (a timeline's window)."""
        opened, hold = self.phase_t.get("dc_open"), float(self.cmd.get("hold_s", 0))
        if hold and opened is not None and (left := opened + hold - now()) > 0:
            await asyncio.sleep(left)

    async def finish(self) -> None:
        """ "done", then wait briefly for the peer's: neither closes before both measured."""
        if self.dc is None or self.dc.readyState != "open":
            return
        self.control({"type": "done"})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(DONE_WAIT_S, self.timeouts["datachannel_s"])):
                await self.peer_done.wait()


def settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def selected_pair(pc: RTCPeerConnection) -> dict[str, Any] | None:
    """aiortc has no getSelectedCandidatePair(): read aioice's nominated pair (private, so
    best effort; a browser-based peer reads getStats()' selected candidate-pair instead)."""
    try:
        connection = pc.sctp.transport.transport._connection  # type: ignore[union-attr]
        pair = connection._nominated[1]
    except (AttributeError, KeyError):
        return None

    def info(c: Any) -> dict[str, Any]:
        return {"type": c.type, "protocol": c.transport.lower(), "address": c.host, "port": c.port}

    return {"local": info(pair.local_candidate), "remote": info(pair.remote_candidate)}


def unsupported(cmd: dict[str, Any]) -> str | None:
    """Why this peer cannot make the call `cmd` asks for, or None."""
    media = cmd.get("media") or {}
    if media.get("audio") or media.get("video"):
        return "minimal_peer does not send or measure media"
    if cmd.get("signaling_kind", "ws") != "ws":
        return "minimal_peer speaks WebSocket signaling only"
    if cmd.get("role") not in ("offer", "answer"):
        return f"role {cmd.get('role')!r} is neither offer nor answer"
    return None


async def serve(emit: Events, trickle: str) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=16 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    emit(
        "ready",
        protocol=PROTOCOL,
        peer_kind="minimal-example",
        peer_version=f"minimal_peer 1 (aiortc {aiortc.__version__})",
        pid=os.getpid(),
    )
    call: asyncio.Task[None] | None = None

    async def run(cmd: dict[str, Any]) -> None:
        result = await Call(cmd, emit, trickle).run()
        emit("result", **result)

    while line := await stdin.readline():  # EOF: the controller went away
        try:
            cmd = json.loads(line)
            name = cmd.pop("cmd")
        except (ValueError, KeyError, AttributeError):
            emit("error", error=f"bad command line: {line!r}")
            continue
        if name == "exit":
            break
        why = unsupported(cmd) if name == "call" else f"unknown command {name!r}"
        if why is None and call is not None and not call.done():
            why = "a call is already running"
        if why is not None:
            emit("error", error=why)
            continue
        call = loop.create_task(run(cmd))
    if call is not None and not call.done():
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--trickle",
        choices=("offer", "always", "never"),
        default="offer",
        help="which descriptions go out before gathering, their candidates trickled after",
    )
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)  # stderr is the log
    asyncio.run(serve(Events(), args.trickle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
