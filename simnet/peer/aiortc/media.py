"""Synthetic media for calls: generated audio and video tracks, and a sink that counts frames.

Why synthetic: a call must be reproducible and need no camera, microphone or media file. A
sine tone and a moving pattern keep the encoders busy like real content (silence and a static
image would compress to almost nothing and understate the bitrate). Pacing follows
`time.monotonic()`, the clock every namespace shares, instead of aiortc's wall-clock pacing.

Imported only by the agent (it imports aiortc and PyAV).
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame
from av.frame import Frame
from av.packet import Packet

AUDIO_SAMPLE_RATE = 48_000
AUDIO_PTIME_S = 0.020
AUDIO_FRAME_SAMPLES = int(AUDIO_SAMPLE_RATE * AUDIO_PTIME_S)
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_SAMPLE_RATE)
TONE_HZ = 440.0
REPLAY_FRAMES = 50  # a second of the tone, replayed in a loop
VIDEO_CLOCK_RATE = 90_000

FirstFrame = Callable[[str], None]


class _PacedTrack(MediaStreamTrack):
    """Emits one frame per `interval_s`, on a schedule anchored at the first frame."""

    def __init__(self, interval_s: float, on_first: FirstFrame | None) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._start: float | None = None
        self._index = 0
        self._on_first = on_first

    async def _next_index(self) -> int:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
            if self._on_first is not None:
                self._on_first(self.kind)
        else:
            self._index += 1
            wait = self._start + self._index * self._interval_s - now
            if wait > 0:
                await asyncio.sleep(wait)
        return self._index


def tone_frame(index: int, frequency_hz: float = TONE_HZ) -> AudioFrame:
    """Frame `index` of a sine tone: 20 ms, 48 kHz mono (what Opus packetises)."""
    first = index * AUDIO_FRAME_SAMPLES
    step = 2 * math.pi * frequency_hz / AUDIO_SAMPLE_RATE
    pcm = (np.sin(step * np.arange(first, first + AUDIO_FRAME_SAMPLES)) * 8000).astype(np.int16)
    frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = AUDIO_SAMPLE_RATE
    frame.pts = first
    frame.time_base = AUDIO_TIME_BASE
    return frame


class ToneTrack(_PacedTrack):
    """A 440 Hz sine tone, frame after frame, encoded by aiortc as the call goes."""

    kind = "audio"

    def __init__(self, on_first: FirstFrame | None = None) -> None:
        super().__init__(AUDIO_PTIME_S, on_first)

    async def recv(self) -> Frame:
        return tone_frame(await self._next_index())


@functools.cache
def encoded_tone() -> tuple[bytes, ...]:
    """One second of the tone, Opus-encoded once per process by aiortc's own encoder (the
    settings a live call's encoder has), one payload per 20 ms."""
    from aiortc.codecs.opus import OpusEncoder

    encoder, index = OpusEncoder(), 0
    payloads: list[bytes] = []
    while len(payloads) < REPLAY_FRAMES:
        encoded, _ = encoder.encode(tone_frame(index))
        payloads += encoded
        index += 1
    return tuple(payloads[:REPLAY_FRAMES])


class ReplayedToneTrack(_PacedTrack):
    """The tone's Opus packets, encoded once (`encoded_tone`) and replayed at 20 ms pacing.

    Why: encoding costs ~0.3 ms of CPU per frame here, 1.5 % of a core per peer; a hundred
    peers on two cores would spend the machine on it and make the harness the ceiling of a
    load run. aiortc sends a track's `av.Packet`s as they are (the encoder's `pack`), so the
    wire carries the same Opus packets at the same rate, looping every second."""

    kind = "audio"

    def __init__(self, on_first: FirstFrame | None = None) -> None:
        super().__init__(AUDIO_PTIME_S, on_first)
        self._payloads = encoded_tone()

    async def recv(self) -> Packet[Any]:  # aiortc sends a track's Packets as they are
        index = await self._next_index()
        packet = Packet(self._payloads[index % len(self._payloads)])
        packet.pts = index * AUDIO_FRAME_SAMPLES
        packet.time_base = AUDIO_TIME_BASE
        return packet


class PatternTrack(_PacedTrack):
    """A moving gradient with a bright square: cheap to make, not trivial to encode."""

    kind = "video"

    def __init__(
        self, width: int, height: int, fps: float, on_first: FirstFrame | None = None
    ) -> None:
        super().__init__(1.0 / fps, on_first)
        # yuv420p needs even dimensions
        self._width = width - width % 2
        self._height = height - height % 2
        x = np.arange(self._width, dtype=np.uint16)
        y = np.arange(self._height, dtype=np.uint16)[:, None]
        self._luma = ((x + y) % 256).astype(np.uint8)
        self._chroma = np.full((self._height // 2, self._width), 128, dtype=np.uint8)
        self._ticks = VIDEO_CLOCK_RATE / fps

    async def recv(self) -> Frame:
        index = await self._next_index()
        luma = np.roll(self._luma, 4 * index, axis=1)
        side = max(8, self._height // 6)
        top = (3 * index) % (self._height - side)
        left = (5 * index) % (self._width - side)
        luma[top : top + side, left : left + side] = 235
        image = np.concatenate([luma, self._chroma])
        frame = VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = int(index * self._ticks)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        return frame


class FrameSink:
    """Pulls frames from a remote track, as a renderer would, and counts them.

    The first frame's time is the media set-up figure a user sees. Frames are decoded ones, or,
    with `coding: replay`, the reassembled encoded ones (`aioice_adapter.count_without_decoding`).
    """

    def __init__(self, track: MediaStreamTrack, on_first: FirstFrame) -> None:
        self.kind = track.kind
        self.frames = 0
        self.first_t: float | None = None
        self.frame_times: list[float] = []
        self._track = track
        self._on_first = on_first
        self._task: asyncio.Task[None] = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self._track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            if self.first_t is None:
                self.first_t = now
                self._on_first(self.kind)
            self.frames += 1
            self.frame_times.append(now)

    def frames_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.frame_times if start <= t <= end)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
