"""The scenario file, as pydantic models.

A scenario describes a network the way a person would draw it: NAT routers (optionally behind one
another), hosts behind them or directly on the internet, and servers on the internet. Addresses
are optional; the network plan assigns them.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from simnet.addresses import IPV4, IPV6, Family, IPNetwork
from simnet.callspec import (
    ERROR_KINDS,
    TURN_TRANSPORTS,
    IcePolicy,
    Liveness,
    MediaSpec,
    SignalingKind,
    Strict,
    Timeouts,
    TurnTransport,
)
from simnet.peerkinds import DEFAULT_KIND, EXTERNAL_KIND, KINDS, NAMED_KINDS, PeerKind, kind
from simnet.scenario.family import (
    FAMILIES,
    V6_FILTERING_ALIASES,
    WORD_FAMILIES,
    Blackhole,
    IpVersion,
    RelayFamily,
    V6Filtering,
    family_list,
    ip_of,
    lan6_problem,
    nat_family_problem,
)
from simnet.scenario.nat import (
    CARRIER_PRESETS,
    CHAINED_PRESETS,
    FILTERING_ALIASES,
    MAPPING_ALIASES,
    PRESET_NAMES,
    PRESETS,
    Filtering,
    Mapping,
    NatBehavior,
    PortAllocation,
)

INTERNET = "internet"
DEFAULT_PRESET = "port-restricted-cone"
# A NAT64's IPv4 side without another preset: what carriers run (APDM, APDF, random ports).
# Decided by the preset's value, not by whether the file wrote it, so that a scenario written
# out and read back (a template's copies, a cluster's workers) is the same scenario.
NAT64_DEFAULT_PRESET = "symmetric"
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,19}$"
NAME_MAX = 20
# A scenario's name labels its results (rows, file names, report groups): letters, digits and
# `._-`, so it is a safe file name part and a plain word in a shell or a CI log.
SCENARIO_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SCENARIO_NAME_MAX = 64
SEED_MAX = 2**63 - 1  # stored in an int64 result column
# A host template's instances are NAME-0 .. NAME-<count-1>; one /24 LAN holds 245 members
# (.10 to .254), which bounds what a shared NAT can take (simnet.net.plan says so precisely).
COUNT_MAX = 245
REGION_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
# Where coturn listens, per transport a call's TURN URL may use (simnet.services.coturn:
# the plain port 3478 for UDP and TCP, 5349 for TLS, and 443 for all three); the first is the
# default port of a TURN URL.
TURN_LISTEN_PORTS: dict[str, tuple[int, ...]] = {
    "udp": (3478, 443),
    "tcp": (3478, 443),
    "tls": (5349, 443),
}


class TurnPorts(Strict):
    """The port of each TURN transport's URLs, one coturn listens on for that transport
    (`TURN_LISTEN_PORTS`). A production fleet offers UDP on 3478 and TCP and TLS on 443, the
    port a firewall that lets only HTTPS out still passes."""

    udp: int = Field(default=TURN_LISTEN_PORTS["udp"][0], description="TURN/UDP: 3478 or 443")
    tcp: int = Field(default=TURN_LISTEN_PORTS["tcp"][0], description="TURN/TCP: 3478 or 443")
    tls: int = Field(default=TURN_LISTEN_PORTS["tls"][0], description="TURN/TLS: 5349 or 443")

    @model_validator(mode="after")
    def _served(self) -> TurnPorts:
        for transport in TURN_TRANSPORTS:
            port, served = self.of(transport), TURN_LISTEN_PORTS[transport]
            if port not in served:
                raise ValueError(
                    f"{transport}: coturn serves TURN/{transport} on port "
                    f"{' or '.join(map(str, served))}, not {port}"
                )
        return self

    def of(self, transport: TurnTransport) -> int:
        """The port of `transport`'s URLs."""
        port: int = getattr(self, transport)
        return port


PRIVATE_LANS = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
SHARED_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


def _scenario_name(value: str) -> str:
    if not re.fullmatch(SCENARIO_NAME_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a scenario name: use 1-{SCENARIO_NAME_MAX} letters, digits, "
            "'.', '_' or '-', starting with a letter or a digit (it names the result files)"
        )
    return value


def name_from_stem(stem: str) -> str:
    """A scenario name for a file without `name:`: its file name, made a valid name."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).lstrip("._-")[:SCENARIO_NAME_MAX]
    return name or "scenario"


def _region(value: str) -> str:
    if not re.fullmatch(REGION_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a region label: use 1-32 lower-case letters, digits or '-', "
            "e.g. eu-west"
        )
    return value


def _alias(
    aliases: dict[str, Mapping] | dict[str, Filtering] | dict[str, V6Filtering],
) -> BeforeValidator:
    def convert(value: object) -> object:
        if isinstance(value, str):
            return aliases.get(value.strip().lower(), value)
        return value

    return BeforeValidator(convert)


def _preset_name(value: str) -> str:
    if value not in PRESET_NAMES:
        raise ValueError(f"unknown NAT preset '{value}'; allowed: {', '.join(PRESET_NAMES)}")
    return value


def _network_text(value: Any) -> Any:
    """Refuse a number where an address range belongs.

    pydantic hands any int to `IPv4Network`, and YAML's `true` is one: `block: [true]` would
    otherwise become a rule against 0.0.0.1/32 instead of an error.
    """
    if isinstance(value, int):
        raise ValueError(
            f"{value!r} is not an address range; write one as text, e.g. '203.0.113.0/24'"
        )
    return value


def _one_network(value: Any, parse: ValidatorFunctionWrapHandler) -> Any:
    """An address range of either family, or the one error a range that is neither gets."""
    try:
        return parse(value)
    except ValidationError:
        raise PydanticCustomError("ip_v4_network", "Input is not a valid IPv4 network") from None


def _ipv4_lan(net: IPNetwork) -> IPNetwork:
    """`lan:` is the IPv4 LAN; an IPv6 network's /64 is `lan6:`."""
    if net.version != 4:
        raise ValueError(
            f"{net}: `lan:` is the LAN's IPv4 range; give an IPv6 LAN as `lan6:` (on a network "
            "with ip: dual or v6)"
        )
    return net


def _lan6_network(net: ipaddress.IPv6Network) -> ipaddress.IPv6Network:
    problem = lan6_problem(net)
    if problem:
        raise ValueError(problem)
    return net


def _lan_network(net: IPNetwork) -> IPNetwork:
    private = isinstance(net, ipaddress.IPv4Network) and (
        any(net.subnet_of(p) for p in PRIVATE_LANS) or net.subnet_of(SHARED_CGNAT)
    )
    if not private:
        raise ValueError(
            f"{net} is not a private (10/8, 172.16/12, 192.168/16) or CGNAT (100.64/10) range"
        )
    if not 16 <= net.prefixlen <= 29:
        raise ValueError(f"{net}: a LAN prefix must be between /16 and /29")
    return net


Name = Annotated[str, Field(pattern=NAME_PATTERN)]
MappingField = Annotated[Mapping, _alias(MAPPING_ALIASES)]
FilteringField = Annotated[Filtering, _alias(FILTERING_ALIASES)]
# Either family's type (a NAT's knobs say whether its network has IPv6).
NetworkField = Annotated[IPNetwork, WrapValidator(_one_network), BeforeValidator(_network_text)]
LanField = Annotated[NetworkField, AfterValidator(_ipv4_lan), AfterValidator(_lan_network)]
Lan6Field = Annotated[
    ipaddress.IPv6Network, BeforeValidator(_network_text), AfterValidator(_lan6_network)
]
V6FilteringField = Annotated[V6Filtering, _alias(V6_FILTERING_ALIASES)]
PortRule = Annotated[str, Field(pattern=r"^(tcp|udp)/\d{1,5}$")]


JitterDistribution = Literal["uniform", "normal", "pareto"]
Direction = Literal["up", "down"]
DIRECTIONS: tuple[Direction, ...] = ("up", "down")
DEFAULT_QUEUE_PACKETS = 1000  # netem's default limit, so both backends drop at the same point


class LossBurst(Strict):
    """Gilbert-Elliott loss: a good and a bad state, each with its own loss probability.

    Real links lose packets in bursts (fading, a full queue upstream); independent random loss
    would hide how a jitter buffer or FEC copes with that. Percentages per packet, as netem's
    `loss gemodel p r 1-h 1-k`: the mean loss is p/(p+r) * loss_in_bad (+ the good state's
    share) and a bad spell lasts 1/r packets on average.
    """

    p_pct: float = Field(gt=0, le=100, description="chance per packet of going good -> bad")
    r_pct: float = Field(gt=0, le=100, description="chance per packet of going bad -> good")
    loss_in_bad_pct: float = Field(
        default=100.0, ge=0, le=100, description="loss in the bad state, % per packet"
    )
    loss_in_good_pct: float = Field(
        default=0.0, ge=0, le=100, description="loss in the good state, % per packet"
    )

    @property
    def bad_share(self) -> float:
        """Long-run fraction of packets that arrive in the bad state."""
        return self.p_pct / (self.p_pct + self.r_pct)

    @property
    def mean_loss_pct(self) -> float:
        bad = self.bad_share
        return bad * self.loss_in_bad_pct + (1 - bad) * self.loss_in_good_pct

    @property
    def mean_bad_packets(self) -> float:
        """Mean length of a bad spell in packets (a loss burst when loss_in_bad_pct is 100)."""
        return 100 / self.r_pct


class Impairment(Strict):
    """What one direction of a link does to packets.

    Semantics are netem's, whichever backend applies them: each packet is delayed by `delay_ms`
    plus a jitter sample (`uniform`: within ±jitter_ms; `normal`: sigma = jitter_ms; `pareto`:
    netem's shifted Pareto, heavy right tail, never below delay - 2/3 jitter), never below 0;
    packets keep their order unless `reorder` (then a packet leaves when its own delay says).
    `rate_kbit` counts layer-2 bytes (IP packet + 14-byte Ethernet header), as netem and tbf do.
    `queue_packets` bounds the packets a direction holds while delaying them, and again while
    they wait for the rate limiter (netem's `limit` and its tbf child's); packets beyond it are
    dropped, as a router's full queue does. Loss, duplication and delay apply to IP packets of
    either family the link carries (ARP and IPv6 neighbour discovery are left alone, so
    neighbours stay resolvable).
    """

    delay_ms: float = Field(default=0, ge=0, le=10_000, description="one-way delay added")
    jitter_ms: float = Field(
        default=0, ge=0, le=10_000, description="spread of the delay (see jitter_distribution)"
    )
    jitter_distribution: JitterDistribution = Field(
        default="uniform",
        description="uniform: within ±jitter_ms; normal: sigma = jitter_ms; pareto: heavy tail",
    )
    loss_pct: float = Field(default=0, ge=0, le=100, description="independent random loss, %")
    loss_burst: LossBurst | None = Field(
        default=None, description="Gilbert-Elliott (bursty) loss instead of loss_pct"
    )
    duplicate_pct: float = Field(default=0, ge=0, le=100, description="packets sent twice, %")
    reorder: bool = Field(
        default=False, description="let a packet overtake others when its own delay says so"
    )
    rate_kbit: int | None = Field(
        default=None, gt=0, le=100_000_000, description="rate limit, kbit/s of layer-2 bytes"
    )
    queue_packets: int = Field(
        default=DEFAULT_QUEUE_PACKETS,
        ge=1,
        le=1_000_000,
        description="packets held at most (delay line, rate limiter); beyond it they drop",
    )

    @model_validator(mode="after")
    def _one_loss_model(self) -> Impairment:
        if self.loss_pct and self.loss_burst is not None:
            raise ValueError(
                "loss_pct (independent loss) and loss_burst (Gilbert-Elliott) are two loss "
                "models; set one (loss_burst.loss_in_good_pct adds loss outside bursts)"
            )
        return self

    @property
    def is_ideal(self) -> bool:
        """Nothing happens to packets (queue size and ordering alone change nothing)."""
        return (
            self.delay_ms == 0
            and self.jitter_ms == 0
            and self.loss_pct == 0
            and self.loss_burst is None
            and self.duplicate_pct == 0
            and self.rate_kbit is None
        )

    @property
    def delays(self) -> bool:
        """Needs a delay line: a per-packet decision on *when* (or, for bursts, *whether*)."""
        return self.delay_ms > 0 or self.jitter_ms > 0 or self.loss_burst is not None

    @property
    def mean_loss_pct(self) -> float:
        return self.loss_burst.mean_loss_pct if self.loss_burst is not None else self.loss_pct


LOSS_MODELS = ("loss_pct", "loss_burst")


class LinkSpec(Impairment):
    """Impairments of the link that attaches a node to its network (the core or its router's
    LAN), for both directions; `up` (from the node towards the network) and `down` override
    any field for one direction. `mtu` is the link's, so it cannot differ per direction.
    """

    mtu: int | None = Field(
        default=None, ge=576, le=65535, description="the link's MTU (both directions)"
    )
    up: Impairment | None = Field(
        default=None, description="overrides for the direction from the node towards the network"
    )
    down: Impairment | None = Field(
        default=None, description="overrides for the direction towards the node"
    )

    @model_validator(mode="after")
    def _directions_valid(self) -> LinkSpec:
        for name in DIRECTIONS:
            try:
                self.direction(name)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return self

    def direction(self, name: Direction) -> Impairment:
        """The impairment of one direction: the link's fields, overridden by `up`/`down`.

        Setting either loss model in a direction replaces the link's loss model there.
        """
        fields = {f: getattr(self, f) for f in Impairment.model_fields}
        override = self.up if name == "up" else self.down
        if override is not None:
            chosen = override.model_fields_set
            if chosen & set(LOSS_MODELS):
                fields.update(loss_pct=0, loss_burst=None)
            fields.update({f: getattr(override, f) for f in chosen})
        return Impairment.model_validate(fields)

    @property
    def is_ideal(self) -> bool:
        return self.mtu is None and all(self.direction(d).is_ideal for d in DIRECTIONS)


class FirewallSpec(Strict):
    """Outbound policy of a router, as a corporate firewall sets it.

    Only traffic leaving the LAN is judged; unsolicited inbound traffic is the NAT's business.
    """

    block_udp: bool = Field(default=False, description="drop all UDP leaving the LAN")
    allow: list[PortRule] = Field(
        default_factory=list,
        description="if non-empty, only these destination ports may be used, e.g. ['tcp/443']",
    )
    block: list[NetworkField] = Field(
        default_factory=list,
        description="destination ranges dropped, as text, e.g. ['192.0.2.10/32']",
    )
    proxy_only: Name | None = Field(
        default=None,
        description="the name of an http-proxy server: nothing leaves the LAN except TCP to "
        "that proxy's addresses and port (a corporate network whose only way out is its proxy)",
    )

    @model_validator(mode="after")
    def _ports_in_range(self) -> FirewallSpec:
        for rule in self.allow:
            port = int(rule.split("/")[1])
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} in '{rule}' is not in 1-65535")
        return self


class NatSpec(Strict):
    """A router. Its behaviour starts from `preset`; each knob set here overrides the preset."""

    preset: Annotated[str, AfterValidator(_preset_name)] = Field(
        default=DEFAULT_PRESET,
        description="open (a router, no translation), full-cone, restricted-cone, "
        "port-restricted-cone, symmetric, cgn (a carrier-grade NAT, its LAN on 100.64.0.0/10: "
        "a phone on a mobile network), or cgnat (this NAT behind a carrier NAT NAME-carrier "
        "on 100.64.0.0/10, so NAME has at most 12 characters); a NAT64's default is symmetric",
    )
    mapping: MappingField | None = Field(
        default=None, description="when a new external port is used (or EIM, ADM, APDM)"
    )
    filtering: FilteringField | None = Field(
        default=None, description="which unsolicited packets reach a mapping (or EIF, ADF, APDF)"
    )
    port_allocation: PortAllocation | None = Field(
        default=None, description="preserve (keep the host's port when free), sequential, random"
    )
    hairpin: bool | None = Field(
        default=None, description="loop packets to the NAT's own public address back into the LAN"
    )
    udp_timeout_s: int | None = Field(
        default=None, ge=1, le=86400, description="binding timeout (mappings and conntrack)"
    )
    behind: Name = Field(default=INTERNET, description="internet, or another NAT (NATs chain)")
    lan: LanField | None = Field(
        default=None,
        description="the LAN's private range (default: 192.168.N.0/24; 100.64.N.0/24 for carriers)",
    )
    firewall: FirewallSpec | None = Field(default=None, description="outbound policy")
    link: LinkSpec | None = Field(default=None, description="impairment of the NAT's WAN link")
    ip: IpVersion = Field(
        default="v4",
        description="what its users get: v4 (IPv4 only), dual (IPv4 and IPv6), v6 (IPv6 only)",
    )
    v6_filtering: V6FilteringField | None = Field(
        default=None,
        description="the IPv6 firewall (RFC 6092): open, address-dependent (ADF) or "
        "address-and-port-dependent (APDF, the default; open for preset open)",
    )
    lan6: Lan6Field | None = Field(
        default=None,
        description="the LAN's IPv6 /64 in 2001:db8::/32 (default: one from 2001:db8:1::/48 "
        "for open routers, 2001:db8:2::/48 for carriers, 2001:db8:3::/48 for homes)",
    )
    nat64: bool = Field(
        default=False,
        description="with ip: v6, a NAT64 and DNS64 in this carrier; the NAT knobs describe "
        "its IPv4 side (default without a preset: symmetric, random ports)",
    )
    v4: Blackhole | None = Field(
        default=None, description="blackhole: IPv4 leaving the LAN is dropped silently"
    )
    v6: Blackhole | None = Field(
        default=None, description="blackhole: IPv6 leaving the LAN is dropped silently"
    )

    @model_validator(mode="after")
    def _open_has_no_knobs(self) -> NatSpec:
        if self.preset == "open" and self.knobs():
            raise ValueError(
                f"preset 'open' does not translate, so {', '.join(self.knobs())} cannot apply; "
                "remove them or choose a NAT preset"
            )
        return self

    @model_validator(mode="after")
    def _families_fit(self) -> NatSpec:
        if self.ip == "v6" and self.lan is not None:
            raise ValueError(
                "lan: an IPv6-only network (ip: v6) has no IPv4 LAN; remove it (its IPv6 "
                "range is lan6)"
            )
        v6_knobs = [n for n in ("v6_filtering", "lan6") if getattr(self, n) is not None]
        problem = nat_family_problem(
            ip=self.ip,
            nat64=self.nat64,
            preset=self.preset,
            preset_given=self.preset != DEFAULT_PRESET,
            ipv4_knobs=[k for k in self.knobs() if k != "udp_timeout_s"],
            v6_knobs=v6_knobs,
            blackholed=self.blackholed,
            block=[n.version for n in self.firewall.block] if self.firewall else [],
        )
        if problem:
            raise ValueError(problem)
        return self

    @property
    def families(self) -> frozenset[Family]:
        """The address families this network's users get."""
        return FAMILIES[self.ip]

    @property
    def blackholed(self) -> frozenset[Family]:
        """The families this router drops silently on their way out of its LAN."""
        return frozenset(f for f, knob in ((IPV4, self.v4), (IPV6, self.v6)) if knob)

    @property
    def effective_v6_filtering(self) -> V6Filtering:
        if self.v6_filtering is not None:
            return self.v6_filtering
        return V6Filtering.OPEN if self.preset == "open" else V6Filtering.APDF

    def knobs(self) -> dict[str, Mapping | Filtering | PortAllocation | bool | int]:
        """The knobs set explicitly, to lay over the preset."""
        names = ("mapping", "filtering", "port_allocation", "hairpin", "udp_timeout_s")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


def _command(value: str) -> str:
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot be split like a shell line ({exc})") from None
    if not argv:
        raise ValueError("empty; give the program to run, e.g. './my-client --flag'")
    return value


class ExternalPeer(Strict):
    """A peer program of the user's own that speaks simnet's peer protocol
    (docs/peer-protocol.md). The line is split like a shell line (no shell runs it)
    and started inside the host's namespace, from the directory simnet runs in."""

    command: Annotated[str, AfterValidator(_command)] = Field(
        description="the program and its arguments, e.g. './my-client --flag'"
    )

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command)


# Which kinds a host's `peer:` may name, and what each can do: the registry, `simnet.peerkinds`.
def _peer_kind(value: Any) -> Any:
    if isinstance(value, str) and value not in NAMED_KINDS:
        raise ValueError(
            f"'{value}' is not a peer kind; use one of {', '.join(NAMED_KINDS)} or "
            "{command: './my-client'} for a program that speaks simnet's peer protocol"
        )
    return value


# A string names a kind, a mapping gives a command: only that branch's error is reported.
PeerSpec = Annotated[
    Annotated[PeerKind, BeforeValidator(_peer_kind), Tag("named")]
    | Annotated[ExternalPeer, Tag("command")],
    Discriminator(lambda value: "named" if isinstance(value, str) else "command"),
]


class HostSpec(Strict):
    """An end host (a WebRTC peer, a probe client) on a LAN or directly on the internet."""

    behind: Name = Field(
        default=INTERNET, description="a NAT, or internet for a host with a public address"
    )
    link: LinkSpec | None = Field(default=None, description="impairment of the host's link")
    peer: PeerSpec = Field(
        default=DEFAULT_KIND,
        description=f"the WebRTC stack of this host's peer: {', '.join(NAMED_KINDS)} or "
        "{command: ...}",
    )
    count: int = Field(
        default=1,
        ge=1,
        le=COUNT_MAX,
        description="a template of this many hosts, NAME-0 .. NAME-<count-1>, alike",
    )
    own_nat: bool = Field(
        default=False,
        description="with count: each host behind its own copy of its NAT, not one shared NAT",
    )

    @model_validator(mode="after")
    def _own_nat_has_a_nat(self) -> HostSpec:
        if self.own_nat and self.behind == INTERNET:
            raise ValueError(
                "own_nat: a host on the internet has no NAT to copy; set `behind:` to a NAT"
            )
        return self

    @property
    def peer_kind(self) -> str:
        """The row's name for this host's peer: its kind in the registry (`simnet.peerkinds`)."""
        return self.peer if isinstance(self.peer, str) else EXTERNAL_KIND


class TurnLimits(Strict):
    """coturn's own limits (its command-line options), so a scenario can show what happens past
    them: an allocation refused for a limit fails the call as `turn-quota`."""

    max_allocations: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="allocations at once, all users (--total-quota)",
    )
    user_quota: int | None = Field(
        default=None, ge=1, le=1_000_000, description="allocations at once per user (--user-quota)"
    )
    bps_capacity: int | None = Field(
        default=None, ge=1, description="the server's total bandwidth, bytes/s (--bps-capacity)"
    )
    max_bps: int | None = Field(
        default=None, ge=1, description="per allocation, bytes/s (--max-bps)"
    )
    relay_ports: tuple[int, int] | None = Field(
        default=None, description="[first, last] relay port (--min-port, --max-port)"
    )

    @model_validator(mode="after")
    def _ports(self) -> TurnLimits:
        if self.relay_ports is not None:
            first, last = self.relay_ports
            if not 1024 <= first <= last <= 65535:
                raise ValueError(
                    f"relay_ports: [{first}, {last}] must be a range within 1024-65535, first "
                    "not above last"
                )
        return self


class ProxyAuth(Strict):
    """Basic authentication an http-proxy asks of its clients (squid's basic_ncsa_auth)."""

    user: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,32}$")] = Field(
        description="the user name (letters, digits, ._-)"
    )
    password: Annotated[str, Field(pattern=r"^[!-~]{1,64}$")] = Field(
        description="the password (printable ASCII, no space)"
    )


PROXY_PORT = 3128  # where an http-proxy listens (squid's own default)


class ServerSpec(Strict):
    """A server on the public internet. Its service is started by the call machinery."""

    kind: Literal["stun", "turn", "signaling", "probe", "http-proxy"] = Field(
        description="turn: coturn, STUN and TURN over UDP and TCP on 3478, TLS on 5349, all three "
        "on 443; stun: coturn, STUN only; signaling: the WebSocket/HTTP signaling server; probe: "
        "verify-nat's echo server; http-proxy: squid on port 3128, tunnelling CONNECT to "
        "`connect_ports` only"
    )
    addresses: int = Field(default=1, ge=1, le=4, description="public addresses of the server")
    auth: Literal["long-term", "rest"] | ProxyAuth = Field(
        default="long-term",
        description="TURN credentials: static user or TURN REST secret; an http-proxy's basic "
        "authentication: {user, password} (default: none)",
    )
    connect_ports: list[Annotated[int, Field(ge=1, le=65535)]] | None = Field(
        default=None,
        min_length=1,
        description="the ports an http-proxy lets CONNECT reach (default [443]); squid answers "
        "403 to any other",
    )
    region: Annotated[str, AfterValidator(_region)] | None = Field(
        default=None,
        description="a TURN server's label (lower-case letters, digits, -), reported as the "
        "relay_region of calls it relays",
    )
    link: LinkSpec | None = Field(default=None, description="impairment of the server's link")
    limits: TurnLimits | None = Field(default=None, description="a TURN server's coturn limits")
    ip: IpVersion | None = Field(
        default=None,
        description="v4, dual or v6 (default: dual when the internet carries IPv6, which it "
        "does when a NAT or server has ip: dual or v6; else v4)",
    )
    relay_families: list[RelayFamily] | None = Field(
        default=None,
        min_length=1,
        description="a TURN server's relay address families, ipv4 and/or ipv6 (RFC 6156; "
        "default: every family of the server)",
    )

    @model_validator(mode="after")
    def _relay_families_fit(self) -> ServerSpec:
        if self.relay_families is None:
            return self
        if self.kind != "turn":
            raise ValueError(f"relay_families: only a TURN server relays, not a {self.kind} server")
        if len(set(self.relay_families)) != len(self.relay_families):
            raise ValueError("relay_families: name each family once")
        if self.ip is not None:
            missing = {WORD_FAMILIES[f] for f in self.relay_families} - FAMILIES[self.ip]
            if missing:
                raise ValueError(
                    f"relay_families: the server has no {family_list(missing)} address (ip: "
                    f"{self.ip}); relay in its own families, or set ip: dual"
                )
        return self

    def families_in(self, internet: frozenset[Family]) -> frozenset[Family]:
        """The server's families in an internet that carries `internet`."""
        return FAMILIES[self.ip] if self.ip is not None else internet

    def relay_families_in(self, internet: frozenset[Family]) -> frozenset[Family]:
        """The families a TURN server relays in: `relay_families`, else all of its own."""
        if self.relay_families is None:
            return self.families_in(internet)
        return frozenset(WORD_FAMILIES[f] for f in self.relay_families)

    @property
    def proxy_ports(self) -> list[int]:
        """The ports an http-proxy tunnels CONNECT to."""
        return self.connect_ports if self.connect_ports is not None else [443]

    @property
    def proxy_auth(self) -> ProxyAuth | None:
        return self.auth if isinstance(self.auth, ProxyAuth) else None

    @model_validator(mode="after")
    def _proxy_fields(self) -> ServerSpec:
        if self.connect_ports is not None and self.kind != "http-proxy":
            raise ValueError(
                f"connect_ports: only an http-proxy has them, not a {self.kind} server"
            )
        if isinstance(self.auth, ProxyAuth) and self.kind != "http-proxy":
            raise ValueError(
                f"auth: {{user, password}} is an http-proxy's; a {self.kind} server takes "
                "long-term or rest"
            )
        if self.kind == "http-proxy" and self.auth == "rest":
            raise ValueError("auth: an http-proxy takes {user, password}, not rest")
        return self

    @model_validator(mode="after")
    def _region_is_turns(self) -> ServerSpec:
        if self.limits is not None and self.kind != "turn":
            raise ValueError(f"limits: only a TURN server has them, not a {self.kind} server")
        if self.region is not None and self.kind != "turn":
            raise ValueError(
                f"region: only a TURN server has one (it labels the relay a call used), "
                f"not a {self.kind} server"
            )
        return self


class Expectation(Strict):
    """What every call of the scenario must show. `simnet run` exits 1 naming each call that
    does not, so a scenario file is a connectivity regression test by itself (the test suite
    runs every shipped scenario against its own expectation)."""

    connected: bool = Field(default=True, description="the call connects")
    error: str | None = Field(
        default=None, description="with connected: false, the failure, e.g. timeout:ice"
    )
    path: Literal["direct", "relay"] | None = Field(default=None, description="the path taken")
    relay_protocol: TurnTransport | None = Field(
        default=None, description="the transport to the TURN server of a relayed call"
    )
    rtt_ms: tuple[float, float] | None = Field(
        default=None, description="[min, max] of the data-channel RTT"
    )
    ip_family: RelayFamily | None = Field(
        default=None,
        description="the address family of the selected pair (a relayed pair: of its relayed "
        "address): ipv4 or ipv6; a call on a network without IPv6 is an ipv4 call",
    )
    via_nat64: bool | None = Field(
        default=None, description="whether either side's packets crossed a NAT64"
    )
    recovered: bool | None = Field(default=None, description="after the call's timeline")
    seed: int | None = Field(
        default=None,
        ge=0,
        le=SEED_MAX,
        description=(
            "set: the expectation is one draw, that of this seed (a lossy link's outcome varies "
            "with the draw); calls of other seeds need only connect without an error"
        ),
    )

    @model_validator(mode="after")
    def _coherent(self) -> Expectation:
        if self.error is not None:
            if self.connected:
                raise ValueError(
                    "error: a call expected to connect has no error; add connected: false"
                )
            if self.error not in ERROR_KINDS:
                raise ValueError(f"error: '{self.error}' is not one of {', '.join(ERROR_KINDS)}")
        elif not self.connected and (
            self.path or self.relay_protocol or self.rtt_ms or self.ip_family
        ):
            raise ValueError("path, relay_protocol, rtt_ms and ip_family describe a connected call")
        if not self.connected and self.via_nat64 is not None:
            raise ValueError("via_nat64: a call that does not connect crosses nothing")
        if self.relay_protocol is not None and self.path == "direct":
            raise ValueError("relay_protocol: a direct path has no relay")
        if self.rtt_ms is not None and not 0 <= self.rtt_ms[0] <= self.rtt_ms[1]:
            raise ValueError("rtt_ms: [min, max] with 0 <= min <= max")
        return self


TimelineAction = Literal["link", "cut", "restore", "nat-flush", "move", "ice-restart"]
DISRUPTIVE_ACTIONS: tuple[TimelineAction, ...] = ("link", "cut", "nat-flush", "move")
#: The actions that change the network (kernel work); `ice-restart` is a command to a peer.
NETWORK_ACTIONS: tuple[TimelineAction, ...] = ("link", "cut", "restore", "nat-flush", "move")


class TimelineEvent(Strict):
    """A change made during a call, `at_s` seconds after the data channel opens.

    `cut`: the `target` node's attachment link drops everything, both directions; `restore`:
    the link is back to the scenario's impairment (no cut); `link`: the link's impairment
    becomes `link`; `nat-flush`: the NAT `target` forgets every mapping (conntrack and its
    nftables state), as a reboot would; `move`: host `target` leaves its network and is
    attached behind NAT `to` (or on the `internet`) with a new address, as a phone moving from
    Wi-Fi to mobile data, and its old NAT forgets its mappings; `ice-restart`: the offerer
    (`target`, which may be left out) restarts ICE, as an app does after a network change.
    """

    at_s: float = Field(ge=0, le=3600, description="seconds after the data channel opens")
    action: TimelineAction = Field(description="what changes (see the model's text above)")
    target: Name | None = Field(
        default=None, description="the node changed; ice-restart: the offerer (may be omitted)"
    )
    link: LinkSpec | None = Field(default=None, description="link: the new impairment (no mtu)")
    to: Name | None = Field(
        default=None, description="move: the NAT the host is attached behind next, or internet"
    )

    @model_validator(mode="after")
    def _fields_fit_the_action(self) -> TimelineEvent:
        if self.target is None and self.action != "ice-restart":
            raise ValueError(f"action '{self.action}' needs a `target:`")
        if self.action == "link" and self.link is None:
            raise ValueError("action 'link' needs a `link:` impairment")
        if self.action != "link" and self.link is not None:
            raise ValueError(f"`link:` applies to action 'link' only, not '{self.action}'")
        if self.link is not None and self.link.mtu is not None:
            raise ValueError("a timeline cannot change a link's mtu")
        if self.action == "move" and self.to is None:
            raise ValueError(
                "action 'move' needs `to:`, the NAT the host moves behind (or internet)"
            )
        if self.action != "move" and self.to is not None:
            raise ValueError(f"`to:` applies to action 'move' only, not '{self.action}'")
        return self


def instance_names(name: str, count: int) -> list[str]:
    """The hosts a template `name` with `count` stands for (itself when count is 1)."""
    return [name] if count == 1 else [f"{name}-{i}" for i in range(count)]


def own_nat_name(instance: str) -> str:
    """The NAT of its own an instance of an `own_nat` template sits behind."""
    return f"{instance}-nat"


class CallSpec(Strict):
    """The WebRTC call a run makes: who calls whom, through which servers, carrying what."""

    offerer: Name = Field(default="alice", description="the host that makes the offer")
    answerer: Name = Field(default="bob", description="the host that answers")
    ice_policy: IcePolicy = Field(default="all", description="all candidates, or relay: TURN only")
    stun: bool = Field(default=True, description="give the peers STUN (server-reflexive)")
    turn: bool = Field(default=True, description="give the peers the scenario's TURN servers")
    turn_transports: list[TurnTransport] = Field(
        default_factory=lambda: list(TURN_TRANSPORTS),
        min_length=1,
        description="the TURN URLs' transports, in order: a browser, pion or external peer "
        "gets every one; aiortc allocates on the first, then on the next when it gives no "
        "relay candidate",
    )
    turn_ports: TurnPorts = Field(
        default_factory=lambda: TurnPorts(),
        description="the TURN URLs' port per transport, as a fleet's servers offer them (e.g. "
        "{udp: 3478, tcp: 443, tls: 443}); a transport left out: 3478, or 5349 for tls",
    )
    turn_server: Name | None = Field(
        default=None,
        description="the TURN server whose URLs the peers get (default: aiortc the first, a "
        "Chromium or external peer every one)",
    )
    wrong_credentials: bool = Field(
        default=False,
        description="give the peers wrong TURN credentials, to see how a refused TURN login "
        "(turn-auth) is reported",
    )
    ice_urls: Literal["literals", "names"] = Field(
        default="literals",
        description="how the STUN/TURN URLs name their server: literals: its addresses, IPv4 "
        "first, of every family the peer's host has; names: <server>.simnet.test, which the "
        "peer's host resolves with its network's resolver (DNS64 on a NAT64 carrier)",
    )
    signaling: SignalingKind = Field(
        default="ws", description="ws: WebSocket; http: POST and long-poll"
    )
    data_bytes: int = Field(
        default=1_000_000,
        ge=0,
        le=1_000_000_000,
        description="bytes sent over the data channel, measured as goodput (0: none)",
    )
    media: MediaSpec = Field(
        default_factory=MediaSpec, description="synthetic audio and video, both ways"
    )
    duration_s: float = Field(
        default=2.0, ge=0, le=3600, description="media time measured (and the timeline's span)"
    )
    timeouts: Timeouts = Field(default_factory=Timeouts, description="the bound of each phase")
    liveness: Liveness | None = Field(
        default_factory=Liveness, description="null: report aiortc's own ICE states only"
    )
    timeline: list[TimelineEvent] = Field(
        default_factory=list,
        description="network changes during the call; duration_s must outlast the last one",
    )
    expect: Expectation | None = Field(
        default=None, description="the outcome every call must have (simnet run exits 1 if not)"
    )
    concurrent: int = Field(
        default=1,
        ge=1,
        le=COUNT_MAX,
        description="calls at once: offerer-i calls answerer-i (both host templates)",
    )
    ramp_per_s: float | None = Field(
        default=None, gt=0, le=1000, description="new calls per second (default: all at once)"
    )

    @model_validator(mode="before")
    @classmethod
    def _one_port_per_transport(cls, data: Any) -> Any:
        if isinstance(data, dict) and "turn_port" in data:
            transports = data.get("turn_transports") or list(TURN_TRANSPORTS)
            first = transports[0] if isinstance(transports, list) and transports else "udp"
            raise ValueError(
                f"turn_port: a TURN port is given per transport, in turn_ports: write "
                f"turn_ports: {{{first}: {data['turn_port']}}} (one entry per transport "
                "whose port is not the default)"
            )
        return data

    @model_validator(mode="after")
    def _timeline_fits(self) -> CallSpec:
        if self.expect is not None and self.expect.recovered is not None and not self.timeline:
            raise ValueError("expect.recovered: only a call with a timeline can recover")
        if self.timeline and self.concurrent > 1:
            raise ValueError(
                "timeline: a timeline changes the network of one call; leave it out of a "
                f"scenario with concurrent: {self.concurrent}"
            )
        if self.timeline:
            last = max(e.at_s for e in self.timeline)
            if self.duration_s <= last:
                raise ValueError(
                    f"timeline: the last event is at {last:g} s but duration_s is "
                    f"{self.duration_s:g}; the call must last longer than its timeline"
                )
        return self

    @property
    def ordered_timeline(self) -> list[TimelineEvent]:
        """Events by time (stable: events at the same time keep their order)."""
        return sorted(self.timeline, key=lambda e: e.at_s)


class Router(BaseModel):
    """A NAT device after presets are expanded (a `cgnat` entry becomes two of these)."""

    model_config = ConfigDict(frozen=True)

    name: str
    behavior: NatBehavior
    behind: str
    lan: IPNetwork | None
    firewall: FirewallSpec | None
    link: LinkSpec | None
    carrier: bool = False
    open: bool = False  # preset open: a router that translates nothing
    families: frozenset[Family] = frozenset({IPV4})  # its LAN's: what its users get
    v6_filtering: V6Filtering = V6Filtering.APDF
    lan6: ipaddress.IPv6Network | None = None
    nat64: bool = False
    blackholed: frozenset[Family] = frozenset()

    @property
    def wan_families(self) -> frozenset[Family]:
        """The families its WAN needs from the network above: its LAN's, and IPv4 for a NAT64."""
        return self.families | ({IPV4} if self.nat64 else frozenset())


class Scenario(Strict):
    """A whole emulated network."""

    name: Annotated[str, AfterValidator(_scenario_name)] = Field(
        default="scenario",
        description="labels rows and names result files: letters, digits, ._- (at most 64); "
        "a file without one is named after the file",
    )
    description: str = Field(default="", description="free text")
    seed: int = Field(default=0, ge=0, le=SEED_MAX, description="the seed of every random draw")
    nats: dict[Name, NatSpec] = Field(default_factory=dict, description="routers, by name")
    hosts: dict[Name, HostSpec] = Field(default_factory=dict, description="end hosts, by name")
    servers: dict[Name, ServerSpec] = Field(
        default_factory=dict, description="servers on the internet, by name"
    )
    call: CallSpec | None = Field(
        default=None, description="the call (default: alice calls bob with every default)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names: dict[str, str] = {}
        for section in ("nats", "hosts", "servers"):
            for name in getattr(self, section):
                if name == INTERNET:
                    raise ValueError(f"{section}.{name}: '{INTERNET}' is a reserved name")
                if name in names:
                    raise ValueError(f"{section}.{name}: name already used in {names[name]}")
                names[name] = section
        for name, nat in self.nats.items():
            carrier = f"{name}-carrier"
            if nat.preset in CHAINED_PRESETS and len(carrier) > NAME_MAX:
                raise ValueError(
                    f"nats.{name}: a {nat.preset} NAT's name may have at most "
                    f"{NAME_MAX - len('-carrier')} characters, so that its carrier NAT "
                    f"('{carrier}') has a valid name (at most {NAME_MAX}) a timeline can target"
                )
            if nat.preset in CHAINED_PRESETS and carrier in names:
                raise ValueError(
                    f"{names[carrier]}.{carrier}: name is taken by the carrier NAT of "
                    f"nats.{name} (preset {nat.preset}); rename one of them"
                )
        self._template_names(names)
        if self.call is not None:
            problems = self.call_problems(self.call)
            if problems:
                raise ValueError(problems[0])
            self._timeline_targets(self.call)
        routers = {r.name: r for r in self.routers()}
        for section, items in (("nats", self.nats), ("hosts", self.hosts)):
            for name, spec in items.items():
                if spec.behind != INTERNET and spec.behind not in self.nats:
                    known = ", ".join([INTERNET, *self.nats]) or INTERNET
                    raise ValueError(
                        f"{section}.{name}.behind: '{spec.behind}' is not a NAT of this "
                        f"scenario; allowed: {known}"
                    )
        for name in self.nats:
            seen = [name]
            current = routers[name].behind
            while current != INTERNET:
                if current in seen:
                    loop = " -> ".join([*seen, current])
                    raise ValueError(f"nats.{name}.behind: NATs form a loop ({loop})")
                seen.append(current)
                current = routers[current].behind
        problem = _family_problem(self, routers)
        if problem:
            raise ValueError(problem)
        self._proxies_named()
        return self

    def _proxies_named(self) -> None:
        """Every `firewall.proxy_only` names an http-proxy server of this scenario."""
        for name, nat in self.nats.items():
            proxy = nat.firewall.proxy_only if nat.firewall else None
            if proxy is None:
                continue
            server = self.servers.get(proxy)
            if server is None or server.kind != "http-proxy":
                known = ", ".join(self.servers_of("http-proxy")) or "none in this scenario"
                raise ValueError(
                    f"nats.{name}.firewall.proxy_only: '{proxy}' is not an http-proxy server; "
                    f"http-proxy servers: {known} (add `servers: {{{proxy}: {{kind: "
                    "http-proxy}}`)"
                )

    def _template_names(self, names: dict[str, str]) -> None:
        """Every name a host template makes (its instances, their own NATs and carriers) is
        valid and new."""
        for name, host in self.hosts.items():
            if host.count == 1 and not host.own_nat:
                continue
            made = list(instance_names(name, host.count))
            if host.own_nat and host.behind in self.nats:
                nats = [own_nat_name(i) for i in made]
                made += nats
                if self.nats[host.behind].preset in CHAINED_PRESETS:
                    made += [f"{n}-carrier" for n in nats]
            longest = max(made, key=len)
            if len(longest) > NAME_MAX:
                raise ValueError(
                    f"hosts.{name}: this template makes the name '{longest}', longer than "
                    f"{NAME_MAX} characters; give the template a shorter name"
                )
            for made_name in made:
                if made_name in names and made_name != name:  # count 1: the host itself
                    raise ValueError(
                        f"hosts.{name}: this template makes the name '{made_name}', already "
                        f"used in {names[made_name]}; rename one of them"
                    )
                names[made_name] = f"hosts ({name}'s template)"

    def servers_of(self, kind: str) -> list[str]:
        """The names of the scenario's servers of one kind, in file order."""
        return [name for name, s in self.servers.items() if s.kind == kind]

    def call_problems(self, call: CallSpec) -> list[str]:
        """Why `call` cannot be made in this network (empty: it can).

        One list for the model's validation (a `call:` section) and for `simnet run` of a file
        without one (the default call), so `validate` and `run` accept the same files."""
        problems = []
        for role in ("offerer", "answerer"):
            peer = getattr(call, role)
            if peer not in self.hosts:
                known = ", ".join(self.hosts) or "none"
                problems.append(f"call.{role}: '{peer}' is not a host; hosts: {known}")
        if call.offerer == call.answerer:
            problems.append("call: offerer and answerer must be different hosts")
        if call.media.coding == "replay":
            for role in ("offerer", "answerer"):
                host = self.hosts.get(getattr(call, role))
                if host is not None and not kind(host.peer_kind).capabilities.replayed_media:
                    able = [k.name for k in KINDS.values() if k.capabilities.replayed_media]
                    problems.append(
                        f"call.media.coding: replay is simnet's {' and '.join(able)} peer's, "
                        f"but the {role}'s peer (hosts.{getattr(call, role)}.peer) is "
                        f"{host.peer_kind}; use coding: live"
                    )
        if call.concurrent > 1:
            for role in ("offerer", "answerer"):
                host = self.hosts.get(getattr(call, role))
                if host is not None and host.count < call.concurrent:
                    problems.append(
                        f"call.concurrent: {call.concurrent} calls need {call.concurrent} "
                        f"{role}s, but hosts.{getattr(call, role)}.count is {host.count}; "
                        f"set it to at least {call.concurrent}"
                    )
        if not self.servers_of("signaling"):
            problems.append(
                "call: a call needs a signaling server; add `servers: {signaling: {kind: "
                "signaling}}`"
            )
        problems += self._expected_families(call)
        if call.ice_urls == "names" and IPV6 not in self.internet_families:
            problems.append(
                "call.ice_urls: names need the emulated internet's DNS (the simnet.test zone), "
                "which it has where it carries IPv6; give a network or a server ip: dual or v6, "
                "or use ice_urls: literals"
            )
        turns = self.servers_of("turn")
        if call.turn_server is not None and call.turn_server not in turns:
            problems.append(
                f"call.turn_server: '{call.turn_server}' is not a TURN server; "
                f"TURN servers: {', '.join(turns) or 'none'}"
            )
        return problems

    def _expected_families(self, call: CallSpec) -> list[str]:
        """An expected family or NAT64 crossing the scenario's networks cannot give."""
        expect, problems = call.expect, []
        if expect is not None and expect.ip_family == "ipv6" and IPV6 not in self.internet_families:
            problems.append(
                "call.expect.ip_family: ipv6 needs a network with IPv6; give the callers' "
                "networks ip: dual or v6, or expect ip_family: ipv4"
            )
        if expect is not None and expect.via_nat64 and not any(n.nat64 for n in self.nats.values()):
            problems.append(
                "call.expect.via_nat64: true needs a NAT64 carrier (nats.X: {ip: v6, nat64: "
                "true}); expect via_nat64: false or leave it out"
            )
        return problems

    def _timeline_targets(self, call: CallSpec) -> None:
        routers = {r.name: r for r in self.routers()}
        nodes = [*routers, *self.hosts, *self.servers]
        networks = [INTERNET, *self.nats]
        where_now = {name: host.behind for name, host in self.hosts.items()}
        moved: dict[str, int] = {}  # host -> index of its first move
        # in time order (as they are applied), each named by its place in the file
        for i, event in sorted(enumerate(call.timeline), key=lambda pair: pair[1].at_s):
            where = f"call.timeline[{i}].target"
            if event.action == "ice-restart":
                if event.target is not None and event.target != call.offerer:
                    raise ValueError(
                        f"{where}: an ICE restart is made by the offerer ('{call.offerer}'), "
                        f"not '{event.target}'; leave `target:` out"
                    )
                continue
            assert event.target is not None  # the event's own validator
            template = self.hosts.get(event.target)
            if template is not None and template.count > 1:
                raise ValueError(
                    f"{where}: '{event.target}' is a template of {template.count} hosts; a "
                    "timeline changes one host: name a host without a count"
                )
            if event.action == "nat-flush":
                translating = [n for n, r in routers.items() if r.behavior.translates]
                if event.target not in translating:
                    raise ValueError(
                        f"{where}: '{event.target}' is not a translating NAT; "
                        f"NATs: {', '.join(translating) or 'none'}"
                    )
            elif event.target not in nodes:
                raise ValueError(
                    f"{where}: '{event.target}' is not a node; nodes: {', '.join(nodes)}"
                )
            if event.action == "move":
                if event.target not in self.hosts:
                    raise ValueError(
                        f"{where}: only a host can move; '{event.target}' is not one "
                        f"(hosts: {', '.join(self.hosts) or 'none'})"
                    )
                if event.to not in networks:
                    raise ValueError(
                        f"call.timeline[{i}].to: '{event.to}' is not a NAT of this scenario; "
                        f"allowed: {', '.join(networks)}"
                    )
                if event.to == where_now[event.target]:
                    raise ValueError(
                        f"call.timeline[{i}].to: '{event.target}' is already attached behind "
                        f"'{event.to}' at {event.at_s:g} s; move it to another NAT"
                    )
                where_now[event.target] = event.to
                moved.setdefault(event.target, i)
            elif event.action == "link" and event.target in moved:
                raise ValueError(
                    f"{where}: '{event.target}' has moved (call.timeline[{moved[event.target]}])"
                    " before this change; a moved host's link cannot change, change its "
                    "NAT's link instead"
                )

    def routers(self) -> list[Router]:
        """NAT routers with presets expanded, parents before children."""
        out: list[Router] = []
        for name, spec in self.nats.items():
            behind = spec.behind
            if spec.preset in CHAINED_PRESETS:
                carrier_name = f"{name}-carrier"
                out.append(
                    Router(
                        name=carrier_name,
                        behavior=CHAINED_PRESETS[spec.preset][1],
                        behind=spec.behind,
                        lan=None,
                        firewall=None,
                        link=None,
                        carrier=True,
                        families=spec.families,
                        v6_filtering=V6Filtering.OPEN,  # the home behind it filters
                    )
                )
                behind = carrier_name
            out.append(_router(name, spec, behind))
        return _parents_first(out)

    @property
    def internet_families(self) -> frozenset[Family]:
        """What the emulated internet carries: IPv6 too when a network or a server asks for
        it, else IPv4 only (as every scenario without a family knob)."""
        asked = [n.families for n in self.nats.values()]
        asked += [FAMILIES[s.ip] for s in self.servers.values() if s.ip is not None]
        return frozenset({IPV4, *(f for fams in asked for f in fams)})


def _router(name: str, spec: NatSpec, behind: str) -> Router:
    """The router `spec` describes (the home of a chained preset: behind its carrier)."""
    if spec.preset in CHAINED_PRESETS:
        base = CHAINED_PRESETS[spec.preset][0]
    elif spec.nat64 and spec.preset == DEFAULT_PRESET:
        base = PRESETS[NAT64_DEFAULT_PRESET]
    else:
        base = CARRIER_PRESETS.get(spec.preset) or PRESETS[spec.preset]
    behavior = base.model_copy(update=spec.knobs()) if spec.knobs() else base
    if IPV4 not in spec.families and not spec.nat64:  # no IPv4 to translate
        behavior = PRESETS["open"].model_copy(update={"udp_timeout_s": behavior.udp_timeout_s})
    return Router(
        name=name,
        behavior=NatBehavior.model_validate(behavior.model_dump()),
        behind=behind,
        lan=spec.lan,
        firewall=spec.firewall,
        link=spec.link,
        carrier=spec.preset in CARRIER_PRESETS or spec.nat64,
        open=spec.preset == "open",
        families=spec.families,
        v6_filtering=spec.effective_v6_filtering,
        lan6=spec.lan6,
        nat64=spec.nat64,
        blackholed=spec.blackholed,
    )


def _family_problem(scenario: Scenario, routers: dict[str, Router]) -> str | None:
    """Families that do not fit across the scenario: a network whose parent does not carry
    its families, two IPv6 LANs that overlap, a TURN server relaying in a family it lacks, or
    a host moved to or from a network with IPv6 (a move takes the IPv4 address only)."""
    internet = scenario.internet_families
    for router in routers.values():
        if router.behind == INTERNET:
            continue
        parent = routers[router.behind]
        missing = router.wan_families - parent.families
        if missing:
            field = "nat64" if router.nat64 and IPV4 in missing else "ip"
            # a chained preset's own carrier takes the home's families: name the file's NAT
            name = (
                router.name.removesuffix("-carrier")
                if router.name not in scenario.nats
                else router.name
            )
            return (
                f"nats.{name}.{field}: this network needs {family_list(missing)} from "
                f"nats.{parent.name}, which it sits behind, but that one carries "
                f"{family_list(parent.families)} (ip: {ip_of(parent.families)}); give "
                f"nats.{parent.name} ip: dual"
            )
    lans = [(r.name, r.lan6) for r in routers.values() if r.lan6 is not None]
    for i, (name, lan6) in enumerate(lans):
        for other, other_lan6 in lans[:i]:
            if lan6.overlaps(other_lan6):
                return (
                    f"nats.{name}.lan6: {lan6} overlaps nats.{other}.lan6 ({other_lan6}); "
                    "IPv6 LANs are routed, not translated: give each its own /64"
                )
    for name, server in scenario.servers.items():
        has = server.families_in(internet)
        wanted = {WORD_FAMILIES[f] for f in server.relay_families or []}
        if wanted - has:
            return (
                f"servers.{name}.relay_families: the server has no "
                f"{family_list(wanted - has)} address; relay in its own families"
            )
    if scenario.call is not None:
        where_now = {name: host.behind for name, host in scenario.hosts.items()}
        for i, event in sorted(enumerate(scenario.call.timeline), key=lambda p: p[1].at_s):
            if event.action != "move" or event.target not in where_now:
                continue
            ends = [where_now[event.target], event.to or INTERNET]
            where_now[event.target] = ends[1]
            if any((routers[e].families if e in routers else internet) != {IPV4} for e in ends):
                return (
                    f"call.timeline[{i}]: a move takes a host's IPv4 address only, so it "
                    "cannot move to or from a network with IPv6 (ip: dual or v6, or the "
                    "internet when it carries IPv6); move it between IPv4 networks"
                )
    return None


def _parents_first(routers: list[Router]) -> list[Router]:
    by_name = {r.name: r for r in routers}
    ordered: list[Router] = []
    placed: set[str] = set()

    def place(router: Router, depth: int = 0) -> None:
        if router.name in placed or depth > len(by_name):
            return
        parent = by_name.get(router.behind)
        if parent is not None:
            place(parent, depth + 1)
        placed.add(router.name)
        ordered.append(router)

    for router in routers:
        place(router)
    return ordered
