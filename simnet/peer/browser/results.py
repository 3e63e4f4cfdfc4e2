"""A browser call's `CallResult`, built from what the page reports: pure functions.

The page sends its raw material (its phase times on its own clock, the candidates it gathered
and received, `icecandidateerror` events, the data-channel figures and `getStats()` snapshots);
the figures are computed here, in Python, so they are unit-tested without a browser and follow
the same definitions as the aiortc agent's (`simnet.peer.aiortc.call`):

- selected pair: the `transport` stats' `selectedCandidatePairId` -> candidate-pair -> its
  local and remote candidates (type, protocol, address, port); a relayed local candidate adds
  `RelayInfo` (its TURN URL, that server's `host:port`, `relayProtocol`);
- candidate counts by type: every local candidate the page gathered, every remote candidate it
  was given (trickled or inside the remote description);
- TURN attempts: one per TURN URL the call was given that either produced a relayed candidate
  (ok, with the time from `setLocalDescription` to that candidate) or an `icecandidateerror`
  (its STUN error code, e.g. 401); an allocation the browser pruned (another TURN allocation
  was ready first on the same network) shows neither and is not listed;
- media per kind over the measured window, from the first and last snapshot: outbound-rtp
  (packets, bytes, bitrate), inbound-rtp (packets, packets lost, jitter, frames, fps, bitrate)
  and remote-inbound-rtp (RTCP round-trip time). Video frames are `framesDecoded`; an audio
  "frame" is 20 ms of samples played out (`totalSamplesReceived` at the codec's clock rate),
  the unit aiortc's 20 ms Opus frames count in. Chromium's `jitter` is in seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from simnet.callspec import TurnTransport
from simnet.peer.browser.clock import ClockMapping
from simnet.peer.iceurl import IceUrl, family_name, host_port
from simnet.peer.protocol import (
    CallCommand,
    CallResult,
    CandidateInfo,
    MediaKindStats,
    ReceivedStats,
    RelayInfo,
    SelectedPair,
    SentStats,
    TurnAttempt,
)

Stats = Mapping[str, Any]
AUDIO_FRAME_S = 0.02  # one Opus frame, aiortc's unit of received audio frames


def candidate_type(candidate: str) -> str | None:
    """The `typ` of an ICE candidate line ("candidate:... typ srflx raddr ...")."""
    words = candidate.split()
    for i, word in enumerate(words[:-1]):
        if word == "typ":
            return words[i + 1]
    return None


def candidate_counts(candidates: Iterable[str]) -> dict[str, int]:
    counts = Counter(t for c in candidates if (t := candidate_type(c)) is not None)
    return dict(counts)


def candidate_family(candidate: str) -> str | None:
    """ipv4 or ipv6: the family of an ICE candidate line's address ("candidate:FOUNDATION
    COMPONENT PROTOCOL PRIORITY ADDRESS PORT typ ..."); None for an mDNS name or a malformed
    line."""
    words = candidate.split()
    return family_name(words[4]) if len(words) > 5 else None


def family_counts(candidates: Iterable[str]) -> dict[str, int]:
    """Candidate lines counted by the family of their address."""
    return dict(Counter(f for c in candidates if (f := candidate_family(c)) is not None))


def turn_endpoint(url: str) -> tuple[str, int, TurnTransport] | None:
    """(host, port, transport) of a `turn:`/`turns:` URL; None for any other URL.

    RFC 7065: `turn:` defaults to UDP on 3478, `turns:` to TLS over TCP on 5349.
    """
    try:
        parsed = IceUrl.parse(url.strip())
    except ValueError:
        return None
    if not parsed.is_turn:
        return None
    transport: TurnTransport = (
        "tls" if parsed.scheme == "turns" else "tcp" if parsed.transport == "tcp" else "udp"
    )
    return parsed.host, parsed.port, transport


def _by_id(stats: Sequence[Stats]) -> dict[str, Stats]:
    return {str(s["id"]): s for s in stats if "id" in s}


def selected_pair(stats: Sequence[Stats], turn_urls: Sequence[str] = ()) -> SelectedPair | None:
    """The pair the ICE transport uses now, from one `getStats()` snapshot: the `transport`
    stats' `selectedCandidatePairId` (Chromium), else the candidate pair flagged `selected`
    (Firefox, which has no transport stats). `turn_urls`: the call's, to name the URL of a
    relayed candidate that does not say it (Firefox's)."""
    by_id = _by_id(stats)
    pair = None
    for s in stats:
        if s.get("type") == "transport" and s.get("selectedCandidatePairId"):
            pair = by_id.get(str(s["selectedCandidatePairId"]))
            break
    if pair is None:
        pair = next(
            (s for s in stats if s.get("type") == "candidate-pair" and s.get("selected") is True),
            None,
        )
    if pair is None:
        return None
    local = by_id.get(str(pair.get("localCandidateId")))
    remote = by_id.get(str(pair.get("remoteCandidateId")))
    if local is None or remote is None:
        return None
    relay = None
    if local.get("candidateType") == "relay":
        relay = relay_info(local, turn_urls)
    return SelectedPair(local=_candidate(local), remote=_candidate(remote), relay=relay)


def _candidate(stats: Stats) -> CandidateInfo:
    return CandidateInfo(
        type=str(stats.get("candidateType")),
        protocol=str(stats.get("protocol")),
        address=str(stats.get("address") or stats.get("ip")),
        port=int(stats.get("port", 0)),
    )


def relay_info(local: Stats, turn_urls: Sequence[str] = ()) -> RelayInfo | None:
    """How a relayed local candidate reaches its TURN server (its `url` and `relayProtocol`);
    for a candidate that names no URL, the one of `turn_urls` it must have come from
    (`url_of_relay`)."""
    protocol = local.get("relayProtocol")
    url = local.get("url") or url_of_relay(
        str(local.get("address") or local.get("ip") or ""),
        str(protocol) if protocol else None,
        turn_urls,
    )
    endpoint = turn_endpoint(str(url)) if url else None
    if endpoint is None:
        return None
    host, port, transport = endpoint
    if protocol in ("udp", "tcp", "tls"):
        transport = protocol
    return RelayInfo(server_url=str(url), server=host_port(host, port), transport=transport)


def url_of_relay(address: str, protocol: str | None, turn_urls: Sequence[str]) -> str | None:
    """The one TURN URL of the call a relayed candidate at `address` (the TURN server's, with
    the port it allocated) reached over `protocol` (None: not said) can have come from: the
    URLs on that host and transport, and when several are, none (it cannot be told which).
    For a browser whose candidates do not say their URL (Firefox)."""
    found = []
    for url in dict.fromkeys(turn_urls):
        endpoint = turn_endpoint(url)
        if endpoint is None:
            continue
        host, _, transport = endpoint
        if host.strip("[]") == address.strip("[]") and protocol in (None, transport):
            found.append(url)
    return found[0] if len(found) == 1 else None


def turn_attempts(
    turn_urls: Sequence[str],
    local_candidates: Sequence[Mapping[str, Any]],
    errors: Sequence[Mapping[str, Any]],
    gather_started_pt: float | None,
) -> list[TurnAttempt]:
    """One attempt per TURN URL that gave a relayed candidate or an error, in the call's order.

    URLs are compared by endpoint (host, port, transport): the browser may spell a URL it
    reports differently from the one it was given.
    """
    started = gather_started_pt or 0.0
    attempts = []
    for url in dict.fromkeys(turn_urls):
        endpoint = turn_endpoint(url)
        if endpoint is None:
            continue
        host, port, transport = endpoint
        server = host_port(host, port)
        relayed = [
            c
            for c in local_candidates
            if candidate_type(str(c.get("candidate", ""))) == "relay"
            and (url_of := _candidate_url(c, turn_urls))
            and turn_endpoint(url_of) == endpoint
        ]
        failed = [e for e in errors if e.get("url") and turn_endpoint(str(e["url"])) == endpoint]
        if relayed:
            first = min(float(c["pt"]) for c in relayed)
            attempts.append(
                TurnAttempt(server=server, transport=transport, ok=True, elapsed_ms=first - started)
            )
        elif failed:
            error = failed[0]
            code = error.get("error_code")
            attempts.append(
                TurnAttempt(
                    server=server,
                    transport=transport,
                    ok=False,
                    error=f"{code} {error.get('error_text') or ''}".strip(),
                    error_code=int(code) if isinstance(code, int | float) else None,
                    elapsed_ms=float(error["pt"]) - started,
                )
            )
    return attempts


def _candidate_url(candidate: Mapping[str, Any], turn_urls: Sequence[str]) -> str | None:
    """The TURN URL a relayed candidate the page gathered came from: its own `url`, else the
    one its address and relay protocol point at (`url_of_relay`)."""
    if candidate.get("url"):
        return str(candidate["url"])
    words = str(candidate.get("candidate", "")).split()
    address = words[4] if len(words) > 5 else ""
    protocol = candidate.get("relay_protocol")
    return url_of_relay(address, str(protocol) if protocol else None, turn_urls)


def _find(snapshot: Sequence[Stats], type_: str, kind: str) -> Stats | None:
    for s in snapshot:
        if s.get("type") == type_ and s.get("kind") == kind:
            return s
    return None


def _clock_rate(snapshot: Sequence[Stats], rtp: Stats, default: int) -> int:
    codec = _by_id(snapshot).get(str(rtp.get("codecId")))
    rate = codec.get("clockRate") if codec else None
    return int(rate) if isinstance(rate, int | float) and rate > 0 else default


def kind_stats(
    kind: str, first: Sequence[Stats], last: Sequence[Stats], window_s: float
) -> MediaKindStats:
    """One kind's figures over the media window, from its first and last snapshots."""

    def delta(type_: str, field: str) -> float:
        after, before = _find(last, type_, kind), _find(first, type_, kind)
        now = float(after.get(field, 0) or 0) if after else 0.0
        then = float(before.get(field, 0) or 0) if before else 0.0
        return now - then

    def rate_kbps(bytes_: float) -> float:
        return bytes_ * 8 / window_s / 1000 if window_s > 1e-3 else 0.0

    sent = None
    out = _find(last, "outbound-rtp", kind)
    if out is not None:
        sent = SentStats(
            packets=int(out.get("packetsSent", 0)),
            bytes=int(out.get("bytesSent", 0)),
            bitrate_kbps=rate_kbps(delta("outbound-rtp", "bytesSent")),
        )
    received = None
    inbound = _find(last, "inbound-rtp", kind)
    if inbound is not None:
        if kind == "video":
            frames = int(delta("inbound-rtp", "framesDecoded"))
        else:
            samples_per_frame = _clock_rate(last, inbound, 48_000) * AUDIO_FRAME_S
            frames = int(delta("inbound-rtp", "totalSamplesReceived") / samples_per_frame)
        received = ReceivedStats(
            packets=int(inbound.get("packetsReceived", 0)),
            packets_lost=int(inbound.get("packetsLost", 0)),
            jitter_ms=float(inbound.get("jitter", 0) or 0) * 1000,
            frames=frames,
            fps=frames / window_s if window_s > 1e-3 else 0.0,
            bitrate_kbps=rate_kbps(delta("inbound-rtp", "bytesReceived")),
        )
    remote_in = _find(last, "remote-inbound-rtp", kind)
    rtt_s = remote_in.get("roundTripTime") if remote_in is not None else None
    rtt_ms = float(rtt_s) * 1000 if isinstance(rtt_s, int | float) else None
    return MediaKindStats(kind=kind, sent=sent, received=received, rtt_ms=rtt_ms)


def build_result(
    cmd: CallCommand,
    report: Mapping[str, Any],
    mapping: ClockMapping,
    close_s: float | None,
) -> CallResult:
    """The call's result from the page's "report" event (see page.js `report()`)."""
    phase_t = {k: mapping.to_shared(float(v)) for k, v in report.get("phase_pt", {}).items()}
    turn_urls = [url for server in cmd.ice_servers for url in server.urls]
    start_key = "offer_created" if cmd.role == "offer" else "offer_received"
    setup = None
    if start_key in phase_t and "dc_open" in phase_t:
        setup = phase_t["dc_open"] - phase_t[start_key]
    stats = report.get("stats") or []
    media: list[MediaKindStats] = []
    window_s = None
    snapshots = report.get("media_stats")
    window_pt = report.get("media_window_pt")
    if snapshots and window_pt:
        window_s = (float(window_pt[1]) - float(window_pt[0])) / 1000
        first, last = snapshots
        media = [kind_stats(kind, first, last, window_s) for kind in cmd.media.kinds]
    local = report.get("local_candidates") or []
    return CallResult(
        role=cmd.role,
        connected=bool(report.get("connected")),
        error=report.get("error"),
        error_detail=report.get("error_detail"),
        # the pair at the end: in the report's snapshot, else in the one taken before the
        # closing "done" exchange (the peer may have closed first, taking this side's transport
        # and its selected pair with it); as it came up only when the call never got that far
        selected_pair=selected_pair(stats, turn_urls)
        or selected_pair(report.get("open_stats") or [], turn_urls)
        or selected_pair(report.get("connected_stats") or [], turn_urls),
        local_candidates=candidate_counts(str(c.get("candidate", "")) for c in local),
        remote_candidates=candidate_counts(str(c) for c in report.get("remote_candidates") or []),
        local_candidate_families=family_counts(str(c.get("candidate", "")) for c in local),
        remote_candidate_families=family_counts(
            str(c) for c in report.get("remote_candidates") or []
        ),
        turn_attempts=turn_attempts(
            turn_urls, local, report.get("candidate_errors") or [], report.get("gather_started_pt")
        ),
        phase_t=phase_t,
        setup_s=setup,
        dc_rtt_ms=report.get("dc_rtt_ms"),
        dc_bytes=report.get("dc_bytes"),
        dc_goodput_mbps=report.get("dc_goodput_mbps"),
        media=media,
        media_window_s=window_s,
        close_s=close_s,
        disconnects=int(report.get("disconnects", 0)),
        disconnected_s=float(report.get("disconnected_s", 0.0)),
        clock_error_ms=mapping.error_s * 1000,
    )
