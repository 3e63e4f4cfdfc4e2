"""Everything simnet derives from a scenario's addresses, rendered as plain text: the network
plan (nodes, addresses, routes, cables), each router's nftables ruleset, each STUN/TURN server's
turnserver command line and the link impairments' rules.

`tests/unit/test_rendered_network.py` holds the shipped scenarios to the renderings kept in
`tests/unit/data/rendered/`, so a change of the address types or the renderers cannot change a
network that is built; `python -m tests.unit.rendered_network` rewrites those files (only for a
change that is meant to change what is built).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simnet.net.impair.chooser import link_targets
from simnet.net.impair.rules import egress_chain, queue_rules
from simnet.net.nftables import render_router
from simnet.net.plan import NetworkPlan, Route, Veth, plan_network
from simnet.run.one_call import turn_limits
from simnet.scenario.load import load_scenario
from simnet.scenario.model import DIRECTIONS
from simnet.services.coturn import CoturnFiles, TurnConfig, turnserver_argv

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data" / "rendered"
# A few shipped scenarios that between them have carrier-grade, firewalled, hairpinning and
# impaired NATs, a timeline's moves and TURN servers in two regions; and a network made to take
# every other path (open routers, block lists, sequential ports, servers with several addresses).
SCENARIOS = [
    *(
        ROOT / "scenarios" / f"{name}.yaml"
        for name in (
            "cgnat-double-nat",
            "corporate-udp-blocked",
            "hairpin-same-nat",
            "handover-wifi-to-lte",
            "impaired-wan",
            "two-turn-regions",
        )
    ),
    DATA / "every-address-path.yaml",
]
MAC = "02:00:00:00:00:01"


def _route(route: Route) -> str:
    return f"{route.dst} dev={route.dev} via={route.via} blackhole={route.blackhole}"


def _veth(veth: Veth) -> str:
    return (
        f"{veth.a}:{veth.a_if} - {veth.b}:{veth.b_if} bridge={veth.b_bridge} "
        f"impaired={veth.link is not None} standby={veth.standby}"
    )


def _plan(plan: NetworkPlan) -> dict[str, Any]:
    nodes = {}
    for name, node in plan.nodes.items():
        router = node.router
        nodes[name] = {
            "role": str(node.role),
            "behind": node.behind,
            "addresses": {i: [str(a) for a in addrs] for i, addrs in node.addresses.items()},
            "bridges": node.bridges,
            "routes": [_route(r) for r in node.routes],
            "router": None
            if router is None
            else {"wan": str(router.wan_address), "lan": str(router.lan)},
        }
    attachments = {
        host: {
            network: f"{a.network} {_veth(a.veth)} {a.address} gw={a.gateway}"
            for network, a in known.items()
        }
        for host, known in plan.attachments.items()
    }
    return {"nodes": nodes, "veths": [_veth(v) for v in plan.veths], "attachments": attachments}


def render(path: Path) -> dict[str, Any]:
    """The rendering of the scenario file at `path` (JSON-ready)."""
    scenario = load_scenario(path)
    plan = plan_network(scenario)
    nft = {
        name: render_router(node.router)
        for name, node in plan.nodes.items()
        if node.router is not None
    }
    coturn = {}
    for name in plan.scenario.servers_of("turn") + plan.scenario.servers_of("stun"):
        spec = plan.scenario.servers[name]
        config = TurnConfig(
            listening_ips=tuple(plan.nodes[name].all_addresses()), **turn_limits(spec.limits)
        )
        coturn[name] = turnserver_argv(config, CoturnFiles(Path("/run/coturn")))
    ns = {name: f"ns-{name}" for name in plan.nodes}
    targets = link_targets(plan, ns)
    fed = {t.node: DIRECTIONS for t in targets}
    links = {
        "queue_rules": queue_rules(targets, {t.node: MAC for t in targets}, fed),
        "egress": {
            f"{t.node} {d}": egress_chain(t, d, lined=False) for t in targets for d in DIRECTIONS
        },
    }
    return {"plan": _plan(plan), "nft": nft, "coturn": coturn, "links": links}


def stored(path: Path) -> Path:
    return DATA / f"{path.stem}.json"


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for path in SCENARIOS:
        stored(path).write_text(json.dumps(render(path), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
