"""An http-proxy (squid) and a network whose only way out is that proxy, proven with sockets.

A host behind `firewall.proxy_only` reaches a server's port 443 through the proxy's `CONNECT`
(bytes cross the tunnel), is refused a port outside `connect_ports` (403, logged TCP_DENIED),
and reaches nothing directly, TCP or UDP, while the same server answers the proxy itself; the
proxy asks for credentials when it has them. Squid's process and files go with the run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from simnet.net.builder import Network, emulated_network
from simnet.net.netns import socket_in
from simnet.net.plan import plan_network
from simnet.net.process import group_members
from simnet.peerkinds import find_program, kind
from simnet.results.store import load
from simnet.scenario.load import load_scenario, scenario_from_dict
from simnet.scenario.model import PROXY_PORT, ProxyAuth
from simnet.services.squid import ProxyConfig, start_squid
from tests.integration.pcapfile import packets, udp_ends

TIMEOUT_S = 5.0
BLOCKED_S = 1.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/usr/sbin/squid").exists(), reason="squid missing"),
]


def scenario(auth: dict[str, str] | None = None) -> dict[str, object]:
    proxy: dict[str, object] = {"kind": "http-proxy"}
    if auth:
        proxy["auth"] = auth
    return {
        "nats": {"corp": {"preset": "port-restricted-cone", "firewall": {"proxy_only": "proxy"}}},
        "hosts": {"office": {"behind": "corp"}, "web": {"behind": "internet"}},
        "servers": {"proxy": proxy},
    }


def listen(network: Network, port: int) -> socket.socket:
    sock = socket_in(network.ns("web"), socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((str(network.address("web")), port))
    sock.listen(4)
    sock.settimeout(TIMEOUT_S)
    return sock


def connect(network: Network, host: str, to: str, port: int, timeout: float) -> socket.socket:
    sock = socket_in(network.ns(host), socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect((to, port))
    return sock


def via_proxy(
    network: Network, target: str, auth: ProxyAuth | None = None
) -> tuple[str, socket.socket]:
    """CONNECT `target` through the proxy from office; the status line and the socket."""
    sock = connect(network, "office", str(network.address("proxy")), PROXY_PORT, TIMEOUT_S)
    header = ""
    if auth is not None:
        token = base64.b64encode(f"{auth.user}:{auth.password}".encode()).decode()
        header = f"Proxy-Authorization: Basic {token}\r\n"
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{header}\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply.split(b"\r\n", 1)[0].decode(), sock


def test_the_proxy_is_the_only_way_out_and_tunnels_to_443_only() -> None:
    plan = plan_network(scenario_from_dict(scenario()))
    with emulated_network(plan, label="test_http_proxy") as network:
        proxy = asyncio.run(start_squid(network, "proxy", ProxyConfig((network.address("proxy"),))))
        web = str(network.address("web"))
        wan = str(network.plan.routers_of("office")[0].wan_address)  # whom squid sees: its NAT
        with listen(network, 443) as https, listen(network, 8443) as other:
            status, tunnel = via_proxy(network, f"{web}:443")
            assert " 200 " in status
            peer, _ = https.accept()
            tunnel.sendall(b"ping")
            assert peer.recv(4) == b"ping"
            # squid logs a tunnel when it closes: while it is open, its manager names it
            assert not [r for r in proxy.access_log() if r.method == "CONNECT"]
            (open_tunnel,) = proxy.open_tunnels()
            assert (open_tunnel.client, open_tunnel.target) == (wan, f"{web}:443")
            peer.close()
            tunnel.close()
            status, refused = via_proxy(network, f"{web}:8443")
            refused.close()
            assert " 403 " in status
            with pytest.raises(OSError):  # direct TCP, even to 443: dropped at the router
                connect(network, "office", web, 443, BLOCKED_S)
            assert connect(network, "proxy", web, 8443, TIMEOUT_S)  # the control: reachable
            other.accept()[0].close()
        udp = socket_in(network.ns("web"), socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((web, 3478))
        udp.settimeout(BLOCKED_S)
        sender = socket_in(network.ns("office"), socket.AF_INET, socket.SOCK_DGRAM)
        sender.sendto(b"x", (web, 3478))
        with pytest.raises(TimeoutError):
            udp.recv(16)
        udp.close()
        sender.close()
        log = [r for r in proxy.access_log() if r.method == "CONNECT"]
        assert [(r.status.split("/")[0], r.target) for r in log] == [
            ("TCP_TUNNEL", f"{web}:443"),
            ("TCP_DENIED", f"{web}:8443"),
        ]
        pid = proxy.process.pid
    assert not group_members(pid)  # the run ended squid
    assert not proxy.files.workdir.exists()


def test_a_proxy_with_auth_wants_the_password() -> None:
    auth = ProxyAuth(user="alice", password="s3cret")
    plan = plan_network(scenario_from_dict(scenario(auth.model_dump())))
    with emulated_network(plan, label="test_http_proxy") as network:
        proxy = asyncio.run(
            start_squid(network, "proxy", ProxyConfig((network.address("proxy"),), auth=auth))
        )
        web = str(network.address("web"))
        with listen(network, 443) as https:
            status, sock = via_proxy(network, f"{web}:443")
            sock.close()
            assert " 407 " in status
            status, sock = via_proxy(network, f"{web}:443", auth)
            assert " 200 " in status
            assert [r.target for r in proxy.open_tunnels()] == [f"{web}:443"]  # asked with auth
            sock.close()
            https.accept()[0].close()


ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "corporate-proxy.yaml"


def squids_of(run_id: str) -> list[int]:
    """Live squid processes whose configuration is in run `run_id`'s work directory."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"squid") and any(f"{run_id}.d".encode() in a for a in argv):
            found.append(int(entry.name))
    return found


#: a program of the user's own (the external kind): simnet cannot give it a proxy
MINIMAL_PEER = shlex.join([sys.executable, str(ROOT / "examples" / "peers" / "minimal_peer.py")])


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ("servers.proxy.connect_ports=[8443]", "proxy-refused"),
        (f"hosts.alice.peer={{command: '{MINIMAL_PEER}'}}", "proxy-unsupported"),
    ],
)
def test_a_call_the_proxy_cannot_carry_fails_with_its_own_error(
    override: str, error: str, tmp_path: Path, tools: Any
) -> None:
    done = tools.run_cli(
        "run", str(SCENARIO), "--json", "--out", str(tmp_path), "--set", override, timeout=120
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 1 and len(rows) == 1, done.output  # the expectation is unmet
    assert rows[0]["error"] == error and rows[0]["via_proxy"] is False, rows[0]
    assert not squids_of(rows[0]["run_id"])
    assert not tools.namespaces(f"sn-{rows[0]['run_id']}-")


def test_the_scenario_relays_through_the_proxy(tmp_path: Path, tools: Any) -> None:
    """And alice's browser sends no UDP at all (the enterprise policy disable_non_proxied_udp):
    its capture, taken on its own interface before the firewall, has not one UDP packet."""
    done = tools.run_cli(
        "run", str(SCENARIO), "--json", "--out", str(tmp_path), "--pcap", timeout=120
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and len(rows) == 1, done.output
    row = rows[0]
    assert row["via_proxy"] is True and row["path"] == "relay", row
    assert row["relay_protocol"] in ("tcp", "tls") and row["proxy_target"].endswith(":443"), row
    kept = (tmp_path / f"proxy-{row['run_id']}-proxy.log").read_text()  # the log, with the rows
    assert "TCP_TUNNEL/200" in kept and f"CONNECT {row['proxy_target']}" in kept
    (alice,) = tmp_path.glob(f"pcap-{row['run_id']}-*-alice.pcap")
    assert packets(alice), "alice's capture is empty: nothing to judge by"
    assert _udp_sources(alice) == set()
    assert not squids_of(row["run_id"])


def _udp_sources(capture: Path) -> set[str]:
    return {ends[0] for ends in map(udp_ends, packets(capture)) if ends is not None}


#: TURN over TLS by name: nICEr tries TLS to a host name only (the proxy resolves it)
BY_NAME = ("call.ice_urls=names", "servers.turn.ip=dual", "call.turn_transports=[tls]")


NO_FIREFOX = pytest.mark.skipif(not Path("/usr/bin/firefox-esr").exists(), reason="no firefox")
PION = kind("pion").requirement
NO_PION = pytest.mark.skipif(PION is None or not find_program(PION.binaries), reason="no go")


@pytest.mark.parametrize(
    ("peer", "protocol", "overrides"),
    [
        pytest.param("firefox", "tcp", (), marks=NO_FIREFOX),
        pytest.param("firefox", "tls", BY_NAME, marks=NO_FIREFOX),
        pytest.param("pion", "tcp", (), marks=NO_PION),
        ("aiortc", "tls", ()),  # its first TURN URL is the call's first transport's
        ("aiortc", "tcp", ("call.turn_transports=[tcp]",)),
    ],
)
def test_the_other_stacks_relay_through_the_proxy_and_no_udp_of_hers_gets_out(
    peer: str, protocol: str, overrides: tuple[str, ...], tmp_path: Path, tools: Any
) -> None:
    """Firefox alice (its profile's manual proxy, HTTP and SSL), pion alice (its agent's
    CONNECT dialer, for signaling and pion's ICE proxy dialer) or aiortc alice (its agent's
    tunnels: `simnet.peer.aiortc.http_proxy`): signaling and TURN over TCP (or TLS: Firefox's
    to the server's name, aiortc's to its address) go through `CONNECT` to 443. None keeps ICE
    off UDP (Firefox, forced, finds no address to gather on: `simnet.peer.firefox.prefs`; pion's
    proxy dialer is for TURN over TCP only; aiortc still gathers host candidates), so her UDP
    reaches her LAN, and no further: bob's capture
    has not one UDP packet from her office's address."""
    sets = ["--set", f"hosts.alice.peer={peer}", "--set", "call.expect=null"]
    for override in overrides:
        sets += ["--set", override]
    done = tools.run_cli(
        "run", str(SCENARIO), "--json", "--out", str(tmp_path), "--pcap", *sets, timeout=180
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and len(rows) == 1, done.output
    row = rows[0]
    assert row["via_proxy"] is True and row["path"] == "relay", row
    assert row["relay_protocol"] == protocol and row["proxy_target"].endswith(":443"), row
    kept = (tmp_path / f"proxy-{row['run_id']}-proxy.log").read_text()
    assert "TCP_TUNNEL/200 " in kept and f"CONNECT {row['proxy_target']}" in kept
    if peer == "aiortc":  # its agent times its tunnel: the time the proxy added
        (stored,) = load(tmp_path).to_dict("records")
        attempts = [a for a in json.loads(stored["turn_attempts"]) if a["side"] == "offer"]
        assert attempts and all(a["ok"] and a["transport"] == protocol for a in attempts)
        assert all(0 < a["proxy_ms"] <= a["elapsed_ms"] for a in attempts), attempts
        assert row["proxy_connect_ms"] == max(a["proxy_ms"] for a in attempts)
    else:  # a browser's or pion's tunnels are opened in code that reports no time
        assert row["proxy_connect_ms"] is None, row
    office = plan_network(load_scenario(SCENARIO)).routers_of("alice")[0].wan_address
    assert office is not None
    (bob,) = tmp_path.glob(f"pcap-{row['run_id']}-*-bob.pcap")
    assert packets(bob), "bob's capture is empty: nothing to judge by"
    assert str(office) not in _udp_sources(bob)
    assert not squids_of(row["run_id"])


#: credentials with the characters a URL must escape
AUTH = "servers.proxy.auth={user: alice, password: 's3cr:t@/x'}"


@pytest.mark.parametrize(
    ("peer", "error"),
    [
        ("aiortc", None),
        pytest.param("pion", None, marks=NO_PION),
        ("chromium", "proxy-refused"),  # headless, it answers no 407 (docs/guides/proxy.md)
    ],
)
def test_a_proxy_asking_for_credentials_gets_them_from_the_agents_not_from_chromium(
    peer: str, error: str | None, tmp_path: Path, tools: Any
) -> None:
    """pion's and aiortc's agents are given the proxy's basic credentials (in `--proxy`'s URL,
    percent-encoded) and answer with them; Chromium is given the address alone and refused.
    The password is in no output."""
    sets = ["--set", f"hosts.alice.peer={peer}", "--set", "call.expect=null", "--set", AUTH]
    done = tools.run_cli("run", str(SCENARIO), "--json", "--out", str(tmp_path), *sets, timeout=180)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 1, done.output
    row = rows[0]
    assert row["error"] == error, row
    if error is None:
        assert row["via_proxy"] is True and row["path"] == "relay", row
    kept = (tmp_path / f"proxy-{row['run_id']}-proxy.log").read_text()
    assert ("TCP_TUNNEL/200 " in kept) == (error is None), kept
    assert "s3cr" not in done.output and "s3cr" not in json.dumps(row)
    assert not squids_of(row["run_id"])


def test_aiortc_behind_a_proxy_without_turn_over_tcp_or_tls_says_so_at_once(
    tmp_path: Path, tools: Any
) -> None:
    """A call that offers only TURN over UDP cannot go through a proxy: aiortc's agent fails it
    before it starts, saying why, instead of waiting out ICE."""
    sets = ["hosts.alice.peer=aiortc", "call.turn_transports=[udp]", "call.expect=null"]
    args = [arg for s in sets for arg in ("--set", s)]
    done = tools.run_cli("run", str(SCENARIO), "--json", "--out", str(tmp_path), *args, timeout=120)
    assert done.returncode == 1, done.output  # a call without an expectation must connect
    (row,) = load(tmp_path).to_dict("records")
    assert row["error"] == "ice-failed" and not row["connected"], row
    assert "no TURN over TCP or TLS" in row["error_detail"], row["error_detail"]
    assert not squids_of(row["run_id"])
