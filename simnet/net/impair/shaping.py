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


LATE_S = 1e-3  # a release more than this after its due time counts as late
STATS_REQUEST = "stats"  # the control line that asks a helper for its `Lateness` per direction


@dataclass
class Lateness:
    """How punctually one direction of a delay line released its packets over a period:
    packets released (forwarded by verdict), those released more than `LATE_S` after their due
    time, and the worst lateness (0 when none was late at all). Each `stats` answer of a helper
    covers the period since its previous answer (or its start): the counters reset on read."""

    name: str
    released: int = 0
    late: int = 0
    late_max_s: float = 0.0

    def add(self, late_s: float) -> None:
        self.released += 1
        if late_s > LATE_S:
            self.late += 1
        self.late_max_s = max(self.late_max_s, late_s)

    def then(self, later: Lateness) -> Lateness:
        """This period followed by `later` (of the same direction): the figures of both."""
        return Lateness(
            self.name,
            self.released + later.released,
            self.late + later.late,
            max(self.late_max_s, later.late_max_s),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "released": self.released,
            "late": self.late,
            "late_max_ms": round(self.late_max_s * 1e3, 3),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lateness:
        return cls(
            str(data["name"]),
            int(data["released"]),
            int(data["late"]),
            float(data["late_max_ms"]) / 1e3,
        )


def encode(configs: list[DirectionConfig]) -> str:
    return json.dumps([c.to_dict() for c in configs], separators=(",", ":"))


def decode(text: str) -> list[DirectionConfig]:
    return [DirectionConfig.from_dict(d) for d in json.loads(text)]


def encode_stats(lines: list[Lateness]) -> str:
    """A helper's answer to `STATS_REQUEST`: one JSON line."""
    return json.dumps({"stats": [line.to_dict() for line in lines]})


def decode_stats(text: str) -> list[Lateness]:
    """The `Lateness` of each direction from a helper's answer (ValueError if it is none)."""
    try:
        data = json.loads(text)
        return [Lateness.from_dict(item) for item in data["stats"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a stats answer: {text[:200]!r}") from exc


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
