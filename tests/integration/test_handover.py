"""Handover on real namespaces: a host re-attached behind another NAT mid-call (`move`), and an
ICE restart asked of the offerer (`ice-restart`).

The network change is measured with real packets and the kernel's own tables: the host's new
address and route, its old NAT's conntrack entries and NAT state gone, and its packets leaving
through the new NAT (a public receiver sees the new NAT's address). Then a call with aiortc
peers shows what a stack without ICE restart does with a handover: it notices (its sockets are
bound to an address that no longer exists) and never recovers, and its row says why it cannot
restart; with Chromium peers (libwebrtc) the restart is made and the call recovers, the row
timing each step.
"""

from __future__ import annotations

import copy
import socket
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import nftables
import pytest
from pyroute2 import Conntrack, IPRoute

from simnet.net import netns
from simnet.net.builder import Network, emulated_network
from simnet.net.impair import live
from simnet.net.nftables import TABLE
from simnet.net.plan import plan_network
from simnet.peer.aiortc.agent import NO_ICE_RESTART
from simnet.run.calls import run_scenario
from simnet.scenario.load import scenario_from_dict
from tests.integration.handover_scenario import HANDOVER

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PORT = 40_000
IFF_UP = 1


@pytest.fixture(scope="module")
def net() -> Iterator[Network]:
    with emulated_network(plan_network(scenario_from_dict(HANDOVER)), "test-handover") as net:
        yield net


def send_and_see(net: Network, payload: bytes) -> str:
    """Send one datagram from alice (any address, port PORT) to bob; the source bob sees."""
    with netns.entered(net.ns("bob")):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with netns.entered(net.ns("alice")):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with receiver, sender:
        receiver.bind((str(net.address("bob")), PORT))
        receiver.settimeout(5)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sender.bind(("0.0.0.0", PORT))
        sender.sendto(payload, (str(net.address("bob")), PORT))
        data, (source, _) = receiver.recvfrom(100)
    assert data == payload
    return str(source)


def tracked(net: Network, router: str, address: IPv4Address) -> list[Any]:
    """The router's conntrack entries from or to `address`."""
    with netns.entered(net.ns(router)), Conntrack() as ct:
        return [
            e
            for e in ct.dump_entries()
            if str(address) in (e.tuple_orig.saddr, e.tuple_reply.saddr)
        ]


def nat_state(net: Network, router: str) -> str:
    with netns.entered(net.ns(router)):
        rc, output, error = nftables.Nftables().cmd(f"list table ip {TABLE}")
    assert rc == 0, error
    return str(output)


def interfaces(net: Network, host: str) -> dict[str, tuple[str, list[str]]]:
    """ifname -> ("up" or "down": administratively, IPv4 addresses) in `host`, and its default
    gateway as "gateway". (The operational state follows the carrier a moment later.)"""
    with netns.entered(net.ns(host)), IPRoute() as ipr:
        out = {}
        for link in ipr.get_links():
            index, name = link["index"], link.get_attr("IFLA_IFNAME")
            addresses = [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index)]
            out[name] = ("up" if link["flags"] & IFF_UP else "down", addresses)
        gateways = [r.get_attr("RTA_GATEWAY") for r in ipr.get_default_routes(table=254)]
    out["gateway"] = ("", gateways)
    return out


def test_a_moved_host_has_a_new_address_its_old_nat_forgot_it_and_it_leaves_by_the_new_one(
    net: Network,
) -> None:
    plan = net.plan
    wifi, lte = plan.attachments["alice"]["wifi"], plan.attachments["alice"]["lte"]
    ns_of = {name: net.ns(name) for name in plan.nodes}
    wifi_wan, carrier_wan = plan.nodes["wifi"].address, plan.nodes["lte-carrier"].address
    old = wifi.address.ip

    assert send_and_see(net, b"before") == str(wifi_wan)  # port-preserving: still PORT
    assert tracked(net, "wifi", old), "the datagram left a conntrack entry in wifi"
    assert f"{old} . {PORT}" in nat_state(net, "wifi")  # its EIM mapping
    seen = interfaces(net, "alice")
    assert seen["eth0"] == ("up", [str(old)]) and seen["eth1"][1] == []
    assert seen["eth1"][0] == "down"  # the standby cable is down until the move

    forgotten = live.move(ns_of, "alice", wifi, lte)

    assert forgotten >= 1
    assert tracked(net, "wifi", old) == []
    state = nat_state(net, "wifi")
    assert str(old) not in state and str(PORT) not in state, state  # mapping, reverse maps
    seen = interfaces(net, "alice")
    assert seen["eth0"] == ("down", []), seen
    assert seen["eth1"] == ("up", [str(lte.address.ip)]), seen
    assert seen["gateway"][1] == [str(lte.gateway)], seen
    # out through lte and then its carrier NAT: bob sees the carrier's public address
    assert send_and_see(net, b"after") == str(carrier_wan)
    assert tracked(net, "lte", lte.address.ip), "the new NAT tracks the new address"

    forgotten = live.move(ns_of, "alice", lte, wifi)  # and back, as after a call

    assert forgotten >= 1 and tracked(net, "lte", lte.address.ip) == []
    assert interfaces(net, "alice")["eth0"] == ("up", [str(old)])
    assert send_and_see(net, b"back") == str(wifi_wan)


@pytest.fixture(scope="module")
def aiortc_row() -> dict[str, Any]:
    [row] = run_scenario(scenario_from_dict(copy.deepcopy(HANDOVER)))
    figures = {k: v for k, v in row.items() if k.startswith(("event", "timeline", "recovered"))}
    print("aiortc handover:", figures)  # shown with -s: the README's figures
    return dict(row.items())


def test_an_aiortc_call_notices_a_move_and_cannot_restart(aiortc_row: dict[str, Any]) -> None:
    row, states = aiortc_row, aiortc_row["timeline_states"]
    plan = plan_network(scenario_from_dict(HANDOVER))
    assert row["connected"] and row["path"] == "direct", row
    assert row["event0_action"] == "move" and row["event0_to"] == "lte"
    assert row["event0_address"] == str(plan.attachments["alice"]["lte"].address.ip)
    assert row["event0_forgotten"] >= 1, row  # the call's own flows through wifi
    # alice's sockets are bound to an address that is gone: nothing crosses any more, and a
    # peer says disconnected after 2.5 s without a packet (checks every 0.5 s, so the last
    # one heard is at most one interval plus its jitter before the move)
    noticed = row["event0_noticed_ms"]
    assert noticed is not None and 1_800 <= noticed <= 2_700, states
    assert row["event0_noticed_state"].endswith(":ice:disconnected"), states
    assert row["event0_recovered_ms"] is None and row["recovered"] is False, states
    assert row["event0_path_loss_pct"] == 100, row
    # the restart: asked, refused, and the row says why
    assert row["event1_action"] == "ice-restart" and row["event1_target"] == "alice"
    assert row["event1_restart_supported"] is False
    assert row["event1_error"] == NO_ICE_RESTART
    assert row["timeline_error"] == f"event 1 (ice-restart alice): {NO_ICE_RESTART}"
    assert row["event1_restart_connected_ms"] is None and row["event1_media_flowing_ms"] is None


def chromium_scenario() -> dict[str, Any]:
    spec = copy.deepcopy(HANDOVER)
    for host in ("alice", "bob"):
        spec["hosts"][host]["peer"] = "chromium"
    spec["call"]["media"] = {"audio": True, "video": {"width": 320, "height": 240, "fps": 15}}
    return spec


def test_chromium_peers_recover_from_a_move_by_restarting_ice(tmp_path: Path) -> None:
    """The offerer's page reopens its signaling connection (its old TCP connection died with
    the old address), sends an offer with new ICE credentials gathered on the new network, and
    the answerer answers it: ICE connects on a new pair and media flows again both ways. Each
    step is bounded by the page itself (signaling_s, ice_s: a later one is a failure)."""
    spec = chromium_scenario()
    [row] = run_scenario(scenario_from_dict(spec), pcap_dir=tmp_path)
    figures = {k: v for k, v in row.items() if k.startswith(("event", "timeline", "recovered"))}
    print("chromium handover:", figures)  # shown with -s: the README's figures
    states = row["timeline_states"]
    assert row["connected"] and row["error"] is None, row
    assert row["event0_forgotten"] >= 1, row
    assert row["event1_restart_supported"] is True, row
    assert row["event1_restart_failed"] is None and not row.get("timeline_error"), row
    started = row["event1_restart_started_ms"]
    connected = row["event1_restart_connected_ms"]
    flowing = row["event1_media_flowing_ms"]
    timeouts = scenario_from_dict(spec).call.timeouts  # type: ignore[union-attr]
    assert started is not None and 0 <= started < timeouts.signaling_s * 1000, row
    assert connected is not None and started < connected < timeouts.ice_s * 1000, row
    # each peer's first packet after its own ICE came back; the offerer's after its connected
    assert flowing is not None and connected <= flowing, row
    assert row["recovered"] is True, states
    for side in ("offerer", "answerer"):  # frames kept coming over the window, both ways
        assert row[f"{side}_video_recv_frames"] > 0 and row[f"{side}_audio_recv_frames"] > 0
    # the capture of a moving host covers both its interfaces: packets from the new address too
    capture = tmp_path / row["pcap_files"]["alice"]
    new = row["event0_address"]
    for address in (new, str(plan_network(scenario_from_dict(spec)).nodes["alice"].address)):
        shown = subprocess.run(
            ["tcpdump", "-nr", str(capture), "-c", "1", f"src host {address}"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert address in shown.stdout, (address, shown.stderr)
