"""`simnet probe-link`: build a scenario, measure the link between two hosts, tear it down.

The job around the instruments of `simnet.probe.link` (the echo probe, iperf3): which host
serves, what to expect from the firewalls on the way, and the report the CLI presents.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any, TypeVar

from simnet.errors import EnvironmentProblem
from simnet.net.builder import Network, emulated_network
from simnet.net.impair.nfqueue import lateness
from simnet.net.impair.shaping import Lateness
from simnet.net.plan import NetworkPlan, plan_network
from simnet.probe.link import (
    Distribution,
    EchoStats,
    IperfResult,
    Roles,
    choose_roles,
    echo_probe,
    echo_stats,
    firewall_notes,
    run_iperf,
)
from simnet.scenario.model import Scenario
from simnet.signals import run_terminable

_T = TypeVar("_T")


# --- the measurement ------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkProbeOptions:
    count: int = 100  # echo probes
    interval_s: float = 0.01
    duration_s: int = 2  # per iperf3 test; 0 skips throughput (iperf3 takes whole seconds)
    udp_rate: str = "100M"  # iperf3 --bitrate of the UDP test
    port: int = 5201  # the echo's UDP port and iperf3's port on the serving host
    server_host: str | None = None  # override who serves
    drain_s: float = 1.0


@dataclass(frozen=True)
class LinkSetup:
    """Everything decided before anything is built: the plan, who serves, what to expect."""

    scenario: Scenario
    plan: NetworkPlan
    roles: Roles
    options: LinkProbeOptions
    notes: tuple[str, ...]


def plan_link(scenario: Scenario, a: str, b: str, options: LinkProbeOptions) -> LinkSetup:
    """Check the pair and pick the server (no root needed): bad requests fail before a build."""
    plan = plan_network(scenario)
    roles = choose_roles(plan, a, b, options.server_host)
    walls = firewall_notes(plan, roles.client, roles.server, options.port)
    return LinkSetup(scenario, plan, roles, options, (*roles.notes, *walls))


@dataclass(frozen=True)
class LinkReport:
    scenario: str
    run_id: str
    roles: Roles
    target: str  # address:port the client reached
    echo: EchoStats  # from the client's point of view (forward = client → server)
    tcp: IperfResult | None
    udp: IperfResult | None
    udp_rate: str
    notes: tuple[str, ...] = ()
    # each delay line direction's releases (`<node>.<up|down>`; none without a userspace delay
    # line) during the echo probes, whose delays the report gives, and during the throughput
    # tests, whose floods can make a line late without touching the delay figures
    late: tuple[Lateness, ...] = ()
    late_throughput: tuple[Lateness, ...] = ()

    def _direction(self, forward: _T, backward: _T) -> tuple[_T, _T]:
        """(A→B, B→A) from (client→server, server→client)."""
        return (forward, backward) if self.roles.client_is_a else (backward, forward)

    @property
    def one_way_ms(self) -> tuple[Distribution | None, Distribution | None]:
        """One-way delay distributions (A→B, B→A)."""
        return self._direction(self.echo.forward_ms, self.echo.backward_ms)

    @property
    def loss_pct_directional(self) -> tuple[float | None, float | None]:
        """Loss (A→B, B→A)."""
        return self._direction(self.echo.forward_loss_pct, self.echo.backward_loss_pct)

    @property
    def jitter_ms(self) -> tuple[float | None, float | None]:
        """Mean IPDV (A→B, B→A)."""
        return self._direction(self.echo.forward_jitter_ms, self.echo.backward_jitter_ms)

    @property
    def errors(self) -> list[str]:
        found = []
        if self.echo.returned == 0:
            found.append(f"no echo answer came back ({self.echo.sent} probes)")
        for test in (self.tcp, self.udp):
            if test is not None and test.error:
                found.append(f"{test.protocol.upper()} throughput: {test.error}")
        return found

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_json(self) -> dict[str, Any]:
        ab, ba = self.one_way_ms
        loss_ab, loss_ba = self.loss_pct_directional
        jitter_ab, jitter_ba = self.jitter_ms
        rtt = self.echo.rtt_ms
        tcp, udp = self.tcp, self.udp
        return {
            "scenario": self.scenario,
            "run_id": self.run_id,
            "host_a": self.roles.a,
            "host_b": self.roles.b,
            "server": self.roles.server,
            "target": self.target,
            "probes": self.echo.sent,
            "rtt_ms_median": _ms(rtt.median if rtt else None),
            "rtt_ms_p95": _ms(rtt.p95 if rtt else None),
            "rtt_ms_min": _ms(rtt.min if rtt else None),
            "rtt_ms_max": _ms(rtt.max if rtt else None),
            "rtt_ms_mean": _ms(rtt.mean if rtt else None),
            "loss_pct": _pct(self.echo.loss_pct),
            "loss_pct_ab": _pct(loss_ab),
            "loss_pct_ba": _pct(loss_ba),
            "one_way_ms_ab_median": _ms(ab.median if ab else None),
            "one_way_ms_ab_p95": _ms(ab.p95 if ab else None),
            "one_way_ms_ba_median": _ms(ba.median if ba else None),
            "one_way_ms_ba_p95": _ms(ba.p95 if ba else None),
            "jitter_ms_ab": _ms(jitter_ab),
            "jitter_ms_ba": _ms(jitter_ba),
            "throughput_direction": f"{self.roles.a}->{self.roles.b}",
            "throughput_mbps": _mbps(tcp.mbps if tcp else None),
            "tcp_retransmits": tcp.retransmits if tcp else None,
            "udp_target": self.udp_rate if udp else None,
            "udp_throughput_mbps": _mbps(udp.mbps if udp else None),
            "udp_loss_pct": _pct(udp.loss_pct if udp else None),
            "udp_jitter_ms": _ms(udp.jitter_ms if udp else None),
            "notes": list(self.notes),
            "errors": self.errors,
            "late_releases": [late_json(line) for line in self.late],
            "emulator_late": any(line.late for line in self.late),
            "late_releases_throughput": [late_json(line) for line in self.late_throughput],
        }


def late_json(line: Lateness) -> dict[str, Any]:
    """One delay line direction's punctuality: `link` is the node whose attachment link it is,
    `direction` `up` (from the node) or `down` (to it)."""
    node, _, direction = line.name.rpartition(".")
    return {
        "link": node,
        "direction": direction,
        "released": line.released,
        "late": line.late,
        "late_max_ms": round(line.late_max_s * 1e3, 3) if line.released else None,
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _mbps(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def measure(network: Network, setup: LinkSetup) -> LinkReport:
    """Probe an already built network: echo first (idle link), then TCP, then UDP throughput."""
    roles, options = setup.roles, setup.options
    server_address = network.address(roles.server)
    lateness(network.run)  # starts the delay lines' count afresh: the probe's packets only
    records = run_terminable(
        echo_probe(
            network.ns(roles.client),
            network.ns(roles.server),
            server_address,
            options.port,
            options.count,
            options.interval_s,
            options.drain_s,
        )
    )
    echo = echo_stats(records)
    late = tuple(lateness(network.run))
    tcp = udp = None
    notes = list(setup.notes)
    if options.duration_s > 0:
        kwargs: dict[str, Any] = {
            "reverse": not roles.client_is_a,
            "duration_s": options.duration_s,
            "udp_rate": options.udp_rate,
        }
        target = (roles.client, roles.server, server_address, options.port)
        tcp, _ = run_iperf(network, *target, "tcp", **kwargs)
        if echo.echoed:
            udp, lost = run_iperf(network, *target, "udp", **kwargs)
            if lost:
                notes.append(
                    f"the link lost iperf3's UDP handshake {lost} time(s); "
                    "the UDP test was run again (iperf3 does not resend it)"
                )
        else:  # iperf3 would wait for UDP that never comes until its own timeout
            udp = IperfResult(
                "udp", error=f"skipped: no UDP echo probe reached {roles.server}:{options.port}"
            )
    return LinkReport(
        scenario=setup.scenario.name,
        run_id=network.run.id,
        roles=roles,
        target=f"{server_address}:{options.port}",
        echo=echo,
        tcp=tcp,
        udp=udp,
        udp_rate=options.udp_rate,
        notes=tuple(notes),
        late=late,
        late_throughput=tuple(lateness(network.run)) if options.duration_s > 0 else (),
    )


def probe_link(setup: LinkSetup) -> LinkReport:
    """Build the scenario's network, measure between the two hosts, tear everything down."""
    if setup.options.duration_s > 0 and shutil.which("iperf3") is None:
        raise EnvironmentProblem(
            "iperf3 is needed for the throughput tests",
            fix="apt-get install iperf3, or skip throughput with --duration 0",
        )
    roles = setup.roles
    label = f"probe-link {setup.scenario.name} {roles.a} {roles.b}"
    with emulated_network(setup.plan, label=label) as network:
        return measure(network, setup)
