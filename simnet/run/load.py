"""`simnet load`: many calls at once through the same servers, level after level.

One network is built for the largest level: the scenario's host templates (`count`, `own_nat`)
give the pairs, instance i of the call's offerer calling instance i of its answerer
(`simnet.scenario.templates.call_pairs`). coturn, the signaling server and every peer are
started once and are warm before the first level; the aiortc peers share a few processes
(`shared_processes`, default one per core: `simnet.peer.control.hosting`), so the harness is not the
ceiling. A level of N calls starts the first N pairs' calls at once (or R new calls per second
with a ramp), each in its own signaling room, and ends when every call has; its rows are
written as each call ends (columns `concurrency`, `call_index`, `start_offset_ms`, and the
pair's `offerer` / `answerer`), and its `LevelFigures` are computed from them and from the
machine's counters read around the level (`simnet.results.load_levels`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import psutil

from simnet import settings
from simnet.errors import ScenarioError
from simnet.net import netns, realtime
from simnet.net.builder import Network, emulated_network
from simnet.net.impair import pressure
from simnet.net.plan import HOST_IF, plan_network
from simnet.peer.control.hosting import HostedPeer
from simnet.peerkinds import PeerPair
from simnet.results.load_levels import LevelFigures, LevelResources, level_figures
from simnet.results.schema import ResultRow
from simnet.run.cpu_tree import process_tree_cpu_s
from simnet.run.one_call import (
    Services,
    call_of,
    call_outcome,
    one_call,
    queue_namespaces,
    scenario_digest,
    start_services,
)
from simnet.scenario.model import CallSpec, Scenario
from simnet.scenario.templates import call_pairs
from simnet.signals import run_terminable

log = logging.getLogger(__name__)
SAMPLE_S = 0.5  # how often coturn's resident set and the peers' CPU are read during a level
CPU_WINDOW_S = 1.0  # the span a peer process's peak CPU share is measured over


def load_pairs(scenario: Scenario, levels: Sequence[int], source: str) -> list[tuple[str, str]]:
    """The pairs the largest level needs; an error naming the template to enlarge if the
    scenario has fewer."""
    if not levels or min(levels) < 1:
        raise ScenarioError(
            f"{source}: --calls needs levels of at least 1 call", fix="e.g. --calls 1,10,25"
        )
    call = call_of(scenario.model_copy(update={"call": _one(scenario)}), source)
    pairs = call_pairs(scenario, call.model_copy(update={"concurrent": max(levels)}))
    if len(pairs) < max(levels):
        short = min((call.offerer, call.answerer), key=lambda h: scenario.hosts[h].count)
        raise ScenarioError(
            f"{source}: a level of {max(levels)} calls needs {max(levels)} pairs, but "
            f"hosts.{short}.count is {scenario.hosts[short].count}",
            fix=f"set hosts.{call.offerer}.count and hosts.{call.answerer}.count to at least "
            f"{max(levels)}, or lower --calls",
        )
    return pairs


def call_hosts(scenario: Scenario, source: str) -> tuple[str, str]:
    """The hosts (templates) of the call's offerer and answerer."""
    call = call_of(scenario.model_copy(update={"call": _one(scenario)}), source)
    return call.offerer, call.answerer


def peer_overrides(scenario: Scenario, peers: PeerPair, source: str) -> list[str]:
    """`--set`s making the call's offerer template of kind `peers[0]` and its answerer of
    `peers[1]` (`simnet load --peers`): overrides, so the rows record them as they record
    the user's own."""
    offerer, answerer = call_hosts(scenario, source)
    return [f"hosts.{offerer}.peer={peers[0]}", f"hosts.{answerer}.peer={peers[1]}"]


def sized(scenario: Scenario, calls: int, source: str) -> Scenario:
    """`scenario` with its call's host templates cut to the `calls` instances the largest level
    uses: a file that holds 200 pairs costs a 10-call run only its 10 pairs' namespaces."""
    hosts = dict(scenario.hosts)
    for name in call_hosts(scenario, source):
        if name in hosts:
            hosts[name] = hosts[name].model_copy(update={"count": min(hosts[name].count, calls)})
    return scenario.model_copy(update={"hosts": hosts})


def host_groups(pairs: Sequence[tuple[str, str]], processes: int) -> list[list[str]]:
    """Which peers each hosting process gets: call k's offerer goes to process k mod P, its
    answerer to the next one. So at every level each process carries as many senders of the
    data-channel transfer as receivers, and each call spans two processes (measured: with all
    offerers in one process, that process was the bottleneck while the other idled)."""
    if processes <= 0:
        return []
    groups: list[list[str]] = [[] for _ in range(processes)]
    for k, (offerer, answerer) in enumerate(pairs):
        groups[k % processes].append(offerer)
        groups[(k + 1) % processes].append(answerer)
    return [g for g in groups if g]


def _one(scenario: Scenario) -> CallSpec:
    """The scenario's call as one call (its `concurrent` is the load command's business)."""
    return (scenario.call or CallSpec()).model_copy(update={"concurrent": 1})


@dataclass(frozen=True)
class MachineCpu:
    """Every CPU's time so far (/proc/stat through psutil), in seconds."""

    total_s: float
    idle_s: float  # idle or waiting for I/O
    steal_s: float

    @classmethod
    def now(cls) -> MachineCpu:
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        # Linux counts a guest's time in user (and nice) already
        guests = getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
        return cls(sum(times) - guests, idle, getattr(times, "steal", 0.0))


@dataclass
class _Counters:
    """CPU and bytes at one moment, for differences around a level."""

    coturn_cpu_s: float
    agent_cpu_s: dict[int, float]  # per peer process (its children included)
    harness_cpu_s: float  # this process's own: the calls' control and the signaling server
    relayed_bytes: int
    relayed_packets: int
    turn_udp_drops: int  # datagrams the TURN servers' sockets dropped (buffer full)
    peer_udp_drops: int  # ... the peers' sockets dropped
    machine: MachineCpu  # every CPU's time so far
    t: float


@dataclass
class _Watch:
    """The processes and interfaces a level is measured on."""

    network: Network
    services: Services
    rss_peak_mb: float = 0.0
    cpu_peak_pct: float = 0.0  # the busiest peer process in its busiest window (% of a core)
    harness_peak_pct: float = 0.0  # this process in its busiest window
    machine_peak_pct: float = 0.0  # the machine's busy CPU (steal included) in its busiest window
    agent_pids: list[int] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)

    def coturn(self) -> list[psutil.Process]:
        return [_process(h.pid) for h in self.services.turn.values()]

    def counters(self) -> _Counters:
        turn_sent = [_tx(self.network.ns(name)) for name in self.services.turn]
        return _Counters(
            coturn_cpu_s=sum(_cpu(p) for p in self.coturn()),
            agent_cpu_s=self.agent_cpu(),
            harness_cpu_s=_cpu(psutil.Process()),
            relayed_bytes=sum(sent[0] for sent in turn_sent),
            relayed_packets=sum(sent[1] for sent in turn_sent),
            turn_udp_drops=sum(_udp_drops(self.network.ns(name)) for name in self.services.turn),
            peer_udp_drops=sum(_udp_drops(self.network.ns(name)) for name in self.peers),
            machine=MachineCpu.now(),
            t=time.monotonic(),
        )

    def agent_cpu(self) -> dict[int, float]:
        """CPU seconds so far of each peer process, its children included (blocking)."""
        return process_tree_cpu_s(self.agent_pids)

    def coturn_rss_mb(self) -> float:
        """The TURN servers' resident set together, in MB (blocking)."""
        total = 0.0
        for process in self.coturn():
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss / 1e6
        return total

    async def sample(self) -> None:
        """coturn's resident set, and over each `CPU_WINDOW_S` the busiest peer process's CPU,
        the load command's own and the machine's busy CPU.

        Why a window: a level's average hides the seconds when all its calls set up at once,
        and those are when a saturated process delays every call's packets."""
        peak = PeakShare(CPU_WINDOW_S)
        own = PeakShare(CPU_WINDOW_S)
        machine = PeakShare(CPU_WINDOW_S)
        me = psutil.Process()
        while True:
            # read in a thread: the event loop relays every call's signaling meanwhile
            rss_mb, agents = await asyncio.gather(
                asyncio.to_thread(self.coturn_rss_mb), asyncio.to_thread(self.agent_cpu)
            )
            self.rss_peak_mb = max(self.rss_peak_mb, rss_mb)
            self.cpu_peak_pct = peak.add(time.monotonic(), agents)
            self.harness_peak_pct = own.add(time.monotonic(), {me.pid: _cpu(me)})
            now = MachineCpu.now()
            self.machine_peak_pct = machine.add(time.monotonic(), {0: now.total_s - now.idle_s})
            await asyncio.sleep(SAMPLE_S)  # a sampling period, not a readiness wait


class PeakShare:
    """The largest share of a core any one process used over a window of at least `window_s`,
    from cumulative CPU-seconds sampled per process (a process absent from the earlier sample
    counts from the later one: it is new, its earlier CPU is not the window's)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, dict[int, float]]] = deque()
        self.peak_pct = 0.0

    def add(self, t: float, cpu_s: dict[int, float]) -> float:
        """Take a sample at time `t`; the peak so far, in % of one core."""
        self.samples.append((t, cpu_s))
        while t - self.samples[0][0] >= self.window_s:
            t0, before = self.samples.popleft()
            busiest = max((c - before.get(pid, c) for pid, c in cpu_s.items()), default=0.0)
            self.peak_pct = max(self.peak_pct, busiest / (t - t0) * 100)
        return self.peak_pct


def _process(pid: int) -> psutil.Process:
    return psutil.Process(pid)


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _udp_drops(ns: str) -> int:
    """Datagrams namespace `ns`'s UDP sockets dropped for a full receive buffer, or as errors
    (`Udp: InErrors` of /proc/thread-self/net/snmp inside it: the kernel's; it counts a buffer
    drop too, which `RcvbufErrors` counts again, so that one is not added)."""
    with netns.entered(ns), open("/proc/thread-self/net/snmp") as snmp:
        lines = [line.split() for line in snmp if line.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("InErrors")])


def _tx(ns: str) -> tuple[int, int]:
    """Bytes and packets sent by namespace `ns`'s interface (`/proc/thread-self/net/dev` of a
    thread inside it: the kernel's own counters)."""
    with netns.entered(ns), open("/proc/thread-self/net/dev") as dev:
        for line in dev:
            name, _, fields = line.partition(":")
            if name.strip() == HOST_IF:
                sent = fields.split()
                return int(sent[8]), int(sent[9])
    return 0, 0


@contextlib.asynccontextmanager
async def _measured(watch: _Watch) -> AsyncIterator[list[_Counters]]:
    """Counters before and after the block (appended to the yielded list), coturn's RSS and
    the peers' peak CPU sampled while it runs."""
    marks = [await asyncio.to_thread(watch.counters)]
    watch.rss_peak_mb = watch.cpu_peak_pct = watch.harness_peak_pct = 0.0
    watch.machine_peak_pct = 0.0
    sampler = asyncio.ensure_future(watch.sample())
    try:
        yield marks
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        marks.append(await asyncio.to_thread(watch.counters))


@dataclass
class _Level:
    """One level in progress: its size, when it began, the rows of its finished calls."""

    concurrency: int
    t0: float
    rows: list[ResultRow] = field(default_factory=list)


@dataclass
class _LoadRun:
    """What every call of every level shares."""

    network: Network
    scenario: Scenario  # as the user wrote it (templates): names the rows
    services: Services
    ramp_per_s: float | None
    on_row: Callable[[ResultRow], None]
    overrides: Sequence[str]

    async def call(self, level: _Level, k: int, pair: tuple[str, str], number: int) -> None:
        """Call number k of the level, between `pair`; its row goes out as soon as it ends."""
        if self.ramp_per_s:
            # the ramp's schedule: call k starts k / R seconds into the level
            await asyncio.sleep(max(0.0, level.t0 + k / self.ramp_per_s - time.monotonic()))
        started = time.monotonic()
        concrete = self.network.plan.scenario
        spec = _one(concrete).model_copy(update={"offerer": pair[0], "answerer": pair[1]})
        offer, answer, error = await one_call(concrete, spec, self.services, number)
        row = ResultRow(
            call=await call_outcome(concrete, spec, self.services, offer, answer, error),
            scenario=self.scenario.name,
            scenario_hash=scenario_digest(self.scenario),
            overrides=tuple(self.overrides),
            seed=self.scenario.seed,
            run=k,
            run_id=self.network.run.id,
            wall_ms=(time.monotonic() - started) * 1000,
            cell={
                "concurrency": level.concurrency,
                "call_index": k,
                "start_offset_ms": round((started - level.t0) * 1000, 1),
                "offerer": pair[0],
                "answerer": pair[1],
            },
        )
        level.rows.append(row)
        self.on_row(row)


async def run_levels(
    network: Network,
    scenario: Scenario,
    levels: Sequence[int],
    pairs: list[tuple[str, str]],
    ramp_per_s: float | None,
    on_row: Callable[[ResultRow], None],
    shared_processes: int,
    overrides: Sequence[str] = (),
) -> list[LevelFigures]:
    """Every level in turn between warm peers (see the module's docstring)."""
    peers = list(dict.fromkeys(p for pair in pairs for p in pair))
    groups = host_groups(pairs, shared_processes)
    services = await start_services(network, network.plan.scenario, peers, groups)
    run = _LoadRun(network, scenario, services, ramp_per_s, on_row, overrides)
    watch = _Watch(network, services, peers=peers)
    watch.agent_pids = [h.process.pid for h in services.hosts] + [
        a.pid for a in services.agents.values() if not isinstance(a, HostedPeer)
    ]
    # this loop serves signaling and drives every peer: scheduled before them, as coturn is
    # (`simnet.net.realtime`: 400 pion agents otherwise left it a four-hundredth of the machine)
    figures: list[LevelFigures] = []
    number = 0
    with realtime.raised(settings.server_rt_priority()) as problem:
        if problem is not None:
            log.warning("the load command keeps normal scheduling (%s)", problem)
        try:
            for concurrency in levels:
                figures.append(await _level(run, watch, pairs[:concurrency], number))
                number += concurrency
        finally:
            await services.close()
    return figures


async def _level(
    run: _LoadRun, watch: _Watch, pairs: list[tuple[str, str]], number: int
) -> LevelFigures:
    """One level: a call per pair (numbered from `number`), measured as it runs."""
    network = run.network
    async with (
        _measured(watch) as marks,
        pressure.watched(queue_namespaces(network), network.run) as emulator,
    ):
        level = _Level(len(pairs), time.monotonic())
        await asyncio.gather(
            *(run.call(level, k, pair, number + k) for k, pair in enumerate(pairs))
        )
    before, after = marks
    resources = LevelResources(
        wall_s=after.t - before.t,
        coturn_cpu_s=after.coturn_cpu_s - before.coturn_cpu_s,
        coturn_rss_mb=watch.rss_peak_mb,
        agent_cpu_s=sum(after.agent_cpu_s.values()) - sum(before.agent_cpu_s.values()),
        agent_cpu_s_max=max(
            (cpu - before.agent_cpu_s.get(pid, 0.0) for pid, cpu in after.agent_cpu_s.items()),
            default=0.0,
        ),
        agent_cpu_pct_peak=watch.cpu_peak_pct,
        harness_cpu_s=after.harness_cpu_s - before.harness_cpu_s,
        harness_cpu_pct_peak=watch.harness_peak_pct,
        relayed_bytes=after.relayed_bytes - before.relayed_bytes,
        relayed_packets=after.relayed_packets - before.relayed_packets,
        turn_udp_drops=after.turn_udp_drops - before.turn_udp_drops,
        peer_udp_drops=after.peer_udp_drops - before.peer_udp_drops,
        cores=os.cpu_count() or 1,
        emulator_limited=bool(emulator.columns().get("emulator_limited", False)),
        emulator_late=bool(emulator.columns().get("emulator_late", False)),
        machine_cpu_s=after.machine.total_s - before.machine.total_s,
        machine_idle_s=after.machine.idle_s - before.machine.idle_s,
        machine_steal_s=after.machine.steal_s - before.machine.steal_s,
        machine_busy_pct_peak=watch.machine_peak_pct,
    )
    return level_figures(level.concurrency, level.rows, resources)


def run_load(
    scenario: Scenario,
    levels: Sequence[int],
    *,
    ramp_per_s: float | None = None,
    on_row: Callable[[ResultRow], None] = lambda row: None,
    shared_processes: int | None = None,
    overrides: Sequence[str] = (),
    source: str | None = None,
) -> list[LevelFigures]:
    """Build `scenario` once, run each level of concurrent calls, tear everything down."""
    load_pairs(scenario, levels, source or scenario.name)  # the file holds the largest level
    settings.check_environment()
    processes = shared_processes or os.cpu_count() or 1
    built = sized(scenario, max(levels), source or scenario.name)
    # the pairs of the network built: a template cut to one instance names it as `simnet run`
    # does (`alice`, not `alice-0`: `instance_names`)
    pairs = load_pairs(built, levels, source or scenario.name)
    with emulated_network(plan_network(built), label=f"load {scenario.name}") as network:
        return run_terminable(
            run_levels(network, scenario, levels, pairs, ramp_per_s, on_row, processes, overrides)
        )
