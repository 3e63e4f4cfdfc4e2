"""The call's media: the tracks it sends, the remote tracks it counts frames of, and the media
phase (the first frame of every expected kind, then `duration_s` of `getStats()` samples).

With `coding: replay` the sent audio is the tone's Opus packets replayed, and received frames
are counted as they are reassembled, not decoded (`aioice_adapter.count_without_decoding`).
"""

from __future__ import annotations

import asyncio
import time

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from simnet.peer.aiortc.aioice_adapter import count_without_decoding
from simnet.peer.aiortc.call.events import CallEvents
from simnet.peer.aiortc.call.failure import CallFailed, bounded
from simnet.peer.aiortc.call.stats import kind_stats
from simnet.peer.aiortc.media import FrameSink, PatternTrack, ReplayedToneTrack, ToneTrack
from simnet.peer.protocol import CallCommand, MediaKindStats

STATS_INTERVAL_S = 0.5  # getStats() sampling during the media window


class CallMedia:
    """`add_tracks()` and `watch()` a peer connection, `measure()` for the media phase, `stop()`
    at the end. The figures are `stats` (one per kind) and `window_s`."""

    def __init__(self, cmd: CallCommand, events: CallEvents) -> None:
        self.cmd = cmd
        self._events = events
        self.tracks: list[MediaStreamTrack] = []
        self.sinks: dict[str, FrameSink] = {}
        self.ready = asyncio.Event()
        self.stats: list[MediaKindStats] = []
        self.window_s: float | None = None

    def add_tracks(self, pc: RTCPeerConnection) -> None:
        """Send the call's kinds (the answerer adds them after the offer: they take its
        transceivers, sendrecv)."""
        spec = self.cmd.media
        if spec.audio:
            tone = ReplayedToneTrack if spec.coding == "replay" else ToneTrack
            self.tracks.append(tone(on_first=self._first_sent))
        if spec.video is not None:
            video = spec.video
            self.tracks.append(
                PatternTrack(video.width, video.height, video.fps, on_first=self._first_sent)
            )
        for track in self.tracks:
            pc.addTrack(track)

    def watch(self, pc: RTCPeerConnection) -> None:
        """Count the frames of each expected remote track."""

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind in self.cmd.media.kinds and track.kind not in self.sinks:
                if self.cmd.media.coding == "replay":
                    count_without_decoding(pc, track)
                self.sinks[track.kind] = FrameSink(track, self._first_received)

    def _first_sent(self, kind: str) -> None:
        self._events.event("first_frame", f"first_frame:{kind}:send", kind=kind, direction="send")

    def _first_received(self, kind: str) -> None:
        self._events.event("first_frame", f"first_frame:{kind}:recv", kind=kind, direction="recv")
        expected = set(self.cmd.media.kinds)
        if expected <= {k for k, s in self.sinks.items() if s.first_t is not None}:
            self.ready.set()

    async def measure(self, pc: RTCPeerConnection) -> None:
        """The media phase: wait for every kind's first frame (bounded), then sample
        `getStats()` over `duration_s`; no frame of a kind in that window fails the call."""
        if not self.cmd.media.kinds:
            return
        await bounded("media", self.ready.wait(), self.cmd.timeouts.media_s)
        start = time.monotonic()
        end = start + self.cmd.duration_s
        samples = [await pc.getStats()]
        while (now := time.monotonic()) < end:
            await asyncio.sleep(min(STATS_INTERVAL_S, end - now))
            samples.append(await pc.getStats())
        end = time.monotonic()
        self.window_s = end - start
        self.stats = [
            kind_stats(kind, samples, start, end, self.sinks.get(kind))
            for kind in self.cmd.media.kinds
        ]
        silent = [m.kind for m in self.stats if m.received is None or m.received.frames == 0]
        if self.cmd.duration_s > 0 and silent:
            raise CallFailed("media", f"no {', '.join(silent)} frames during the media window")

    async def stop(self) -> None:
        """Stop the sent tracks and the frame counting."""
        for track in self.tracks:
            track.stop()
        for sink in self.sinks.values():
            await sink.stop()
