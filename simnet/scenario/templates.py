"""Host templates made concrete: the network a scenario with `count`s stands for.

Why a separate step: a load scenario says "50 alices, each behind a home router of her own" in
two lines, and everything that builds, checks or reports a network wants the 50 hosts and 50
routers by name. `expand` writes them out as an ordinary scenario (the model is the same; only
`count` and `own_nat` are gone), so the planner and the builder need no notion of templates,
and `call_pairs` says which instance calls which.

Names: instance i of template `alice` is `alice-i`; with `own_nat`, it sits behind
`alice-i-nat`, a copy of the NAT the template names (its preset, knobs, LAN, firewall, link and
the network it hangs off). The model checks every such name is valid and free before this runs.
"""

from __future__ import annotations

from simnet.scenario.model import (
    CallSpec,
    HostSpec,
    NatSpec,
    Scenario,
    instance_names,
    own_nat_name,
)


def has_templates(scenario: Scenario) -> bool:
    return any(h.count > 1 or h.own_nat for h in scenario.hosts.values())


def expand(scenario: Scenario) -> Scenario:
    """`scenario` with every host template written out (itself when it has none).

    A NAT that only `own_nat` templates sat behind is not built: each of their hosts has its
    copy. The call, if any, becomes the first pair's (`call_pairs`)."""
    if not has_templates(scenario):
        return scenario
    hosts: dict[str, HostSpec] = {}
    copies: dict[str, NatSpec] = {}
    for name, host in scenario.hosts.items():
        for instance in instance_names(name, host.count):
            behind = host.behind
            if host.own_nat:
                behind = own_nat_name(instance)
                copies[behind] = scenario.nats[host.behind]
            hosts[instance] = host.model_copy(
                update={"count": 1, "own_nat": False, "behind": behind}
            )
    used = {h.behind for h in hosts.values()} | {n.behind for n in scenario.nats.values()}
    if scenario.call is not None:
        used |= {e.to or "" for e in scenario.call.timeline} | {
            e.target or "" for e in scenario.call.timeline
        }
    nats = {n: spec for n, spec in scenario.nats.items() if n in used or not _copied(scenario, n)}
    call = scenario.call
    if call is not None:
        offerer, answerer = call_pairs(scenario, call)[0]
        call = call.model_copy(update={"offerer": offerer, "answerer": answerer, "concurrent": 1})
    return Scenario.model_validate(
        {
            **scenario.model_dump(exclude={"nats", "hosts", "call"}),
            "nats": {**nats, **copies},
            "hosts": hosts,
            "call": call,
        }
    )


def _copied(scenario: Scenario, nat: str) -> bool:
    """Whether an `own_nat` template copies `nat` (so the original may be left unbuilt)."""
    return any(h.own_nat and h.behind == nat for h in scenario.hosts.values())


def call_pairs(scenario: Scenario, call: CallSpec) -> list[tuple[str, str]]:
    """(offerer, answerer) of each of the call's `concurrent` calls: instance i of the
    offerer's template calls instance i of the answerer's."""
    offerers = instance_names(call.offerer, _count(scenario, call.offerer))
    answerers = instance_names(call.answerer, _count(scenario, call.answerer))
    return list(zip(offerers, answerers, strict=False))[: call.concurrent]


def _count(scenario: Scenario, host: str) -> int:
    spec = scenario.hosts.get(host)
    return 1 if spec is None else spec.count
