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
import math
import time
from collections.abc import Callable

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame
from av.frame import Frame

AUDIO_SAMPLE_RATE = 48_000
AUDIO_PTIME_S = 0.020
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


class ToneTrack(_PacedTrack):
    """A 440 Hz sine tone, 48 kHz mono, in 20 ms frames (what Opus packetises)."""

    kind = "audio"

    def __init__(self, frequency_hz: float = 440.0, on_first: FirstFrame | None = None) -> None:
        super().__init__(AUDIO_PTIME_S, on_first)
        self._samples = int(AUDIO_SAMPLE_RATE * AUDIO_PTIME_S)
        self._step = 2 * math.pi * frequency_hz / AUDIO_SAMPLE_RATE

    async def recv(self) -> Frame:
        index = await self._next_index()
        first = index * self._samples
        phase = self._step * np.arange(first, first + self._samples)
        pcm = (np.sin(phase) * 8000).astype(np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = AUDIO_SAMPLE_RATE
        frame.pts = first
        frame.time_base = fractions.Fraction(1, AUDIO_SAMPLE_RATE)
        return frame


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
    """Pulls decoded frames from a remote track, as a renderer would, and counts them.

    aiortc decodes only what is pulled, so without a consumer no frame is "received" in the
    application's sense; the first frame's time is the media set-up figure a user sees.
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
