"""Which links to impair, with which backend: `apply_links` is the builder's one call.

The backend is chosen once per process: netem where the kernel has it (in-kernel, no process
per namespace), else the userspace NFQUEUE backend. `SIMNET_LINK_BACKEND=netem|nfqueue` forces
one (to compare them, or to test the userspace one on a kernel that has netem).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from simnet import settings
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
    lan = parent.router.lan if veth.b_bridge and parent.router else None
    return LinkTarget(
        node=veth.a,
        a_ns=ns[veth.a],
        a_if=veth.a_if,
        b_ns=ns[veth.b],
        b_if=veth.b_if,
        spec=spec,
        index=index,
        forwards_from=LAN_IF if node.router is not None else None,
        b_bridge=veth.b_bridge if lan else None,
        lan=lan,
        gateway=parent.addresses[veth.b_bridge][0].ip if lan and veth.b_bridge else None,
        seed=plan.scenario.seed,
    )


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
