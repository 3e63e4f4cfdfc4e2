"""coturn started per run inside a server namespace, used from a host behind a NAT.

Why: TURN is the fallback that makes a call connect when nothing else does, so it must work
from where real clients sit (behind a NAT, over UDP, TCP and TLS, on port 443 for locked-down
firewalls), relay to the emulated public addresses, refuse wrong credentials quickly and
recognisably (a 401, not a timeout that looks like a network problem), and vanish with the run.
Every allocation here is made by aioice's TURN client, the one aiortc uses, from alice's
namespace; the relayed address must be coturn's public address and the mapped address alice's
NAT, which proves the packets really crossed the emulated network.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from simnet import settings
from simnet.errors import EnvironmentProblem, SimnetError
from simnet.net import netns
from simnet.net.builder import Network, emulated_network
from simnet.net.plan import plan_network
from simnet.scenario.load import load_scenario, scenario_from_dict
from simnet.services.coturn import (
    CoturnHandle,
    LongTermAuth,
    RestAuth,
    TurnConfig,
    start_coturn,
    turn_credentials,
)
from simnet.services.turn_client import (
    TurnAllocation,
    TurnAllocationError,
    TurnTransportKind,
    allocate,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
]

SCENARIO = {
    "name": "coturn-test",
    "nats": {"home": {"preset": "port-restricted-cone"}},
    "hosts": {"alice": {"behind": "home"}, "bob": {"behind": "internet"}},
    "servers": {"turn": {"kind": "turn"}},
}
ROOT = Path(__file__).resolve().parents[2]
LONG_TERM = LongTermAuth.single("alice", "correct-horse")
STEP_TIMEOUT_S = 5.0


def _turnserver_pids() -> set[int]:
    done = subprocess.run(["pgrep", "-x", "turnserver"], capture_output=True, text=True)
    return {int(p) for p in done.stdout.split()}


def _assert_run_left_nothing(net: Network) -> None:
    survivors = set(net.run.pids) & _turnserver_pids()
    assert not survivors, f"turnserver processes of run {net.run.id} survived: {survivors}"
    assert not netns.list_names(f"sn-{net.run.id}-")


@pytest.fixture
def network() -> Iterator[Network]:
    plan = plan_network(scenario_from_dict(SCENARIO))
    with emulated_network(plan, label="test-coturn") as net:
        yield net
    _assert_run_left_nothing(net)


def _pinned_tls(handle: CoturnHandle) -> ssl.SSLContext:
    """Trust exactly this run's self-signed certificate (hostname = the IP, checked by SAN)."""
    assert handle.cert_path is not None
    return ssl.create_default_context(cafile=str(handle.cert_path))


async def _relay_round_trip(net: Network, alloc: TurnAllocation) -> None:
    """bob (a public host) and alice exchange a datagram through alice's relay."""
    relayed = alloc.relayed_address
    loop = asyncio.get_running_loop()
    bob = netns.socket_in(net.ns("bob"))
    try:
        bob.setblocking(False)
        bob.bind((str(net.address("bob")), 0))
        bob_addr = bob.getsockname()
        alloc.sendto(b"ping via relay", bob_addr)
        data, source = await asyncio.wait_for(loop.sock_recvfrom(bob, 2048), STEP_TIMEOUT_S)
        assert data == b"ping via relay"
        assert source == relayed  # bob sees coturn's relay, never alice's NAT
        await loop.sock_sendto(bob, b"pong to relay", relayed)
        reply, peer = await alloc.recv(STEP_TIMEOUT_S)
        assert (reply, peer) == (b"pong to relay", bob_addr)
        assert not alloc.errors
    finally:
        bob.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_long_term_allocation_from_behind_a_nat(
    network: Network, transport: TurnTransportKind
) -> None:
    config = TurnConfig(auth=LONG_TERM)
    handle = await start_coturn(network, "turn", config)
    assert handle.alive() and handle.ready_s > 0
    username, password = turn_credentials(handle.config)
    server = (str(network.address("turn")), config.port)

    alloc = await allocate(network.ns("alice"), server, username, password, transport=transport)
    try:
        relayed_ip, relayed_port = alloc.relayed_address
        assert relayed_ip == str(network.address("turn"))  # coturn's public address
        assert config.min_relay_port <= relayed_port <= config.max_relay_port
        assert alloc.mapped_address[0] == str(network.address("home"))  # alice's NAT
        await _relay_round_trip(network, alloc)
    finally:
        await alloc.close()
    handle.stop()
    assert not handle.alive()


async def test_tls_and_port_443_endpoints(network: Network) -> None:
    handle = await start_coturn(network, "turn", TurnConfig(auth=LONG_TERM))
    username, password = handle.credentials()
    ip = str(network.address("turn"))
    endpoints: list[tuple[TurnTransportKind, int]] = [
        ("tls", 5349),
        ("tcp", 443),  # a firewall allowing only TCP 443 out
        ("tls", 443),  # coturn detects TLS on the aux endpoint too
        ("udp", 443),
    ]
    for transport, port in endpoints:
        alloc = await allocate(
            network.ns("alice"),
            (ip, port),
            username,
            password,
            transport=transport,
            ssl_context=_pinned_tls(handle),
        )
        assert alloc.relayed_address[0] == ip, (transport, port)
        assert alloc.mapped_address[0] == str(network.address("home"))
        await alloc.close()
    assert set(handle.urls()) == {
        f"turn:{ip}:3478?transport=udp",
        f"turn:{ip}:443?transport=udp",
        f"turn:{ip}:3478?transport=tcp",
        f"turn:{ip}:443?transport=tcp",
        f"turns:{ip}:5349?transport=tcp",
        f"turns:{ip}:443?transport=tcp",
    }


@pytest.fixture
def corporate_network() -> Iterator[Network]:
    # Built outside the test's event loop: pyroute2's synchronous IPRoute runs its own loop and
    # fails with "This event loop is already running" inside one.
    scenario = load_scenario(ROOT / "scenarios" / "corporate-udp-blocked.yaml")
    with emulated_network(plan_network(scenario), label="test-coturn-corp") as net:
        yield net
    _assert_run_left_nothing(net)


async def test_corporate_firewall_reaches_turn_only_on_tcp_443(corporate_network: Network) -> None:
    """The shipped corporate scenario: UDP and TCP 3478 are blocked, TCP/TLS 443 get through."""
    net = corporate_network
    handle = await start_coturn(net, "turn", TurnConfig(auth=LONG_TERM))
    alice, ip = net.ns("alice"), str(handle.address)
    credentials = handle.credentials()
    blocked: list[tuple[TurnTransportKind, int]] = [("udp", 3478), ("tcp", 3478), ("udp", 443)]
    attempts = [
        allocate(alice, (ip, port), *credentials, transport=transport, timeout_s=1.0)
        for transport, port in blocked
    ]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    kinds = [o.kind if isinstance(o, TurnAllocationError) else o for o in outcomes]
    assert kinds == ["timeout"] * len(blocked)  # the firewall drops silently
    allowed: list[TurnTransportKind] = ["tcp", "tls"]
    for transport in allowed:
        alloc = await allocate(
            alice, (ip, 443), *credentials, transport=transport, ssl_context=_pinned_tls(handle)
        )
        assert alloc.relayed_address[0] == ip
        assert alloc.mapped_address[0] == str(net.address("office"))
        await alloc.permit(str(net.address("home")))  # bob's NAT: a relay target
        await alloc.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_rest_ephemeral_credentials(network: Network, transport: TurnTransportKind) -> None:
    config = TurnConfig(auth=RestAuth("shared-secret", ttl_s=600))
    handle = await start_coturn(network, "turn", config)
    server = (str(handle.address), config.port)
    alice = network.ns("alice")

    username, password = turn_credentials(config, "alice")
    alloc = await allocate(alice, server, username, password, transport=transport)
    assert alloc.relayed_address[0] == str(network.address("turn"))
    await _relay_round_trip(network, alloc)
    await alloc.close()

    expired = turn_credentials(config, "alice", now=time.time() - 2 * 600)
    with pytest.raises(TurnAllocationError) as info:
        await allocate(alice, server, *expired, transport=transport)
    assert (info.value.kind, info.value.code) == ("unauthorized", 401)

    other_secret = TurnConfig(auth=RestAuth("not-the-secret"))
    forged = turn_credentials(other_secret, "alice")
    with pytest.raises(TurnAllocationError) as info:
        await allocate(alice, server, *forged, transport=transport)
    assert (info.value.kind, info.value.code) == ("unauthorized", 401)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_wrong_password_is_a_quick_401(
    network: Network, transport: TurnTransportKind
) -> None:
    handle = await start_coturn(network, "turn", TurnConfig(auth=LONG_TERM))
    server = (str(handle.address), handle.config.port)
    with pytest.raises(TurnAllocationError) as info:
        await allocate(
            network.ns("alice"), server, "alice", "wrong", transport=transport, timeout_s=3
        )
    # coturn's 401 answer, not the 3 s timeout (that would be kind "timeout", no code)
    assert (info.value.kind, info.value.code) == ("unauthorized", 401)
    with pytest.raises(TurnAllocationError) as info:
        await allocate(network.ns("alice"), server, "nobody", "x", transport=transport)
    assert info.value.kind == "unauthorized"


async def test_peer_filtering(network: Network) -> None:
    """coturn's defaults deny loopback, 0/8 and (with our flag) multicast, not private ranges;
    the emulated public ranges stay allowed even when everything else is denied (allowed
    ranges win in coturn)."""
    handle = await start_coturn(network, "turn", TurnConfig(auth=LONG_TERM))
    server = (str(handle.address), handle.config.port)
    alloc = await allocate(network.ns("alice"), server, *handle.credentials())
    for peer in ("192.0.2.1", "198.51.100.10", "203.0.113.10", "192.168.1.10", "10.0.0.1"):
        await alloc.permit(peer)
    for peer in ("127.0.0.1", "0.1.2.3", "224.0.0.1"):  # loopback, "this network", multicast
        with pytest.raises(TurnAllocationError) as info:
            await alloc.permit(peer)
        assert (info.value.kind, info.value.code) == ("forbidden", 403), peer
    await alloc.close()
    handle.stop()

    strict = TurnConfig(auth=LONG_TERM, denied_peers=(IPv4Network("0.0.0.0/0"),))
    handle = await start_coturn(network, "turn", strict)
    alloc = await allocate(network.ns("alice"), server, *handle.credentials())
    for peer in ("192.0.2.1", "198.51.100.10", "203.0.113.10", "203.0.113.130"):
        await alloc.permit(peer)
    for peer in ("192.168.1.10", "10.1.2.3", "100.64.0.10"):
        with pytest.raises(TurnAllocationError) as info:
            await alloc.permit(peer)
        assert info.value.code == 403, peer
    await alloc.close()


async def test_early_exit_is_an_error_with_the_log(network: Network, tmp_path: Path) -> None:
    # turnserver answers an unknown option with its help text and exit code 0.
    config = TurnConfig(extra_args=("--no-such-option",))
    with pytest.raises(SimnetError, match="exited during start-up") as info:
        await start_coturn(network, "turn", config, workdir=tmp_path)
    assert "Help" in str(info.value)  # the end of what it printed
    assert str(tmp_path) in str(info.value)  # where the whole log is
    assert not set(network.run.pids) & _turnserver_pids()


async def test_never_ready_is_an_error_with_the_log(network: Network, tmp_path: Path) -> None:
    # An address the namespace does not have: coturn retries bind() forever.
    config = TurnConfig(listening_ips=(IPv4Address("192.0.2.99"),))
    started = time.monotonic()
    with pytest.raises(SimnetError, match="did not answer") as info:
        await start_coturn(network, "turn", config, workdir=tmp_path, timeout_s=1.0)
    assert time.monotonic() - started >= 1.0  # it waited its 1 s, then gave up (not a hang)
    assert "Cannot bind" in str(info.value)
    assert not set(network.run.pids) & _turnserver_pids()


async def test_missing_binary(network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EnvironmentProblem, match="not installed") as info:
        await start_coturn(network, "turn")
    assert "./setup.sh" in str(info.value)
    assert not network.run.pids


async def test_stop_ends_the_process_and_keeps_its_log(network: Network) -> None:
    handle = await start_coturn(network, "turn")
    assert handle.files.log.exists() and handle.files.pid.exists()
    assert int(handle.files.pid.read_text().split()[0]) == handle.pid
    assert handle.files.workdir.is_relative_to(network.run.workdir)
    handle.stop()
    assert handle.pid not in _turnserver_pids()
    assert handle.files.log.exists()  # evidence stays until the run is torn down
    handle.stop()  # idempotent


async def test_coturn_runs_real_time_below_the_delay_lines(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every coturn thread is SCHED_FIFO at the server priority, so hundreds of peer sessions
    cannot starve it (`simnet.net.realtime`); 0 leaves it to normal scheduling."""
    handle = await start_coturn(network, "turn")
    threads = [int(t) for t in os.listdir(f"/proc/{handle.pid}/task")]
    assert len(threads) > 1  # coturn's relay threads, not just its main one
    assert {os.sched_getscheduler(t) for t in threads} == {os.SCHED_FIFO}
    assert {os.sched_getparam(t).sched_priority for t in threads} == {settings.server_rt_priority()}
    handle.stop()
    monkeypatch.setenv(settings.SERVER_RT_PRIORITY_ENV, "0")
    plain = await start_coturn(network, "turn")
    assert os.sched_getscheduler(plain.pid) == os.SCHED_OTHER


def test_no_turnserver_survives_the_run() -> None:
    """Teardown is the run's job: a coturn never stopped explicitly dies with the network."""
    plan = plan_network(scenario_from_dict(SCENARIO))
    with emulated_network(plan, label="test-coturn-teardown") as net:
        handle = asyncio.run(start_coturn(net, "turn"))
        pid = handle.pid
        assert pid in _turnserver_pids()
        assert pid in net.run.pids
        workdir: Path = handle.files.workdir
    assert pid not in _turnserver_pids()
    assert not Path(f"/proc/{pid}").exists()
    _assert_run_left_nothing(net)
    assert not workdir.exists()  # the run's work dir goes with the run
