"""Firefox peers on real namespaces, a real signaling server and a real coturn.

Why: a Firefox peer (nICEr, Firefox's WebRTC) must be interchangeable with the other stacks
behind the peer protocol: started warm in its host's namespace, calling another Firefox and
aiortc with the same page and data-channel protocol, the path it reports being the one its
packets take, silent when idle, and leaving no browser process and no profile behind, whether
it is told to exit or gets SIGTERM.

alice and bob sit on one LAN behind a port-restricted-cone NAT; coturn and the signaling server
are public servers. Each peer is a `PeerAgent` running `simnet.peer.firefox` in its host's
namespace, with its profile in the run's work directory.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from simnet.net import netns
from simnet.net.builder import Network
from simnet.peer.control.agent import PeerAgent, result_of
from simnet.peer.firefox import agent_argv
from simnet.peer.protocol import CallResult
from simnet.run.calls import run_scenario
from simnet.scenario import load_scenario
from simnet.scenario.load import scenario_from_dict
from tests.integration.browserbench import (
    SCENARIOS,
    assert_a_missing_browser_fails_the_start,
    assert_a_run_leaves_no_process,
    assert_idle_sends_nothing,
    assert_ready_in_its_namespace,
    break_the_page_mid_call,
    group_processes,
    lan_scenario,
)
from tests.integration.handover_scenario import HANDOVER
from tests.integration.peerbench import (
    DATA_BYTES,
    TIMEOUTS,
    Bench,
    Services,
    aiortc_agent,
    bench_call,
    built,
    call,
    commands,
    firefox_agent,
    ice_servers,
    install_counters,
    read_counters,
    run_processes,
    start_firefox,
)
from tests.integration.peerbench import bench as make_bench

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SCENARIO = lan_scenario("firefox-peer")
IDLE_WINDOW_S = 5.0  # how long an idle browser is watched for traffic after it said ready


@pytest.fixture
def network() -> Iterator[Network]:
    with built(SCENARIO, "test-firefox-peer") as net:
        yield net


@pytest.fixture
async def bench(network: Network) -> AsyncIterator[Bench]:
    async with make_bench(network, firefox_agent, firefox_agent) as running:
        yield running


@pytest.fixture
async def mixed(network: Network) -> AsyncIterator[Bench]:
    """alice a Firefox peer, bob simnet's aiortc agent."""
    async with make_bench(network, firefox_agent, aiortc_agent) as running:
        yield running


def _firefox_pids(run_id: str) -> list[int]:
    """The run's live processes that are not an agent (browsers and servers)."""
    return [pid for pid, comm in run_processes(run_id) if comm != "python"]


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


async def test_firefox_agent_starts_warm_in_its_namespace_and_leaves_nothing(
    bench: Bench,
) -> None:
    assert_ready_in_its_namespace(bench, "firefox", "Firefox ")
    for host, agent in (("alice", bench.alice), ("bob", bench.bob)):
        ready = agent.ready_event
        profile = bench.net.run.workdir / f"firefox-{host}"
        assert (profile / "user.js").is_file()
        print(
            f"\n{host}: {ready['peer_version']}, spawn->ready {agent.ready_s * 1000:.0f} ms "
            f"(BiDi session after {ready['launch_s'] * 1000:.0f} ms; page and warm-up "
            f"{ready['warm_s'] * 1000:.0f} ms)"
        )
    pid, browser = bench.alice.pid, int(bench.alice.ready_event["browser_pid"])
    profile = bench.net.run.workdir / "firefox-alice"
    await bench.alice.close()
    assert not os.path.exists(f"/proc/{pid}")
    await _gone(browser)  # killed with its agent's group if it had not exited: reaped by init
    assert not profile.exists()  # a clean exit removes the profile
    # none of alice's processes is left (bob's browser and the servers still run)
    assert [p for p in _firefox_pids(bench.net.run.id) if _group(p) == pid] == []


async def test_sigterm_leaves_no_browser_and_no_profile(network: Network) -> None:
    agent = await start_firefox(network, "alice")
    browser = int(agent.ready_event["browser_pid"])
    profile = network.run.workdir / "firefox-alice"
    assert profile.is_dir()
    os.kill(agent.pid, signal.SIGTERM)
    try:
        await _gone(agent.pid)  # the agent closes the browser, reaps it, removes the profile
        await _gone(browser)
        assert not profile.exists()
        assert [p for p in _firefox_pids(network.run.id) if _group(p) == agent.pid] == []
    finally:
        await agent.close()


async def _gone(pid: int, within_s: float = 10.0) -> None:
    """Until process `pid` has exited (a zombie counts: its parent reaps it)."""
    for _ in range(int(within_s / 0.05)):
        if _zombie(pid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"process {pid} still running {within_s:g} s after its agent")


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


async def test_an_idle_firefox_peer_sends_nothing(network: Network) -> None:
    """From its launch to a few seconds after ready, the browser sends no packet out of its
    host (no DNS, no update, telemetry, safe-browsing, captive-portal or remote-settings
    traffic, no mDNS): what a call measures is the call."""
    # inet: IPv4 and IPv6 (an mDNS or DNS query over IPv6 counts too)
    await assert_idle_sends_nothing(network, start_firefox, IDLE_WINDOW_S, "inet")


async def test_a_missing_browser_fails_the_start_saying_how_to_get_one(network: Network) -> None:
    ns = network.ns("alice")
    argv = agent_argv(ns, network.run.workdir / "firefox-alice", firefox="/nonexistent/firefox")
    await assert_a_missing_browser_fails_the_start(
        network, argv, "/nonexistent/firefox", "apt-get install firefox-esr"
    )


def _check(result: CallResult) -> None:
    assert result.error is None, (result.role, result.error, result.error_detail)
    assert result.connected and result.setup_s is not None and result.setup_s > 0


async def test_firefox_calls_firefox_directly_on_a_lan(bench: Bench) -> None:
    net = bench.net
    alice_ip, bob_ip = str(net.address("alice")), str(net.address("bob"))
    install_counters(net.ns("bob"), {"from_alice": alice_ip})
    offer, answer = commands(bench)
    alice_events, bob_events = await bench_call(bench, offer, answer)
    alice, bob = result_of(alice_events), result_of(bob_events)
    for result in (alice, bob):
        _check(result)
        assert result.local_candidates.get("host", 0) >= 1  # real host candidates, no mDNS
        assert result.local_candidate_families.get("ipv4", 0) >= 1
        pair = result.selected_pair
        assert pair is not None and pair.relay is None
        # the peer's host address; learned as peer-reflexive when its check arrives before its
        # trickled candidate (nICEr keeps that type in its stats), as ICE allows
        assert pair.local.type == "host" and pair.remote.type in ("host", "prflx")
    assert bob.dc_bytes == DATA_BYTES
    assert alice.dc_rtt_ms is not None and alice.dc_rtt_ms > 0
    assert alice.selected_pair is not None and alice.selected_pair.remote.address == bob_ip
    assert read_counters(net.ns("bob"))["from_alice"][1] > DATA_BYTES  # straight from alice
    print(
        f"\nfirefox -> firefox on a LAN: setup {alice.setup_s * 1000:.0f} ms, "  # type: ignore[operator]
        f"goodput {bob.dc_goodput_mbps:.1f} Mbit/s, RTT {alice.dc_rtt_ms:.2f} ms"
    )


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_relay_only_call_goes_through_coturn(bench: Bench, transport: str) -> None:
    net = bench.net
    turn, alice_ip = str(bench.turn.address), str(net.address("alice"))
    install_counters(net.ns("bob"), {"from_alice": alice_ip, "from_turn": turn})
    url = f"turn:{turn}:3478?transport={transport}"
    offer, answer = commands(
        bench, ice_servers=ice_servers(bench.turn, url), ice_transport_policy="relay"
    )
    alice_events, bob_events = await bench_call(bench, offer, answer)
    for result in (result_of(alice_events), result_of(bob_events)):
        _check(result)
        assert set(result.local_candidates) == {"relay"}
        pair = result.selected_pair
        assert pair is not None and pair.relay is not None
        assert (pair.local.type, pair.remote.type) == ("relay", "relay")
        assert pair.local.address == turn and pair.relay.transport == transport
        assert pair.relay.server == f"{turn}:3478"
        assert [(a.transport, a.ok) for a in result.turn_attempts] == [(transport, True)]
    at_bob = read_counters(net.ns("bob"))
    assert at_bob["from_alice"] == (0, 0)  # on the same LAN, and still every byte via coturn
    assert at_bob["from_turn"][1] > DATA_BYTES


async def test_turn_over_tls_to_an_ip_literal_is_refused_before_any_packet(bench: Bench) -> None:
    """Firefox tries TURN over TLS only with a host name (nICEr: no TLS without an FQDN), even
    with coturn's CA trusted: from `turns:<IP literal>` it gathers nothing and no packet of the
    server's reaches it (no connection was opened); the call fails as ICE with no candidate."""
    net = bench.net
    turn = str(bench.turn.address)
    install_counters(net.ns("alice"), {"from_turn": turn})
    url = f"turns:{turn}:5349?transport=tcp"
    offer, answer = commands(
        bench, ice_servers=ice_servers(bench.turn, url), ice_transport_policy="relay"
    )
    alice_events, bob_events = await bench_call(bench, offer, answer)
    for result in (result_of(alice_events), result_of(bob_events)):
        assert result.error == "ice-failed" and not result.connected
        assert not result.local_candidates
        assert result.error_detail is not None and "no local candidate" in result.error_detail
    assert read_counters(net.ns("alice"))["from_turn"] == (0, 0)


async def test_a_ca_not_trusted_at_launch_costs_a_relaunch_then_is_in_the_profile(
    network: Network,
) -> None:
    """Agents started trusting nothing: the first call naming a `ca_file` relaunches each
    browser on a fresh profile whose NSS database trusts it, and the call works."""

    async def untrusting(running: Services, host: str) -> PeerAgent:
        return await start_firefox(running.net, host)

    async with make_bench(network, untrusting, untrusting) as bench:
        pids = {a.ready_event["browser_pid"] for a in (bench.alice, bench.bob)}
        offer, answer = commands(bench)  # names coturn's CA as its ca_file
        alice_events, bob_events = await bench_call(bench, offer, answer)
        for result in (result_of(alice_events), result_of(bob_events)):
            _check(result)
        for host in ("alice", "bob"):
            profile = network.run.workdir / f"firefox-{host}"
            listed = subprocess.run(
                ["certutil", "-L", "-d", f"sql:{profile}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert "simnet-ca-0" in listed and "C,," in listed, listed
        assert not pids & set(_firefox_pids(network.run.id))  # both browsers relaunched


async def test_firefox_and_aiortc_call_each_other(mixed: Bench) -> None:
    """Both directions: Firefox trickles to aiortc and takes aiortc's complete SDP; the same
    data-channel protocol runs between the two stacks."""
    assert mixed.alice.ready_event["peer_kind"] == "firefox"
    offer, answer = commands(mixed)
    alice_events, bob_events = await bench_call(mixed, offer, answer)
    offer2, answer2 = commands(mixed, offerer="bob", answerer="alice")
    bob_events2, alice_events2 = await call(mixed.bob, mixed.alice, offer2, answer2)
    ff, aio = result_of(alice_events), result_of(bob_events)
    aio2, ff2 = result_of(bob_events2), result_of(alice_events2)
    for result in (ff, aio, aio2, ff2):
        _check(result)
        assert result.selected_pair is not None and result.selected_pair.relay is None
    assert aio.dc_bytes == DATA_BYTES and ff2.dc_bytes == DATA_BYTES
    trickled = [e for e in bob_events if e["event"] == "remote_candidate"]
    assert trickled and all(e["applied"] for e in trickled)
    print(
        f"\nfirefox -> aiortc: setup {ff.setup_s * 1000:.0f} ms; "  # type: ignore[operator]
        f"aiortc -> firefox: setup {aio2.setup_s * 1000:.0f} ms"  # type: ignore[operator]
    )


# --- through `simnet run`'s job layer, on the shipped scenarios ---------------------------------


def _row(scenario: str, offerer: str, answerer: str, *sets: str) -> dict[str, Any]:
    loaded = load_scenario(
        SCENARIOS / scenario,
        [f"hosts.alice.peer={offerer}", f"hosts.bob.peer={answerer}", *sets],
    )
    (row,) = run_scenario(loaded)
    assert row["connected"] and row["error"] is None, (row["error"], row["error_detail"])
    assert (row["offerer_peer"], row["answerer_peer"]) == (offerer, answerer)
    for side, kind in (("offerer", offerer), ("answerer", answerer)):
        if kind == "firefox":
            assert str(row[f"{side}_peer_version"]).startswith("Firefox ")
    return row


@pytest.mark.parametrize(("offerer", "answerer"), [("firefox", "firefox"), ("firefox", "aiortc")])
def test_two_homes_connect_directly(offerer: str, answerer: str) -> None:
    """Two home routers (port-restricted cone, full cone) and ICE policy all: hole punching
    works, so the call is direct, between server-reflexive candidates at least on one side."""
    row = _row("relay-only.yaml", offerer, answerer, "call.ice_policy=all", "call.expect=null")
    assert row["path"] == "direct", (row["path"], row["local_candidate"], row["remote_candidate"])


@pytest.mark.parametrize(("offerer", "answerer"), [("firefox", "firefox"), ("aiortc", "firefox")])
def test_home_against_a_symmetric_carrier_relays(offerer: str, answerer: str) -> None:
    """A port-restricted home against a symmetric carrier NAT: no hole punching, so TURN/UDP,
    the one transport offered (given several, a browser relays over the first writable)."""
    row = _row("home-vs-carrier.yaml", offerer, answerer, "call.turn_transports=[udp]")
    assert row["path"] == "relay" and row["relay_protocol"] == "udp"


@pytest.mark.parametrize(("offerer", "answerer"), [("firefox", "firefox"), ("firefox", "aiortc")])
def test_relay_only_policy_relays_through_coturn(offerer: str, answerer: str) -> None:
    """ICE policy relay, TURN REST credentials: both sides' candidates are relays, over
    TURN/UDP, the one transport offered (with several, Firefox relayed over TCP once in CI)."""
    row = _row("relay-only.yaml", offerer, answerer, "call.turn_transports=[udp]")
    assert row["path"] == "relay" and row["relay_protocol"] == "udp"
    assert row["local_candidate"] == "relay" and row["remote_candidate"] == "relay"


def test_relay_only_policy_relays_over_tls_to_coturn_by_name() -> None:
    """TURN over TLS, the URL naming the server (`ice_urls: names`, resolved by the emulated
    internet's DNS): each profile trusts the run's CA (its own NSS database), coturn's
    certificate names `turn.simnet.test`, and both sides relay over TLS."""
    row = _row(
        "relay-only.yaml",
        "firefox",
        "firefox",
        "call.ice_urls=names",
        "servers.turn.ip=dual",  # the emulated internet has DNS where it carries IPv6
        "call.turn_transports=[tls]",
        "call.expect=null",
    )
    assert row["path"] == "relay" and row["relay_protocol"] == "tls"
    assert row["local_candidate"] == "relay" and row["remote_candidate"] == "relay"


# --- a whole `simnet run`: nothing of it left, after it ends or is stopped ----------------------

STATE_DIR = Path("/run/simnet")


def test_a_firefox_run_leaves_no_process_behind_not_even_a_zombie(tmp_path: Path) -> None:
    """`simnet run` with Firefox on both sides, under a subreaper: when the run has ended, no
    process it started is left, running or `<defunct>` (the agent reaps the browser's
    content processes)."""
    assert_a_run_leaves_no_process(tmp_path, "firefox")


def test_sigterm_mid_call_removes_the_profiles_and_every_process(tmp_path: Path) -> None:
    """`simnet run` gets SIGTERM while both Firefox peers hold a call: the run tears down, and
    no profile directory and no process of the run (a browser's included) is left."""
    cli = [sys.executable, "-m", "simnet.cli", "run", str(SCENARIOS / "direct-lan.yaml")]
    cli += ["--out", str(tmp_path)]
    media = ("call.media.audio=true", "call.duration_s=30")
    for each in ("hosts.alice.peer=firefox", "hosts.bob.peer=firefox", *media):
        cli += ["--set", each]
    before = {p.name for p in STATE_DIR.glob("*.d")} if STATE_DIR.is_dir() else set()
    proc = subprocess.Popen(
        cli, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        profiles: list[Path] = []
        deadline = time.monotonic() + 120
        while not profiles and time.monotonic() < deadline and proc.poll() is None:
            fresh = [p for p in STATE_DIR.glob("*.d") if p.name not in before]
            profiles = [p / "firefox-alice" for p in fresh if (p / "firefox-alice").is_dir()]
            time.sleep(0.1)
        assert profiles, "no Firefox profile appeared"
        run_id = profiles[0].parent.name.removesuffix(".d")
        while time.monotonic() < deadline and not any(
            comm.startswith(("firefox", "Web Content", "Isolated"))
            for _, comm in run_processes(run_id)
        ):
            time.sleep(0.1)
        # warm start (2.5-4 s), then a 30 s audio call: SIGTERM lands while the browsers run,
        # most often in the call itself
        time.sleep(8)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert not profiles[0].parent.exists()  # the work directory, profiles and all
        assert run_processes(run_id) == []
        assert not netns.list_names(f"sn-{run_id}-")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_firefox_peers_recover_from_a_move_by_restarting_ice(tmp_path: Path) -> None:
    """The handover scenario (alice moves from Wi-Fi to LTE, then ICE restarts) with Firefox on
    both sides: the shared page's restart works in Firefox (createOffer with iceRestart, a new
    signaling connection), ICE connects on a new pair and audio flows again."""
    spec = copy.deepcopy(HANDOVER)
    for host in ("alice", "bob"):
        spec["hosts"][host]["peer"] = "firefox"
    spec["call"]["media"] = {"audio": True}
    [row] = run_scenario(scenario_from_dict(spec))
    print("firefox handover:", {k: v for k, v in row.items() if k.startswith("event1")})
    assert row["connected"] and row["error"] is None, row
    assert row["event1_restart_supported"] is True, row
    assert row["event1_restart_failed"] is None and not row.get("timeline_error"), row
    started, connected = row["event1_restart_started_ms"], row["event1_restart_connected_ms"]
    assert started is not None and connected is not None and started < connected, row
    assert row["event1_media_flowing_ms"] is not None, row
    assert row["recovered"] is True, row["timeline_states"]


def _content_processes(agent: PeerAgent) -> list[int]:
    """The content processes of an agent's browser (its process group) that can hold the call
    page: it is loaded from file://, which Firefox gives a "file:// Content" process."""
    names = (b"file:// Content", b"Web Content", b"Isolated Web")
    return group_processes(agent, "comm", lambda comm: comm.strip().startswith(names))


async def test_a_hung_page_is_a_browser_error_and_the_next_call_works(bench: Bench) -> None:
    """alice's web-content processes are stopped once her data channel is open: her result
    says "browser" within the shortest phase timeout (the watchdog's unanswered evaluation),
    her agent replaces the page before that result goes out (the processes still stopped),
    and the next call works."""
    alice, noticed = await break_the_page_mid_call(
        bench, lambda: _content_processes(bench.alice), signal.SIGSTOP
    )
    assert alice.error == "browser", (alice.error, alice.error_detail)
    assert "dc_open" in alice.phase_t
    assert noticed < min(TIMEOUTS.gathering_s, TIMEOUTS.dtls_s)
    print(f"\nhang noticed after {noticed * 1000:.0f} ms: {alice.error_detail}")
    offer, answer = commands(bench, data_bytes=10_000)
    alice_events, bob_events = await bench_call(bench, offer, answer)
    _check(result_of(alice_events))
    _check(result_of(bob_events))


def test_dual_stack_homes_gather_ipv6_and_connect_directly() -> None:
    """Two dual-stack homes: Firefox gathers IPv6 candidates besides IPv4 ones, sends them to
    the other Firefox, and the call connects directly (measured: over IPv6)."""
    row = _row("dual-stack.yaml", "firefox", "firefox")
    assert row["path"] == "direct"
    assert row["local_candidates_ipv6"] >= 1 and row["remote_candidates_ipv6"] >= 1
    assert row["ip_family"] in ("ipv4", "ipv6")
    print(f"\ndual stack: {row['ip_family']}, setup {row['setup_ms']:.0f} ms")


def test_audio_and_video_flow_both_ways() -> None:
    """Fake camera and microphone: frames are received on both sides at the asked rates."""
    row = _row(
        "direct-lan.yaml",
        "firefox",
        "firefox",
        "call.media={audio: true, video: {width: 320, height: 240, fps: 15}}",
        "call.duration_s=3",
    )
    for side in ("offerer", "answerer"):
        assert row[f"{side}_audio_recv_fps"] > 25  # 50 frames of 20 ms a second
        assert row[f"{side}_video_recv_fps"] > 7.5  # 15 asked
        assert row[f"{side}_video_sent_kbps"] > 0
