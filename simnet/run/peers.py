"""Which program is each host's peer, and is it on this machine.

A host's `peer:` (simnet.scenario.model.HostSpec) names a kind of the registry
(`simnet.peerkinds`): simnet's aiortc agent, headless Chromium driven by simnet's Chromium agent,
or a program of the user's own that speaks the peer protocol (simnet.peer.protocol). All are
started the same way (`simnet.peer.control.agent.PeerAgent.start` with the argv from here, which
the kind's own hook builds) and answer the same commands, so nothing after start-up knows which
stack it talks to, except the row, which says so.

A missing program is found before anything is built (`missing_programs`), so a run on a machine
without Chromium, or with a mistyped command, ends in one clear error and costs no network.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from simnet import peerkinds
from simnet.errors import EnvironmentProblem, cut
from simnet.peer.external import find_command
from simnet.peerkinds import DEFAULT_KIND, NAMED_KINDS, Launch, PeerKindSpec, PeerPair
from simnet.scenario.model import ExternalPeer, HostSpec


def kind_of(host: HostSpec) -> PeerKindSpec:
    """The registry's entry for `host`'s peer."""
    return peerkinds.kind(host.peer_kind)


def peer_argv(
    host: HostSpec,
    ns: str,
    workdir: Path,
    name: str,
    trust: Sequence[Path] = (),
    proxy: str | None = None,
) -> list[str]:
    """The command line of `name`'s peer, built by its kind's hook.

    The peer may own `workdir/<kind>-<name>` (a Chromium peer's fresh profile), which the
    run's teardown (and `simnet cleanup` after a killed run) removes with the rest of the work
    directory; it trusts `trust` (the TURN servers' certificates) from its start, so a
    TURN-over-TLS call costs no browser relaunch."""
    kind = kind_of(host)
    command = host.peer.argv if isinstance(host.peer, ExternalPeer) else ()
    launch = Launch(
        ns=ns,
        scratch=workdir / f"{kind.name}-{name}",
        trust=trust,
        command=command,
        proxy=proxy if kind.capabilities.http_proxy else None,
    )
    return peerkinds.agent_argv(kind, launch)


def hosted_argv(kind: PeerKindSpec) -> list[str]:
    """The command line of a process hosting many peers of `kind` (its channels not yet added)."""
    if kind.hosted_module is None:
        raise ValueError(f"{kind.name} peers cannot share a process")
    return [sys.executable, "-m", kind.hosted_module]


def missing_programs(hosts: dict[str, HostSpec], peers: list[str], source: str) -> None:
    """Raise `EnvironmentProblem` (exit 2) for the first of `peers` whose program is missing."""
    for name in peers:
        host = hosts[name]
        kind = kind_of(host)
        needed = kind.requirement
        if needed is not None and peerkinds.find_program(needed.binaries) is None:
            raise EnvironmentProblem(
                f"{source}: hosts.{name}.peer is {kind.name}, but no {needed.what} is installed",
                fix=f"{needed.fix}; or set the host's peer: {DEFAULT_KIND}",
            )
        peer = host.peer
        if isinstance(peer, ExternalPeer) and find_command(peer.argv[0]) is None:
            raise EnvironmentProblem(
                f"{source}: hosts.{name}.peer.command: {cut(repr(peer.argv[0]))} is not an "
                f"executable file{'' if os.sep in peer.argv[0] else ' on PATH'}",
                fix="give the program's path (relative to where simnet runs) and make it "
                "executable (chmod +x), or name a program on PATH",
            )


def peer_pair(spec: str) -> PeerPair:
    """`--peers`: one kind for both sides (`chromium`) or A's and B's (`aiortc,chromium`)."""
    kinds = [k.strip() for k in spec.split(",")]
    unknown = [k for k in kinds if k not in NAMED_KINDS]
    if unknown or not 1 <= len(kinds) <= 2:
        raise ValueError(
            f"--peers {spec!r}: give one peer kind for both sides or two (A's, B's) separated "
            f"by a comma, each one of {', '.join(NAMED_KINDS)}"
        )
    return cast(PeerPair, (kinds[0], kinds[-1]))  # both checked against NAMED_KINDS
