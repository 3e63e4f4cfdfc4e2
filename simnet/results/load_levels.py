"""One level of a load curve: what N calls at once did, and what they cost the machine.

Pure: the figures come from the level's result rows and from `LevelResources`, the resource
counters the runner read around the level (`simnet.run.load`), so they can be tested without a
network. `simnet load` prints one `LevelFigures` per level and `--json` prints it as is.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard

from pydantic import BaseModel, ConfigDict

from simnet.quantile import quantile
from simnet.results.schema import ResultRow

#: above this share of the machine's cores used by the peers, or of one core used by one peer
#: process (Python runs a process's code on one core at a time), the harness may be what
#: limits the calls: their set-up then measures the harness's scheduling, not the network
HARNESS_LIMIT_SHARE = 0.85
PROCESS_LIMIT_SHARE = 0.90
#: below this share of the machine's CPU idle in the level's busiest second, with coturn using
#: under half of what was busy over the level, the level measured the machine (peers, the kernel
#: forwarding their packets through every namespace, a neighbour's steal), not coturn: measured
#: on 2026-12-06, 100 and 200 pion calls at once left 0-4 % idle for most of their set-up
#: (vmstat), coturn at 6-18 % of a core, and 13-43 % connected. The level's average hides it:
#: calls that time out leave the machine idle while they wait.
MACHINE_IDLE_MIN_SHARE = 0.10


@dataclass(frozen=True)
class LevelResources:
    """What the runner read around one level (kernel and /proc counters, not estimates)."""

    wall_s: float  # first call started -> last call ended
    coturn_cpu_s: float  # user + system CPU of every TURN server's process over the level
    coturn_rss_mb: float  # the largest resident set seen while sampling, summed over servers
    agent_cpu_s: float  # user + system CPU of every peer process (browsers' children too)
    agent_cpu_s_max: float  # ... of the busiest one (a process runs on one core at a time)
    agent_cpu_pct_peak: float  # the busiest peer process in its busiest second, % of a core
    relayed_bytes: int  # bytes the TURN servers' interfaces sent over the level
    relayed_packets: int  # ... packets (coturn's relayed datagrams and its TURN answers)
    turn_udp_drops: int  # datagrams the TURN servers' sockets dropped (kernel counters)
    peer_udp_drops: int  # ... the peers' sockets dropped
    cores: int  # CPUs of the machine
    emulator_limited: bool  # the userspace link emulator's flag over the level
    emulator_late: bool = False  # a delay line released a packet over 1 ms late in the level
    harness_cpu_s: float = 0.0  # the load command's own process (calls' control, signaling)
    harness_cpu_pct_peak: float = 0.0  # ... in its busiest second, % of a core
    machine_cpu_s: float = 0.0  # every CPU's time over the level (/proc/stat), steal included
    machine_idle_s: float = 0.0  # ... of it idle or waiting for I/O
    machine_steal_s: float = 0.0  # ... taken by the hypervisor for other guests
    machine_busy_pct_peak: float = 0.0  # its busy CPU in its busiest second (% of a core)


class LevelFigures(BaseModel):
    """A load curve's point (`simnet load --json` prints these, one per line)."""

    model_config = ConfigDict(frozen=True)

    concurrency: int
    calls: int
    connected_share: float
    setup_ms_p50: float | None
    setup_ms_p95: float | None
    relay_share: float
    turn_allocation_failures: int
    turn_allocation_retries: int
    relayed_mbps: float
    relayed_pps: float  # packets the TURN servers' interfaces sent per second of the level
    relayed_packets_per_coturn_cpu_s: float | None  # ... per second of coturn's CPU
    turn_udp_drops: int
    peer_udp_drops: int
    media_lost_packets_p50: float | None
    media_jitter_ms_p50: float | None
    coturn_cpu_pct: float
    coturn_rss_mb: float
    agent_cpu_pct: float
    agent_cpu_pct_max: float  # the busiest peer process, over the level
    agent_cpu_pct_peak: float  # the busiest peer process in its busiest second
    harness_cpu_pct: float  # the load command's own process (it runs the signaling server)
    harness_cpu_pct_peak: float  # ... in its busiest second
    machine_idle_pct: float | None  # the machine's CPU time left idle over the level
    machine_steal_pct: float | None  # ... taken by the hypervisor (a neighbour's load)
    machine_idle_pct_low: float | None  # the machine's idle CPU in its busiest second
    emulator_limited: bool
    emulator_late: bool
    harness_limited: bool
    wall_s: float
    errors: dict[str, int]


def _quantile(values: Sequence[float], q: float) -> float | None:
    figure = quantile(values, q)
    return None if figure is None else round(figure, 1)


def level_figures(
    concurrency: int, rows: Sequence[ResultRow], resources: LevelResources
) -> LevelFigures:
    """The level's figures from its rows (one per call) and its resource counters.

        Percentages of CPU are of one core (200 % is both cores of a 2-core machine); a TURN
        allocation retry is a second or later attempt of one side on the same server and transport
        in one call (aioice retries nothing, libwebrtc does); `harness_limited` says the peers used
        more than `HARNESS_LIMIT_SHARE` of the machine's cores over the level, or one peer process
        more than `PROCESS_LIMIT_SHARE` of a core in its busiest second (its queue of callbacks then
        delays every call it hosts, which the level's average hides: measured at 50 relayed calls,
        a process's average 70-75 % of a core, its busiest second 89-94 %), or the machine had
        under `MACHINE_IDLE_MIN_SHARE` of its CPU idle in its busiest second while coturn used
        under half of the busy part over the level (the peers' packets cost the kernel as much
        as the peers: neither is coturn's limit); `relayed_pps` over
    `coturn_cpu_pct` / 100 is what one core of coturn forwards (`relayed_packets_per_coturn_cpu_s`,
    none if coturn used no measurable CPU)."""
    calls = [row.call for row in rows]
    # a call that connected but then failed (e.g. its data channel timed out) is not a success
    connected = [c for c in calls if c.connected and not c.error]
    setups = [c.setup_ms for c in connected if c.setup_ms is not None]
    relayed = [c for c in connected if c.path == "relay"]
    failures = retries = 0
    for call in calls:
        failures += sum(1 for a in call.turn_attempts if not a.ok)
        seen = Counter((a.side, a.server, a.transport) for a in call.turn_attempts)
        retries += sum(n - 1 for n in seen.values())
    lost: list[float] = []
    jitter: list[float] = []
    for call in connected:
        media = call.media.items()
        lost_here = [v for k, v in media if k.endswith("_recv_lost") and _number(v)]
        if lost_here:
            lost.append(float(sum(lost_here)))
        jitter += [float(v) for k, v in media if k.endswith("_recv_jitter_ms") and _number(v)]
    wall = max(resources.wall_s, 1e-9)
    agent_pct = resources.agent_cpu_s / wall * 100
    busiest = resources.agent_cpu_s_max / wall * 100
    # a level shorter than the sampling window has only its average
    peak = max(resources.agent_cpu_pct_peak, busiest)
    own = resources.harness_cpu_s / wall * 100
    own_peak = max(resources.harness_cpu_pct_peak, own)
    machine = resources.machine_cpu_s
    idle = resources.machine_idle_s / machine if machine > 0 else None
    busy_s = machine - resources.machine_idle_s
    capacity = resources.cores * 100
    idle_low = (
        max(0.0, 1 - resources.machine_busy_pct_peak / capacity)
        if resources.machine_busy_pct_peak > 0
        else None
    )
    machine_bound = (
        idle_low is not None
        and idle_low < MACHINE_IDLE_MIN_SHARE
        and resources.coturn_cpu_s < busy_s / 2
    )
    return LevelFigures(
        concurrency=concurrency,
        calls=len(calls),
        connected_share=round(len(connected) / len(calls), 4) if calls else 0.0,
        setup_ms_p50=_quantile(setups, 0.5),
        setup_ms_p95=_quantile(setups, 0.95),
        relay_share=round(len(relayed) / len(connected), 4) if connected else 0.0,
        turn_allocation_failures=failures,
        turn_allocation_retries=retries,
        relayed_mbps=round(resources.relayed_bytes * 8 / wall / 1e6, 3),
        relayed_pps=round(resources.relayed_packets / wall, 1),
        relayed_packets_per_coturn_cpu_s=round(resources.relayed_packets / resources.coturn_cpu_s)
        if resources.coturn_cpu_s > 0
        else None,
        turn_udp_drops=resources.turn_udp_drops,
        peer_udp_drops=resources.peer_udp_drops,
        media_lost_packets_p50=_quantile(lost, 0.5),
        media_jitter_ms_p50=_quantile(jitter, 0.5),
        coturn_cpu_pct=round(resources.coturn_cpu_s / wall * 100, 1),
        coturn_rss_mb=round(resources.coturn_rss_mb, 1),
        agent_cpu_pct=round(agent_pct, 1),
        agent_cpu_pct_max=round(busiest, 1),
        agent_cpu_pct_peak=round(peak, 1),
        harness_cpu_pct=round(own, 1),
        harness_cpu_pct_peak=round(own_peak, 1),
        machine_idle_pct=None if idle is None else round(idle * 100, 1),
        machine_steal_pct=round(resources.machine_steal_s / machine * 100, 1) if machine else None,
        machine_idle_pct_low=None if idle_low is None else round(idle_low * 100, 1),
        emulator_limited=resources.emulator_limited,
        emulator_late=resources.emulator_late,
        harness_limited=agent_pct > HARNESS_LIMIT_SHARE * resources.cores * 100
        or peak > PROCESS_LIMIT_SHARE * 100
        or own_peak > PROCESS_LIMIT_SHARE * 100
        or machine_bound,
        wall_s=round(resources.wall_s, 2),
        errors=dict(Counter(c.error for c in calls if c.error)),
    )


def _number(value: float | None) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
