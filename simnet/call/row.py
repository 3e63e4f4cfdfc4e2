"""A result row's call columns from the two sides of a call. Pure: no sockets, no processes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv6Network, ip_address

from simnet.addresses import IPV4, Family
from simnet.callspec import ROW_MILESTONES, TurnTransport
from simnet.peer.iceurl import family_name, split_host_port
from simnet.peer.protocol import CallResult, CandidateInfo, SelectedPair
from simnet.results.schema import CallOutcome, FamilyFigures, TurnAttemptRecord


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _same(a: CandidateInfo, b: CandidateInfo) -> bool:
    """One candidate as each side names it: the same transport address."""
    return (a.address, a.port) == (b.address, b.port)


def _only_transport(result: CallResult) -> TurnTransport | None:
    """The transport of every relay `result`'s side allocated, when they share one: the
    transport of any relay candidate of that side, even when its selected pair is not the one
    the other side reports (the two sides' pairs can differ for a moment)."""
    transports = {a.transport for a in result.turn_attempts if a.ok}
    return transports.pop() if len(transports) == 1 else None


#: errors that name why a call had no path, where the other side only sees that it had none
CAUSES = ("turn-quota", "turn-auth")


def call_row(
    offer: CallResult | None, answer: CallResult | None, agent_error: str | None = None
) -> CallOutcome:
    """The call as a row sees it: the offerer's view, completed by the answerer's where it knows
    more.

    Milestone columns (`<side>_<milestone>_ms`) are offsets from the offerer's `offer_created`;
    both peers' clocks are the same monotonic clock, so the answerer's are on the same axis.
    The error is the offerer's, unless the answerer names a cause the offerer only saw the
    effect of (a TURN server refused the answerer: the offerer got no candidate from it).
    """
    sides = [r for r in (offer, answer) if r is not None]
    connected = len(sides) == 2 and all(r.connected for r in sides)
    errors = [r.error for r in sides if r.error]
    causes = [e for e in errors if e in CAUSES]
    error = agent_error or next(iter(causes or errors), None)
    if not connected and error is None:
        error = "ice-failed"
    pair = offer.selected_pair if offer else None
    local = pair.local.type if pair else None
    remote = pair.remote.type if pair else None
    # The relay is the offerer's own (local relay) or the answerer's (remote relay). The two
    # peers' pairs can differ (under loss; for a moment after a browser moves to a better pair:
    # the offerer on the eu relay while the answerer still sends through us),
    # so the answerer's report counts only for the very relay candidate the offerer's pair uses.
    relay = pair.relay if pair and local == "relay" else None
    theirs = answer.selected_pair if answer else None
    if remote == "relay" and pair and theirs and theirs.relay and _same(theirs.local, pair.remote):
        relay = relay or theirs.relay
    relay_protocol = relay.transport if relay else None
    if relay_protocol is None and remote == "relay" and answer:
        relay_protocol = _only_transport(answer)
    phases = offer.phase_t if offer else {}
    start = phases.get("offer_created")
    checking = phases.get("ice_checking") or phases.get("answer_received")
    milestones: dict[str, float] = {}
    for side, result in (("offerer", offer), ("answerer", answer)):
        for phase, t in (result.phase_t if result else {}).items():
            if start is not None and phase in ROW_MILESTONES:
                milestones[f"{side}_{phase}_ms"] = round((t - start) * 1000, 3)
    media: dict[str, float | int | None] = {}
    for side, result in (("offerer", offer), ("answerer", answer)):
        for kind in result.media if result else []:
            prefix = f"{side}_{kind.kind}"
            if kind.sent:
                media[f"{prefix}_sent_kbps"] = kind.sent.bitrate_kbps
            if kind.received:
                received = kind.received
                media[f"{prefix}_recv_fps"] = received.fps
                media[f"{prefix}_recv_frames"] = received.frames
                media[f"{prefix}_recv_lost"] = received.packets_lost
                media[f"{prefix}_recv_jitter_ms"] = received.jitter_ms
                media[f"{prefix}_recv_kbps"] = received.bitrate_kbps
            media[f"{prefix}_rtt_ms"] = kind.rtt_ms
    reported = [r.direct_pair_succeeded for r in sides if r.direct_pair_succeeded is not None]
    return CallOutcome(
        connected=connected,
        error=error,
        error_detail=next((r.error_detail for r in sides if r.error_detail), None),
        path=None if pair is None else ("relay" if "relay" in (local, remote) else "direct"),
        local_candidate=local,
        remote_candidate=remote,
        local_protocol=pair.local.protocol if pair else None,
        relay_protocol=relay_protocol,
        relay_server=relay.server if relay else None,
        ice_connect_ms=(
            _ms(phases["ice_connected"] - checking)
            if checking is not None and "ice_connected" in phases
            else None
        ),
        setup_ms=_ms(offer.setup_s) if offer and connected else None,
        milestones=milestones,
        dc_goodput_mbps=answer.dc_goodput_mbps if answer else None,
        rtt_ms=offer.dc_rtt_ms if offer else None,
        dc_bytes=answer.dc_bytes if answer else None,
        media=media,
        ice_disconnects=sum(r.disconnects for r in sides),
        ice_disconnected_ms=_ms(max((r.disconnected_s for r in sides), default=0.0)),
        # each attempt says whose it was: both sides allocate on the same servers
        turn_attempts=[
            TurnAttemptRecord(**a.model_dump(), side=r.role) for r in sides for a in r.turn_attempts
        ],
        # either side's checks passing on a direct pair shows the network carries one
        direct_pair_succeeded=any(reported) if reported else None,
    )


@dataclass(frozen=True)
class SideNetwork:
    """What decides whether a side's packets crossed a NAT64: the address families its host has
    and the NAT64 prefix of its network (None: no NAT64 on its way to the internet)."""

    families: frozenset[Family]
    nat64_prefix: IPv6Network | None = None


def crossed_nat64(
    pair: SelectedPair | None,
    side: SideNetwork,
    server_families: Mapping[str, frozenset[Family]] | None = None,
) -> bool | None:
    """Whether the packets of a side whose selected pair is `pair` crossed its network's NAT64.

    They did when the address they are sent to (the remote candidate's; for a relayed local
    candidate, the TURN server's) lies in the side's NAT64 prefix, or is an IPv4 address while
    the side's host has none (a CLAT on the host translated them for the NAT64). A TURN server
    the side reached by name (a browser reports the URL it used, not the address) counts when
    it has no address of a family the host has (`server_families`: a server's name -> its
    families): the host can then have reached it only through a DNS64-synthesized address.
    None without a pair, or for a relay whose server is not known."""
    if pair is None:
        return None
    if side.nat64_prefix is None:
        return False
    if pair.local.type == "relay":
        if pair.relay is None:
            return None
        host = split_host_port(pair.relay.server)[0]
    else:
        host = pair.remote.address
    try:
        address = ip_address(host)
    except ValueError:  # a name
        families = (server_families or {}).get(host)
        return None if families is None else not (families & side.families)
    if address.version == IPV4:
        return IPV4 not in side.families
    return address in side.nat64_prefix


def family_figures(
    offer: CallResult | None,
    answer: CallResult | None,
    offerer: SideNetwork,
    answerer: SideNetwork,
    server_families: Mapping[str, frozenset[Family]] | None = None,
) -> FamilyFigures:
    """A row's address-family columns (`simnet.results.schema.FamilyFigures`): the offerer's
    pair's family and candidates, and each side's NAT64 crossing judged on its own pair."""
    pair = offer.selected_pair if offer else None
    family = family_name(pair.local.address) if pair else None
    sides = [
        crossed_nat64(result.selected_pair if result else None, network, server_families)
        for result, network in ((offer, offerer), (answer, answerer))
    ]
    known = [s for s in sides if s is not None]
    local = offer.local_candidate_families if offer else {}
    remote = offer.remote_candidate_families if offer else {}
    return FamilyFigures(
        ip_family=family,
        via_nat64=any(known) if known else None,
        offerer_via_nat64=sides[0],
        answerer_via_nat64=sides[1],
        local_candidates_ipv4=local.get("ipv4", 0),
        local_candidates_ipv6=local.get("ipv6", 0),
        remote_candidates_ipv4=remote.get("ipv4", 0),
        remote_candidates_ipv6=remote.get("ipv6", 0),
    )
