"""Names and NAT64 on real processes: unbound as the zone server and as a DNS64 resolver, a
host resolving through its own resolver (/etc/netns/<ns>/resolv.conf seen through `ip netns
exec`), tayga translating a v6-only host's traffic to an IPv4-only server, and nothing of it
left after the run (processes, /etc/netns entries, the TUN with its namespace)."""

from __future__ import annotations

import functools
import json
import signal
import socket
import subprocess
import sys
import threading

import pytest
import yaml

from simnet.cleanup import remove_run
from simnet.net import netns, resolv
from simnet.net.builder import emulated_network
from simnet.net.plan import plan_network
from simnet.net.process import start
from simnet.run.verify_nat import verify
from simnet.scenario.load import scenario_from_dict
from simnet.services.dns import (
    answers,
    query,
    render_zone,
    server_name,
    start_network_dns,
    start_unbound,
)
from tests.integration.conftest import (
    ETC_NETNS,
    leftovers,
    process_alive,
    root_links,
    state_of,
)

V4_NETWORK = {
    "name": "names",
    "nats": {"home": {"preset": "symmetric"}},
    "hosts": {"alice": {"behind": "home"}},
    "servers": {"turn": {"kind": "turn"}, "web": {"kind": "signaling"}},
}

GETADDRINFO = (
    "import json, socket, sys\n"
    "found = socket.getaddrinfo(sys.argv[1], 3478, type=socket.SOCK_DGRAM)\n"
    "print(json.dumps({'pid': __import__('os').getpid(), 'addresses': [a[4][0] for a in found],"
    " 'resolv': open('/etc/resolv.conf').read()}))\n"
)


@pytest.mark.integration
def test_a_host_resolves_server_names_through_its_own_resolver() -> None:
    plan = plan_network(scenario_from_dict(V4_NETWORK))
    with emulated_network(plan, label="test_nat64_dns names") as net:
        run = net.run
        zone_server = net.address("web")
        records = {server_name("turn"): [net.address("turn")]}
        zone = start_unbound(
            run, "zone", "web", net.ns("web"), render_zone([zone_server], records), [zone_server]
        )
        direct = query(net.ns("alice"), zone_server, server_name("turn"), "A")
        assert answers(direct) == [str(net.address("turn"))]
        assert answers(query(net.ns("alice"), zone_server, "example.com", "A")) == []
        path = resolv.install(run, net.ns("alice"), [zone_server])
        child = start(
            run,
            "getaddrinfo",
            [sys.executable, "-c", GETADDRINFO, server_name("turn")],
            ns=net.ns("alice"),
            stdout=subprocess.PIPE,
        )
        out, _ = child.popen.communicate(timeout=20)
        seen = json.loads(out)
        assert seen["pid"] == child.pid  # `ip netns exec` execs in place
        assert seen["addresses"] == [str(net.address("turn"))]
        assert seen["resolv"] == path.read_text()
        pids = [zone.process.pid]
    assert not path.exists()
    assert leftovers(run.id, pids) == {}


CARRIER = {
    "name": "carrier",
    "nats": {"carrier": {"ip": "v6", "nat64": True}},
    "hosts": {"phone": {"behind": "carrier"}},
    "servers": {"web": {"kind": "signaling", "ip": "v4"}, "turn": {"kind": "turn"}},
}

EXCHANGE = (
    "import socket, sys\n"
    "family, _, _, _, address = socket.getaddrinfo(sys.argv[1], 7000, type=socket.SOCK_DGRAM)[0]\n"
    "udp = socket.socket(family, socket.SOCK_DGRAM)\n"
    "udp.settimeout(5)\n"
    "udp.sendto(b'udp', address)\n"
    "assert udp.recv(64) == b'udp back'\n"
    "tcp = socket.create_connection(address[:2], timeout=5)\n"
    "tcp.sendall(b'tcp')\n"
    "assert tcp.recv(64) == b'tcp back'\n"
    "print(address[0])\n"
)


def serve_once(ns: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket listening on `port` in namespace `ns` (IPv4 only)."""
    udp = netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", port))
    tcp = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("0.0.0.0", port))
    tcp.listen(1)
    return udp, tcp


def answer_both(udp: socket.socket, tcp: socket.socket, seen: dict[str, str]) -> None:
    """Echo one datagram and one connection's first message, noting where each came from."""
    udp.settimeout(20)
    data, source = udp.recvfrom(64)
    seen["udp"] = source[0]
    udp.sendto(data + b" back", source)
    tcp.settimeout(20)
    conn, source = tcp.accept()
    with conn:
        seen["tcp"] = source[0]
        conn.sendall(conn.recv(64) + b" back")


@pytest.mark.integration
def test_a_v6_only_host_reaches_an_ipv4_only_server_by_name_through_dns64_and_nat64() -> None:
    links_before = root_links()
    plan = plan_network(scenario_from_dict(CARRIER))
    carrier = plan.nodes["carrier"].router
    assert carrier is not None and carrier.nat64_prefix is not None
    phone = plan.nodes["phone"]
    assert phone.families == {6} and phone.resolver == carrier.dns64
    with emulated_network(plan, label="test_nat64_dns carrier") as net:
        run = net.run
        dns = start_network_dns(net)
        web, turn = net.address("web"), plan.nodes["turn"]
        resolver = phone.resolver
        assert resolver is not None
        ask = functools.partial(query, net.ns("phone"), resolver)
        synthesized = str(carrier.nat64_prefix.network_address + int(web))
        assert answers(ask(server_name("web"), "AAAA")) == [synthesized]
        assert answers(ask(server_name("web"), "A")) == [str(web)]
        # a name with an AAAA record keeps it: a dual server is reached untranslated
        assert answers(ask(server_name("turn"), "AAAA")) == [str(turn.address_of(6))]
        assert answers(ask("example.com", "AAAA")) == []
        # a process in the phone's namespace resolves through the DNS64, then sends UDP and
        # TCP to what it got: the server sees them come from the carrier's IPv4 WAN address
        udp, tcp = serve_once(net.ns("web"), 7000)
        seen: dict[str, str] = {}
        server = threading.Thread(target=answer_both, args=(udp, tcp, seen))
        server.start()
        child = start(
            run,
            "exchange",
            [sys.executable, "-c", EXCHANGE, server_name("web")],
            ns=net.ns("phone"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out, _ = child.popen.communicate(timeout=30)
        server.join(timeout=30)
        udp.close()
        tcp.close()
        assert child.returncode == 0, out.decode()
        assert out.decode().strip() == synthesized
        assert seen == {"udp": str(carrier.wan_address), "tcp": str(carrier.wan_address)}
        pids = [p.process.pid for p in [dns.zone, *dns.dns64.values()] if p is not None]
        pids += [pid for pid in run.pids if pid not in pids]  # tayga among them
        assert len(dns.dns64) == 1 and len(pids) >= 3
    assert leftovers(run.id, pids) == {}
    assert root_links() == links_before  # no TUN, no veth outside the run's namespaces


NAT64S = {
    "name": "nat64s",
    "nats": {
        "carrier": {"ip": "v6", "nat64": True},  # a carrier's default: symmetric, random ports
        "cone": {"ip": "v6", "nat64": True, "preset": "full-cone"},
        "restricted": {
            "ip": "v6",
            "nat64": True,
            "mapping": "address-dependent",
            "filtering": "address-dependent",
            "port_allocation": "sequential",
        },
    },
}


@pytest.mark.integration
def test_verify_nat_measures_each_nat64_as_configured() -> None:
    everything = verify(scenario_from_dict(NAT64S))
    verdicts = {v.nat: v for v in everything if v.nat64}
    assert {v.as_json()["family"] for v in verdicts.values()} == {"nat64"} and len(verdicts) == 3
    assert all(v.as_configured for v in everything)  # the IPv6 sides too
    for verdict in verdicts.values():
        assert verdict.observed is not None and verdict.observed.translates
        assert verdict.as_configured, (verdict.nat, verdict.mismatches)
    carrier = verdicts["carrier"].as_json()
    assert carrier["family"] == "nat64" and carrier["preset"] == "symmetric"
    assert (carrier["mapping"], carrier["filtering"], carrier["port_allocation"]) == (
        "address-and-port-dependent",
        "address-and-port-dependent",
        "random",
    )
    assert verdicts["cone"].as_json()["mapping"] == "endpoint-independent"
    assert verdicts["restricted"].as_json()["filtering"] == "address-dependent"


HOLD = (
    "import sys, time\n"
    "from simnet.net.builder import emulated_network\n"
    "from simnet.net.plan import plan_network\n"
    "from simnet.scenario.load import scenario_from_dict\n"
    "from simnet.services.dns import start_network_dns\n"
    "plan = plan_network(scenario_from_dict(" + repr(CARRIER) + "))\n"
    "with emulated_network(plan, label='test_nat64_dns killed') as net:\n"
    "    start_network_dns(net)\n"
    "    print(net.run.id, flush=True)\n"
    "    time.sleep(300)\n"
)


@pytest.mark.integration
def test_cleanup_removes_a_killed_runs_tayga_unbound_and_resolv_conf() -> None:
    links_before = root_links()
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE)
    run_id = ""
    try:
        assert holder.stdout is not None
        run_id = holder.stdout.readline().decode().strip()
        assert run_id, "the holding run did not start"
        state = state_of(run_id)
        assert state is not None
        holder.kill()
        holder.wait(timeout=10)
        names = {p["name"].split("-")[0] for p in state["processes"]}
        assert {"tayga", "unbound"} <= names
        pids = [p for p in state["pids"] if process_alive(p)]
        assert len(pids) >= 3  # tayga, the zone server, the DNS64: all outlive their owner
        assert list(ETC_NETNS.glob(f"sn-{run_id}-*"))  # the phone's and servers' resolv.conf
        remove_run(state)  # what `simnet cleanup` does for each dead run, for this one only
        assert leftovers(run_id, pids) == {}
        assert root_links() == links_before
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if run_id and (left := state_of(run_id)) is not None:  # a failed check: tidy up anyway
            remove_run(left)


HELD = """\
nats:
  carrier: {ip: v6, nat64: true}
hosts:
  phone: {behind: carrier}
servers:
  web: {kind: signaling, ip: v4}
"""


@pytest.mark.integration
def test_a_held_network_resolves_names_for_simnet_exec(scenario_file, simnet_up, tools) -> None:
    path = scenario_file(HELD)
    held = simnet_up(path).wait_ready()

    found = tools.run_cli(
        "exec", "--run", held.run_id, "phone", "--", "getent", "ahosts", "web.simnet.test"
    )
    ping = tools.run_cli(
        "exec", "--run", held.run_id, "phone", "--", "ping", "-c1", "-W2", "web.simnet.test"
    )

    plan = plan_network(scenario_from_dict({"name": "held", **yaml.safe_load(HELD)}))
    carrier = plan.nodes["carrier"].router
    assert carrier is not None and carrier.nat64_prefix is not None
    synthesized = str(carrier.nat64_prefix.network_address + int(plan.nodes["web"].address))
    assert found.returncode == 0, found.output
    assert found.stdout.split()[0] == synthesized
    assert ping.returncode == 0 and "1 received" in ping.stdout, ping.output
    held.signal(signal.SIGTERM)
    held.wait_exit()
    assert tools.leftovers(held.run_id, held.pids) == {}


@pytest.mark.integration
def test_a_nat64_binding_expires_after_its_configured_timeout() -> None:
    scenario = {
        "name": "life",
        "nats": {"carrier": {"ip": "v6", "nat64": True, "udp_timeout_s": 3}},
    }
    (verdict,) = [v for v in verify(scenario_from_dict(scenario), lifetime_max_s=6) if v.nat64]
    assert verdict.as_configured, verdict.mismatches
    assert verdict.observed is not None and verdict.observed.lifetime_upper_s is not None
    assert verdict.observed.lifetime_lower_s <= 3 <= verdict.observed.lifetime_upper_s
