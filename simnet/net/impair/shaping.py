"""Per-packet decisions of the userspace delay line: how long to hold a packet, whether to drop it.

Pure and import-light on purpose: the NFQUEUE helper imports it at start (each millisecond of
imports delays every run that has a link), and the unit tests check its statistics without a
kernel. Semantics follow netem, so that the userspace and the netem backends mean the same thing
by the same scenario:

* jitter: `uniform` is netem's default (uniform within ±jitter); `normal` and `pareto` are the
  inverse distributions netem's iproute2 tables hold (`normal.dist`: N(0, 1) cut at ±4;
  `pareto.dist`: 4/3 · ((1-u)^(-1/3) - 3/2), a Pareto of shape 3 shifted to mean ≈ 0, so never
  below -2/3 and cut at 4), scaled by the jitter; a delay is never below zero;
* without `reorder`, a packet never leaves before the one queued ahead of it (netem does the same
  when it rate-limits: the last packet queued is the reference point);
* Gilbert-Elliott loss as netem's `gemodel`: the state a packet arrives in decides its loss, then
  the state may change (good -> bad with p, bad -> good with r).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

DISTRIBUTIONS = ("uniform", "normal", "pareto")
TABLE_LIMIT = 4.0  # netem's tables hold values in [-4, 4] sigma (s16 / NETEM_DIST_SCALE)
_PARETO_SHAPE = 3.0
_UNIT_NORMAL = NormalDist()


def quantile(distribution: str, u: float) -> float:
    """The jitter (in units of jitter_ms) at cumulative probability `u` in [0, 1)."""
    if distribution == "uniform":
        return 2.0 * u - 1.0
    if distribution == "normal":
        u = min(max(u, 1e-12), 1 - 1e-12)
        return max(-TABLE_LIMIT, min(TABLE_LIMIT, float(_UNIT_NORMAL.inv_cdf(u))))
    if distribution == "pareto":
        x = (4.0 / 3.0) * (math.pow(1.0 - u, -1.0 / _PARETO_SHAPE) - 1.5)
        return min(TABLE_LIMIT, x)
    raise ValueError(f"unknown jitter distribution {distribution!r}")


def spread(distribution: str, points: int = 200_000) -> float:
    """Standard deviation of the jitter distribution in units of jitter_ms (numerically)."""
    values = [quantile(distribution, (i + 0.5) / points) for i in range(points)]
    mean = math.fsum(values) / points
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / points)


@dataclass(frozen=True)
class DirectionConfig:
    """One direction of one link, as handed to the helper (times in seconds, chances in 0-1)."""

    name: str
    queue: int
    delay_s: float = 0.0
    jitter_s: float = 0.0
    distribution: str = "uniform"
    loss: float = 0.0
    # Gilbert-Elliott: (p good->bad, r bad->good, loss in bad, loss in good), or None
    burst: tuple[float, float, float, float] | None = None
    reorder: bool = False
    queue_packets: int = 1000
    seed: int = 0
    bind_in: tuple[str, ...] = ()  # namespaces whose queue `queue` feeds this line (): own

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown jitter distribution {self.distribution!r}")

    def to_dict(self) -> dict[str, object]:
        """The settings as JSON fields (`encode`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DirectionConfig:
        """The settings from their JSON fields (`decode`)."""
        burst = data.get("burst")
        return cls(
            **{
                **data,
                "burst": tuple(burst) if burst is not None else None,
                "bind_in": tuple(data.get("bind_in", ())),
            }
        )


def encode(configs: list[DirectionConfig]) -> str:
    return json.dumps([c.to_dict() for c in configs], separators=(",", ":"))


def decode(text: str) -> list[DirectionConfig]:
    return [DirectionConfig.from_dict(d) for d in json.loads(text)]


class Shaper:
    """The decisions for one direction: `due(now)` gives when to release a packet, or None."""

    def __init__(self, config: DirectionConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.bad = False
        self.last_due = -math.inf

    def delay(self) -> float:
        """One delay sample in seconds (before the FIFO rule)."""
        c = self.config
        if c.jitter_s == 0:
            return c.delay_s
        return max(0.0, c.delay_s + c.jitter_s * quantile(c.distribution, self.rng.random()))

    def lost(self) -> bool:
        c = self.config
        if c.burst is None:
            return c.loss > 0 and self.rng.random() < c.loss
        p, r, in_bad, in_good = c.burst
        if self.bad:
            self.bad = self.rng.random() >= r
            return self.rng.random() < in_bad
        self.bad = self.rng.random() < p
        return in_good > 0 and self.rng.random() < in_good

    def reconfigure(self, config: DirectionConfig) -> None:
        """Decide the next packets by `config` (a link changed during a call).

        The random stream and the last release time carry over: a change does not replay the
        draws made since the start, and without `reorder` no later packet may leave before one
        queued earlier, whatever the new delay. The Gilbert-Elliott state carries over while the
        new configuration has a burst model too (the channel is still in the state it was in,
        only its odds change); without one it is reset to good, where a new model starts.
        """
        self.config = config
        if config.burst is None:
            self.bad = False

    def due(self, now: float) -> float | None:
        """When the packet arriving at `now` leaves (monotonic seconds); None: drop it."""
        if self.lost():
            return None
        due = now + self.delay()
        if not self.config.reorder:
            due = max(due, self.last_due)
            self.last_due = due
        return due
