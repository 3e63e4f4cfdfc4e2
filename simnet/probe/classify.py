"""Turning probe observations into RFC 4787 words. Pure functions, no sockets."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from simnet.scenario.nat import Filtering, Mapping, NatBehavior, PortAllocation

Endpoint = tuple[str, int]

SEQUENTIAL_MAX_STEP = 8  # successive fresh mappings this close together count as sequential


def classify_mapping(first: Endpoint, other_address: Endpoint, other_both: Endpoint) -> Mapping:
    """RFC 5780 4.3: mapped endpoints seen by server A1:P1, A2:P1 and A2:P2 from one socket."""
    if other_address == first:
        return Mapping.EIM
    if other_both == other_address:
        return Mapping.ADM
    return Mapping.APDM


def classify_filtering(got_from_other_address: bool, got_from_other_port: bool) -> Filtering:
    """RFC 5780 4.4: which unsolicited answers reached a fresh mapping."""
    if got_from_other_address:
        return Filtering.EIF
    if got_from_other_port:
        return Filtering.ADF
    return Filtering.APDF


def classify_allocation(pairs: Sequence[tuple[int, int]]) -> PortAllocation:
    """(local port, mapped port) of fresh mappings made one after another."""
    if all(local == mapped for local, mapped in pairs):
        return PortAllocation.PRESERVE
    mapped = [m for _, m in pairs]
    steps = [b - a for a, b in itertools.pairwise(mapped)]
    if steps and all(0 < step <= SEQUENTIAL_MAX_STEP for step in steps):
        return PortAllocation.SEQUENTIAL
    return PortAllocation.RANDOM


def lifetime_bounds(results: Sequence[tuple[float, bool]]) -> tuple[float, float | None]:
    """(delay, answered) pairs -> (longest delay answered, shortest delay not answered)."""
    answered = [d for d, ok in results if ok]
    lost = [d for d, ok in results if not ok]
    return (max(answered, default=0.0), min(lost) if lost else None)


class NatObservation(BaseModel):
    """What a probe saw of the NATs between a host and the internet."""

    model_config = ConfigDict(frozen=True)

    translates: bool
    mapped_address: str
    mapping: Mapping
    filtering: Filtering
    port_allocation: PortAllocation
    hairpin: bool
    lifetime_lower_s: float | None = None
    lifetime_upper_s: float | None = None

    def mismatches(
        self, expected: NatBehavior, lifetime_max_s: float | None, expires: bool | None = None
    ) -> list[str]:
        """Where the observation differs from the configured behaviour (empty: as configured).

        `expires`: whether a binding lifetime is to be seen (default: where the NAT translates;
        an IPv6 firewall's state expires too, where it filters)."""
        wrong = []
        for name in ("translates", "mapping", "filtering", "port_allocation", "hairpin"):
            seen, want = getattr(self, name), getattr(expected, name)
            if seen != want:
                wrong.append(f"{name}: observed {_word(seen)}, configured {_word(want)}")
        if expires is None:
            expires = expected.translates
        if lifetime_max_s is not None and expires:
            timeout = expected.udp_timeout_s
            lower = self.lifetime_lower_s or 0.0
            upper = self.lifetime_upper_s
            if timeout < lifetime_max_s and not (lower <= timeout <= (upper or float("inf"))):
                wrong.append(
                    f"binding lifetime: observed between {lower:g} s and {_word(upper)} s, "
                    f"configured {timeout} s"
                )
            if timeout > lifetime_max_s and upper is not None:
                wrong.append(
                    f"binding lifetime: expired before {upper:g} s, configured {timeout} s"
                )
        return wrong


def _word(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "never"
    return str(value)
