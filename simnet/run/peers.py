"""Which program is each host's peer, and is it on this machine.

A host's `peer:` (simnet.scenario.model.HostSpec) names a WebRTC stack: simnet's aiortc agent,
headless Chromium driven by simnet's Chromium agent, or a program of the user's own that speaks
the peer protocol (simnet.peer.protocol). All three are started the same way
(`simnet.peer.control.PeerAgent.start` with the argv from here) and answer the same commands, so
nothing after start-up knows which stack it talks to, except the row, which says so.

A missing program is found before anything is built (`missing_programs`), so a run on a machine
without Chromium, or with a mistyped command, ends in one clear error and costs no network.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from simnet.errors import EnvironmentProblem
from simnet.peer.chromium import INSTALL_FIX, agent_argv, find_binary
from simnet.scenario.model import PEER_KINDS, ExternalPeer, HostSpec, PeerPair


def peer_argv(
    host: HostSpec, ns: str, workdir: Path, name: str, trust: Sequence[Path] = ()
) -> list[str] | None:
    """The command line of `name`'s peer (None: simnet's aiortc agent, PeerAgent's default).

    A Chromium peer gets a fresh profile directory inside the run's work directory, which the
    run's teardown (and `simnet cleanup` after a killed run) removes with the rest of it, and
    trusts `trust` (the TURN servers' certificates) from its start, so a TURN-over-TLS call
    costs no browser relaunch."""
    peer = host.peer
    if peer == "aiortc":
        return None
    if peer == "chromium":
        return agent_argv(ns, workdir / f"chromium-{name}", trust=trust)
    assert isinstance(peer, ExternalPeer)
    program, *args = peer.argv
    return [_program(program) or program, *args]


def _program(program: str) -> str | None:
    """`program` as a shell would find it: a path (relative to the working directory) or a
    name on PATH; None if there is no such executable."""
    if os.sep in program:
        path = Path(program)
        # absolute, not resolved: a venv's python is a symlink that must stay one
        return str(path.absolute()) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(program)


def missing_programs(hosts: dict[str, HostSpec], peers: list[str], source: str) -> None:
    """Raise `EnvironmentProblem` (exit 2) for the first of `peers` whose program is missing."""
    for name in peers:
        peer = hosts[name].peer
        if peer == "chromium" and find_binary() is None:
            raise EnvironmentProblem(
                f"{source}: hosts.{name}.peer is chromium, but no Chromium is installed",
                fix=f"{INSTALL_FIX}; or set the host's peer: aiortc",
            )
        if isinstance(peer, ExternalPeer) and _program(peer.argv[0]) is None:
            raise EnvironmentProblem(
                f"{source}: hosts.{name}.peer.command: {peer.argv[0]!r} is not an executable "
                f"file{'' if os.sep in peer.argv[0] else ' on PATH'}",
                fix="give the program's path (relative to where simnet runs) and make it "
                "executable (chmod +x), or name a program on PATH",
            )


def peer_pair(spec: str) -> PeerPair:
    """`--peers`: one kind for both sides (`chromium`) or A's and B's (`aiortc,chromium`)."""
    kinds = [k.strip() for k in spec.split(",")]
    unknown = [k for k in kinds if k not in PEER_KINDS]
    if unknown or not 1 <= len(kinds) <= 2:
        raise ValueError(
            f"--peers {spec!r}: give one peer kind for both sides or two (A's, B's) separated "
            f"by a comma, each one of {', '.join(PEER_KINDS)}"
        )
    return cast(PeerPair, (kinds[0], kinds[-1]))  # both checked against PEER_KINDS
