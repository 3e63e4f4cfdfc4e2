"""Mapping the page's clock to the shared clock (`time.monotonic()`), with its error bound.

The page stamps its events with `performance.timeOrigin + performance.now()` (milliseconds): a
monotonic clock inside the renderer, anchored to the wall clock when the page loaded, so it does
not share `time.monotonic()`'s origin. The agent measures the offset before each call with a few
`Runtime.evaluate` round trips: reading the page's clock at page time `p` between agent times
`t0` and `t1` means `p` was read at some instant in [t0, t1], so `offset = (t0 + t1) / 2 - p`
is off by at most `(t1 - t0) / 2`. The sample with the smallest round trip gives the tightest
bound; that half round trip is the mapping's error bound, reported in the result
(`CallResult.clock_error_ms`). (Clock drift between two monotonic clocks of one machine over a
call is nanoseconds, and the page's clock resolution, 5-100 us in Chromium, is inside the bound.)

Pure functions: no browser here, so the arithmetic is unit-tested on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """One round trip: agent clock before and after (s), the page's clock reading (ms)."""

    sent: float
    received: float
    page_ms: float

    @property
    def round_trip_s(self) -> float:
        return self.received - self.sent


@dataclass(frozen=True)
class ClockMapping:
    """shared = page / 1000 + offset_s, within +- error_s."""

    offset_s: float
    error_s: float

    def to_shared(self, page_ms: float) -> float:
        return page_ms / 1000 + self.offset_s

    @property
    def offset_ms(self) -> float:
        """What the page adds to its own clock (ms) to read the shared one (ms)."""
        return self.offset_s * 1000


def mapping_from(samples: Sequence[Sample]) -> ClockMapping:
    """The mapping from the sample with the smallest round trip."""
    if not samples:
        raise ValueError("no clock samples")
    best = min(samples, key=lambda s: s.round_trip_s)
    if best.round_trip_s < 0:
        raise ValueError(f"a round trip ended before it started: {best}")
    midpoint = (best.sent + best.received) / 2
    return ClockMapping(offset_s=midpoint - best.page_ms / 1000, error_s=best.round_trip_s / 2)
