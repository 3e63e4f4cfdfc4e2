"""Replayed media (`call.media.coding: replay`): the same Opus packets, no codec per frame.

Why: a load run's peers replay a tone encoded once and count what they receive without
decoding it, so that a hundred peers fit on two cores. What a call puts on the wire must stay
real Opus at 20 ms pacing, received frames must still be counted, and only the tracks of a
replaying call may skip decoding: every other call in the process still decodes.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from fractions import Fraction

import pytest
from aiortc import RTCPeerConnection, rtcrtpreceiver
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from av import AudioFrame
from pydantic import ValidationError

from simnet.callspec import MediaSpec
from simnet.errors import ScenarioError
from simnet.peer.aiortc.aioice_adapter import count_without_decoding
from simnet.peer.aiortc.media import (
    AUDIO_FRAME_SAMPLES,
    REPLAY_FRAMES,
    ReplayedToneTrack,
    encoded_tone,
)
from simnet.scenario.load import scenario_from_dict

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2)


def test_replay_is_for_audio_alone() -> None:
    assert MediaSpec(audio=True, coding="replay").coding == "replay"
    for bad in ({"coding": "replay"}, {"audio": True, "video": {}, "coding": "replay"}):
        with pytest.raises(ValidationError, match="coding: replay replays audio only"):
            MediaSpec.model_validate(bad)


def test_replay_needs_aiortc_peers_on_both_sides() -> None:
    spec = {
        "name": "replay",
        "hosts": {"alice": {}, "bob": {"peer": "chromium"}},
        "servers": {"signaling": {"kind": "signaling"}},
        "call": {"media": {"audio": True, "coding": "replay"}},
    }
    with pytest.raises(ScenarioError, match=r"coding: replay .*\(hosts\.bob\.peer\) is chromium"):
        scenario_from_dict(spec)


def test_the_encoded_tone_is_a_second_of_opus_frames() -> None:
    payloads = encoded_tone()
    assert len(payloads) == REPLAY_FRAMES
    decoder = OpusDecoder()
    for i, payload in enumerate(payloads):
        [frame] = decoder.decode(JitterFrame(data=payload, timestamp=i * AUDIO_FRAME_SAMPLES))
        assert frame.samples == AUDIO_FRAME_SAMPLES  # 20 ms at 48 kHz each


async def test_the_replayed_track_paces_the_same_packets_in_a_loop() -> None:
    track = ReplayedToneTrack()
    start = REPLAY_FRAMES - 2
    track._index = start  # near the end of the loop: the schedule starts at this frame
    packets = [await track.recv() for _ in range(3)]
    tone = encoded_tone()
    assert [bytes(p) for p in packets] == [tone[-2], tone[-1], tone[0]]  # a second, looped
    assert [p.pts for p in packets] == [(start + i) * AUDIO_FRAME_SAMPLES for i in range(3)]
    assert all(p.time_base * AUDIO_FRAME_SAMPLES == Fraction(1, 50) for p in packets)  # 20 ms


async def test_a_replaying_calls_frames_are_counted_and_every_other_track_still_decodes() -> None:
    """The counted track gets each reassembled frame as aiortc hands it over, on the loop's
    thread, and its end; the decoder thread aiortc starts for it returns at once; a track not
    registered keeps aiortc's decoder queue and worker (which decodes real Opus)."""
    pc = RTCPeerConnection()
    counted, decoded = (pc.addTransceiver("audio").receiver for _ in range(2))
    for receiver in (counted, decoded):  # as setRemoteDescription gives each its track
        receiver._track = RemoteStreamTrack(kind="audio")
    count_without_decoding(pc, counted.track)
    frame = JitterFrame(data=encoded_tone()[0], timestamp=0)
    feed = counted._RTCRtpReceiver__decoder_queue
    feed.put((OPUS, frame))
    feed.put(None)  # what aiortc's stop() puts
    assert await counted.track.recv() is frame
    with pytest.raises(MediaStreamError):
        await counted.track.recv()
    loop = asyncio.get_running_loop()
    # the worker aiortc starts for the counted receiver has nothing to do
    rtcrtpreceiver.decoder_worker(loop, feed, counted.track._queue, threading.Event())
    # the other receiver decodes, in aiortc's worker thread
    other: queue.Queue[object] = decoded._RTCRtpReceiver__decoder_queue
    worker = threading.Thread(
        target=rtcrtpreceiver.decoder_worker,
        args=(loop, other, decoded.track._queue, threading.Event()),
    )
    worker.start()
    other.put((OPUS, JitterFrame(data=encoded_tone()[0], timestamp=0)))
    other.put(None)
    assert isinstance(await asyncio.wait_for(decoded.track.recv(), 10), AudioFrame)
    await asyncio.to_thread(worker.join)
    await pc.close()
