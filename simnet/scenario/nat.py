"""NAT behaviour in RFC 4787 terms, the classic presets, and how chained NATs combine.

A NAT here is "mapping behaviour + filtering behaviour + port allocation + hairpinning + binding
timeout", named as RFC 4787 names them. Nothing in this module knows how a NAT is implemented.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Mapping(StrEnum):
    """RFC 4787 section 4.1: when does an internal endpoint get a new external port?"""

    EIM = "endpoint-independent"
    ADM = "address-dependent"
    APDM = "address-and-port-dependent"

    @property
    def short(self) -> str:
        return {"endpoint-independent": "EIM", "address-dependent": "ADM"}.get(self.value, "APDM")


class Filtering(StrEnum):
    """RFC 4787 section 5: which unsolicited inbound packets reach a mapping?"""

    EIF = "endpoint-independent"
    ADF = "address-dependent"
    APDF = "address-and-port-dependent"

    @property
    def short(self) -> str:
        return {"endpoint-independent": "EIF", "address-dependent": "ADF"}.get(self.value, "APDF")


class PortAllocation(StrEnum):
    """How a fresh mapping's external port is chosen (RFC 4787 section 4.2.1)."""

    PRESERVE = "preserve"
    SEQUENTIAL = "sequential"
    RANDOM = "random"


# Restrictiveness order, used when NATs are chained: the stricter one shows through.
_STRICTNESS = {
    Mapping.EIM: 0,
    Mapping.ADM: 1,
    Mapping.APDM: 2,
    Filtering.EIF: 0,
    Filtering.ADF: 1,
    Filtering.APDF: 2,
}

MAPPING_ALIASES = {"eim": Mapping.EIM, "adm": Mapping.ADM, "apdm": Mapping.APDM}
FILTERING_ALIASES = {"eif": Filtering.EIF, "adf": Filtering.ADF, "apdf": Filtering.APDF}

DEFAULT_UDP_TIMEOUT_S = 120  # RFC 4787 REQ-5: at least 2 minutes


class NatBehavior(BaseModel):
    """What one NAT device does to UDP; `translates=False` is a plain router (preset `open`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    translates: bool = True
    mapping: Mapping = Mapping.EIM
    filtering: Filtering = Filtering.APDF
    port_allocation: PortAllocation = PortAllocation.PRESERVE
    hairpin: bool = True
    udp_timeout_s: int = Field(default=DEFAULT_UDP_TIMEOUT_S, ge=1, le=86400)


OPEN = NatBehavior(
    translates=False,
    mapping=Mapping.EIM,
    filtering=Filtering.EIF,
    port_allocation=PortAllocation.PRESERVE,
    hairpin=True,
)

PRESETS: dict[str, NatBehavior] = {
    "open": OPEN,
    "full-cone": NatBehavior(mapping=Mapping.EIM, filtering=Filtering.EIF),
    "restricted-cone": NatBehavior(mapping=Mapping.EIM, filtering=Filtering.ADF),
    "port-restricted-cone": NatBehavior(mapping=Mapping.EIM, filtering=Filtering.APDF),
    "symmetric": NatBehavior(
        mapping=Mapping.APDM, filtering=Filtering.APDF, port_allocation=PortAllocation.RANDOM
    ),
}

# A carrier-grade NAT follows RFC 6888: its REQ-1 asks for RFC 4787's behaviour, so mapping is
# endpoint-independent (RFC 4787 REQ-1) and hairpinning supported (REQ-9); filtering is
# address-and-port-dependent (RFC 4787 REQ-8 allows it where stricter filtering is wanted, and
# carriers choose it), and ports are not preserved (many subscribers share each public
# address: here random). Its subscriber side is 100.64.0.0/10 (RFC 6598).
CGNAT_CARRIER = NatBehavior(
    mapping=Mapping.EIM,
    filtering=Filtering.APDF,
    port_allocation=PortAllocation.RANDOM,
    hairpin=True,
)
# `cgn` is that carrier NAT alone, with the hosts directly behind it: a phone on a mobile
# network. Its LAN is taken from 100.64.0.0/10, as a carrier's is.
CARRIER_PRESETS = {"cgn": CGNAT_CARRIER}
# `cgnat` is not one device but two: a home router behind that carrier NAT.
CGNAT_HOME = PRESETS["port-restricted-cone"]
CHAINED_PRESETS = {"cgnat": (CGNAT_HOME, CGNAT_CARRIER)}
PRESET_NAMES = (*PRESETS, *CARRIER_PRESETS, *CHAINED_PRESETS)


_Behaviour = TypeVar("_Behaviour", Mapping, Filtering)


def _stricter(a: _Behaviour, b: _Behaviour) -> _Behaviour:
    return a if _STRICTNESS[a] >= _STRICTNESS[b] else b


def _combined_allocation(inner: PortAllocation, outer: PortAllocation) -> PortAllocation:
    return inner if outer is PortAllocation.PRESERVE else outer


def compose(inner: NatBehavior, outer: NatBehavior) -> NatBehavior:
    """What a host behind `inner`, itself behind `outer`, observes from the internet.

    Hairpinning needs the outer NAT to loop the packet back *and* the inner NAT to let an
    unsolicited packet from the outer NAT's public address in, which only endpoint-independent
    filtering does. The external port is the outer NAT's choice unless it preserves ports.
    """
    if not inner.translates:
        return outer
    if not outer.translates:
        return inner
    return NatBehavior(
        mapping=_stricter(inner.mapping, outer.mapping),
        filtering=_stricter(inner.filtering, outer.filtering),
        port_allocation=_combined_allocation(inner.port_allocation, outer.port_allocation),
        hairpin=outer.hairpin and inner.filtering is Filtering.EIF,
        udp_timeout_s=min(inner.udp_timeout_s, outer.udp_timeout_s),
    )


def effective_behavior(chain: Iterable[NatBehavior]) -> NatBehavior:
    """Behaviour seen through a chain of NATs given innermost first."""
    result = OPEN
    for nat in chain:
        result = compose(result, nat)
    return result
