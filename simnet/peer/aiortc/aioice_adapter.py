"""Every use of aioice's (and aiortc's) private internals, in this one module.

Written for aioice 0.13.0 and aiortc 1.16.0 (the versions setup.sh installs; the behaviour facts
in docs/kernel-notes.md#aiortc-and-aioice were first measured on aiortc 1.15 / aioice 0.10.2).
No other simnet module touches a private attribute of an aioice or aiortc object, so a library
upgrade breaks here and nowhere else; tests/unit/test_aioice_adapter.py checks the attributes
this module relies on against the installed aioice.

What aiortc does not tell, and simnet needs:

- The selected pair: aiortc has no `getSelectedCandidatePair()`. The ICE agent is the aioice
  `Connection` behind `pc.sctp.transport.transport._connection` (SCTP → DTLS → ICE transport);
  its `_nominated[component]` is a `CandidatePair` whose `protocol` is the local socket. For a
  relayed candidate that socket is a `TurnTransport` wrapping the TURN client protocol
  (`TurnClientUdpProtocol` or `TurnClientTcpProtocol`, TLS when its transport carries an SSL
  object), which says which TURN server and which transport the media really uses.
- TURN attempts: aioice gathers a relayed candidate in a task whose exception it drops, so a
  wrong password (401) and an unreachable server both just mean "no relay candidate". The agent
  wraps `aioice.turn.create_turn_endpoint` (looked up through the module by aioice at call time)
  to record each attempt's outcome, which lets a relay-only failure be classified "turn-auth".
- ICE server URLs with IPv6 literals: aiortc's URL parser (`aiortc.rtcicetransport.
  parse_stun_turn_uri`, looked up by its module-level name when a peer connection gathers)
  takes the host up to the first colon, so `turn:[2001:db8::a]:3478` is "malformed";
  `accept_ip_literals` puts `simnet.peer.iceurl`'s parser in its place, which hands aioice the
  same (host, port) tuple it would build for an IPv4 address.
- One TURN URL per peer connection: aiortc configures aioice with the first TURN URL it
  accepts, and a call that gets no relay candidate from it (UDP blocked, a port closed) has none.
  `recording_turn` also wraps `Connection.gather_candidates` (which aiortc calls inside
  `setLocalDescription`): once aioice's own gathering is over without a relay candidate and
  without an answer from the TURN server, it allocates with the next transport's URL
  (`turn_urls_by_transport`), each in turn, until one gives a relay candidate, and adds it to
  the connection's candidates (`_local_candidates`, `_protocols`) before the description is
  built, so the offer or answer carries it. Each try is bounded by aioice's own gathering window
  and by what is left of the call's gathering timeout.
- With `SIMNET_AIORTC_ICE=rfc8445` only (`follow_rfc8445`; default: aioice as installed):
  host candidates by family (aioice gives IPv4 and IPv6 hosts one priority, so on a dual-stack
  network the family is a race; the gathering wrapper lowers IPv4 hosts' local preference as RFC
  8421 asks, `prefer_ipv6_hosts`), and triggered checks on pairs in progress (`check_incoming`
  re-sends our check in flight to the address a check request just came from,
  `resend_checks_to`, as RFC 8445 section 7.3.1.4 asks, instead of waiting out aioice's 500 ms
  retransmission timer).
- Behind an HTTP proxy (`simnet.peer.aiortc.http_proxy.PROXY`, the agent's `--proxy`): the
  TURN wrapper allocates over TCP or TLS on a socket the proxy tunnelled (`CONNECT`), as
  `create_turn_endpoint` does on one it connects itself; TURN over UDP fails at once there.
- TLS trust: for `turns:` URLs aiortc passes `ssl=True`, i.e. the system's default CA store,
  which rejects coturn's certificate (signed by the run's own CA). The same wrapper substitutes an
  `ssl.SSLContext` that trusts the call's `ca_file` (hostname checking stays on: coturn's
  certificate carries the server's IP address as a subject alternative name).
- A TURN allocation from a socket simnet made (`simnet.services.turn_client`, which needs the
  socket inside a namespace): `turn_connect` does what `create_turn_endpoint` does after making
  its own socket. This module imports aiortc and simnet's call protocol only inside the
  functions that need them, so the orchestrator's TURN client pays for neither.
- Received media counted without decoding (`count_without_decoding`, for `MediaSpec.coding:
  replay`): the receiver's private decoder queue (`_RTCRtpReceiver__decoder_queue`), its
  decoder thread's module-level function (`aiortc.rtcrtpreceiver.decoder_worker`) and the
  track's private `_queue`.
- Liveness checks (`simnet.peer.aiortc.liveness`): the nominated pairs (`nominated_pairs`), a hook
  on what the pair's socket receives (`hook_received`), and a STUN check sent on that socket whose
  answer is waited for as long as the caller wants (`send_check`; aioice's own transactions
  give up after 0.5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aioice import ice as aioice_ice
from aioice import stun
from aioice import turn as aioice_turn
from aioice.candidate import Candidate, candidate_priority
from aioice.ice import CandidatePair, Connection, TransportPolicy

from simnet.callspec import TURN_QUOTA_CODES, TurnTransport
from simnet.peer.aiortc.http_proxy import PROXY
from simnet.peer.http_proxy import HttpProxy, ProxyError

if TYPE_CHECKING:  # at run time, imported where used: see the module's docstring
    from aiortc import RTCPeerConnection
    from aiortc.mediastreams import MediaStreamTrack

    from simnet.peer.protocol import IceServer, RelayInfo, SelectedPair, TurnAttempt


#: how long aioice waits for its STUN and TURN answers while gathering
#: (`Connection.get_component_candidates`' `timeout`); each fallback allocation gets as long
GATHER_WINDOW_S = 5.0
#: what a fallback leaves of the gathering timeout, for aiortc to build the description after it
DESCRIPTION_MARGIN_S = 0.2


@dataclass(frozen=True)
class TurnUrl:
    """One TURN URL as aiortc configures aioice with it (`connection_kwargs`)."""

    url: str
    transport: TurnTransport
    server: tuple[str, int]
    username: str | None
    password: str | None

    @property
    def ssl(self) -> bool:
        return self.transport == "tls"

    @property
    def socket_type(self) -> str:
        """aioice's `turn_transport`: TLS runs over TCP."""
        return "udp" if self.transport == "udp" else "tcp"


class TurnRecorder:
    """Collects the TURN attempts of one call, supplies its TLS context, holds the TURN URLs to
    fall back to (`fallbacks`, in order) until `deadline` (monotonic: the gathering timeout's
    end), and names the URL the relay candidate came from (`relay_url`)."""

    def __init__(self, ca_file: str | None) -> None:
        self.attempts: list[TurnAttempt] = []
        self.ssl_context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.fallbacks: list[TurnUrl] = []
        self.deadline: float | None = None
        self.relay_url: str | None = None

    def server_answered(self) -> bool:
        """A TURN server answered an allocation with an error (401, 486, 508...): it answers
        the same over any transport, so no other is tried."""
        return any(a.error_code is not None for a in self.attempts)

    def budget(self) -> float:
        """How long the next fallback allocation may take."""
        if self.deadline is None:
            return GATHER_WINDOW_S
        return min(GATHER_WINDOW_S, self.deadline - time.monotonic() - DESCRIPTION_MARGIN_S)

    def auth_failed(self) -> bool:
        return any(a.error_code == 401 for a in self.attempts)

    def quota_refused(self) -> bool:
        """The server refused an allocation for its limits (486 or 508)."""
        return any(a.error_code in TURN_QUOTA_CODES for a in self.attempts)

    def refusal(self) -> tuple[str, str] | None:
        """The error kind and detail a call without a path gets from its TURN attempts: the
        limits first (a quota is the cause even when a credential also failed), then 401."""
        if self.quota_refused():
            codes = sorted(
                {a.error_code for a in self.attempts if a.error_code in TURN_QUOTA_CODES}
            )
            return (
                "turn-quota",
                f"the TURN server refused the allocation ({', '.join(map(str, codes))})",
            )
        if self.auth_failed():
            return "turn-auth", "the TURN server answered 401"
        return None


# The recorder of the call whose code is running: a context variable, not a global, because one
# process may run many calls at once (`simnet.peer.aiortc.host`); aioice's gathering tasks, started
# inside a call, inherit the call's context and with it its recorder.
_current: contextvars.ContextVar[TurnRecorder | None] = contextvars.ContextVar(
    "simnet_turn_recorder", default=None
)
_original_create_turn_endpoint = aioice_turn.create_turn_endpoint


async def _recording_create_turn_endpoint(*args: Any, **kwargs: Any) -> Any:
    recorder = _current.get()
    wants_tls = bool(kwargs.get("ssl"))
    if kwargs.get("ssl") is True and recorder is not None and recorder.ssl_context is not None:
        kwargs["ssl"] = recorder.ssl_context
    server = kwargs.get("server_addr", args[1] if len(args) > 1 else ("?", 0))
    transport: TurnTransport = (
        "tls" if wants_tls else "tcp" if kwargs.get("transport") == "tcp" else "udp"
    )
    started = time.monotonic()

    def record(ok: bool, exc: BaseException | None = None) -> None:
        from simnet.peer.iceurl import host_port
        from simnet.peer.protocol import TurnAttempt

        if recorder is None:
            return
        error, code = None, None
        if isinstance(exc, asyncio.CancelledError):
            error = "cancelled (gathering gave up waiting for the TURN server)"
        elif exc is not None:
            error, code = _describe(exc)
        recorder.attempts.append(
            TurnAttempt(
                server=host_port(str(server[0]), int(server[1])),
                transport=transport,
                ok=ok,
                error=error,
                error_code=code,
                elapsed_ms=(time.monotonic() - started) * 1000,
                proxy_ms=tunnelled[0] * 1000 if tunnelled else None,
            )
        )

    proxy = PROXY.get()
    tunnelled: list[float] = []  # the CONNECT round trip, when there is a proxy
    try:
        if proxy is None:
            result = await _original_create_turn_endpoint(*args, **kwargs)
        else:
            result = await _create_turn_endpoint_via(proxy, tunnelled, *args, **kwargs)
    except BaseException as exc:
        record(False, exc)
        raise
    record(True)
    return result


async def _create_turn_endpoint_via(
    proxy: HttpProxy,
    tunnelled: list[float],
    protocol_factory: Callable[[], Any],
    server_addr: tuple[str, int],
    username: str | None,
    password: str | None,
    lifetime: int = aioice_turn.DEFAULT_ALLOCATION_LIFETIME,
    channel_refresh_time: int = aioice_turn.DEFAULT_CHANNEL_REFRESH_TIME,
    ssl: Any = None,  # aioice's keyword: True, an SSLContext, or None for plain TCP
    transport: str = "udp",
) -> tuple[aioice_turn.TurnTransport, Any]:
    """`create_turn_endpoint` through `proxy`: TURN over TCP (TLS started inside the tunnel,
    to the TURN server) on a socket the proxy tunnelled. TURN over UDP cannot go through an
    HTTP proxy: it fails at once, so the next transport is tried without waiting. The
    tunnel's round trip (`CONNECT` to `200`, seconds) is appended to `tunnelled`."""
    if transport != "tcp":
        raise ProxyError(f"TURN over UDP cannot go through the HTTP proxy {proxy.address}")
    host, port = str(server_addr[0]), int(server_addr[1])
    asked = time.monotonic()
    sock = await proxy.tunnel(host, port, GATHER_WINDOW_S)
    tunnelled.append(time.monotonic() - asked)
    loop = asyncio.get_running_loop()
    inner_transport, inner_protocol = await loop.create_connection(
        lambda: aioice_turn.TurnClientTcpProtocol(
            server_addr,
            username=username,
            password=password,
            lifetime=lifetime,
            channel_refresh_time=channel_refresh_time,
        ),
        sock=sock,
        ssl=ssl,
        server_hostname=host if ssl else None,
    )
    try:
        protocol = protocol_factory()
        turn_transport = aioice_turn.TurnTransport(inner_protocol)
        await turn_transport._connect(protocol)
    except BaseException:
        inner_transport.close()  # as aioice does: a cancelled gathering must not leak it
        raise
    return turn_transport, protocol


def _describe(exc: BaseException) -> tuple[str, int | None]:
    """(message, STUN error code). Like `simnet.services.turn_client.classify`, which the agent
    does not import: `simnet.services` pulls in pyroute2 and nftables, 90 ms of agent start-up."""
    if isinstance(exc, stun.TransactionFailed):
        code, reason = exc.response.attributes.get("ERROR-CODE", (None, ""))
        reason = str(reason).rstrip("\x00")  # coturn pads its reason phrase with NULs
        return f"TURN allocation: {code} {reason}".rstrip(), code
    if isinstance(exc, stun.TransactionTimeout):
        return "TURN allocation: no answer (timed out)", None
    if isinstance(exc, ProxyError):
        return f"TURN allocation: {exc}", None
    return f"TURN allocation: {type(exc).__name__}: {exc}", None


_original_gather_candidates = Connection.gather_candidates


async def _gather_then_fall_back(self: Connection) -> None:
    """aioice's gathering, its host candidates ordered by family (`prefer_ipv6_hosts`), then
    the call's TURN fallbacks for a component without a relay candidate (see the module's
    docstring)."""
    await _original_gather_candidates(self)
    if Connection.check_incoming is _check_incoming_answering_at_once:  # (`follow_rfc8445`)
        prefer_ipv6_hosts(self._local_candidates)
    recorder = _current.get()
    if recorder is not None and recorder.fallbacks and self.turn_server is not None:
        for component in self._components:
            await _fall_back(self, component, recorder)


#: RFC 8421's local preferences for host candidates: IPv6 above IPv4 (aioice gives both 65535,
#: so on a dual-stack network the first pair whose check got through won: a race, IPv6 in 7 of
#: 15 calls of one series, 14 of 15 and 30 of 30 of others, docs/guides/ipv6.md).
IPV6_HOST_PREFERENCE = 65535
IPV4_HOST_PREFERENCE = 65535 - 2048


def prefer_ipv6_hosts(candidates: list[Candidate]) -> None:
    """Give IPv4 host candidates a lower local preference than IPv6 ones, as RFC 8421 section 4
    asks of a dual-stack agent (and libwebrtc, Firefox and pion do): the pairs of IPv6 hosts are
    checked first, and aioice, which nominates the first pair that succeeds, takes IPv6 where it
    works. Candidates of one family keep their order; a single-family host changes nothing that
    matters (every pair moves together)."""
    for candidate in candidates:
        if candidate.type == "host":
            preference = IPV6_HOST_PREFERENCE if ":" in candidate.host else IPV4_HOST_PREFERENCE
            candidate.priority = candidate_priority(candidate.component, "host", preference)


_original_check_incoming = Connection.check_incoming


def _check_incoming_answering_at_once(
    self: Connection, message: stun.Message, addr: tuple[Any, ...], protocol: Any
) -> None:
    """aioice's handling of a check request, after re-sending at once our own check still in
    flight to the address it came from (`resend_checks_to`)."""
    resend_checks_to(protocol, addr)
    _original_check_incoming(self, message, addr, protocol)


def follow_rfc8445() -> None:
    """Make this process's aiortc peers check as RFC 8445 and RFC 8421 ask where aioice 0.13
    does not (`SIMNET_AIORTC_ICE=rfc8445`): triggered checks on pairs in progress
    (`resend_checks_to`) and IPv6 hosts first (`prefer_ipv6_hosts`). Measured on
    `scenarios/dual-stack.yaml`, 15 calls each: as installed, IPv6 direct in 14 and IPv4 relay in
    1, set-up 541 ms median (534-621); with these, IPv6 direct in 15, 43 ms (36-76): the 500 ms
    was aioice's retransmission timer after a check the far side's firewall had dropped."""
    Connection.check_incoming = _check_incoming_answering_at_once  # type: ignore[method-assign]


def ice_mode_suffix(mode: str) -> str:
    """What a peer's version says of its ICE mode: nothing for aioice as installed."""
    return "" if mode == "aioice" else f" +{mode}"


def resend_checks_to(protocol: Any, addr: tuple[Any, ...]) -> int:
    """Re-send now the check requests `protocol` has in flight to `addr`; how many.

    A check that reached the far side before the far side's own check opened its NAT or
    firewall was dropped there, and aioice retransmits it only 500 ms later; the far side's
    check arriving here is the sign that the way is open now. RFC 8445 section 7.3.1.4 then asks
    for a triggered check on the pair even while its check is in progress; aioice starts one
    only for a frozen, waiting or failed pair. Re-sending the in-flight request (a STUN
    retransmission, same transaction) lets its answer arrive now instead of after the timer."""
    resent = 0
    for transaction in list(protocol.transactions.values()):
        to = transaction._Transaction__addr
        if tuple(to[:2]) == tuple(addr[:2]):
            protocol.send_stun(transaction._Transaction__request, to)
            resent += 1
    return resent


async def _fall_back(connection: Connection, component: int, recorder: TurnRecorder) -> None:
    """Allocate with each fallback URL in turn until one gives `component` a relay
    candidate; stop when a server answered with an error or the time is up."""
    local = connection._local_candidates
    if any(c.type == "relay" and c.component == component for c in local):
        return
    for fallback in recorder.fallbacks:
        budget = recorder.budget()
        if recorder.server_answered() or budget <= 0:
            return
        try:
            async with asyncio.timeout(budget):
                candidate, protocol = await aioice_ice.relayed_candidate(
                    component=component,
                    hide_related_address=connection._transport_policy == TransportPolicy.RELAY,
                    protocol_factory=lambda: aioice_ice.StunProtocol(connection),
                    turn_server=fallback.server,
                    turn_username=fallback.username,
                    turn_password=fallback.password,
                    turn_ssl=fallback.ssl,
                    turn_transport=fallback.socket_type,
                )
        except Exception:  # the timeout included; the attempt is recorded by the wrapper above
            continue
        local.append(candidate)
        connection._protocols.append(protocol)
        recorder.relay_url = fallback.url
        return


@contextlib.contextmanager
def recording_turn(ca_file: str | None) -> Iterator[TurnRecorder]:
    """Record TURN attempts (and trust `ca_file` for TLS) while the body runs: one call; a call
    without a relay candidate allocates with the recorder's `fallbacks` in turn."""
    recorder = TurnRecorder(ca_file)
    # Stay installed for the agent's life (idempotent); outside a call they only pass through.
    aioice_turn.create_turn_endpoint = _recording_create_turn_endpoint
    Connection.gather_candidates = _gather_then_fall_back  # type: ignore[method-assign]
    token = _current.set(recorder)
    try:
        yield recorder
    finally:
        _current.reset(token)


def _parse_stun_turn_uri(uri: str) -> dict[str, Any]:
    """aiortc's `parse_stun_turn_uri`, IPv6 literals included: the same keys (scheme, host,
    port, and transport for TURN), the host without its brackets."""
    from simnet.peer.iceurl import IceUrl  # aiortc's side only: see the module's docstring

    url = IceUrl.parse(uri)
    parsed: dict[str, Any] = {"scheme": url.scheme, "host": url.host, "port": url.port}
    if url.is_turn:
        parsed["transport"] = url.transport
    return parsed


def accept_ip_literals() -> None:
    """Let aiortc take STUN/TURN URLs whose host is an IPv6 literal (process-wide,
    idempotent; every URL it took before parses the same)."""
    from aiortc import rtcicetransport

    rtcicetransport.parse_stun_turn_uri = _parse_stun_turn_uri


def used_turn_url(servers: list[IceServer]) -> str | None:
    """The TURN URL aiortc will use: the first one its own parser accepts (it uses just one;
    IPv6 literals once `accept_ip_literals` ran)."""
    urls = turn_urls_by_transport(servers)
    return urls[0].url if urls else None


def turn_urls_by_transport(servers: list[IceServer]) -> list[TurnUrl]:
    """The TURN URLs aiortc's parser accepts, the first of each transport, in the order given:
    aiortc allocates on the first (`used_turn_url`), the agent falls back to the others in
    turn."""
    from aiortc.rtcconfiguration import RTCIceServer  # aiortc only where a call needs it
    from aiortc.rtcicetransport import connection_kwargs

    found: dict[TurnTransport, TurnUrl] = {}
    for server in servers:
        for url in server.urls:
            one = RTCIceServer(urls=[url], username=server.username, credential=server.credential)
            try:
                kwargs = connection_kwargs([one])
            except ValueError:
                continue
            if "turn_server" not in kwargs:
                continue
            transport: TurnTransport = (
                "tls"
                if kwargs["turn_ssl"]
                else "tcp"
                if kwargs["turn_transport"] == "tcp"
                else "udp"
            )
            found.setdefault(
                transport,
                TurnUrl(
                    url=url,
                    transport=transport,
                    server=kwargs["turn_server"],
                    username=kwargs["turn_username"],
                    password=kwargs["turn_password"],
                ),
            )
    return list(found.values())


def ice_connection(pc: RTCPeerConnection) -> Connection | None:
    """The aioice agent of the call (everything is bundled on one transport)."""
    if pc.sctp is not None:
        return pc.sctp.transport.transport._connection
    for transceiver in pc.getTransceivers():
        return transceiver.receiver.transport.transport._connection
    return None


def candidate_counts(connection: Connection | None) -> tuple[dict[str, int], dict[str, int]]:
    """(local, remote) candidate counts by type."""
    if connection is None:
        return {}, {}
    local = Counter(c.type for c in connection.local_candidates)
    remote = Counter(c.type for c in connection.remote_candidates)
    return dict(local), dict(remote)


def family_counts(connection: Connection | None) -> tuple[dict[str, int], dict[str, int]]:
    """(local, remote) candidate counts by address family (ipv4, ipv6)."""
    from simnet.peer.iceurl import family_name  # aiortc's side only: see the module docstring

    if connection is None:
        return {}, {}
    counts: list[dict[str, int]] = []
    for candidates in (connection.local_candidates, connection.remote_candidates):
        counts.append(dict(Counter(str(f) for c in candidates if (f := family_name(c.host)))))
    return counts[0], counts[1]


def selected_pair(pc: RTCPeerConnection, turn_url: str | None) -> SelectedPair | None:
    """The nominated pair of component 1, or None before ICE completes or after close."""
    from simnet.peer.protocol import CandidateInfo, SelectedPair

    connection = ice_connection(pc)
    if connection is None:
        return None
    pair: CandidatePair | None = _nominated(connection).get(1)
    if pair is None:
        return None
    local, remote = pair.local_candidate, pair.remote_candidate
    relay = _relay_info(pair, turn_url) if local.type == "relay" else None
    return SelectedPair(
        local=CandidateInfo(
            type=local.type, protocol=local.transport.lower(), address=local.host, port=local.port
        ),
        remote=CandidateInfo(
            type=remote.type,
            protocol=remote.transport.lower(),
            address=remote.host,
            port=remote.port,
        ),
        relay=relay,
    )


def _relay_info(pair: CandidatePair, turn_url: str | None) -> RelayInfo | None:
    transport = pair.protocol.transport
    if not isinstance(transport, aioice_turn.TurnTransport):
        return None
    inner = getattr(transport, "_TurnTransport__inner_protocol", None)
    kind: TurnTransport
    if isinstance(inner, aioice_turn.TurnClientUdpProtocol):
        kind = "udp"
    elif isinstance(inner, aioice_turn.TurnClientTcpProtocol):
        kind = "tls" if inner.transport.get_extra_info("ssl_object") is not None else "tcp"
    else:
        return None
    host, port = inner.server
    from simnet.peer.iceurl import host_port
    from simnet.peer.protocol import RelayInfo

    return RelayInfo(server_url=turn_url, server=host_port(str(host), port), transport=kind)


# --- liveness -------------------------------------------------------------------------------


def direct_pair_succeeded(connection: Connection | None) -> bool | None:
    """Whether a pair of two non-relayed candidates (component 1) passed its connectivity checks
    (None: no check list to read, before ICE starts or after close). aioice, controlling,
    nominates the first pair that succeeds; a relayed call with such a pair was relayed by that
    race, not because the network needed TURN. Checks in progress at the nomination go on, so
    read it as late as possible."""
    if connection is None:
        return None
    pairs: list[CandidatePair] = connection._check_list
    if not pairs:
        return None
    return any(
        p.component == 1
        and p.state == CandidatePair.State.SUCCEEDED
        and "relay" not in (p.local_candidate.type, p.remote_candidate.type)
        for p in pairs
    )


def _nominated(connection: Connection) -> dict[int, CandidatePair]:
    nominated: dict[int, CandidatePair] = connection._nominated
    return nominated


def nominated_pairs(connection: Connection) -> list[CandidatePair]:
    """The pairs ICE nominated, one per component (none before ICE completes)."""
    return list(_nominated(connection).values())


def hook_received(pair: CandidatePair, on_datagram: Callable[[tuple[Any, ...]], None]) -> Unhook:
    """Call `on_datagram(addr)` for every datagram the pair's socket receives, before aioice
    handles it; returns the function that removes the hook."""
    protocol = pair.protocol
    original = protocol.datagram_received

    def received(data: bytes | str, addr: tuple[Any, ...]) -> None:
        on_datagram(addr)
        original(data, addr)

    protocol.datagram_received = received  # type: ignore[method-assign]

    def unhook() -> None:
        with contextlib.suppress(AttributeError):
            del protocol.datagram_received  # back to the class's method

    return unhook


Unhook = Callable[[], None]


def remote_password(connection: Connection) -> str | None:
    password: str | None = connection.remote_password
    return password


async def send_check(
    connection: Connection, pair: CandidatePair, key: bytes, timeout_s: float
) -> float | None:
    """Send one STUN Binding check on `pair` (not nominating) and wait up to `timeout_s` for
    its authenticated success answer; the time it arrived (monotonic), or None if lost.

    The request is built by aioice (its username, priority, ICE-CONTROLLING attributes) and
    registered in the protocol's transaction table under a stand-in that only takes the answer:
    aioice's own transaction would give up after its 0.5 s retransmission schedule.
    """
    request = connection.build_request(pair, nominate=False)
    request.add_message_integrity(key)
    answer = _Answer(key)
    protocol = pair.protocol
    protocol.transactions[request.transaction_id] = answer  # type: ignore[assignment]
    try:
        protocol.send_stun(request, pair.remote_addr)
        async with asyncio.timeout(timeout_s):
            return await answer.received
    except (TimeoutError, ConnectionError, OSError):
        return None
    finally:
        protocol.transactions.pop(request.transaction_id, None)


class _Answer:
    """Stands in for an aioice transaction in the protocol's table: takes the (authenticated)
    success response to one check, whenever it comes."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.received: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def response_received(self, message: stun.Message, addr: tuple[str, int]) -> None:
        if (
            message.message_class == stun.Class.RESPONSE
            and message.check_message_integrity(self.key)
            and not self.received.done()
        ):
            self.received.set_result(time.monotonic())


# --- TURN from a socket of our own ----------------------------------------------------------


async def turn_connect(turn: aioice_turn.TurnTransport, protocol: asyncio.DatagramProtocol) -> None:
    """Allocate, then hand the relay to `protocol`: the rest of `create_turn_endpoint`."""
    await turn._connect(protocol)


def bind_host_addresses(
    wrap: Callable[[Callable[..., list[str]]], Callable[..., list[str]]],
) -> None:
    """Make aioice enumerate host addresses through `wrap` (`simnet.peer.aiortc.namespaced`: in the
    namespace of the peer that gathers). aioice calls `aioice.ice.get_host_addresses` by its
    module-level name while gathering, so replacing that name is enough."""
    original = aioice_ice.get_host_addresses
    if getattr(original, "__wrapped_by_simnet__", False):
        return
    wrapped = wrap(original)
    wrapped.__wrapped_by_simnet__ = True  # type: ignore[attr-defined]
    aioice_ice.get_host_addresses = wrapped


# --- received frames counted, not decoded (`MediaSpec.coding: replay`) -------------------------


class _CountedFrames:
    """Stands in for a receiver's decoder queue: each reassembled frame goes to the track as it
    is, on the event loop's thread (aiortc puts frames there from `_handle_rtp_packet`, and the
    end-of-track None from `stop`, both on the loop)."""

    def __init__(self, track_queue: asyncio.Queue[Any]) -> None:
        self._track_queue = track_queue

    def put(self, item: tuple[Any, Any] | None) -> None:
        self._track_queue.put_nowait(None if item is None else item[1])


def count_without_decoding(pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
    """Deliver the reassembled, still encoded frames of remote `track` instead of decoded ones.

    aiortc decodes every received frame in a thread per receiver (`decoder_worker`, started by
    `RTCRtpReceiver.receive` once DTLS is up, after the "track" event that calls this), fed
    through a `queue.Queue`: each frame costs a decode and a hand-off to that thread and back,
    and with dozens of receivers in one process the event loop waits for the threads' turns at
    the GIL (profiled with 25 calls per process: `socket.send` and `srtp_unprotect`, which
    release the GIL, took 72 and 65 µs a call). Here the receiver's queue is replaced by one that
    hands each frame to the track directly, and aiortc's worker, started for that queue, returns
    at once; every other receiver in the process keeps aiortc's decoder."""
    from aiortc import rtcrtpreceiver

    if not getattr(rtcrtpreceiver.decoder_worker, "__wrapped_by_simnet__", False):
        original = rtcrtpreceiver.decoder_worker

        def worker(
            loop: asyncio.AbstractEventLoop,
            input_q: Any,
            output_q: asyncio.Queue[Any],
            decode_error: threading.Event,
        ) -> None:
            if not isinstance(input_q, _CountedFrames):
                original(loop, input_q, output_q, decode_error)

        worker.__wrapped_by_simnet__ = True  # type: ignore[attr-defined]
        rtcrtpreceiver.decoder_worker = worker
    receiver = next(r for r in pc.getReceivers() if r.track is track)
    counted = _CountedFrames(track._queue)  # type: ignore[attr-defined]  # a RemoteStreamTrack
    receiver._RTCRtpReceiver__decoder_queue = counted  # type: ignore[attr-defined]
