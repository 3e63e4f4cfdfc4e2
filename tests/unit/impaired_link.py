"""Alice's impaired access link as a LinkTarget, and the rules every IPv4 queue ruleset keeps."""

from __future__ import annotations

from typing import Any

from simnet.net.impair.rules import LinkTarget
from simnet.scenario.model import LinkSpec

#: group management (IGMP) passes every IPv4 namespace's queue rules untouched
SPARED = "-A PREROUTING -p igmp -j RETURN\n-A OUTPUT -p igmp -j RETURN\n"


def target(spec: LinkSpec | dict[str, Any], router: bool = False) -> LinkTarget:
    if isinstance(spec, dict):
        spec = LinkSpec.model_validate(spec)
    return LinkTarget(
        node="alice",
        a_ns="sn-x-alice",
        a_if="wan" if router else "eth0",
        b_ns="sn-x-internet",
        b_if="p3",
        spec=spec,
        forwards_from="lan" if router else None,
        seed=7,
    )
