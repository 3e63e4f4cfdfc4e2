"""Which links to impair, with which backend: `apply_links` is the builder's one call.

The backend is chosen once per process: netem where the kernel has it (in-kernel, no process
per namespace), else the userspace NFQUEUE backend. `SIMNET_LINK_BACKEND=netem|nfqueue` forces
one (to compare them, or to test the userspace one on a kernel that has netem).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from simnet import settings
from simnet.addresses import IPV4, IPV6, Family
from simnet.errors import EnvironmentProblem
from simnet.net.impair.kernel import netem_available, set_mtu
from simnet.net.impair.netem import NetemBackend
from simnet.net.impair.nfqueue import NfqueueBackend, adopt
from simnet.net.impair.rules import LinkRecord, LinkTarget
from simnet.net.plan import LAN_IF, NetworkPlan, Veth
from simnet.net.registry import Run
from simnet.scenario.model import DIRECTIONS, LinkSpec

BACKEND_ENV = settings.BACKEND_ENV


class Backend(Protocol):
    """Installs every impairment of `targets` (MTU aside), owned by `run`."""

    name: str

    def apply(self, targets: Sequence[LinkTarget], run: Run) -> dict[str, LinkRecord]: ...


def link_targets(plan: NetworkPlan, ns: Mapping[str, str]) -> list[LinkTarget]:
    """The plan's non-ideal links, with the namespaces and interfaces they live in."""
    targets: list[LinkTarget] = []
    for veth in plan.veths:
        if veth.link is None or veth.link.is_ideal:
            continue
        targets.append(link_target(plan, ns, veth, veth.link, index=len(targets)))
    return targets


def link_target(
    plan: NetworkPlan, ns: Mapping[str, str], veth: Veth, spec: LinkSpec, index: int = 0
) -> LinkTarget:
    """`veth`'s link impaired as `spec` (the scenario's, or a timeline's during a call)."""
    node, parent = plan.nodes[veth.a], plan.nodes[veth.b]
    router = parent.router if veth.b_bridge else None
    gateways = {a.version: a.ip for a in parent.addresses.get(veth.b_bridge or "", [])}
    lan, lan6 = (router.lan4, router.lan6) if router is not None else (None, None)
    return LinkTarget(
        node=veth.a,
        a_ns=ns[veth.a],
        a_if=veth.a_if,
        b_ns=ns[veth.b],
        b_if=veth.b_if,
        spec=spec,
        index=index,
        forwards_from=LAN_IF if node.router is not None else None,
        b_bridge=veth.b_bridge if router is not None else None,
        lan=lan,
        gateway=gateways.get(IPV4) if lan is not None else None,
        seed=plan.scenario.seed,
        families=_carried(plan, veth),
        lan6=lan6,
        gateway6=gateways.get(IPV6) if lan6 is not None else None,
    )


def _carried(plan: NetworkPlan, veth: Veth) -> frozenset[Family]:
    """The families `veth` carries: those of its node's addresses on it (for a standby cable,
    what the network at its other end gives), IPv4 if none (a link without addresses)."""
    node = plan.nodes[veth.a]
    found = frozenset(a.version for a in node.addresses.get(veth.a_if, []))
    if not found:
        router = plan.nodes[veth.b].router
        found = router.families if router is not None else plan.families
    return found or frozenset({IPV4})


def choose_backend(probe_ns: str) -> Backend:
    """netem if the kernel has it, else nfqueue; `SIMNET_LINK_BACKEND` overrides."""
    wanted = settings.link_backend()
    if wanted == "nfqueue":
        return NfqueueBackend()
    if netem_available(probe_ns):
        return NetemBackend()
    if wanted == "netem":
        raise EnvironmentProblem(
            f"{BACKEND_ENV}=netem, but this kernel has no sch_netem",
            fix=f"unset {BACKEND_ENV} to use the userspace (NFQUEUE) backend",
        )
    return NfqueueBackend()


def apply_links(plan: NetworkPlan, run: Run, ns: Mapping[str, str]) -> None:
    """Impair every link of `plan` that its scenario impairs; record what was done in `run`."""
    adopt(run, ns.values())  # so a call's timeline can change any link of it later
    targets = link_targets(plan, ns)
    if not targets:
        return
    for target in targets:
        if target.spec.mtu is not None:
            set_mtu(target.a_ns, target.a_if, target.spec.mtu)
            set_mtu(target.b_ns, target.b_if, target.spec.mtu)
    backend = choose_backend(targets[0].a_ns)
    done = backend.apply(targets, run)
    run.info["links"] = {
        "backend": backend.name,
        "nodes": {
            t.node: {
                **{d: t.impairment(d).model_dump(exclude_defaults=True) for d in DIRECTIONS},
                **({"mtu": t.spec.mtu} if t.spec.mtu else {}),
                **done.get(t.node, {}),
            }
            for t in targets
        },
    }
