"""`probe-link`'s arithmetic and decisions, without a network.

Why: the figures `simnet probe-link` prints are only as good as the statistics behind them and
the choice of which host serves. Percentiles must agree with numpy (people will re-analyse raw
numbers with it), one-way delays and per-direction loss must come out of the stamps exactly as
defined (a 20 ms delay configured on one direction must land in that direction only, and a lost
answer must not be blamed on the forward path), iperf3's JSON must be read from the receiver's
side, and the server must be the host the other can reach through the NATs.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simnet.net.impair.measure import (
    EXTENDED_ERR,
    IP_RECVERR,
    SO_EE_ORIGIN_TIMESTAMPING,
    SO_TIMESTAMPING,
    SO_TIMESTAMPNS,
    TIMESPEC,
    Probes,
    _transmit_stamp,
    clock_map,
    kernel_receive_ns,
)
from simnet.net.plan import plan_network
from simnet.probe.link import (
    EchoRecord,
    EchoResponder,
    EchoStats,
    PairError,
    Roles,
    blocking_nat,
    choose_roles,
    client_argv,
    distribution,
    echo_stats,
    firewall_notes,
    handshake_lost,
    loss_pct,
    mean_ipdv,
    parse_iperf,
    server_argv,
)
from simnet.probe.link import _packet as packet
from simnet.probe.link import _unpack as unpack
from simnet.run.link import LinkReport
from simnet.scenario.load import scenario_from_dict

MS = 1_000_000  # ns
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=200)


# --- statistics against numpy -----------------------------------------------------------------


@given(samples)
def test_distribution_matches_numpy(values: list[float]) -> None:
    d = distribution(values)
    assert d is not None
    assert d.count == len(values)
    assert d.median == pytest.approx(float(np.median(values)), rel=1e-9, abs=1e-6)
    assert d.p95 == pytest.approx(float(np.percentile(values, 95)), rel=1e-9, abs=1e-6)
    assert d.min == min(values)
    assert d.max == max(values)
    assert d.mean == pytest.approx(float(np.mean(values)), rel=1e-9, abs=1e-6)


def test_no_values_is_no_distribution() -> None:
    assert distribution([]) is None


@given(st.lists(finite, min_size=2, max_size=200))
def test_ipdv_matches_numpy(values: list[float]) -> None:
    assert mean_ipdv(values) == pytest.approx(
        float(np.mean(np.abs(np.diff(values)))), rel=1e-9, abs=1e-6
    )


def test_ipdv_needs_two_packets_and_ignores_a_constant_delay() -> None:
    assert mean_ipdv([]) is None
    assert mean_ipdv([20.0]) is None
    assert mean_ipdv([20.0] * 10) == 0
    assert mean_ipdv([20, 22, 20, 22]) == 2


def test_loss_known_answers() -> None:
    assert loss_pct(100, 100) == 0
    assert loss_pct(100, 97) == 3
    assert loss_pct(8, 0) == 100
    assert loss_pct(0, 0) is None  # nothing expected: unknown, not 0 %


# --- echo stamps to directions --------------------------------------------------------------


def records(
    n: int,
    forward_ms: float,
    backward_ms: float,
    hold_ms: float = 0.3,
    lost_forward: frozenset[int] = frozenset(),
    lost_backward: frozenset[int] = frozenset(),
) -> list[EchoRecord]:
    """Probes 10 ms apart over a path with fixed one-way delays; the echo holds each `hold_ms`."""
    out = []
    for seq in range(n):
        sent = 5_000 * MS + seq * 10 * MS
        if seq in lost_forward:
            out.append(EchoRecord(seq, sent))
            continue
        echoed = sent + int(forward_ms * MS)
        echo_sent = echoed + int(hold_ms * MS)
        returned = None if seq in lost_backward else echo_sent + int(backward_ms * MS)
        out.append(EchoRecord(seq, sent, echoed, echo_sent, returned))
    return out


def test_a_delay_on_one_direction_shows_in_that_direction_only() -> None:
    """What a `link: {delay_ms: 20}` on the prober's uplink must look like."""
    stats = echo_stats(records(50, forward_ms=20.0, backward_ms=0.05))
    assert stats.forward_ms is not None and stats.backward_ms is not None
    assert stats.rtt_ms is not None
    assert stats.forward_ms.median == pytest.approx(20.0)
    assert stats.backward_ms.median == pytest.approx(0.05)
    # the echo's own 0.3 ms of holding is not network delay
    assert stats.rtt_ms.median == pytest.approx(20.05)
    assert stats.forward_jitter_ms == pytest.approx(0)
    assert (stats.loss_pct, stats.forward_loss_pct, stats.backward_loss_pct) == (0, 0, 0)


def test_loss_is_split_by_what_the_echo_got() -> None:
    stats = echo_stats(
        records(100, 1.0, 1.0, lost_forward=frozenset(range(10)), lost_backward=frozenset({50, 60}))
    )
    assert (stats.sent, stats.echoed, stats.returned) == (100, 90, 88)
    assert stats.forward_loss_pct == pytest.approx(10.0)
    assert stats.backward_loss_pct == pytest.approx(100 * 2 / 90)
    assert stats.loss_pct == pytest.approx(12.0)
    assert stats.forward_ms is not None and stats.backward_ms is not None
    assert stats.forward_ms.count == 90  # a lost answer still tells the forward delay
    assert stats.backward_ms.count == 88
    assert stats.rtt_ms is not None and stats.rtt_ms.count == 88


def test_everything_lost_forward_leaves_the_backward_direction_unknown() -> None:
    stats = echo_stats(records(20, 1.0, 1.0, lost_forward=frozenset(range(20))))
    assert stats.forward_loss_pct == 100
    assert stats.backward_loss_pct is None
    assert stats.rtt_ms is None and stats.forward_ms is None and stats.backward_ms is None


def test_records_are_taken_in_sequence_order_for_jitter() -> None:
    ordered = records(4, 1.0, 1.0)
    jumbled = [ordered[2], ordered[0], ordered[3], ordered[1]]
    assert echo_stats(jumbled) == echo_stats(ordered)


class FakeSender:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def send(self, data: bytes, addr: Any) -> int:
        self.sent.append((data, addr))
        return len(self.sent) - 1


def test_echo_answers_the_observed_source_and_keeps_its_first_stamps() -> None:
    sender = FakeSender()
    echo = EchoResponder(sender.send)
    source = ("198.51.100.10", 40000)  # a NAT's mapping, not the prober's own address
    echo.received(packet(7, 123), source, 1000)
    echo.received(packet(7, 123), source, 2000)  # a duplicate keeps the first stamps
    echo.received(b"garbage that is long enough to unpack but wrong", source, 3000)
    echo.received(b"short", source, 4000)
    assert echo.stamps == {7: (1000, 0)}  # the first copy's receive stamp and answer
    assert [addr for _, addr in sender.sent] == [source, source]
    first, second = (unpack(data) for data, _ in sender.sent)
    assert first is not None and second is not None
    assert first[:3] == second[:3] == (7, 123, 1000)
    assert len(sender.sent[0][0]) == len(packet(7, 123))  # answers are as big as probes


# --- the report: A/B directions whoever serves ----------------------------------------------


def stats(forward_ms: float, backward_ms: float, lost_forward: int = 0) -> EchoStats:
    return echo_stats(
        records(20, forward_ms, backward_ms, lost_forward=frozenset(range(lost_forward)))
    )


def report(roles: Roles, echo: EchoStats) -> LinkReport:
    return LinkReport("s", "abc123", roles, "203.0.113.10:5201", echo, None, None, "100M")


REQUIRED_KEYS = {
    "rtt_ms_median", "rtt_ms_p95", "loss_pct", "loss_pct_ab", "loss_pct_ba",
    "one_way_ms_ab_median", "one_way_ms_ba_median", "throughput_mbps", "udp_throughput_mbps",
    "udp_loss_pct",
}  # fmt: skip


def test_directions_follow_a_and_b_not_client_and_server() -> None:
    echo = stats(forward_ms=20.0, backward_ms=1.0, lost_forward=2)  # client -> server is slow
    b_serves = report(Roles("alice", "bob", server="bob"), echo).as_json()
    a_serves = report(Roles("alice", "bob", server="alice"), echo).as_json()
    assert set(b_serves) >= REQUIRED_KEYS
    assert (b_serves["one_way_ms_ab_median"], b_serves["one_way_ms_ba_median"]) == (20.0, 1.0)
    assert (a_serves["one_way_ms_ab_median"], a_serves["one_way_ms_ba_median"]) == (1.0, 20.0)
    assert (b_serves["loss_pct_ab"], b_serves["loss_pct_ba"]) == (10.0, 0.0)
    assert (a_serves["loss_pct_ab"], a_serves["loss_pct_ba"]) == (0.0, 10.0)
    assert b_serves["rtt_ms_median"] == a_serves["rtt_ms_median"] == 21.0
    assert b_serves["throughput_direction"] == a_serves["throughput_direction"] == "alice->bob"
    json.dumps(b_serves)  # serialisable as is


def test_no_answer_at_all_is_an_error() -> None:
    dead = report(Roles("alice", "bob", "bob"), stats(1.0, 1.0, lost_forward=20))
    assert not dead.ok
    assert dead.as_json()["loss_pct"] == 100.0
    assert dead.as_json()["rtt_ms_median"] is None


# --- iperf3 JSON (shapes as iperf 3.12 prints them) -----------------------------------------

TCP = {
    "start": {"version": "iperf 3.12"},
    "end": {
        "sum_sent": {"seconds": 1.0, "bits_per_second": 22202664288.1, "retransmits": 8318},
        "sum_received": {"seconds": 1.0, "bits_per_second": 22199045995.6},
    },
}
UDP_REVERSE = {
    "end": {
        "sum": {"bits_per_second": 100002539.4, "jitter_ms": 0.0073, "lost_percent": 0},
        "sum_sent": {"bits_per_second": 100002539.4, "jitter_ms": 0, "lost_percent": 0},
        "sum_received": {
            "bits_per_second": 99923776.7,
            "jitter_ms": 0.0073,
            "lost_packets": 9,
            "packets": 8627,
            "lost_percent": 0.104,
        },
    }
}
ERROR = {"start": {"connected": []}, "intervals": [], "end": {}, "error": "unable to connect"}


def test_iperf_tcp_is_read_at_the_receiver() -> None:
    result = parse_iperf("tcp", json.dumps(TCP))
    assert result.error is None
    assert result.mbps == pytest.approx(22199.046, rel=1e-6)
    assert result.retransmits == 8318


def test_iperf_udp_reports_received_rate_loss_and_jitter() -> None:
    result = parse_iperf("udp", json.dumps(UDP_REVERSE))
    assert result.mbps == pytest.approx(99.9238, rel=1e-5)
    assert result.loss_pct == pytest.approx(0.104)
    assert result.jitter_ms == pytest.approx(0.0073)


@pytest.mark.parametrize(
    ("stdout", "stderr", "says"),
    [
        (json.dumps(ERROR), "", "unable to connect"),
        ("", "iperf3: error - unable to start", "unable to start"),
        ("[1, 2]", "", "unexpected"),
        (json.dumps({"end": {}}), "", "no received data"),
    ],
)
def test_iperf_failures_become_errors(stdout: str, stderr: str, says: str) -> None:
    result = parse_iperf("tcp", stdout, stderr)
    assert result.mbps is None
    assert result.error is not None and says in result.error


# --- who serves -----------------------------------------------------------------------------

SCENARIO = {
    "name": "roles",
    "nats": {
        "home": {"preset": "port-restricted-cone"},
        "carrier": {"preset": "symmetric"},
        "cone": {"preset": "full-cone"},
        "lab": {"preset": "open"},
        "office": {"preset": "symmetric", "firewall": {"allow": ["tcp/443"]}},
        "flat": {"preset": "open", "behind": "home"},
    },
    "hosts": {
        "alice": {"behind": "home"},
        "anne": {"behind": "home"},
        "bob": {"behind": "internet"},
        "carl": {"behind": "carrier"},
        "cora": {"behind": "cone"},
        "lara": {"behind": "lab"},
        "olga": {"behind": "office"},
        "fred": {"behind": "flat"},
    },
    "servers": {"turn": {"kind": "turn"}},
}


@pytest.fixture(scope="module")
def plan() -> Any:
    return plan_network(scenario_from_dict(SCENARIO, [], source="test"))


@pytest.mark.parametrize(
    ("src", "dst", "blocker"),
    [
        ("alice", "bob", None),  # public host
        ("alice", "turn", None),  # public server
        ("alice", "lara", None),  # behind a router that does not translate
        ("alice", "anne", None),  # same LAN
        ("alice", "fred", None),  # open router inside alice's own NAT realm
        ("bob", "alice", "home"),
        ("bob", "cora", "cone"),  # even a full cone admits no connection bob starts
        ("bob", "fred", "home"),  # the open router's LAN is hidden by the NAT above it
        ("carl", "alice", "home"),
    ],
)
def test_blocking_nat(plan: Any, src: str, dst: str, blocker: str | None) -> None:
    assert blocking_nat(plan, src, dst) == blocker


def test_b_serves_when_a_can_reach_it(plan: Any) -> None:
    roles = choose_roles(plan, "alice", "bob")
    assert (roles.server, roles.client, roles.client_is_a, roles.notes) == (
        "bob",
        "alice",
        True,
        (),
    )


def test_a_serves_when_only_b_can_reach_it(plan: Any) -> None:
    roles = choose_roles(plan, "bob", "alice")
    assert (roles.server, roles.client, roles.client_is_a) == ("bob", "alice", False)
    assert "behind NAT home" in roles.notes[0]


def test_two_hidden_hosts_cannot_be_measured_and_it_says_why(plan: Any) -> None:
    with pytest.raises(PairError) as info:
        choose_roles(plan, "alice", "carl")
    message = str(info.value)
    assert "home" in message and "carrier" in message and "--server-host" in message
    assert info.value.exit_code == 2


def test_server_host_is_honoured_even_towards_a_nat(plan: Any) -> None:
    roles = choose_roles(plan, "bob", "alice", server_host="alice")
    assert roles.server == "alice"
    assert "expect the probes to be lost" in roles.notes[0]
    assert choose_roles(plan, "bob", "alice", server_host="bob").notes == ()  # public: fine


@pytest.mark.parametrize(
    ("a", "b", "server", "says"),
    [
        ("alice", "home", None, "not a host or server"),
        ("alice", "alice", None, "two different hosts"),
        ("alice", "bob", "turn", "must be alice or bob"),
    ],
)
def test_bad_pairs(plan: Any, a: str, b: str, server: str | None, says: str) -> None:
    with pytest.raises(PairError, match=says):
        choose_roles(plan, a, b, server)


def test_firewall_notes(plan: Any) -> None:
    notes = firewall_notes(plan, "olga", "bob", 5201)
    assert len(notes) == 2 and all("tcp/443" in n for n in notes)
    assert ["UDP to port 443" in n for n in firewall_notes(plan, "olga", "bob", 443)] == [True]
    assert firewall_notes(plan, "alice", "bob", 5201) == []


# --- kernel stamps: what recvmsg's ancillary data and the error queue say -----------------


def test_a_receive_stamp_is_the_kernels_realtime_mapped_to_the_monotonic_clock() -> None:
    offset = clock_map().offset_ns
    realtime = 1_800_000_000_123_456_789
    data = TIMESPEC.pack(realtime // 10**9, realtime % 10**9)
    assert kernel_receive_ns([(socket.SOL_SOCKET, SO_TIMESTAMPNS, data)]) == realtime - offset
    assert kernel_receive_ns([]) is None  # no stamp: the caller keeps its own
    assert clock_map().error_ns < 50_000  # the offset is read to within microseconds


def test_a_transmit_stamp_is_matched_to_its_send_by_the_kernels_key() -> None:
    offset = clock_map().offset_ns
    realtime = 1_800_000_000_000_000_500
    stamps = TIMESPEC.pack(realtime // 10**9, realtime % 10**9) + bytes(32)
    err = EXTENDED_ERR.pack(42, SO_EE_ORIGIN_TIMESTAMPING, 0, 0, 0, 1, 17) + bytes(16)
    ancillary = [
        (socket.SOL_SOCKET, SO_TIMESTAMPING, stamps),
        (socket.SOL_IP, IP_RECVERR, err),
    ]
    assert _transmit_stamp(ancillary) == (17, realtime - offset)
    assert _transmit_stamp(ancillary[:1]) is None  # a stamp without its key matches nothing


def test_probes_say_whether_every_stamp_was_the_kernels_and_keep_the_user_ones() -> None:
    probes = Probes(
        sent_ns=[1000, 2000],
        arrivals=[(1, 7000), (0, 9000)],
        user_sent_ns=[900, 1900],
        user_arrivals=[8000, 9500],
        kernel_sent=2,
        kernel_received=2,
    )
    assert probes.all_kernel and probes.reordered == 1
    assert probes.delays_ms() == [0.005, 0.008]
    assert probes.user_delays_ms() == [0.0061, 0.0086]
    assert not Probes(
        [1000], [(0, 2000)], [900], [2100], kernel_sent=0, kernel_received=1
    ).all_kernel


# --- iperf3 robustness on a lossy link --------------------------------------------------------


def test_a_lost_udp_handshake_is_told_apart_from_other_failures() -> None:
    """iperf3 gives up on an unanswered UDP opening after 30 s with IESTREAMREAD: only that is
    a lost handshake (worth running the test again); any other failure is the result."""
    lost = parse_iperf(
        "udp",
        json.dumps(
            {"error": "unable to read from stream socket: Resource temporarily unavailable"}
        ),
    )
    assert handshake_lost(lost)
    reset = parse_iperf(
        "udp",
        json.dumps({"error": "unable to receive control message: Connection reset by peer"}),
    )
    assert not handshake_lost(reset)
    assert not handshake_lost(parse_iperf("tcp", json.dumps({"error": lost.error})))
    assert not handshake_lost(parse_iperf("udp", json.dumps(UDP_REVERSE)))


def test_the_client_waits_for_three_syns() -> None:
    """SYNs go out at 0, 1 and 3 s: a connect timeout above 3 s survives two lost in a row."""
    argv = client_argv(
        ipaddress.ip_address("192.0.2.1"), 5201, "udp", reverse=True, duration_s=2, udp_rate="1M"
    )
    timeout_ms = int(argv[argv.index("--connect-timeout") + 1])
    assert timeout_ms > 3000
    assert "--reverse" in argv and "--udp" in argv


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="needs iperf3")
def test_the_iperf3_server_serves_one_test_and_exits(tmp_path: Path) -> None:
    """Each test gets its own server, which is idle when the client connects: a server still
    busy with the previous test refuses the next client and resets the connection, and on a
    lossy link that reset alone reaches the client ("unable to receive control message:
    Connection reset by peer"). The server must end after one test, so none is ever reused."""
    with socket.socket() as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    server = subprocess.Popen(server_argv(port, tmp_path / "server.log"))
    try:
        client = [
            "iperf3", "--client", "127.0.0.1", "--port", str(port), "--bytes", "64K", "--json",
        ]  # fmt: skip
        for _ in range(50):  # until it listens: a refused connect is immediate
            done = subprocess.run(client, capture_output=True, text=True, timeout=30)
            if "refused" not in done.stdout:
                break
        assert parse_iperf("tcp", done.stdout, done.stderr).error is None, done.stdout
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
        server.wait()
