"""Names and NAT64 on real processes: unbound as the zone server and as a DNS64 resolver, a
host resolving through its own resolver (/etc/netns/<ns>/resolv.conf seen through `ip netns
exec`), tayga translating a v6-only host's traffic to an IPv4-only server, and nothing of it
left after the run (processes, /etc/netns entries, the TUN with its namespace)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from simnet.net import resolv
from simnet.net.builder import emulated_network
from simnet.net.plan import plan_network
from simnet.net.process import start
from simnet.scenario.load import scenario_from_dict
from simnet.services.dns import answers, query, render_zone, server_name, start_unbound
from tests.integration.conftest import leftovers

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
