"""The instruments of `simnet probe-link` (the job is `simnet.run.link`): delay, loss and
throughput between two hosts of a scenario, per direction.

Why it is built this way:

- **One clock, kernel stamps.** Every namespace shares CLOCK_MONOTONIC, and the UDP echo runs in
  this process with its socket in B's namespace while the prober's socket is in A's. Every send
  and receive is stamped by the kernel (`simnet.net.impair.measure`), so the one-way delay of
  each direction is a plain subtraction (no clock synchronisation, no estimate) and this
  process's scheduling is not in it. A link delay configured on one direction shows up in that
  direction only.
- **Loss per direction.** The echo remembers which sequence numbers it got. A probe it never got
  was lost A→B; one it got and answered but whose answer never came back was lost B→A. The record
  is read in-process, so the summary itself cannot be lost.
- **Who serves.** Behind a NAT that filters unsolicited inbound traffic a host cannot be a server.
  The echo answers to the address a probe came from (so the prober's NAT lets the answer in),
  and the servers (echo, iperf3) run on the host the other can reach at its own address;
  iperf3 runs reversed (`-R`) when that is A, so throughput is always measured A→B.
- **Pure statistics first.** Everything that turns stamps and iperf3 JSON into numbers is in the
  first section, free of sockets and processes, so it is unit-tested against numpy.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import struct
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from simnet.addresses import IPAddress
from simnet.aio import within
from simnet.errors import SimnetError
from simnet.net.builder import Network
from simnet.net.impair.measure import StampedSocket
from simnet.net.plan import NetworkPlan
from simnet.net.process import start
from simnet.quantile import quantile

NS_PER_MS = 1_000_000

# --- pure statistics ------------------------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """Summary of a set of delays in milliseconds."""

    count: int
    median: float
    p95: float
    min: float
    max: float
    mean: float


def distribution(values: Sequence[float]) -> Distribution | None:
    """None for no values: a direction where nothing arrived has no delay, not a delay of 0."""
    median, p95 = quantile(values, 0.5), quantile(values, 0.95)
    if median is None or p95 is None:
        return None
    return Distribution(
        count=len(values),
        median=median,
        p95=p95,
        min=min(values),
        max=max(values),
        mean=sum(values) / len(values),
    )


def loss_pct(expected: int, received: int) -> float | None:
    """Share of `expected` packets that did not arrive; None when nothing was expected."""
    if expected <= 0:
        return None
    return 100.0 * (expected - received) / expected


def mean_ipdv(delays: Sequence[float]) -> float | None:
    """Mean absolute difference of consecutive one-way delays (RFC 3393 IPDV; RFC 3550's jitter
    without its 1/16 smoothing, which would make the figure depend on the probe count)."""
    if len(delays) < 2:
        return None
    return sum(abs(b - a) for a, b in itertools.pairwise(delays)) / (len(delays) - 1)


@dataclass(frozen=True)
class EchoRecord:
    """One probe, stamped at both ends in ns of CLOCK_MONOTONIC; None where it did not arrive.

    "Forward" is prober → echo, "backward" echo → prober.
    """

    seq: int
    sent_ns: int
    echoed_ns: int | None = None  # the echo received it
    echo_sent_ns: int | None = None  # the echo sent its answer
    returned_ns: int | None = None  # the answer reached the prober

    @property
    def forward_ms(self) -> float | None:
        if self.echoed_ns is None:
            return None
        return (self.echoed_ns - self.sent_ns) / NS_PER_MS

    @property
    def backward_ms(self) -> float | None:
        if self.echo_sent_ns is None or self.returned_ns is None:
            return None
        return (self.returned_ns - self.echo_sent_ns) / NS_PER_MS

    @property
    def rtt_ms(self) -> float | None:
        """Round trip minus the time the echo held the probe: the network's part only, so that
        RTT = forward + backward exactly and Python scheduling in the echo is not counted."""
        forward, backward = self.forward_ms, self.backward_ms
        if forward is None or backward is None:
            return None
        return forward + backward


@dataclass(frozen=True)
class EchoStats:
    """What a series of echo probes says about both directions, seen from the prober."""

    sent: int
    echoed: int  # got by the echo
    returned: int  # answers back at the prober
    rtt_ms: Distribution | None
    forward_ms: Distribution | None
    backward_ms: Distribution | None
    forward_jitter_ms: float | None
    backward_jitter_ms: float | None

    @property
    def loss_pct(self) -> float | None:
        """Round-trip loss: probes without an answer."""
        return loss_pct(self.sent, self.returned)

    @property
    def forward_loss_pct(self) -> float | None:
        return loss_pct(self.sent, self.echoed)

    @property
    def backward_loss_pct(self) -> float | None:
        """Answers lost among those the echo sent (None if the echo never got anything)."""
        return loss_pct(self.echoed, self.returned)


def echo_stats(records: Sequence[EchoRecord]) -> EchoStats:
    """Delays, jitter and loss of both directions from per-probe stamps."""
    ordered = sorted(records, key=lambda r: r.seq)
    forward = [d for r in ordered if (d := r.forward_ms) is not None]
    backward = [d for r in ordered if (d := r.backward_ms) is not None]
    rtts = [d for r in ordered if (d := r.rtt_ms) is not None]
    return EchoStats(
        sent=len(ordered),
        echoed=len(forward),
        returned=len(backward),
        rtt_ms=distribution(rtts),
        forward_ms=distribution(forward),
        backward_ms=distribution(backward),
        forward_jitter_ms=mean_ipdv(forward),
        backward_jitter_ms=mean_ipdv(backward),
    )


Protocol = Literal["tcp", "udp"]


@dataclass(frozen=True)
class IperfResult:
    """One iperf3 test, as the receiving side saw it."""

    protocol: Protocol
    mbps: float | None = None
    loss_pct: float | None = None  # UDP only
    jitter_ms: float | None = None  # UDP only
    retransmits: int | None = None  # TCP only
    error: str | None = None


def parse_iperf(protocol: Protocol, stdout: str, stderr: str = "") -> IperfResult:
    """Read `iperf3 --json` output; the receiver's figures (`end.sum_received`) are what got
    through, whichever side sent (with `-R` the server sends)."""
    try:
        data = json.loads(stdout)
    except ValueError:
        detail = (stderr or stdout).strip().splitlines()
        return IperfResult(protocol, error=f"iperf3 gave no JSON: {detail[-1] if detail else ''}")
    if not isinstance(data, dict):
        return IperfResult(protocol, error="iperf3 gave unexpected JSON")
    if data.get("error"):
        return IperfResult(protocol, error=f"iperf3: {data['error']}")
    end = data.get("end") or {}
    received = end.get("sum_received") or end.get("sum") or {}
    if "bits_per_second" not in received:
        return IperfResult(protocol, error="iperf3 reported no received data")
    mbps = float(received["bits_per_second"]) / 1e6
    if protocol == "udp":
        return IperfResult(
            protocol,
            mbps=mbps,
            loss_pct=_float_or_none(received.get("lost_percent")),
            jitter_ms=_float_or_none(received.get("jitter_ms")),
        )
    retransmits = (end.get("sum_sent") or {}).get("retransmits")
    return IperfResult(
        protocol, mbps=mbps, retransmits=int(retransmits) if retransmits is not None else None
    )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


# --- who can serve --------------------------------------------------------------------------


class PairError(SimnetError):
    """The two hosts cannot be probed as asked; nothing was built."""

    exit_code = 2


def blocking_nat(plan: NetworkPlan, src: str, dst: str) -> str | None:
    """The NAT that stops `src` from opening a connection to `dst`'s own address, if any.

    Walking up from `dst`, a translating router that `src` is not behind hides `dst` (NATs here
    admit no unsolicited inbound connection, whatever their UDP filtering); reaching a router
    `src` is also behind means both sit in one address realm, and routing does the rest.
    """
    shared = set(plan.chain(src))
    for router in plan.chain(dst):
        if router in shared:
            return None
        spec = plan.nodes[router].router
        if spec is not None and spec.behavior.translates:
            return router
    return None


@dataclass(frozen=True)
class Roles:
    """Which of A and B serves (echo, iperf3 server) and which initiates."""

    a: str
    b: str
    server: str
    notes: tuple[str, ...] = ()

    @property
    def client(self) -> str:
        return self.a if self.server == self.b else self.b

    @property
    def client_is_a(self) -> bool:
        return self.client == self.a


def choose_roles(plan: NetworkPlan, a: str, b: str, server_host: str | None = None) -> Roles:
    """B serves if A can reach it, else A if B can reach A; otherwise explain why neither works.

    `server_host` overrides the choice (and is honoured even towards a NAT: the measurement then
    shows the NAT dropping the probes, which can be the point).
    """
    scenario = plan.scenario
    known = [*scenario.hosts, *scenario.servers]
    for name in (a, b):
        if name not in known:
            raise PairError(
                f"'{name}' is not a host or server of scenario {scenario.name}; "
                f"allowed: {', '.join(known) or 'none'}"
            )
    if a == b:
        raise PairError(f"HOST_A and HOST_B are both '{a}'; probe two different hosts")
    to_b, to_a = blocking_nat(plan, a, b), blocking_nat(plan, b, a)
    if server_host is not None:
        if server_host not in (a, b):
            raise PairError(f"--server-host must be {a} or {b}, not '{server_host}'")
        other = a if server_host == b else b
        nat = to_b if server_host == b else to_a
        notes: tuple[str, ...] = ()
        if nat is not None:
            notes = (
                f"{server_host} serves as asked, but it is behind NAT {nat}, which admits no "
                f"connection {other} starts: expect the probes to be lost",
            )
        return Roles(a, b, server_host, notes)
    if to_b is None:
        return Roles(a, b, b)
    if to_a is None:
        return Roles(
            a,
            b,
            a,
            (
                f"{b} is behind NAT {to_b}, which admits no connection {a} starts, so {b} "
                f"initiates and {a} serves (iperf3 reversed); figures are still per direction",
            ),
        )
    raise PairError(
        f"{a} and {b} cannot be measured directly: {a} is behind NAT {to_a} and {b} behind NAT "
        f"{to_b}, and neither NAT admits a connection the other host starts, so neither can run "
        "the echo and iperf3 servers",
        fix=(
            f"measure each against a host on the internet, put one of them there "
            f"(--set hosts.{b}.behind=internet), or force a side with --server-host"
        ),
    )


def firewall_notes(plan: NetworkPlan, client: str, server: str, port: int) -> list[str]:
    """What the firewalls between the two hosts will stop, said before the numbers show it."""
    client_side = [r for r in plan.chain(client) if r not in plan.chain(server)]
    server_side = [r for r in plan.chain(server) if r not in plan.chain(client)]
    notes = []
    for router in [*client_side, *server_side]:
        spec = plan.nodes[router].router
        firewall = spec.firewall if spec is not None else None
        if firewall is None:
            continue
        if firewall.block_udp:
            notes.append(f"the firewall of {router} blocks UDP: no echo, no UDP throughput")
        if firewall.allow and router in client_side:
            for proto in ("udp", "tcp"):
                if f"{proto}/{port}" not in firewall.allow:
                    notes.append(
                        f"the firewall of {router} only lets {', '.join(firewall.allow)} out: "
                        f"{proto.upper()} to port {port} is blocked (try --port)"
                    )
    return notes


# --- the UDP echo ---------------------------------------------------------------------------

MAGIC = b"SNLP"
_WIRE = struct.Struct("!4sIQQQ")  # magic, seq, prober send, echo receive, echo send (ns)
PROBE_BYTES = 64  # probes and answers have the same size: a rate limit weighs both alike


def _packet(seq: int, sent_ns: int, echoed_ns: int = 0, echo_sent_ns: int = 0) -> bytes:
    return _WIRE.pack(MAGIC, seq, sent_ns, echoed_ns, echo_sent_ns).ljust(PROBE_BYTES, b"\0")


def _unpack(data: bytes) -> tuple[int, int, int, int] | None:
    if len(data) < _WIRE.size:
        return None
    magic, seq, sent_ns, echoed_ns, echo_sent_ns = _WIRE.unpack_from(data)
    if magic != MAGIC:
        return None
    return seq, sent_ns, echoed_ns, echo_sent_ns


class EchoResponder:
    """Answers each probe to the address it came from (what lets the answer through a NAT in
    front of the prober), as `send(data, address)` does it (returning the send's index).

    `stamps` is the echo's own record of the first copy of each sequence number: the kernel's
    receive stamp and the index of the answer's send (whose kernel stamp the socket has).
    """

    def __init__(self, send: Callable[[bytes, tuple[str, int]], int]) -> None:
        self.send = send
        self.stamps: dict[int, tuple[int, int]] = {}

    def received(self, data: bytes, addr: tuple[str, int], at_ns: int) -> None:
        probe = _unpack(data)
        if probe is None:
            return  # not ours
        seq, sent_ns = probe[0], probe[1]
        first = self.stamps.get(seq)
        echoed_ns = at_ns if first is None else first[0]
        index = self.send(_packet(seq, sent_ns, echoed_ns, time.monotonic_ns()), addr)
        self.stamps.setdefault(seq, (at_ns, index))


class _Prober:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.returned: dict[int, int] = {}
        self.max_rtt_ns = 0
        self.complete = asyncio.Event()

    def received(self, data: bytes, at_ns: int) -> None:
        answer = _unpack(data)
        if answer is None or answer[0] in self.returned:
            return
        self.returned[answer[0]] = at_ns
        self.max_rtt_ns = max(self.max_rtt_ns, at_ns - answer[1])
        if len(self.returned) >= self.expected:
            self.complete.set()


def _read_all(sock: StampedSocket, take: Callable[[bytes, tuple[str, int], int], None]) -> None:
    """Everything the socket has (and its transmit stamps: they make it readable too)."""
    sock.collect_sent()
    buffer = bytearray(2048)
    while True:
        try:
            size, address, user, kernel = sock.receive(buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            continue  # an ICMP error for an earlier datagram: a loss, counted as such
        take(bytes(buffer[:size]), address, user if kernel is None else kernel)


async def echo_probe(
    client_ns: str,
    server_ns: str,
    server_address: IPAddress,
    port: int,
    count: int,
    interval_s: float,
    drain_s: float = 1.0,
) -> list[EchoRecord]:
    """Send `count` probes `interval_s` apart from `client_ns` to an echo in `server_ns`.

    All four stamps of a probe are the kernel's (`simnet.net.impair.measure.StampedSocket`):
    the prober's send and the echo's answer as they enter their device queues, the echo's and
    the prober's receive as the kernel delivers them, after every delay line on the way. So the
    event loop's own latency never counts as link delay.

    Probes are sent on a fixed schedule (not one at a time), so a slow answer does not slow the
    probing down. Answers are awaited until all are in or `drain_s` (at least three times the
    slowest round trip seen) after the last probe; later ones count as lost.
    """
    loop = asyncio.get_running_loop()
    server = StampedSocket(server_ns, port)
    try:
        client = StampedSocket(client_ns, 0)
    except BaseException:
        server.close()
        raise
    responder = EchoResponder(server.send)
    prober = _Prober(count)
    readers: list[StampedSocket] = []
    try:
        for sock in (server, client):
            sock.sock.setblocking(False)
        loop.add_reader(server.sock, _read_all, server, responder.received)
        readers.append(server)
        loop.add_reader(client.sock, _read_all, client, lambda d, _a, at: prober.received(d, at))
        readers.append(client)
        target = (str(server_address), port)
        start = loop.time()
        for seq in range(count):
            wait = start + seq * interval_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            now = time.monotonic_ns()
            client.send(_packet(seq, now), target, now)
        drain = max(drain_s, 3 * prober.max_rtt_ns / 1e9)
        with contextlib.suppress(TimeoutError):
            await within(prober.complete.wait(), drain)
        sent, answered = client.sent_ns(), server.sent_ns()
    finally:
        for sock in readers:
            loop.remove_reader(sock.sock)
        client.close()
        server.close()
    records = []
    for seq, sent_ns in enumerate(sent):
        stamps = responder.stamps.get(seq)
        returned = prober.returned.get(seq)
        records.append(
            EchoRecord(
                seq,
                sent_ns,
                echoed_ns=stamps[0] if stamps else None,
                echo_sent_ns=answered[stamps[1]] if stamps else None,
                returned_ns=returned if stamps else None,
            )
        )
    return records


# --- iperf3 ---------------------------------------------------------------------------------

SERVER_READY_S = 5.0
# The UDP test's socket buffers (iperf3 hands the size to the server too). With the default
# 208 KB, a receiver descheduled for a few ms at 100 Mbit/s overflows its buffer: measured on a
# 2-core machine, 6 of 7 unimpaired runs lost 0.02-4.5 %, with 4 MB none of 14 did. That loss is
# the host's, not the emulated link's, so it must not show up as the link's.
UDP_SOCKET_BUFFER = "4M"
# Long enough for three SYNs (sent at 0, 1 and 3 s): on a 2 %-loss link one lost SYN or SYN-ACK
# is common, two in a row rare, three negligible.
CONNECT_TIMEOUT_MS = 7000
# iperf3 (3.x) opens a UDP test with one datagram each way and waits up to 30 s for the answer
# without sending it again, then fails with this message. On a lossy link that exchange is lost
# as often as any datagram: the test is then run again, as a transport would retransmit it.
UDP_HANDSHAKE_WAIT_S = 30
UDP_HANDSHAKE_LOST = "unable to read from stream socket"
UDP_HANDSHAKES = 3
SERVER_EXIT_S = 10.0  # a one-off server ends once the client's last message is in


def _listening(pid: int, port: int) -> bool:
    """Does process `pid`'s namespace have a TCP socket listening on `port`?

    `/proc/PID/net` shows the namespace of that process, so this needs no setns.
    """
    suffix = f":{port:04X}"
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(suffix) and fields[3] == "0A":
                return True
    return False


def server_argv(port: int, log: Path) -> list[str]:
    """A one-off iperf3 server: it serves exactly one test and exits.

    A long-running server is not idle again until it has read the previous client's last
    message, which crosses the emulated link; a client that connects before that is refused
    with ACCESS_DENIED, and the server closes that connection without reading the client's
    cookie, so the kernel resets it. When the link loses the ACCESS_DENIED byte, the reset
    arrives alone and the client fails with "unable to receive control message: Connection
    reset by peer". A fresh server per test is idle by construction.
    """
    return ["iperf3", "--server", "--one-off", "--port", str(port), "--logfile", str(log)]


@contextlib.contextmanager
def iperf_server(network: Network, node: str, port: int, test: str) -> Iterator[None]:
    """A one-off iperf3 server in `node`'s namespace for one test (`test` names its log), let
    to finish when the block ends and stopped if it does not (as a process of the run, the
    run's teardown also stops it if this process dies first)."""
    log = network.run.workdir / f"iperf3-{node}-{test}.log"
    proc = start(
        network.run,
        f"iperf3-server-{node}",
        server_argv(port, log),
        ns=network.ns(node),
        log=log,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait_until(
            lambda: _listening(proc.pid, port),
            f"listening on TCP port {port}",
            timeout_s=SERVER_READY_S,
        )
        yield
        proc.exited_within(SERVER_EXIT_S)
    finally:
        proc.stop()


def client_argv(
    server_address: IPAddress,
    port: int,
    protocol: Protocol,
    *,
    reverse: bool,
    duration_s: int,
    udp_rate: str,
) -> list[str]:
    """The iperf3 client's command line for one test; `reverse` makes the server the sender."""
    argv = [
        "iperf3", "--client", str(server_address), "--port", str(port), "--time", str(duration_s),
        "--json", "--connect-timeout", str(CONNECT_TIMEOUT_MS),
    ]  # fmt: skip
    if protocol == "udp":
        argv += ["--udp", "--bitrate", udp_rate, "--window", UDP_SOCKET_BUFFER]
    if reverse:
        argv.append("--reverse")
    return argv


def handshake_lost(result: IperfResult) -> bool:
    """Whether a UDP test failed only because its opening datagram exchange was lost."""
    return (
        result.protocol == "udp" and result.error is not None and UDP_HANDSHAKE_LOST in result.error
    )


def run_iperf(
    network: Network,
    client: str,
    server_node: str,
    server_address: IPAddress,
    port: int,
    protocol: Protocol,
    *,
    reverse: bool,
    duration_s: int,
    udp_rate: str,
) -> tuple[IperfResult, int]:
    """One iperf3 test from `client` against a fresh one-off server on `server_node`, and the
    number of UDP handshakes the link lost on the way (each costs one run of the test)."""
    argv = client_argv(
        server_address, port, protocol, reverse=reverse, duration_s=duration_s, udp_rate=udp_rate
    )
    limit_s = duration_s + CONNECT_TIMEOUT_MS / 1000 + UDP_HANDSHAKE_WAIT_S + 10
    result = IperfResult(protocol, error="not run")
    for lost in range(UDP_HANDSHAKES if protocol == "udp" else 1):
        with iperf_server(network, server_node, port, f"{protocol}-{lost}"):
            proc = start(
                network.run,
                f"iperf3-client-{client}",
                argv,
                ns=network.ns(client),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                out, err = proc.popen.communicate(timeout=limit_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                return IperfResult(protocol, error=f"iperf3 did not finish in {limit_s:g} s"), lost
        result = parse_iperf(protocol, out.decode(errors="replace"), err.decode(errors="replace"))
        if not handshake_lost(result):
            return result, lost
    return result, UDP_HANDSHAKES
