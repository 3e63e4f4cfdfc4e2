"""One media kind's figures over the measured window, from aiortc's `getStats()` samples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from aiortc.stats import (
    RTCInboundRtpStreamStats,
    RTCOutboundRtpStreamStats,
    RTCRemoteInboundRtpStreamStats,
    RTCRemoteOutboundRtpStreamStats,
    RTCRtpStreamStats,
    RTCStatsReport,
)

from simnet.peer.aiortc.media import FrameSink
from simnet.peer.protocol import MediaKindStats, ReceivedStats, SentStats

CLOCK_RATE = {"audio": 48_000, "video": 90_000}  # RTP clock of Opus and VP8 (jitter units)

_S = TypeVar("_S", bound=RTCRtpStreamStats)


def _find(report: RTCStatsReport, cls: type[_S], kind: str) -> _S | None:
    """The report's stats of type `cls` (outbound-rtp, inbound-rtp...) for `kind`."""
    for stats in report.values():
        if isinstance(stats, cls) and stats.kind == kind:
            return stats
    return None


def kind_stats(
    kind: str,
    samples: Sequence[RTCStatsReport],
    start: float,
    end: float,
    sink: FrameSink | None,
) -> MediaKindStats:
    """One kind's figures over the window, from the first and last `getStats()` samples, and
    the frames `sink` (the remote track's) counted in it.

    aiortc's inbound stats have no byte count, so the received bitrate comes from the
    sender's RTCP sender reports (cumulative octets at the sender's NTP time), taken from
    every sample because a report arrives only about once a second.
    """
    window = end - start
    before, after = samples[0], samples[-1]

    def rate_kbps(now: int, then: int) -> float:
        return (now - then) * 8 / window / 1000 if window > 1e-3 else 0.0

    sent = None
    out1 = _find(after, RTCOutboundRtpStreamStats, kind)
    out0 = _find(before, RTCOutboundRtpStreamStats, kind)
    if out1 is not None:
        sent = SentStats(
            packets=out1.packetsSent,
            bytes=out1.bytesSent,
            bitrate_kbps=rate_kbps(out1.bytesSent, out0.bytesSent if out0 else 0),
        )
    received = None
    in1 = _find(after, RTCInboundRtpStreamStats, kind)
    if in1 is not None:
        reports = sorted(
            {
                (r.remoteTimestamp.timestamp(), r.bytesSent)
                for sample in samples
                if (r := _find(sample, RTCRemoteOutboundRtpStreamStats, kind)) is not None
                and r.remoteTimestamp is not None
            }
        )
        bitrate = None
        if len(reports) >= 2 and reports[-1][0] > reports[0][0]:
            (t0, b0), (t1, b1) = reports[0], reports[-1]
            bitrate = (b1 - b0) * 8 / (t1 - t0) / 1000
        frames = sink.frames_between(start, end) if sink else 0
        received = ReceivedStats(
            packets=in1.packetsReceived,
            packets_lost=in1.packetsLost,
            jitter_ms=(in1.jitter or 0) / CLOCK_RATE[kind] * 1000,
            frames=frames,
            fps=frames / window if window > 1e-3 else 0.0,
            bitrate_kbps=bitrate,
        )
    remote_in = _find(after, RTCRemoteInboundRtpStreamStats, kind)
    # remote-inbound-rtp exists once an RTCP receiver report arrived; its RTT may still be
    # unset (None) when the report carried no LSR/DLSR yet.
    rtt_s: float | None = remote_in.roundTripTime if remote_in is not None else None
    rtt = rtt_s * 1000 if rtt_s is not None else None
    return MediaKindStats(kind=kind, sent=sent, received=received, rtt_ms=rtt)
